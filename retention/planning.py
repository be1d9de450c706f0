"""Phase 1 of the retention run, planning (R9, R10): every live clip through the pure policy, batch by
batch. For a real run each batch records, in one transaction, a decision for each clip that may go and
each kept clip's raised floor, and aligns the S3 Object Lock (retain-until extended, never shortened; a
legal hold for undated keeps). A floor is lowered only under a recorded shortening authorisation, each
lowering audited, never below 6 months; without one the floor holds and the report says the shortening
needs approval. A dry run only counts.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update

from evidence_store.bootstrap import Station
from evidence_store.db.bulk import BulkWriter
from evidence_store.db.tables import (
    clips,
    retention_decisions,
    retention_floors,
    retention_shortenings,
)
from evidence_store.domain.model import ClipStatus, DecisionState, RetentionAction, RetentionRun
from evidence_store.ports import LockableBlobStore
from retention.facts import batch_facts, live_clip_batches, pending_authorisations, run_context
from retention.policy import Decision, RetentionSettings, Rule, ShorteningAuthorisation, decide
from retention.run_record import Checkpoint, RunReport


def plan_run(
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
    with station.connect() as connection:
        report.store_bytes = int(
            connection.scalar(
                select(func.coalesce(func.sum(clips.c.size), 0)).where(clips.c.status != ClipStatus.DELETED)
            )
            or 0
        )
    context = run_context(station)
    authorisations = pending_authorisations(station)
    lockable = station.blobs if _is_lockable(station) else None
    for rows in live_clip_batches(station):
        clip_facts, link_facts, case_facts = batch_facts(station, rows, context, whole_range=True)
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
    with station.connect() as connection:
        return set(
            connection.scalars(
                select(retention_decisions.c.clip_id).where(
                    retention_decisions.c.clip_id.between(first_id, last_id),
                    retention_decisions.c.state.in_([DecisionState.PLANNED, DecisionState.DELETING]),
                )
            ).all()
        )


@dataclass(frozen=True)
class _FloorChange:
    clip_id: int
    exists: bool
    not_before: datetime | None
    store_hold: bool
    rule: str
    case_id: int | None


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
        report.note_kept(
            row.id, decision.rule.value, decision.earliest_delete_at, decision.reasons, list_limit
        )
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
