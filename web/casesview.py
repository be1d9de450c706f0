"""The case page: documents, linked footage, compliance flags, recording exceptions, the coverage
timeline, and the custodian's manual decisions (link, unlink, mark as evidence, each with a reason)."""

from __future__ import annotations

import logging
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, or_, select

from evidence_store.bootstrap import Station
from evidence_store.db.tables import (
    cases,
    clip_links,
    clips,
    compliance_flags,
    documents,
    officers,
    recording_exceptions,
)
from evidence_store.errors import EvidenceError
from web.access import User, case_visible, visible_case_clause, visible_clip_clause

log = logging.getLogger(__name__)
CASE_PAGE = 50


class CaseActionError(EvidenceError):
    """A manual link decision that cannot be applied (unknown clip or document, missing reason)."""


def case_row(connection: Connection, case_id: int) -> Any:
    return connection.execute(select(cases).where(cases.c.id == case_id)).first()


def list_cases(
    connection: Connection, user: User, *, number: str = "", limit: int = CASE_PAGE, offset: int = 0
) -> tuple[list[dict[str, Any]], bool]:
    query = select(cases).where(visible_case_clause(user))
    if number:
        query = query.where(cases.c.number >= number, cases.c.number < number + "\U0010ffff")
    rows = connection.execute(query.order_by(cases.c.id.desc()).limit(limit + 1).offset(offset)).all()
    return [_case_summary(r) for r in rows[:limit]], len(rows) > limit


def _case_summary(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "number": row.number,
        "title": row.title,
        "category": str(row.category),
        "subject": row.subject,
        "unit": row.unit,
        "opened_at": row.opened_at,
        "closed_at": row.closed_at,
        "archived_at": row.archived_at,
        "retention_period": str(row.retention_period),
        "confidentiality": str(row.confidentiality),
    }


def case_detail(connection: Connection, case_id: int, user: User) -> dict[str, Any] | None:
    """Everything the case page shows, or None when the case does not exist or is not for this user."""
    row = case_row(connection, case_id)
    if row is None or not case_visible(user, row.unit, row.confidentiality):
        return None
    docs = connection.execute(
        select(documents).where(documents.c.case_id == case_id).order_by(documents.c.start, documents.c.id)
    ).all()
    badge_of: dict[int, str] = (
        {k: v for k, v in connection.execute(select(officers.c.id, officers.c.badge_number))} if docs else {}
    )
    links = connection.execute(
        select(
            clip_links,
            clips.c.sha256,
            clips.c.original_name,
            clips.c.utc_start,
            clips.c.utc_end,
            clips.c.status,
            clips.c.officer_id,
            documents.c.external_id,
        )
        .join(clips, clips.c.id == clip_links.c.clip_id)
        .outerjoin(documents, documents.c.id == clip_links.c.document_id)
        .where(clip_links.c.case_id == case_id)
        .order_by(clips.c.utc_start, clip_links.c.id)
    ).all()
    visible_clips = set(
        connection.scalars(
            select(clips.c.id).where(
                clips.c.id.in_({link.clip_id for link in links}), visible_clip_clause(user)
            )
        )
    )
    doc_ids = [d.id for d in docs]
    flag_query = select(compliance_flags).where(compliance_flags.c.cleared_at.is_(None))
    flag_query = flag_query.where(
        or_(compliance_flags.c.case_id == case_id, compliance_flags.c.document_id.in_(doc_ids))
        if doc_ids
        else compliance_flags.c.case_id == case_id
    )
    flags = connection.execute(flag_query.order_by(compliance_flags.c.id)).all()
    exceptions = connection.execute(
        select(recording_exceptions)
        .where(recording_exceptions.c.case_id == case_id)
        .order_by(recording_exceptions.c.id)
    ).all()
    return {
        "case": _case_summary(row),
        "documents": [
            {
                "id": d.id,
                "external_id": d.external_id,
                "kind": d.kind,
                "title": d.title,
                "officers": [badge_of.get(i, str(i)) for i in d.officer_ids or []],
                "start": d.start,
                "end": d.end,
                "requires_video": bool(d.requires_video),
            }
            for d in docs
        ],
        "links": [
            {
                "id": link.id,
                "clip_id": link.clip_id,
                "visible": link.clip_id in visible_clips,
                "original_name": link.original_name if link.clip_id in visible_clips else None,
                "sha256": link.sha256 if link.clip_id in visible_clips else None,
                "utc_start": link.utc_start,
                "utc_end": link.utc_end,
                "status": str(link.status),
                "document": link.external_id,
                "origin": str(link.origin),
                "is_evidence": bool(link.is_evidence),
                "uncertain": bool(link.uncertain),
                "reason": link.reason,
                "created_by": link.created_by,
                "created_at": link.created_at,
                "removed_at": link.removed_at,
                "removed_by": link.removed_by,
            }
            for link in links
        ],
        "flags": [
            {
                "id": f.id,
                "kind": f.kind,
                "document_id": f.document_id,
                "clip_id": f.clip_id,
                "details": f.details,
                "opened_at": f.opened_at,
            }
            for f in flags
        ],
        "exceptions": [
            {
                "id": e.id,
                "document_id": e.document_id,
                "reason": e.reason,
                "requested_by": e.requested_by,
                "approved_by": e.approved_by,
                "approved_at": e.approved_at,
            }
            for e in exceptions
        ],
    }


def timeline_svg(station: Station, case_id: int, user: User) -> str | None:
    """The coverage timeline picture of the cases package (`render_timeline`), drawn only with the clips
    this user may see."""
    from evidence_store.cases.timeline import render_timeline
    from evidence_store.cases.views import case_view, timeline_lanes

    with station.engine.connect() as connection:
        row = case_row(connection, case_id)
    if row is None:
        return None
    view = case_view(station, row.number)  # its own connection: never nest them (SQLite writer lock)
    ids = [clip["clip_id"] for clip in view["clips"]]
    with station.engine.connect() as connection:
        visible = set(
            connection.scalars(select(clips.c.id).where(clips.c.id.in_(ids), visible_clip_clause(user)))
        )
    view["clips"] = [clip for clip in view["clips"] if clip["clip_id"] in visible]
    zone = station.settings.timezone
    title = f"{row.number} {row.title}".strip()
    return render_timeline(title, timeline_lanes(view), ZoneInfo(zone), zone_name=zone)


# -- manual decisions: the cases package's services (`evidence_store.cases.manual`) ------------------------


def _need_reason(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise CaseActionError("a reason is required")
    return reason[:2000]


def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    from evidence_store.cases.manual import ManualLinkError
    from evidence_store.errors import NotFoundError

    try:
        return fn(*args, **kwargs)
    except (ManualLinkError, NotFoundError) as exc:
        raise CaseActionError(str(exc)) from exc


def link_clip(
    station: Station,
    case_id: int,
    clip_id: int,
    *,
    document_external_id: str = "",
    reason: str,
    is_evidence: bool,
    actor: str,
) -> int:
    from evidence_store.cases.manual import link_manually, mark_evidence

    reason = _need_reason(reason)
    with station.engine.connect() as connection:
        row = case_row(connection, case_id)
    if row is None:
        raise CaseActionError(f"no case {case_id}")
    done = _call(
        link_manually,
        station,
        clip_id,
        row.number,
        document=document_external_id or None,
        reason=reason,
        actor=actor,
    )
    if is_evidence:
        _call(mark_evidence, station, clip_id, row.number, reason=reason, actor=actor)
    return int(done["link_id"])


def _link(station: Station, case_id: int, link_id: int) -> tuple[Any, str, str | None]:
    with station.engine.connect() as connection:
        found = connection.execute(
            select(clip_links, cases.c.number, documents.c.external_id)
            .join(cases, cases.c.id == clip_links.c.case_id)
            .outerjoin(documents, documents.c.id == clip_links.c.document_id)
            .where(clip_links.c.id == link_id, clip_links.c.case_id == case_id)
        ).first()
    if found is None:
        raise CaseActionError(f"no link {link_id} in this case")
    if found.removed_at is not None:
        raise CaseActionError("this link was already removed")
    return found, found.number, found.external_id


def unlink(station: Station, case_id: int, link_id: int, *, reason: str, actor: str) -> None:
    """Remove a link by hand (a link to a document: that document's link; else the clip's links to the
    case)."""
    from evidence_store.cases.manual import unlink_manually

    link, number, document = _link(station, case_id, link_id)
    _call(
        unlink_manually,
        station,
        link.clip_id,
        number,
        document=document,
        reason=_need_reason(reason),
        actor=actor,
    )


def mark_evidence(
    station: Station, case_id: int, link_id: int, evidence: bool, *, reason: str, actor: str
) -> None:
    """Mark (or unmark) the link's clip as evidence in the case (every active link of it to the case)."""
    from evidence_store.cases.manual import mark_evidence as mark

    link, number, _document = _link(station, case_id, link_id)
    _call(mark, station, link.clip_id, number, reason=_need_reason(reason), actor=actor, unmark=not evidence)
