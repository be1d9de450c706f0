"""What a custodian decides by hand: links, unlinks, evidence marks and approved recording exceptions.

Each takes a required reason, is recorded in the audit log in the same transaction as the change, and
refreshes the flags it affects. A pair a custodian linked or unlinked (or marked as evidence) is never
touched again by automatic linking (`linking_service`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from evidence_store.bootstrap import Station
from evidence_store.cases.flags_service import refresh_flags
from evidence_store.cases.linking_transaction import lock_linking
from evidence_store.db.tables import cases, clip_links, clips, documents
from evidence_store.domain.model import ClipLink, LinkOrigin, RecordingException
from evidence_store.domain.record_facts import FACTS_KEY, row_fact
from evidence_store.errors import ConflictError, InputError, NotFoundError


class ManualLinkError(InputError):
    """A custodian's request that cannot be carried out as asked (nothing was changed); the custodian
    corrects the request (gives a reason, links before marking, names a document of the case)."""


class ManualLinkConflict(ManualLinkError, ConflictError):
    """The links as stored do not allow it (already linked by hand; not linked, so nothing to mark)."""


class NoSuchCaseDocument(ManualLinkError, NotFoundError):
    """The document named is not one of the case's."""


@dataclass(frozen=True)
class _Target:
    clip_id: int
    case_id: int
    case_number: str
    document_id: int | None
    document_external_id: str | None


def _reason(reason: str) -> str:
    text = reason.strip()
    if not text:
        raise ManualLinkError("a reason is required")
    return text


def _case(session: Session, number: str) -> tuple[int, str]:
    row = session.execute(select(cases.c.id, cases.c.number).where(cases.c.number == number)).first()
    if row is None:
        raise NotFoundError(f"no case {number!r}")
    return row.id, row.number


def _document(session: Session, case_id: int, case_number: str, external_id: str | None) -> int | None:
    if external_id is None:
        return None
    row = session.execute(
        select(documents.c.id, documents.c.case_id).where(documents.c.external_id == external_id)
    ).first()
    if row is None:
        raise NotFoundError(f"no document {external_id!r}")
    if row.case_id != case_id:
        raise NoSuchCaseDocument(f"document {external_id!r} does not belong to case {case_number!r}")
    return int(row.id)


def _target(session: Session, clip_id: int, case_number: str, document: str | None) -> _Target:
    if session.scalar(select(clips.c.id).where(clips.c.id == clip_id)) is None:
        raise NotFoundError(f"no clip {clip_id}")
    case_id, number = _case(session, case_number)
    return _Target(clip_id, case_id, number, _document(session, case_id, number, document), document)


def _active_links(session: Session, target: _Target, *, whole_case: bool) -> list[ClipLink]:
    query = select(ClipLink).where(
        clip_links.c.clip_id == target.clip_id,
        clip_links.c.case_id == target.case_id,
        clip_links.c.removed_at.is_(None),
    )
    if not whole_case:
        query = query.where(
            clip_links.c.document_id.is_(None)
            if target.document_id is None
            else clip_links.c.document_id == target.document_id
        )
    return list(session.scalars(query.order_by(clip_links.c.id)))


def _refresh(session: Session, station: Station, clip_id: int, document_ids: set[int | None]) -> None:
    refresh_flags(
        session,
        station,
        document_ids={d for d in document_ids if d is not None},
        clip_ids={clip_id},
    )


def link_manually(
    station: Station, clip_id: int, case_number: str, *, document: str | None, reason: str, actor: str
) -> dict[str, Any]:
    """Link a clip to a case (and one of its documents) by hand; an automatic link of the same pair is
    replaced by the manual one (keeping its evidence mark)."""
    why = _reason(reason)
    with station.transaction() as session:
        lock_linking(session.connection())
        target = _target(session, clip_id, case_number, document)
        now = station.clock()
        existing = _active_links(session, target, whole_case=False)
        if any(link.origin is LinkOrigin.MANUAL for link in existing):
            raise ManualLinkConflict(
                f"clip {clip_id} is already linked by hand to case {target.case_number}"
                + (f", document {document}" if document else "")
            )
        evidence = False
        for link in existing:  # an automatic link of the same pair gives way to the decision by hand
            link.removed_at, link.removed_by = now, actor
            evidence = evidence or link.is_evidence
        link = ClipLink(
            clip_id=clip_id,
            case_id=target.case_id,
            document_id=target.document_id,
            origin=LinkOrigin.MANUAL,
            is_evidence=evidence,
            reason=why,
            created_by=actor,
            created_at=now,
        )
        session.add(link)
        session.flush()
        station.audit.record(
            session,
            actor=actor,
            action="clip.linked_manually",
            object_type="clip",
            object_id=clip_id,
            details={
                "case": target.case_number,
                "document": document,
                "reason": why,
                "link_id": link.id,
                "replaced_automatic_links": [x.id for x in existing],
                FACTS_KEY: [
                    row_fact("clip_links", link.id or 0, link, new=True),
                    *(_removal_fact(x) for x in existing),
                ],
            },
        )
        _refresh(session, station, clip_id, {target.document_id})
        return {"link_id": link.id, "clip_id": clip_id, "case": target.case_number, "document": document}


def unlink_manually(
    station: Station, clip_id: int, case_number: str, *, document: str | None, reason: str, actor: str
) -> dict[str, Any]:
    """Remove a clip's links to a case (or to one document of it) by hand; automatic linking will not
    link that pair again."""
    why = _reason(reason)
    with station.transaction() as session:
        lock_linking(session.connection())
        target = _target(session, clip_id, case_number, document)
        links = _active_links(session, target, whole_case=document is None)
        if not links:
            raise ManualLinkConflict(
                f"clip {clip_id} is not linked to case {target.case_number}"
                + (f", document {document}" if document else "")
            )
        now = station.clock()
        for link in links:
            link.removed_at, link.removed_by = now, actor
        session.flush()
        station.audit.record(
            session,
            actor=actor,
            action="clip.unlinked_manually",
            object_type="clip",
            object_id=clip_id,
            details={
                "case": target.case_number,
                "document": document,
                "reason": why,
                "link_ids": [link.id for link in links],
                "evidence_marks_removed": sum(1 for link in links if link.is_evidence),
                FACTS_KEY: [_removal_fact(link) for link in links],
            },
        )
        _refresh(session, station, clip_id, {link.document_id for link in links})
        return {"clip_id": clip_id, "case": target.case_number, "links_removed": [link.id for link in links]}


def mark_evidence(
    station: Station, clip_id: int, case_number: str, *, reason: str, actor: str, unmark: bool = False
) -> dict[str, Any]:
    """Mark (or unmark) a clip as evidence in a case: every active link of the clip to the case. A link
    marked as evidence is kept from automatic unlinking and keeps the footage for the case (R9)."""
    why = _reason(reason)
    with station.transaction() as session:
        lock_linking(session.connection())
        target = _target(session, clip_id, case_number, None)
        links = _active_links(session, target, whole_case=True)
        if not links:
            raise ManualLinkConflict(
                f"clip {clip_id} is not linked to case {target.case_number}: link it first "
                f"(evidence cases link {clip_id} {target.case_number} --reason ...)"
            )
        wanted = not unmark
        changed = [link for link in links if link.is_evidence != wanted]
        session.execute(
            update(clip_links)
            .where(clip_links.c.id.in_([link.id for link in links]))
            .values(is_evidence=wanted)
        )
        _refresh(session, station, clip_id, {link.document_id for link in links})
        station.audit.record(
            session,
            actor=actor,
            action="clip.evidence_unmarked" if unmark else "clip.evidence_marked",
            object_type="clip",
            object_id=clip_id,
            details={
                "case": target.case_number,
                "reason": why,
                "link_ids": [link.id for link in links],
                "changed": len(changed),
                FACTS_KEY: [
                    row_fact(
                        "clip_links",
                        link.id or 0,
                        {"is_evidence": wanted},
                        new=False,
                        fields=("is_evidence",),
                    )
                    for link in links
                ],
            },
        )
        return {
            "clip_id": clip_id,
            "case": target.case_number,
            "is_evidence": wanted,
            "links": [link.id for link in links],
            "changed": len(changed),
        }


def _removal_fact(link: ClipLink) -> dict[str, Any]:
    return row_fact("clip_links", link.id or 0, link, new=False, fields=("removed_at",))


def approve_exception(
    station: Station,
    case_number: str,
    *,
    document: str | None,
    reason: str,
    approved_by: str,
    actor: str,
    requested_by: str = "",
) -> dict[str, Any]:
    """R6: record an approved, written reason why an act that needed video has none; the document's
    (or, without a document, every document of the case's) missing-video flag clears."""
    why = _reason(reason)
    approver = approved_by.strip()
    if not approver:
        raise ManualLinkError("the approver is required (R6: the exception must be approved)")
    with station.transaction() as session:
        lock_linking(session.connection())  # before the audit lock, as every linking transaction does
        case_id, number = _case(session, case_number)
        document_id = _document(session, case_id, number, document)
        now = station.clock()
        exception = RecordingException(
            case_id=case_id,
            document_id=document_id,
            reason=why,
            requested_by=requested_by.strip() or actor,
            approved_by=approver,
            approved_at=now,
            created_at=now,
        )
        session.add(exception)
        session.flush()
        station.audit.record(
            session,
            actor=actor,
            action="recording_exception.approved",
            object_type="case",
            object_id=number,
            details={
                "exception_id": exception.id,
                "document": document,
                "reason": why,
                "approved_by": approver,
                "requested_by": exception.requested_by,
                FACTS_KEY: [row_fact("recording_exceptions", exception.id or 0, exception, new=True)],
            },
        )
        affected = (
            {document_id}
            if document_id is not None
            else set(session.scalars(select(documents.c.id).where(documents.c.case_id == case_id)))
        )
        flags = refresh_flags(session, station, document_ids=affected)
        return {
            "exception_id": exception.id,
            "case": number,
            "document": document,
            "approved_by": approver,
            "approved_at": now.isoformat(),
            **flags.as_dict(),
        }
