"""The case read model: the list of cases a user may see, and what the case page shows (documents,
linked footage, open compliance flags, recording exceptions, the coverage timeline), each with the
confidentiality rule applied (R13)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, func, not_, or_, select

from evidence_store.bootstrap import Station
from evidence_store.cases.timeline import render_timeline
from evidence_store.cases.views import case_view, timeline_lanes
from evidence_store.db.tables import (
    cases,
    clip_links,
    clip_markers,
    clips,
    compliance_flags,
    derivatives,
    documents,
    officers,
    recording_exceptions,
)
from evidence_store.domain.access import Facts, Kind, User, flag_details_shown, may_see
from evidence_store.domain.case_playback import PlaybackClip, PlaybackPlan, playback_plan
from evidence_store.domain.model import ClipStatus, DerivativeKind
from evidence_store.queries.visibility import visible_case_clause, visible_clip_clause

CASE_PAGE = 50


def case_row(connection: Connection, case_id: int) -> Any:
    """The case's row, or None."""
    return connection.execute(select(cases).where(cases.c.id == case_id)).first()


def list_cases(
    connection: Connection, user: User, *, number: str = "", limit: int = CASE_PAGE, offset: int = 0
) -> tuple[list[dict[str, Any]], bool]:
    """A page of the cases the user may see (R13), newest first, optionally those whose number starts
    with `number`; and whether there is a next page."""
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


def case_documents(connection: Connection, case_id: int) -> list[dict[str, Any]]:
    """The case's documents in time order, officers named by their numbers."""
    docs = connection.execute(
        select(documents).where(documents.c.case_id == case_id).order_by(documents.c.start, documents.c.id)
    ).all()
    badge_of: dict[int, str] = (
        {k: v for k, v in connection.execute(select(officers.c.id, officers.c.badge_number))} if docs else {}
    )
    return [
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
    ]


def case_links(connection: Connection, case_id: int, user: User) -> list[dict[str, Any]]:
    """Every link of the case (removed ones too) to a clip the user may see, in recording order (R13):
    a hidden clip shows through no field (see `hidden_linked_clips`)."""
    links = connection.execute(
        select(
            clip_links,
            clips.c.sha256,
            clips.c.original_name,
            clips.c.utc_start,
            clips.c.utc_end,
            clips.c.status,
            documents.c.external_id,
        )
        .join(clips, clips.c.id == clip_links.c.clip_id)
        .outerjoin(documents, documents.c.id == clip_links.c.document_id)
        .where(clip_links.c.case_id == case_id, visible_clip_clause(user))
        .order_by(clips.c.utc_start, clip_links.c.id)
    ).all()
    return [
        {
            "id": link.id,
            "clip_id": link.clip_id,
            "original_name": link.original_name,
            "sha256": link.sha256,
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
    ]


def hidden_linked_clips(connection: Connection, case_id: int, user: User) -> int:
    """How many clips linked to the case (now or before) the user may not see: all a case view says of
    them (R13)."""
    linked = select(clip_links.c.clip_id).where(clip_links.c.case_id == case_id)
    return int(
        connection.scalar(
            select(func.count())
            .select_from(clips)
            .where(clips.c.id.in_(linked), not_(visible_clip_clause(user)))
        )
        or 0
    )


def visible_clip_ids(connection: Connection, clip_ids: list[int], user: User) -> set[int]:
    """Those of some clips the user may see (R11, R13)."""
    return set(
        connection.scalars(select(clips.c.id).where(clips.c.id.in_(set(clip_ids)), visible_clip_clause(user)))
    )


def case_flags(
    connection: Connection, case_id: int, document_ids: list[int], user: User
) -> list[dict[str, Any]]:
    """The open compliance flags of the case and of its documents, but those of a clip the user may not
    see (R13)."""
    query = select(compliance_flags).where(
        compliance_flags.c.cleared_at.is_(None),
        or_(
            compliance_flags.c.clip_id.is_(None),
            compliance_flags.c.clip_id.in_(select(clips.c.id).where(visible_clip_clause(user))),
        ),
    )
    query = query.where(
        or_(compliance_flags.c.case_id == case_id, compliance_flags.c.document_id.in_(document_ids))
        if document_ids
        else compliance_flags.c.case_id == case_id
    )
    hidden_footage = documents_with_hidden_footage(connection, document_ids, user)
    return [
        {
            "id": f.id,
            "kind": f.kind,
            "document_id": f.document_id,
            "clip_id": f.clip_id,
            "details": flag_details_shown(f.details, footage_hidden=f.document_id in hidden_footage),
            "opened_at": f.opened_at,
        }
        for f in connection.execute(query.order_by(compliance_flags.c.id))
    ]


def documents_with_hidden_footage(connection: Connection, document_ids: list[int], user: User) -> set[int]:
    """Those of the documents that have footage filed to them (an active link) the user may not see (R13)."""
    if not document_ids:
        return set()
    return set(
        connection.scalars(
            select(clip_links.c.document_id)
            .join(clips, clips.c.id == clip_links.c.clip_id)
            .where(
                clip_links.c.document_id.in_(document_ids),
                clip_links.c.removed_at.is_(None),
                not_(visible_clip_clause(user)),
            )
            .distinct()
        )
    )


def case_exceptions(connection: Connection, case_id: int) -> list[dict[str, Any]]:
    """The case's recording exceptions (documents excused from needing video)."""
    return [
        {
            "id": e.id,
            "document_id": e.document_id,
            "reason": e.reason,
            "requested_by": e.requested_by,
            "approved_by": e.approved_by,
            "approved_at": e.approved_at,
        }
        for e in connection.execute(
            select(recording_exceptions)
            .where(recording_exceptions.c.case_id == case_id)
            .order_by(recording_exceptions.c.id)
        )
    ]


def case_detail(connection: Connection, case_id: int, user: User) -> dict[str, Any] | None:
    """Everything the case page shows, or None when the case does not exist or is not for this user
    (R13)."""
    row = case_row(connection, case_id)
    if row is None or not may_see(user, Facts(Kind.CASE, ((row.unit, row.confidentiality),))):
        return None
    docs = case_documents(connection, case_id)
    return {
        "case": _case_summary(row),
        "documents": docs,
        "links": case_links(connection, case_id, user),
        "hidden_linked_clips": hidden_linked_clips(connection, case_id, user),
        "flags": case_flags(connection, case_id, [d["id"] for d in docs], user),
        "exceptions": case_exceptions(connection, case_id),
    }


def timeline_svg(
    station: Station, case_id: int, user: User, *, legend: Sequence[str] | None = None
) -> str | None:
    """The coverage timeline picture of the cases package (`render_timeline`), drawn only with the clips
    this user may see (R13); `legend` in the reader's language."""
    with station.connect() as connection:
        row = case_row(connection, case_id)
    if row is None:
        return None
    view = case_view(station, row.number)  # its own connection: never nest them (SQLite writer lock)
    with station.connect() as connection:
        visible = visible_clip_ids(connection, [clip["clip_id"] for clip in view["clips"]], user)
        view["clips"] = [clip for clip in view["clips"] if clip["clip_id"] in visible]
        markers = clip_markers_of(connection, [clip["clip_id"] for clip in view["clips"]])
    for clip in view["clips"]:
        clip["markers"] = markers.get(clip["clip_id"], [])
    zone = station.settings.timezone
    title = f"{row.number} {row.title}".strip()
    return render_timeline(title, timeline_lanes(view), ZoneInfo(zone), zone_name=zone, legend=legend)


def clip_markers_of(connection: Connection, clip_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """The markers (not removed) of some clips, by clip, in time order."""
    found: dict[int, list[dict[str, Any]]] = {}
    if not clip_ids:
        return found
    for row in connection.execute(
        select(clip_markers.c.clip_id, clip_markers.c.offset_s, clip_markers.c.note)
        .where(clip_markers.c.clip_id.in_(clip_ids), clip_markers.c.removed_at.is_(None))
        .order_by(clip_markers.c.clip_id, clip_markers.c.offset_s)
    ):
        found.setdefault(row.clip_id, []).append({"offset_s": row.offset_s, "note": row.note})
    return found


def case_playback(connection: Connection, case_id: int, user: User) -> PlaybackPlan:
    """The case player's plan: the clips actively linked to the case that the user may see (R13), placed
    by their corrected times, and the documents' edges to jump to (`domain.case_playback`)."""
    proxied = (
        select(derivatives.c.id)
        .where(
            derivatives.c.clip_id == clips.c.id,
            derivatives.c.kind == DerivativeKind.PROXY,
            derivatives.c.derived_from_sha256 == clips.c.sha256,
        )
        .exists()
    )
    linked = select(clip_links.c.clip_id).where(
        clip_links.c.case_id == case_id, clip_links.c.removed_at.is_(None)
    )
    rows = connection.execute(
        select(
            clips.c.id,
            clips.c.original_name,
            clips.c.utc_start,
            clips.c.utc_end,
            clips.c.clock_status,
            officers.c.badge_number,
            officers.c.name,
            proxied.label("playable"),
        )
        .outerjoin(officers, officers.c.id == clips.c.officer_id)
        .where(clips.c.id.in_(linked), clips.c.status != ClipStatus.DELETED, visible_clip_clause(user))
        .order_by(clips.c.utc_start, clips.c.id)
    ).all()
    clips_shown = [
        PlaybackClip(
            clip_id=row.id,
            officer=" ".join(x for x in (row.badge_number, row.name) if x),
            name=row.original_name,
            start=row.utc_start,
            end=row.utc_end,
            clock_status=str(row.clock_status),
            playable=bool(row.playable),
        )
        for row in rows
    ]
    docs = [(d["external_id"], d["start"], d["end"]) for d in case_documents(connection, case_id)]
    return playback_plan(clips_shown, docs)
