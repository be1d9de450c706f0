"""The retention run: plan, confirm if large, delete, tombstone (R9, R10). Crash-safe and idempotent.

Phase 1 (plan) streams every live clip through the pure policy in batches (keyset pagination by clip
id; only holds, export requests and shortening authorisations are loaded whole, and the cases a batch
links to), records a decision for each clip that may go, raises each kept clip's dated floor, and
aligns the S3 Object Lock (retain-until extended, never shortened; a legal hold for undated keeps). A
floor is lowered only under a recorded shortening authorisation, each lowering audited, never below 6
months (R9, R10); without one, the run keeps the floor and reports the shortening as needing approval.
Phase 2 deletes decision by decision:

    planned --(policy asked again with fresh facts)--> skipped | deleting
    deleting --(purge original, then derivatives)--> tombstoned (tombstone + audit event, one transaction)

A run killed anywhere leaves decisions `planned` or `deleting`; the next run finishes them first. A
`deleting` decision whose original is still in the store is decided again (so a hold placed meanwhile
wins); one whose original is gone is finished. Nothing the current policy keeps is ever purged.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, type_coerce, update

from evidence_store.bootstrap import Station
from evidence_store.db.bulk import BulkWriter
from evidence_store.db.tables import (
    cases,
    clip_links,
    clips,
    compliance_flags,
    derivatives,
    export_requests,
    legal_holds,
    processing_jobs,
    retention_decisions,
    retention_floors,
    retention_runs,
    retention_shortenings,
)
from evidence_store.db.types import UTCDateTime
from evidence_store.domain.model import (
    ClipStatus,
    DecisionState,
    ExportStatus,
    JobStatus,
    RetentionAction,
    RetentionRun,
    Tombstone,
)
from evidence_store.errors import ConflictError, EvidenceError, ObjectLockedError
from evidence_store.ports import LockableBlobStore
from evidence_store.review_holds import clips_under_review
from retention.policy import (
    CaseFacts,
    ClipFacts,
    Decision,
    LinkFacts,
    RetentionSettings,
    Rule,
    ShorteningAuthorisation,
    decide,
)

log = logging.getLogger(__name__)

BATCH = 5_000
Checkpoint = Callable[[str], None]  # called between steps; tests use it to kill the run


def _no_checkpoint(step: str) -> None:
    return None


def settings_for(station: Station) -> RetentionSettings:
    return RetentionSettings(
        non_evidence_months=station.settings.retention_non_evidence_months,
        months_by_category=dict(station.settings.retention_months_by_category),
    )


@dataclass
class RunReport:
    run_id: int
    dry_run: bool
    as_of: datetime
    policy_version: str
    status: str = "planning"
    clips_considered: int = 0
    kept_by_rule: Counter[str] = field(default_factory=Counter)
    delete_by_rule: Counter[str] = field(default_factory=Counter)
    planned_delete_bytes: int = 0
    store_bytes: int = 0
    deleted: int = 0
    bytes_freed: int = 0
    skipped: list[dict[str, Any]] = field(default_factory=list)
    resumed: int = 0
    would_delete: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""
    shortening_needs_approval: int = 0  # kept by an earlier, longer date; the policy now gives less
    shortened: int = 0  # dates lowered under an authorisation (a dry run: would be)
    shortenings: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "dry_run": self.dry_run,
            "as_of": self.as_of.isoformat(),
            "policy_version": self.policy_version,
            "status": self.status,
            "clips_considered": self.clips_considered,
            "kept_by_rule": dict(self.kept_by_rule),
            "delete_by_rule": dict(self.delete_by_rule),
            "planned_delete": sum(self.delete_by_rule.values()),
            "planned_delete_bytes": self.planned_delete_bytes,
            "store_bytes": self.store_bytes,
            "deleted": self.deleted,
            "bytes_freed": self.bytes_freed,
            "skipped": self.skipped,
            "resumed": self.resumed,
            "would_delete": self.would_delete,
            "message": self.message,
            "shortening_needs_approval": self.shortening_needs_approval,
            "shortened": self.shortened,
            "shortenings": self.shortenings,
        }


class ConfirmationNeeded(EvidenceError):
    """The run would delete more than the configured share of the store; a person must confirm it."""

    def __init__(self, report: RunReport) -> None:
        super().__init__(report.message)
        self.report = report


# -- gathering facts ---------------------------------------------------------------------------------


def _batches(station: Station, only: list[int] | None = None) -> Iterator[list[Any]]:
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
        with station.engine.connect() as connection:
            rows = list(connection.execute(query).all())
        if not rows:
            return
        yield rows
        last_id = rows[-1].id
        if only is not None:
            return


@dataclass
class _Context:
    """Facts shared by all clips of a run (small: holds, export requests, cases touched)."""

    held_clips: set[int]
    held_cases: set[int]
    exporting: set[int]


def _context(station: Station) -> _Context:
    with station.engine.connect() as connection:
        holds = connection.execute(
            select(legal_holds.c.clip_id, legal_holds.c.case_id).where(legal_holds.c.released_at.is_(None))
        ).all()
        requests = connection.execute(
            select(export_requests.c["items"]).where(
                export_requests.c.status.in_([ExportStatus.PENDING, ExportStatus.APPROVED])
            )
        ).all()
    exporting = {int(item["clip_id"]) for (items,) in requests for item in (items or []) if "clip_id" in item}
    return _Context(
        held_clips={h.clip_id for h in holds if h.clip_id is not None},
        held_cases={h.case_id for h in holds if h.case_id is not None},
        exporting=exporting,
    )


def _facts(
    station: Station, rows: list[Any], context: _Context, *, whole_range: bool = False
) -> tuple[list[ClipFacts], list[LinkFacts], dict[int, CaseFacts]]:
    """The facts of one batch of clips. `whole_range`: the rows are every live clip from the first
    id to the last (a keyset page), so the queries ask for that id range rather than a long IN list
    (facts of deleted clips in the range come back too, and are not used)."""
    ids = [row.id for row in rows]
    between = (ids[0], ids[-1]) if whole_range else None

    def chosen(column: Any) -> Any:
        return column.between(*between) if between is not None else column.in_(ids)

    with station.engine.connect() as connection:
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
        flagged = set(
            connection.scalars(
                select(compliance_flags.c.clip_id).where(
                    chosen(compliance_flags.c.clip_id), compliance_flags.c.cleared_at.is_(None)
                )
            )
        )
        flagged_docs_cases = set(
            connection.scalars(
                select(clip_links.c.clip_id)
                .join(compliance_flags, compliance_flags.c.document_id == clip_links.c.document_id)
                .where(
                    chosen(clip_links.c.clip_id),
                    clip_links.c.removed_at.is_(None),
                    compliance_flags.c.cleared_at.is_(None),
                )
            )
        )
        under_review = clips_under_review(connection, ids, between=between)
        failed_jobs = set(
            connection.scalars(
                select(processing_jobs.c.clip_id).where(
                    chosen(processing_jobs.c.clip_id), processing_jobs.c.status == JobStatus.FAILED
                )
            )
        )
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
            open_flag=row.id in flagged or row.id in flagged_docs_cases,
            under_review=row.id in under_review,
            export_pending=row.id in context.exporting,
            legal_hold=row.id in context.held_clips,
            floor=row.not_before,
            floor_rule=row.floor_rule,
            floor_case_id=row.floor_case_id,
        )
        for row in rows
    ]
    return clip_facts, [LinkFacts(k.clip_id, k.case_id, bool(k.is_evidence)) for k in links], case_facts


def decide_clips(station: Station, clip_ids: list[int], now: datetime) -> dict[int, Decision]:
    """The policy's current answer for some clips, from fresh facts."""
    context = _context(station)
    answers: dict[int, Decision] = {}
    for rows in _batches(station, only=clip_ids):
        clip_facts, link_facts, case_facts = _facts(station, rows, context)
        for decision in decide(clip_facts, link_facts, case_facts, settings_for(station), now):
            answers[decision.clip_id] = decision
    return answers


# -- the run --------------------------------------------------------------------------------------------


def run_retention(
    station: Station,
    now: datetime,
    *,
    dry_run: bool = False,
    confirm_run_id: int | None = None,
    actor: str = "retention",
    checkpoint: Checkpoint = _no_checkpoint,
    list_limit: int = 1000,
) -> RunReport:
    """`evidence retention run`: finish what an earlier run left, plan, and (unless dry) delete."""
    policy = settings_for(station)
    if confirm_run_id is not None:
        return _continue_confirmed(station, confirm_run_id, now, actor, checkpoint)
    resumed = 0 if dry_run else _resume_unfinished(station, now, actor, checkpoint)
    report = _plan(
        station, now, policy, dry_run=dry_run, actor=actor, checkpoint=checkpoint, list_limit=list_limit
    )
    report.resumed = resumed
    if dry_run:
        _store_report(station, report, "dry_run")
        return report
    share = report.planned_delete_bytes / report.store_bytes if report.store_bytes else 0.0
    if share > station.settings.retention_max_delete_share:
        report.status = "awaiting_confirmation"
        report.message = (
            f"run {report.run_id} would delete {share:.1%} of the stored bytes, more than the configured "
            f"{station.settings.retention_max_delete_share:.0%}: check it (evidence retention run --dry-run) "
            f"and confirm with: evidence retention run --confirm {report.run_id}"
        )
        _store_report(station, report, "awaiting_confirmation")
        raise ConfirmationNeeded(report)
    _delete_planned(station, report, now, actor, checkpoint)
    report.status = "finished"
    _store_report(station, report, "finished")
    return report


def _plan(
    station: Station,
    now: datetime,
    policy: RetentionSettings,
    *,
    dry_run: bool,
    actor: str,
    checkpoint: Checkpoint,
    list_limit: int,
) -> RunReport:
    with station.transaction() as session:
        run = RetentionRun(
            started_at=station.clock(), as_of=now, dry_run=dry_run, policy_version=policy.version
        )
        session.add(run)
        session.flush()
        run_id = run.id or 0
        if not dry_run:
            station.audit.record(
                session,
                actor=actor,
                action="retention.run_started",
                object_type="retention_run",
                object_id=run_id,
                details={"as_of": now.isoformat(), "policy_version": policy.version},
            )
    report = RunReport(run_id, dry_run, now, policy.version)
    with station.engine.connect() as connection:
        report.store_bytes = int(
            connection.scalar(
                select(func.coalesce(func.sum(clips.c.size), 0)).where(clips.c.status != ClipStatus.DELETED)
            )
            or 0
        )
    context = _context(station)
    authorisations = _pending_authorisations(station)
    lockable = station.blobs if _is_lockable(station) else None
    for rows in _batches(station):
        clip_facts, link_facts, case_facts = _facts(station, rows, context, whole_range=True)
        decisions = decide(clip_facts, link_facts, case_facts, policy, now, authorisations)
        busy = set() if dry_run else _in_flight(station, rows[0].id, rows[-1].id)
        batch = _plan_batch(station, report, rows, decisions, busy, lockable, list_limit)
        if not dry_run:
            _record_plan(station, batch, report.run_id, actor)
            checkpoint("planned_batch")
    if not dry_run and authorisations:
        _mark_applied(station, authorisations, report.run_id, actor)
    return report


def _in_flight(station: Station, first_id: int, last_id: int) -> set[int]:
    """Clips of one batch that already have a decision planned or being deleted (an earlier run's,
    awaiting confirmation or to be resumed): asked per batch, so memory stays bounded."""
    with station.engine.connect() as connection:
        return set(
            connection.scalars(
                select(retention_decisions.c.clip_id).where(
                    retention_decisions.c.clip_id.between(first_id, last_id),
                    retention_decisions.c.state.in_([DecisionState.PLANNED, DecisionState.DELETING]),
                )
            ).all()
        )


@dataclass
class _BatchPlan:
    new_decisions: list[dict[str, Any]] = field(default_factory=list)
    floor_changes: list[_FloorChange] = field(default_factory=list)
    lowered: list[Decision] = field(default_factory=list)  # floors lowered under an authorisation


def _plan_batch(
    station: Station,
    report: RunReport,
    rows: list[Any],
    decisions: list[Decision],
    busy: set[int],
    lockable: Any,
    list_limit: int,
) -> _BatchPlan:
    """Count one batch's decisions into the report and, for a real run, say what to record."""
    plan = _BatchPlan()
    by_id = {row.id: row for row in rows}
    for decision in decisions:
        row = by_id[decision.clip_id]
        report.clips_considered += 1
        shortening = decision.shortening
        authorised = _authorised(decision)
        if shortening is not None:
            _note_shortening(report, row, decision, list_limit)
            if authorised:
                plan.lowered.append(decision)
        if decision.action is RetentionAction.DELETE:
            busy_row = row.id in busy
            _plan_delete(station, report, plan, row, decision, authorised, busy_row, lockable, list_limit)
            continue
        report.kept_by_rule[decision.rule.value] += 1
        if report.dry_run:
            continue
        wants_hold = decision.earliest_delete_at is None
        moves_floor = decision.earliest_delete_at is not None and (
            row.not_before is None or decision.earliest_delete_at > row.not_before or authorised
        )
        # a permanent keep is recorded as such (rule and case), so that a later change of the case
        # file's period to a dated one is a shortening that needs an authorisation (R10)
        newly_permanent = decision.rule is Rule.EVIDENCE_PERMANENT and (
            row.floor_rule != Rule.EVIDENCE_PERMANENT.value or row.floor_case_id != decision.case_id
        )
        if newly_permanent:
            plan.floor_changes.append(
                _FloorChange(
                    clip_id=row.id,
                    exists=row.floor_clip_id is not None,
                    not_before=row.not_before,
                    store_hold=True,
                    rule=Rule.EVIDENCE_PERMANENT.value,
                    case_id=decision.case_id,
                )
            )
            if lockable is not None:
                _align_store(lockable, row.sha256, None, True, bool(row.store_hold))
        elif moves_floor or wants_hold != bool(row.store_hold):
            not_before = decision.earliest_delete_at if moves_floor else row.not_before
            plan.floor_changes.append(_floor_change(row, decision, not_before, wants_hold))
            if lockable is not None:
                _align_store(
                    lockable,
                    row.sha256,
                    # retain-until is only ever extended: a lowered floor leaves the lock as it is
                    decision.earliest_delete_at if moves_floor and not authorised else None,
                    wants_hold,
                    bool(row.store_hold),
                )
    return plan


def _plan_delete(
    station: Station,
    report: RunReport,
    plan: _BatchPlan,
    row: Any,
    decision: Decision,
    authorised: bool,
    busy: bool,
    lockable: Any,
    list_limit: int,
) -> None:
    """A clip the policy lets go: counted, and for a real run its decision recorded (unless one is
    already in hand)."""
    _note_delete(report, row, decision, list_limit)
    if report.dry_run:
        return
    if not busy:
        plan.new_decisions.append(
            {
                "run_id": report.run_id,
                "clip_id": row.id,
                "action": RetentionAction.DELETE,
                "rule": decision.rule.value,
                "earliest_delete_at": decision.earliest_delete_at,
                "state": DecisionState.PLANNED,
                "decided_at": station.clock(),
            }
        )
    if authorised or row.store_hold:
        # the delete phase asks the policy again, without authorisations: the floor it finds must
        # already be the authorised date; and a legal hold the run itself once put on the stored
        # object (for an undated keep) is taken off, or the store would refuse the delete
        not_before = decision.earliest_delete_at if authorised else row.not_before
        plan.floor_changes.append(_floor_change(row, decision, not_before, False))
        if row.store_hold and lockable is not None:
            _align_store(lockable, row.sha256, None, False, True)


def _note_delete(report: RunReport, row: Any, decision: Decision, list_limit: int) -> None:
    report.delete_by_rule[decision.rule.value] += 1
    report.planned_delete_bytes += row.size
    if len(report.would_delete) < list_limit:
        report.would_delete.append(
            {
                "clip_id": row.id,
                "sha256": row.sha256,
                "size": row.size,
                "rule": decision.rule.value,
                "earliest_delete_at": decision.earliest_delete_at.isoformat()
                if decision.earliest_delete_at
                else None,
                "reasons": list(decision.reasons),
            }
        )


@dataclass(frozen=True)
class _FloorChange:
    clip_id: int
    exists: bool
    not_before: datetime | None
    store_hold: bool
    rule: str
    case_id: int | None


def _floor_change(row: Any, decision: Decision, not_before: datetime | None, hold: bool) -> _FloorChange:
    """The floor row to write: the rule and case that gave its date go with the date (an unchanged
    date keeps its own). An authorised shortening always replaces them, even when its date happens
    to equal the one stored (a permanent keep's floor still carries its earlier dated floor): else
    the floor would still say "permanent" and the delete phase, which asks without authorisations,
    would keep the clip."""
    moved = not_before is not None and (not_before != row.not_before or _authorised(decision))
    return _FloorChange(
        clip_id=row.id,
        exists=row.floor_clip_id is not None,
        not_before=not_before,
        store_hold=hold,
        rule=decision.rule.value if moved else (row.floor_rule or decision.rule.value),
        case_id=decision.case_id if moved else row.floor_case_id,
    )


def _authorised(decision: Decision) -> bool:
    return decision.shortening is not None and decision.shortening.authorisation_id is not None


def _note_shortening(report: RunReport, row: Any, decision: Decision, list_limit: int) -> None:
    shortening = decision.shortening
    assert shortening is not None
    if shortening.authorisation_id is None:
        report.shortening_needs_approval += 1
    else:
        report.shortened += 1
    if len(report.shortenings) < list_limit:
        report.shortenings.append(
            {
                "clip_id": row.id,
                "kept_until": shortening.previous.isoformat() if shortening.previous else "permanent",
                "policy_date": shortening.policy.isoformat(),
                "floor_rule": row.floor_rule,
                "floor_case_id": row.floor_case_id,
                "authorisation_id": shortening.authorisation_id,
                "status": "needs approval" if shortening.authorisation_id is None else "authorised",
            }
        )


def _pending_authorisations(station: Station) -> tuple[ShorteningAuthorisation, ...]:
    """Shortening authorisations recorded and not yet applied by a real run (few: loaded whole)."""
    with station.engine.connect() as connection:
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


def _mark_applied(
    station: Station, authorisations: tuple[ShorteningAuthorisation, ...], run_id: int, actor: str
) -> None:
    """After the whole plan: each authorisation the run started with is spent (audited). A run killed
    before this point leaves them pending; the next run applies them to what is left. The count of
    clips shortened was kept batch by batch with the lowered floors, so it survives such a kill."""
    with station.transaction() as session:
        for authorisation in authorisations:
            session.execute(
                update(retention_shortenings)
                .where(retention_shortenings.c.id == authorisation.authorisation_id)
                .values(applied_run_id=run_id, applied_at=station.clock())
            )
            shortened = session.scalar(
                select(retention_shortenings.c.clips_shortened).where(
                    retention_shortenings.c.id == authorisation.authorisation_id
                )
            )
            station.audit.record(
                session,
                actor=actor,
                action="retention.shortening_applied",
                object_type="retention_shortening",
                object_id=authorisation.authorisation_id,
                details={"run_id": run_id, "clips_shortened": shortened},
                flush=False,
            )
        session.flush()


def _is_lockable(station: Station) -> bool:
    return hasattr(station.blobs, "extend_retention") and hasattr(station.blobs, "set_legal_hold")


def _align_store(store: Any, sha256: str, until: datetime | None, hold: bool, had_hold: bool) -> None:
    """R10 on WORM storage: extend retain-until to the decided date; hold undated keeps."""
    lockable: LockableBlobStore = store
    if until is not None:
        lockable.extend_retention(sha256, until)
    if hold != had_hold:
        lockable.set_legal_hold(sha256, hold)


def _record_plan(station: Station, batch: _BatchPlan, run_id: int, actor: str) -> None:
    """One batch's decisions and floors in one transaction (driver-level executemany, as the linking
    service writes), with an audit event for every floor lowered under an authorisation (R10: never
    shortened without an audited reason) and the authorisation's count of clips shortened."""
    now = station.clock()
    floors, lowered = batch.floor_changes, batch.lowered
    with station.transaction() as session:
        bulk = BulkWriter(session.connection())
        bulk.insert(
            retention_decisions,
            ("run_id", "clip_id", "action", "rule", "earliest_delete_at", "state", "decided_at"),
            [
                (
                    d["run_id"],
                    d["clip_id"],
                    d["action"],
                    d["rule"],
                    bulk.time(d["earliest_delete_at"]),
                    d["state"],
                    bulk.time(d["decided_at"]),
                )
                for d in batch.new_decisions
            ],
        )
        stamp = bulk.time(now)
        bulk.update(
            retention_floors,
            ("not_before", "store_hold", "reason", "case_id", "updated_at"),
            "clip_id",
            [
                (bulk.time(f.not_before), f.store_hold, f.rule, f.case_id, stamp, f.clip_id)
                for f in floors
                if f.exists
            ],
        )
        bulk.insert(
            retention_floors,
            ("clip_id", "not_before", "store_hold", "reason", "case_id", "updated_at"),
            [
                (f.clip_id, bulk.time(f.not_before), f.store_hold, f.rule, f.case_id, stamp)
                for f in floors
                if not f.exists
            ],
        )
        per_authorisation: Counter[int] = Counter()
        for decision in lowered:
            shortening = decision.shortening
            assert shortening is not None and shortening.authorisation_id is not None
            assert decision.earliest_delete_at is not None
            per_authorisation[shortening.authorisation_id] += 1
            previous = shortening.previous
            station.audit.record(
                session,
                actor=actor,
                action="retention.period_shortened",
                object_type="clip",
                object_id=decision.clip_id,
                details={
                    "from": previous.isoformat() if previous else "permanent",
                    "to": decision.earliest_delete_at.isoformat(),
                    "rule": decision.rule.value,
                    "authorisation_id": shortening.authorisation_id,
                    "run_id": run_id,
                },
                flush=False,
            )
        for authorisation_id, count in sorted(per_authorisation.items()):
            session.execute(
                update(retention_shortenings)
                .where(retention_shortenings.c.id == authorisation_id)
                .values(clips_shortened=retention_shortenings.c.clips_shortened + count)
            )
        if lowered:
            session.flush()


def _resume_unfinished(station: Station, now: datetime, actor: str, checkpoint: Checkpoint) -> int:
    """Finish decisions an earlier run left `planned` or `deleting` (it was killed or stopped)."""
    with station.engine.connect() as connection:
        pending_runs = (
            connection.execute(
                select(retention_decisions.c.run_id)
                .join(retention_runs, retention_runs.c.id == retention_decisions.c.run_id)
                .where(
                    retention_decisions.c.state.in_([DecisionState.PLANNED, DecisionState.DELETING]),
                    retention_runs.c.status != "awaiting_confirmation",
                )
                .distinct()
            )
            .scalars()
            .all()
        )
    resumed = 0
    for run_id in pending_runs:
        with station.engine.connect() as connection:
            as_of = connection.scalar(select(retention_runs.c.as_of).where(retention_runs.c.id == run_id))
            version = connection.scalar(
                select(retention_runs.c.policy_version).where(retention_runs.c.id == run_id)
            )
        report = RunReport(run_id, False, as_of or now, version or "")
        _delete_planned(station, report, now, actor, checkpoint)
        resumed += report.deleted + len(report.skipped)
        _store_report(station, report, "finished", merge=True)
    return resumed


def _continue_confirmed(
    station: Station, run_id: int, now: datetime, actor: str, checkpoint: Checkpoint
) -> RunReport:
    with station.transaction() as session:
        run = session.get(RetentionRun, run_id)
        if run is None or run.status != "awaiting_confirmation":
            raise ConflictError(f"retention run {run_id} is not awaiting confirmation")
        run.status = "confirmed"
        station.audit.record(
            session,
            actor=actor,
            action="retention.run_confirmed",
            object_type="retention_run",
            object_id=run_id,
            details={
                "planned_delete": run.report.get("planned_delete"),
                "bytes": run.report.get("planned_delete_bytes"),
            },
        )
        report = RunReport(run_id, False, run.as_of, run.policy_version)
        report.clips_considered = run.report.get("clips_considered", 0)
        report.kept_by_rule.update(run.report.get("kept_by_rule", {}))
        report.delete_by_rule.update(run.report.get("delete_by_rule", {}))
        report.planned_delete_bytes = run.report.get("planned_delete_bytes", 0)
        report.store_bytes = run.report.get("store_bytes", 0)
    # the facts are asked again for every clip at delete time, with the current `now`
    _delete_planned(station, report, now, actor, checkpoint)
    report.status = "finished"
    _store_report(station, report, "finished")
    return report


def _delete_planned(
    station: Station, report: RunReport, now: datetime, actor: str, checkpoint: Checkpoint
) -> None:
    purger = station.retention_purger()
    while True:
        with station.engine.connect() as connection:
            pending = connection.execute(
                select(
                    retention_decisions.c.id,
                    retention_decisions.c.clip_id,
                    retention_decisions.c.state,
                    clips.c.sha256,
                    clips.c.size,
                )
                .join(clips, clips.c.id == retention_decisions.c.clip_id)
                .where(
                    retention_decisions.c.run_id == report.run_id,
                    retention_decisions.c.state.in_([DecisionState.PLANNED, DecisionState.DELETING]),
                )
                .order_by(retention_decisions.c.id)
                .limit(BATCH)
            ).all()
        if not pending:
            return
        ask = [
            row.clip_id
            for row in pending
            if row.state == DecisionState.PLANNED or station.blobs.exists(row.sha256)
        ]
        answers = decide_clips(station, ask, now) if ask else {}
        for row in pending:
            original_present = row.clip_id in answers
            if original_present:
                answer = answers[row.clip_id]
                if answer.action is not RetentionAction.DELETE:
                    _set_state(station, row.id, DecisionState.SKIPPED)
                    report.skipped.append(
                        {"clip_id": row.clip_id, "reason": f"kept now: {answer.rule.value}"}
                    )
                    checkpoint("skipped")
                    continue
                _set_state(station, row.id, DecisionState.DELETING)
                checkpoint("marked_deleting")
                try:
                    purger.purge(row.sha256, run_id=report.run_id)
                except ObjectLockedError as exc:
                    _set_state(station, row.id, DecisionState.SKIPPED)
                    report.skipped.append({"clip_id": row.clip_id, "reason": f"store refused: {exc}"})
                    continue
                checkpoint("purged_original")
            _purge_derivatives(station, purger, row.clip_id, report.run_id)
            checkpoint("purged_derivatives")
            _tombstone(station, row.id, row.clip_id, report, actor)
            report.deleted += 1
            report.bytes_freed += row.size
            checkpoint("tombstoned")


def _set_state(station: Station, decision_id: int, state: DecisionState) -> None:
    with station.transaction() as session:
        session.execute(
            update(retention_decisions).where(retention_decisions.c.id == decision_id).values(state=state)
        )


def _purge_derivatives(station: Station, purger: Any, clip_id: int, run_id: int) -> None:
    with station.engine.connect() as connection:
        hashes = set(connection.scalars(select(derivatives.c.sha256).where(derivatives.c.clip_id == clip_id)))
        shared = (
            set(
                connection.scalars(
                    select(derivatives.c.sha256)
                    .join(clips, clips.c.id == derivatives.c.clip_id)
                    .where(
                        derivatives.c.sha256.in_(hashes),
                        derivatives.c.clip_id != clip_id,
                        clips.c.status != ClipStatus.DELETED,
                    )
                )
            )
            if hashes
            else set()
        )
    for sha256 in sorted(hashes - shared):
        purger.purge(sha256, run_id=run_id)


def _tombstone(station: Station, decision_id: int, clip_id: int, report: RunReport, actor: str) -> None:
    from evidence_store.domain.model import Clip

    with station.transaction() as session:
        clip = session.get(Clip, clip_id)
        assert clip is not None
        links = session.execute(
            select(clip_links.c.case_id, clip_links.c.document_id, clip_links.c.is_evidence, cases.c.number)
            .join(cases, cases.c.id == clip_links.c.case_id)
            .where(clip_links.c.clip_id == clip_id)
        ).all()
        decision = session.execute(
            select(retention_decisions.c.rule).where(retention_decisions.c.id == decision_id)
        ).scalar_one()
        session.add(
            Tombstone(
                clip_id=clip_id,
                sha256=clip.sha256,
                size=clip.size,
                officer_id=clip.officer_id,
                device_id=clip.device_id,
                utc_start=clip.utc_start,
                utc_end=clip.utc_end,
                case_links=[
                    {
                        "case_id": k.case_id,
                        "case_number": k.number,
                        "document_id": k.document_id,
                        "is_evidence": bool(k.is_evidence),
                    }
                    for k in links
                ],
                rule=decision,
                policy_version=report.policy_version,
                run_id=report.run_id,
                deleted_at=station.clock(),
            )
        )
        clip.status = ClipStatus.DELETED
        session.execute(derivatives.delete().where(derivatives.c.clip_id == clip_id))
        session.execute(
            update(retention_decisions)
            .where(retention_decisions.c.id == decision_id)
            .values(state=DecisionState.TOMBSTONED)
        )
        station.audit.record(
            session,
            actor=actor,
            action="clip.deleted_by_retention",
            object_type="clip",
            object_id=clip_id,
            details={
                "sha256": clip.sha256,
                "size": clip.size,
                "rule": decision,
                "run_id": report.run_id,
                "policy_version": report.policy_version,
            },
        )


def _store_report(station: Station, report: RunReport, status: str, *, merge: bool = False) -> None:
    report.status = status
    with station.transaction() as session:
        run = session.get(RetentionRun, report.run_id)
        assert run is not None
        data = report.as_dict()
        data["would_delete"] = data["would_delete"][:100]
        if merge and run.report:
            data = {
                **run.report,
                "deleted": run.report.get("deleted", 0) + report.deleted,
                "bytes_freed": run.report.get("bytes_freed", 0) + report.bytes_freed,
                "skipped": [*run.report.get("skipped", []), *report.skipped],
            }
        run.report = data
        run.status = status
        run.finished_at = station.clock() if status in ("finished", "dry_run") else None
        if not report.dry_run:
            station.audit.record(
                session,
                actor="retention",
                action=f"retention.run_{status}",
                object_type="retention_run",
                object_id=report.run_id,
                details={
                    k: data[k] for k in ("deleted", "bytes_freed", "delete_by_rule", "status") if k in data
                },
            )


def decisions_in_flight(station: Station) -> int:
    with station.engine.connect() as connection:
        return int(
            connection.scalar(
                select(func.count())
                .select_from(retention_decisions)
                .where(
                    or_(
                        retention_decisions.c.state == DecisionState.PLANNED,
                        and_(retention_decisions.c.state == DecisionState.DELETING),
                    )
                )
            )
            or 0
        )
