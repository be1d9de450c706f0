"""What the retention policy needs to know, read from the database (R9, R10): live clips a batch at a
time (keyset pagination by clip id), the facts of each batch, and the few facts shared by a whole run
(holds, export requests, shortening authorisations; loaded whole). Memory stays bounded whatever the
store's size.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, type_coerce

from evidence_store.bootstrap import Station
from evidence_store.db.tables import (
    cases,
    clip_links,
    clips,
    disclosure_applications,
    export_requests,
    legal_holds,
    processing_jobs,
    retention_floors,
    retention_shortenings,
    transfers,
)
from evidence_store.db.types import UTCDateTime
from evidence_store.domain.disclosure import UNANSWERED_STATES
from evidence_store.domain.model import ClipStatus, ExportStatus, JobStatus, MediaType
from evidence_store.review_holds import clips_under_review, clips_with_flag_under_review
from retention.policy import (
    CaseFacts,
    ClipFacts,
    Decision,
    LinkFacts,
    RetentionSettings,
    ShorteningAuthorisation,
    decide,
)

BATCH = 5_000


def settings_for(station: Station) -> RetentionSettings:
    return RetentionSettings(
        non_evidence_months=station.settings.retention_non_evidence_months,
        months_by_category=dict(station.settings.retention_months_by_category),
        filing_window_days=station.settings.retention_filing_window_days,
    )


def live_clip_batches(station: Station, only: list[int] | None = None) -> Iterator[list[Any]]:
    """Live clips in id order, a batch at a time (memory stays bounded whatever the store's size)."""
    last_id = 0
    while True:
        query = (
            select(
                clips.c.id,
                clips.c.sha256,
                clips.c.size,
                # the corrected end of the recording, or its start when no end is known
                type_coerce(func.coalesce(clips.c.utc_end, clips.c.utc_start), UTCDateTime).label(
                    "recording_end"
                ),
                clips.c.status,
                (clips.c.media_type == MediaType.OTHER).label("is_other"),
                clips.c.late_handover,
                retention_floors.c.clip_id.label("floor_clip_id"),
                retention_floors.c.not_before,
                retention_floors.c.store_hold,
                retention_floors.c.reason.label("floor_rule"),
                retention_floors.c.case_id.label("floor_case_id"),
            )
            .outerjoin(retention_floors, retention_floors.c.clip_id == clips.c.id)
            .where(clips.c.status != ClipStatus.DELETED, clips.c.id > last_id)
            .order_by(clips.c.id)
            .limit(BATCH)
        )
        if only is not None:
            query = query.where(clips.c.id.in_(only))
        with station.connect() as connection:
            rows = list(connection.execute(query).all())
        if not rows:
            return
        yield rows
        last_id = rows[-1].id
        if only is not None:
            return


@dataclass
class RunContext:
    """Facts shared by all clips of a run (small: holds, export requests, cases touched)."""

    held_clips: set[int]
    held_cases: set[int]
    exporting: set[int]
    applied_for: set[int]  # named by a party's application not yet answered (R15)


def run_context(station: Station) -> RunContext:
    with station.connect() as connection:
        holds = connection.execute(
            select(legal_holds.c.clip_id, legal_holds.c.case_id).where(legal_holds.c.released_at.is_(None))
        ).all()
        requests = connection.execute(
            select(export_requests.c["items"]).where(
                export_requests.c.status.in_([ExportStatus.PENDING, ExportStatus.APPROVED])
            )
        ).all()
        applications = connection.execute(
            select(disclosure_applications.c.clip_ids).where(
                disclosure_applications.c.state.in_(UNANSWERED_STATES)
            )
        ).all()
    exporting = {int(item["clip_id"]) for (items,) in requests for item in (items or []) if "clip_id" in item}
    return RunContext(
        held_clips={h.clip_id for h in holds if h.clip_id is not None},
        held_cases={h.case_id for h in holds if h.case_id is not None},
        exporting=exporting,
        applied_for={int(clip_id) for (clip_ids,) in applications for clip_id in (clip_ids or [])},
    )


def batch_facts(
    station: Station, rows: list[Any], context: RunContext, *, whole_range: bool = False
) -> tuple[list[ClipFacts], list[LinkFacts], dict[int, CaseFacts]]:
    """The facts of one batch of clips. `whole_range`: the rows are every live clip from the first
    id to the last (a keyset page), so the queries ask for that id range rather than a long IN list
    (facts of deleted clips in the range come back too, and are not used)."""
    ids = [row.id for row in rows]
    between = (ids[0], ids[-1]) if whole_range else None

    def chosen(column: Any) -> Any:
        return column.between(*between) if between is not None else column.in_(ids)

    with station.connect() as connection:
        links = connection.execute(
            select(clip_links.c.clip_id, clip_links.c.case_id, clip_links.c.is_evidence).where(
                chosen(clip_links.c.clip_id), clip_links.c.removed_at.is_(None)
            )
        ).all()
        case_ids = {link.case_id for link in links}
        case_rows = (
            connection.execute(
                select(cases.c.id, cases.c.category, cases.c.archived_at, cases.c.retention_period).where(
                    cases.c.id.in_(case_ids)
                )
            ).all()
            if case_ids
            else []
        )
        flag_reviewed = clips_with_flag_under_review(connection, ids, between=between)
        under_review = clips_under_review(connection, ids, between=between)
        failed_jobs = set(
            connection.scalars(
                select(processing_jobs.c.clip_id).where(
                    chosen(processing_jobs.c.clip_id), processing_jobs.c.status == JobStatus.FAILED
                )
            )
        )
        handed_over = _handover_times(connection, [row.id for row in rows if row.recording_end is None])
    linked = {link.clip_id for link in links}
    case_facts = {
        row.id: CaseFacts(
            row.id, str(row.category), row.archived_at, row.retention_period, row.id in context.held_cases
        )
        for row in case_rows
    }
    clip_facts = [
        ClipFacts(
            clip_id=row.id,
            recording_end=row.recording_end,
            processing_failed=row.status in (ClipStatus.FAILED, ClipStatus.UNPLAYABLE)
            or row.id in failed_jobs,
            flag_under_review=row.id in flag_reviewed,
            under_review=row.id in under_review,
            unassigned=row.id not in linked and not row.is_other,
            late_handover=bool(row.late_handover),
            handed_over_at=handed_over.get(row.id),
            export_pending=row.id in context.exporting,
            disclosure_pending=row.id in context.applied_for,
            legal_hold=row.id in context.held_clips,
            floor=row.not_before,
            floor_rule=row.floor_rule,
            floor_case_id=row.floor_case_id,
        )
        for row in rows
    ]
    return clip_facts, [LinkFacts(k.clip_id, k.case_id, bool(k.is_evidence)) for k in links], case_facts


def _handover_times(connection: Any, undated: list[int]) -> dict[int, datetime]:
    """When clips without a usable recording time reached the station (their transfer's start, else
    when they were stored): the start of their periods (issue 17). Few, so asked for by id."""
    if not undated:
        return {}
    rows = connection.execute(
        select(
            clips.c.id,
            type_coerce(func.coalesce(transfers.c.started_at, clips.c.ingested_at), UTCDateTime).label("at"),
        )
        .outerjoin(transfers, transfers.c.id == clips.c.transfer_id)
        .where(clips.c.id.in_(undated))
    ).all()
    return {row.id: row.at for row in rows}


def decide_clips(station: Station, clip_ids: list[int], now: datetime) -> dict[int, Decision]:
    """The policy's current answer for some clips, from fresh facts."""
    context = run_context(station)
    answers: dict[int, Decision] = {}
    for rows in live_clip_batches(station, only=clip_ids):
        clip_facts, link_facts, case_facts = batch_facts(station, rows, context)
        for decision in decide(clip_facts, link_facts, case_facts, settings_for(station), now):
            answers[decision.clip_id] = decision
    return answers


def pending_authorisations(station: Station) -> tuple[ShorteningAuthorisation, ...]:
    """Shortening authorisations recorded and not yet applied by a real run (few: loaded whole)."""
    with station.connect() as connection:
        rows = connection.execute(
            select(
                retention_shortenings.c.id,
                retention_shortenings.c.reason,
                retention_shortenings.c.clip_id,
                retention_shortenings.c.case_id,
                retention_shortenings.c.rule,
            )
            .where(retention_shortenings.c.applied_run_id.is_(None))
            .order_by(retention_shortenings.c.id)
        ).all()
    return tuple(ShorteningAuthorisation(r.id, r.reason, r.clip_id, r.case_id, r.rule) for r in rows)
