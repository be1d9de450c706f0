"""Read-only views of cases: the case view (`evidence cases show`), the data of its coverage timeline,
and the compliance report (`evidence report compliance`)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Connection, and_, func, or_, select

from evidence_store.bootstrap import Station
from evidence_store.cases.kinds import KindTable, load_kinds
from evidence_store.cases.linking_service import SYSTEM_ACTOR
from evidence_store.cases.timeline import Span, TimelineClip, TimelineDocument, TimelineLane
from evidence_store.db.tables import (
    cases,
    clip_links,
    clips,
    compliance_flags,
    document_officers,
    documents,
    officers,
    recording_exceptions,
    transfers,
)
from evidence_store.domain.compliance import DocumentFacts, FlagKind, filing_flag
from evidence_store.domain.model import ClipStatus, MediaType
from evidence_store.errors import NotFoundError

MISMATCH_KINDS = {FlagKind.STARTS_LATE.value, FlagKind.ENDS_EARLY.value, FlagKind.COVERAGE_GAP.value}


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _local(moment: datetime | None, zone: ZoneInfo) -> str | None:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S") if moment is not None else None


def _badges(connection: Connection, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return {
        officer_id: badge
        for officer_id, badge in connection.execute(
            select(officers.c.id, officers.c.badge_number).where(officers.c.id.in_(ids))
        )
    }


def _approved() -> Any:
    return and_(recording_exceptions.c.approved_at.is_not(None), recording_exceptions.c.approved_by != "")


@dataclass(frozen=True)
class _CaseRows:
    """The stored rows one case view is assembled from."""

    case: Any
    documents: list[Any]
    links: list[Any]  # every link of the case, active and removed, with its clip's columns
    flags: list[Any]  # open flags of the case, its documents and its linked clips
    exceptions: list[Any]
    badges: dict[int, str]  # officer id -> badge number, for every officer the view names

    @property
    def active_links(self) -> list[Any]:
        return [link for link in self.links if link.removed_at is None]


def _case_row(connection: Connection, number: str) -> Any:
    case = connection.execute(select(cases).where(cases.c.number == number)).first()
    if case is None:
        raise NotFoundError(f"no case {number!r}")
    return case


def _case_documents(connection: Connection, case_id: int) -> list[Any]:
    return list(
        connection.execute(
            select(documents)
            .where(documents.c.case_id == case_id)
            .order_by(documents.c.start, documents.c.id)
        ).all()
    )


def _case_links(connection: Connection, case_id: int) -> list[Any]:
    """Every link of the case (removed ones too), in the order of its clips' start."""
    return list(
        connection.execute(
            select(
                clip_links,
                clips.c.original_name,
                clips.c.officer_id.label("clip_officer_id"),
                clips.c.utc_start,
                clips.c.utc_end,
                clips.c.clock_status,
                clips.c.status.label("clip_status"),
                clips.c.late_handover,
            )
            .join(clips, clips.c.id == clip_links.c.clip_id)
            .where(clip_links.c.case_id == case_id)
            .order_by(clips.c.utc_start, clip_links.c.id)
        ).all()
    )


def _case_open_flags(
    connection: Connection, case_id: int, document_ids: list[int], clip_ids: list[int]
) -> list[Any]:
    return list(
        connection.execute(
            select(compliance_flags)
            .where(
                compliance_flags.c.cleared_at.is_(None),
                or_(
                    compliance_flags.c.case_id == case_id,
                    compliance_flags.c.document_id.in_(document_ids),
                    compliance_flags.c.clip_id.in_(clip_ids),
                ),
            )
            .order_by(compliance_flags.c.id)
        ).all()
    )


def _case_exceptions(connection: Connection, case_id: int) -> list[Any]:
    return list(
        connection.execute(
            select(recording_exceptions)
            .where(recording_exceptions.c.case_id == case_id)
            .order_by(recording_exceptions.c.id)
        ).all()
    )


def _case_rows(connection: Connection, number: str) -> _CaseRows:
    case = _case_row(connection, number)
    docs = _case_documents(connection, case.id)
    links = _case_links(connection, case.id)
    clip_ids = sorted({link.clip_id for link in links if link.removed_at is None})
    flags = _case_open_flags(connection, case.id, [d.id for d in docs], clip_ids)
    exceptions = _case_exceptions(connection, case.id)
    officer_ids = set(case.officer_ids or []) | {o for d in docs for o in (d.officer_ids or [])}
    officer_ids |= {link.clip_officer_id for link in links if link.clip_officer_id is not None}
    return _CaseRows(case, docs, links, flags, exceptions, _badges(connection, officer_ids))


def case_view(station: Station, number: str) -> dict[str, Any]:
    """Everything about one case: documents, linked clips, open flags with their numbers, exceptions."""
    zone = ZoneInfo(station.settings.timezone)
    kinds = load_kinds(station.settings.home)
    with station.connect() as connection:
        rows = _case_rows(connection, number)
    external = {d.id: d.external_id for d in rows.documents}
    return {
        "case": _case_entry(rows.case, rows.badges),
        "timezone": station.settings.timezone,
        "documents": _document_entries(rows, kinds, external, zone),
        "clips": _clip_entries(rows, external, zone),
        "flags": [_flag_entry(row, external) for row in rows.flags],
        "exceptions": [_exception_entry(e, external) for e in rows.exceptions],
        "links_removed_by_hand": _removed_by_hand(rows.links, external),
    }


def _case_entry(case: Any, badge: dict[int, str]) -> dict[str, Any]:
    return {
        "number": case.number,
        "title": case.title,
        "category": str(case.category),
        "subject": case.subject,
        "unit": case.unit,
        "officers": [badge.get(o, str(o)) for o in case.officer_ids or []],
        "opened_at": _iso(case.opened_at),
        "closed_at": _iso(case.closed_at),
        "archived_at": _iso(case.archived_at),
        "retention_period": str(case.retention_period),
        "confidentiality": str(case.confidentiality),
    }


def _flag_entry(row: Any, external: dict[int, str]) -> dict[str, Any]:
    return {
        "kind": row.kind,
        "document": external.get(row.document_id) if row.document_id else None,
        "clip_id": row.clip_id,
        "details": row.details,
        "opened_at": _iso(row.opened_at),
        "updated_at": _iso(row.updated_at),
    }


def _exception_entry(row: Any, external: dict[int, str]) -> dict[str, Any]:
    return {
        "id": row.id,
        "document": external.get(row.document_id) if row.document_id else None,
        "reason": row.reason,
        "requested_by": row.requested_by,
        "approved_by": row.approved_by,
        "approved_at": _iso(row.approved_at),
    }


def _document_entries(
    rows: _CaseRows, kinds: KindTable, external: dict[int, str], zone: ZoneInfo
) -> list[dict[str, Any]]:
    """Each document with its linked clips, whether an approved exception covers it (R6) and its flags."""
    flags_by_doc: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in rows.flags:
        if row.document_id is not None:
            flags_by_doc[row.document_id].append(_flag_entry(row, external))
    clips_by_doc: dict[int, list[int]] = defaultdict(list)
    for link in rows.active_links:
        if link.document_id is not None:
            clips_by_doc[link.document_id].append(link.clip_id)
    exceptions = rows.exceptions
    excepted_case = any(e.document_id is None and e.approved_at and e.approved_by for e in exceptions)
    excepted_docs = {e.document_id for e in exceptions if e.document_id and e.approved_at and e.approved_by}
    badge = rows.badges
    entries = []
    for d in rows.documents:
        kind = kinds.kinds.get(d.kind)
        entries.append(
            {
                "id": d.external_id,
                "db_id": d.id,
                "kind": d.kind,
                "kind_name": kind.name if kind else d.kind,
                "title": d.title,
                "officers": [badge.get(o, str(o)) for o in d.officer_ids or []],
                "start": _iso(d.start),
                "end": _iso(d.end),
                "start_local": _local(d.start, zone),
                "end_local": _local(d.end, zone),
                "requires_video": bool(d.requires_video),
                "linked_clips": sorted(set(clips_by_doc.get(d.id, []))),
                "exception": d.id in excepted_docs or excepted_case,
                "flags": flags_by_doc.get(d.id, []),
            }
        )
    return entries


def _clip_entries(rows: _CaseRows, external: dict[int, str], zone: ZoneInfo) -> list[dict[str, Any]]:
    """Each clip linked to the case now, once, with all its active links."""
    badge = rows.badges
    by_clip: dict[int, dict[str, Any]] = {}
    for link in rows.active_links:
        entry = by_clip.setdefault(
            link.clip_id,
            {
                "clip_id": link.clip_id,
                "original_name": link.original_name,
                "officer": badge.get(link.clip_officer_id) if link.clip_officer_id else None,
                "start": _iso(link.utc_start),
                "end": _iso(link.utc_end),
                "start_local": _local(link.utc_start, zone),
                "end_local": _local(link.utc_end, zone),
                "clock_status": str(link.clock_status),
                "status": str(link.clip_status),
                "late_handover": bool(link.late_handover),
                "uncertain": False,
                "evidence": False,
                "links": [],
            },
        )
        entry["uncertain"] = entry["uncertain"] or bool(link.uncertain)
        entry["evidence"] = entry["evidence"] or bool(link.is_evidence)
        entry["links"].append(
            {
                "link_id": link.id,
                "document": external.get(link.document_id) if link.document_id else None,
                "origin": str(link.origin),
                "uncertain": bool(link.uncertain),
                "is_evidence": bool(link.is_evidence),
                "reason": link.reason,
                "created_by": link.created_by,
                "created_at": _iso(link.created_at),
            }
        )
    return list(by_clip.values())


def _removed_by_hand(links: list[Any], external: dict[int, str]) -> list[dict[str, Any]]:
    """Links a person removed (those automatic linking removed are history, not shown here)."""
    return [
        {
            "link_id": link.id,
            "clip_id": link.clip_id,
            "document": external.get(link.document_id) if link.document_id else None,
            "origin": str(link.origin),
            "removed_by": link.removed_by,
            "removed_at": _iso(link.removed_at),
        }
        for link in links
        if link.removed_at is not None and link.removed_by != SYSTEM_ACTOR
    ]


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _uncovered(document: dict[str, Any]) -> tuple[Span, ...]:
    """The red parts of a document's window, from its flags' numbers."""
    start, end = _time(document["start"]), _time(document["end"])
    spans: list[Span] = []
    for flag in document["flags"]:
        details = flag["details"]
        kind = flag["kind"]
        if kind == FlagKind.MISSING_VIDEO.value and start is not None:
            spans.append(Span(start, end or start))
        elif kind == FlagKind.STARTS_LATE.value:
            spans.append(
                Span(
                    datetime.fromisoformat(details["document_start"]),
                    datetime.fromisoformat(details["footage_start"]),
                )
            )
        elif kind == FlagKind.ENDS_EARLY.value:
            spans.append(
                Span(
                    datetime.fromisoformat(details["footage_end"]),
                    datetime.fromisoformat(details["document_end"]),
                )
            )
        elif kind == FlagKind.COVERAGE_GAP.value:
            spans.extend(
                Span(datetime.fromisoformat(gap["from"]), datetime.fromisoformat(gap["to"]))
                for gap in details["gaps"]
            )
    return tuple(spans)


def timeline_lanes(view: dict[str, Any]) -> list[TimelineLane]:
    """The plain data `render_timeline` draws, from a case view: one lane per officer."""
    lanes: dict[str, tuple[list[TimelineDocument], list[TimelineClip]]] = {}
    mismatched: set[str] = set()
    exceptions = {e["document"]: e["reason"] for e in view["exceptions"] if e["approved_by"]}
    case_exception = exceptions.get(None)
    for document in view["documents"]:
        if any(flag["kind"] in MISMATCH_KINDS for flag in document["flags"]):
            mismatched.add(document["id"])
        start = _time(document["start"])
        if start is None:
            continue
        entry = TimelineDocument(
            document_id=document["db_id"],
            label=f"{document['id']} {document['kind_name']}",
            start=start,
            end=_time(document["end"]),
            requires_video=document["requires_video"],
            uncovered=_uncovered(document),
            flags=tuple(flag["kind"] for flag in document["flags"]),
            exception=exceptions.get(document["id"], case_exception),
        )
        for officer in document["officers"] or ["(no officer)"]:
            lanes.setdefault(officer, ([], []))[0].append(entry)
    for clip in view["clips"]:
        start = _time(clip["start"])
        if start is None:
            continue
        linked_docs = {link["document"] for link in clip["links"] if link["document"]}
        lanes.setdefault(clip["officer"] or "(unknown officer)", ([], []))[1].append(
            TimelineClip(
                clip_id=clip["clip_id"],
                start=start,
                end=_time(clip["end"]),
                label=clip["original_name"],
                uncertain=clip["uncertain"],
                evidence=clip["evidence"],
                mismatch=bool(linked_docs & mismatched),
                markers=tuple((m["offset_s"], m["note"]) for m in clip.get("markers", ())),
            )
        )
    return [
        TimelineLane(officer, tuple(docs), tuple(sorted(clip_list, key=lambda c: c.start)))
        for officer, (docs, clip_list) in sorted(lanes.items())
    ]


# -- the compliance report ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportFilter:
    date_from: date
    date_to: date
    officer: str | None = None
    unit: str | None = None


STATUSES = ("covered", "covered_with_mismatch", "missing_with_exception", "missing_without_exception")


@dataclass
class _DocumentFacts:
    linked: dict[int, set[int]]
    flags: dict[int, list[Any]]
    excepted_documents: set[int]
    excepted_cases: set[int]


def _document_facts(connection: Connection, docs: list[Any]) -> _DocumentFacts:
    facts = _DocumentFacts(defaultdict(set), defaultdict(list), set(), set())
    doc_ids = [d.id for d in docs]
    for first in range(0, len(doc_ids), 1000):
        chunk = doc_ids[first : first + 1000]
        for document_id, clip_id in connection.execute(
            select(clip_links.c.document_id, clip_links.c.clip_id).where(
                clip_links.c.document_id.in_(chunk), clip_links.c.removed_at.is_(None)
            )
        ):
            facts.linked[document_id].add(clip_id)
        for row in connection.execute(
            select(compliance_flags).where(
                compliance_flags.c.document_id.in_(chunk), compliance_flags.c.cleared_at.is_(None)
            )
        ):
            facts.flags[row.document_id].append(row)
        facts.excepted_documents.update(
            connection.scalars(
                select(recording_exceptions.c.document_id).where(
                    recording_exceptions.c.document_id.in_(chunk), _approved()
                )
            )
        )
    case_ids = sorted({d.case_id for d in docs})
    for first in range(0, len(case_ids), 1000):
        facts.excepted_cases.update(
            connection.scalars(
                select(recording_exceptions.c.case_id).where(
                    recording_exceptions.c.case_id.in_(case_ids[first : first + 1000]),
                    recording_exceptions.c.document_id.is_(None),
                    _approved(),
                )
            )
        )
    return facts


def _late_handovers(
    connection: Connection, start: datetime, end: datetime, officer_id: int | None, unit: str | None
) -> list[Any]:
    query = (
        select(
            clips.c.id,
            clips.c.original_name,
            clips.c.utc_start,
            clips.c.utc_end,
            officers.c.badge_number,
            officers.c.unit,
            transfers.c.started_at,
        )
        .outerjoin(officers, officers.c.id == clips.c.officer_id)
        .outerjoin(transfers, transfers.c.id == clips.c.transfer_id)
        .where(clips.c.late_handover.is_(True), clips.c.utc_start >= start, clips.c.utc_start < end)
        .order_by(clips.c.utc_start, clips.c.id)
    )
    if officer_id is not None:
        query = query.where(clips.c.officer_id == officer_id)
    if unit is not None:
        query = query.where(officers.c.unit == unit)
    return list(connection.execute(query).all())


def document_status(requires_video: bool, has_footage: bool, mismatch: bool, exception: bool) -> str:
    """R5-R7: how a document stands: covered (with or without a time mismatch), or missing with or
    without an approved exception; `not_required` when its kind needs no video."""
    if not requires_video:
        return "not_required"
    if has_footage:
        return "covered_with_mismatch" if mismatch else "covered"
    return "missing_with_exception" if exception else "missing_without_exception"


def compliance_report(station: Station, wanted: ReportFilter) -> dict[str, Any]:
    """R1, R5-R8 over a period: the documents that needed video and how each stands, late handovers, and
    R8's filing monitor as of the station's clock: documents (and their cases) whose footage was not
    linked and filed within the filing window after the act, and footage of the period linked to no case
    after its window.

    Dates are days in the station's zone, both included. `--officer` keeps documents one of whose officers
    has that number (and that officer's clips); `--unit` keeps cases of that unit (and clips of officers of
    that unit).
    """
    zone = ZoneInfo(station.settings.timezone)
    start = datetime.combine(wanted.date_from, time(0), zone).astimezone(UTC)
    end = datetime.combine(wanted.date_to + timedelta(days=1), time(0), zone).astimezone(UTC)
    kinds = load_kinds(station.settings.home)
    with station.connect() as connection:
        officer_id = None
        if wanted.officer is not None:
            officer_id = connection.scalar(
                select(officers.c.id).where(officers.c.badge_number == wanted.officer)
            )
            if officer_id is None:
                raise NotFoundError(f"no officer {wanted.officer!r}")
        query = (
            select(documents, cases.c.number.label("case_number"), cases.c.unit.label("case_unit"))
            .join(cases, cases.c.id == documents.c.case_id)
            .where(documents.c.start >= start, documents.c.start < end)
            .order_by(documents.c.start, documents.c.id)
        )
        if officer_id is not None:
            query = query.where(
                documents.c.id.in_(
                    select(document_officers.c.document_id).where(
                        document_officers.c.officer_id == officer_id
                    )
                )
            )
        if wanted.unit is not None:
            query = query.where(cases.c.unit == wanted.unit)
        docs = list(connection.execute(query).all())
        facts = _document_facts(connection, docs)
        badge = _badges(connection, {o for d in docs for o in (d.officer_ids or [])})
        late = _late_handovers(connection, start, end, officer_id, wanted.unit)
        now = station.clock()
        window = timedelta(days=station.settings.retention_filing_window_days)
        unfiled_footage = _unfiled_footage(connection, start, end, now - window, officer_id, wanted.unit)

    counts = {
        "documents": len(docs),
        "needing_video": sum(1 for d in docs if d.requires_video),
        **dict.fromkeys(STATUSES, 0),
        "documents_without_end": sum(1 for d in docs if d.end is None),
        "late_handovers": len(late),
        "filing_overdue": 0,
        "unfiled_footage": unfiled_footage,
    }
    rows: list[dict[str, Any]] = []
    overdue_cases: dict[str, dict[str, Any]] = {}
    for d in docs:
        open_flags = facts.flags.get(d.id, [])
        exception = d.id in facts.excepted_documents or d.case_id in facts.excepted_cases
        overdue = filing_flag(
            DocumentFacts(d.id, d.case_id, d.kind, bool(d.requires_video), d.start, d.end, exception),
            bool(facts.linked.get(d.id)),
            now,
            window,
        )
        if overdue is not None:
            counts["filing_overdue"] += 1
            entry = overdue_cases.setdefault(
                d.case_number, {"case": d.case_number, "unit": d.case_unit, "documents": [], "due": None}
            )
            entry["documents"].append(d.external_id)
            due = overdue.details["due"]
            entry["due"] = due if entry["due"] is None else min(entry["due"], due)
        status = document_status(
            bool(d.requires_video),
            bool(facts.linked.get(d.id)),
            any(f.kind in MISMATCH_KINDS for f in open_flags),
            exception,
        )
        if status in counts:
            counts[status] += 1
        kind = kinds.kinds.get(d.kind)
        rows.append(
            {
                "case": d.case_number,
                "unit": d.case_unit,
                "document": d.external_id,
                "kind": d.kind,
                "kind_name": kind.name if kind else d.kind,
                "officers": [badge.get(o, str(o)) for o in d.officer_ids or []],
                "start": _iso(d.start),
                "end": _iso(d.end),
                "start_local": _local(d.start, zone),
                "end_local": _local(d.end, zone),
                "requires_video": bool(d.requires_video),
                "status": status,
                "linked_clips": len(facts.linked.get(d.id, ())),
                "exception": exception,
                "uncovered_seconds": sum(
                    float(f.details.get("uncovered_seconds", 0))
                    for f in open_flags
                    if f.kind in MISMATCH_KINDS
                ),
                "flags": [{"kind": f.kind, "details": f.details} for f in open_flags],
                "filing_overdue": overdue is not None,
                "filing_due": overdue.details["due"] if overdue is not None else None,
            }
        )
    return {
        "period": {
            "from": wanted.date_from.isoformat(),
            "to": wanted.date_to.isoformat(),
            "timezone": station.settings.timezone,
        },
        "filters": {"officer": wanted.officer, "unit": wanted.unit},
        "counts": counts,
        "documents": rows,
        "late_handovers": [_late_row(c, zone) for c in late],
        "filing": {
            "as_of": now.isoformat(),
            "window_days": window.days,
            "overdue_cases": sorted(overdue_cases.values(), key=lambda c: (c["due"], c["case"])),
        },
    }


def unfiled_footage_conditions(cutoff: datetime) -> tuple[ColumnElement[bool], ...]:
    """R8: footage (not a deleted clip, not an "other" file) that ended by `cutoff` and is linked to no
    case: its filing window has passed unfiled. One definition for the compliance report and the
    dashboard."""
    linked = select(clip_links.c.clip_id).where(
        clip_links.c.clip_id == clips.c.id, clip_links.c.removed_at.is_(None)
    )
    return (
        func.coalesce(clips.c.utc_end, clips.c.utc_start) <= cutoff,
        clips.c.media_type != MediaType.OTHER,
        clips.c.status != ClipStatus.DELETED,
        ~linked.exists(),
    )


def _unfiled_footage(
    connection: Connection,
    start: datetime,
    end: datetime,
    cutoff: datetime,
    officer_id: int | None,
    unit: str | None,
) -> int:
    """R8: footage recorded in the period, linked to no case, whose filing window has passed."""
    query = (
        select(func.count())
        .select_from(clips)
        .outerjoin(officers, officers.c.id == clips.c.officer_id)
        .where(clips.c.utc_start >= start, clips.c.utc_start < end, *unfiled_footage_conditions(cutoff))
    )
    if officer_id is not None:
        query = query.where(clips.c.officer_id == officer_id)
    if unit is not None:
        query = query.where(officers.c.unit == unit)
    return int(connection.scalar(query) or 0)


def _late_row(clip: Any, zone: ZoneInfo) -> dict[str, Any]:
    ended = clip.utc_end or clip.utc_start
    return {
        "clip_id": clip.id,
        "original_name": clip.original_name,
        "officer": clip.badge_number,
        "unit": clip.unit,
        "recorded_local": _local(clip.utc_start, zone),
        "recording_end": _iso(ended),
        "handed_over_at": _iso(clip.started_at),
        "hours_after_recording": (
            round((clip.started_at - ended).total_seconds() / 3600, 2)
            if clip.started_at is not None
            else None
        ),
    }
