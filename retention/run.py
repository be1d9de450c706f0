"""The retention run: plan, confirm if large, delete, tombstone (R9, R10). Crash-safe and idempotent.

This module orders the steps of one run; each step has its own module:

- `retention.facts`: what the policy needs, read a batch of live clips at a time;
- `retention.planning`: phase 1, every live clip through the pure policy (`retention.policy`); decisions
  and floors recorded, the S3 Object Lock aligned, shortenings applied only under an authorisation;
- `retention.deletion`: phase 2, decision by decision, each asked again with fresh facts, purged and
  tombstoned; what a killed run left is finished first;
- `retention.run_record`: the run's report, stored and audited, and `ConfirmationNeeded` when a run
  would delete more than the configured share of the store.
"""

from __future__ import annotations

from datetime import datetime

from evidence_store.bootstrap import Station
from evidence_store.cases.flags_service import flag_overdue_filing
from evidence_store.domain.model import RetentionRun, RetentionRunStatus
from evidence_store.errors import ConflictError
from retention.deletion import delete_planned, resume_unfinished
from retention.facts import settings_for
from retention.planning import plan_run
from retention.run_record import Checkpoint, ConfirmationNeeded, RunReport, no_checkpoint, store_report

# the run's report and its confirmation signal are used by callers from here, beside run_retention
__all__ = ["ConfirmationNeeded", "RunReport", "run_retention"]


def run_retention(
    station: Station,
    now: datetime,
    *,
    dry_run: bool = False,
    confirm_run_id: int | None = None,
    actor: str = "retention",
    checkpoint: Checkpoint = no_checkpoint,
    list_limit: int = 1000,
) -> RunReport:
    """`evidence retention run`: finish what an earlier run left, plan, and (unless dry) delete."""
    policy = settings_for(station)
    if confirm_run_id is not None:
        return _continue_confirmed(station, confirm_run_id, now, actor, checkpoint)
    resumed = 0 if dry_run else resume_unfinished(station, now, actor, checkpoint)
    # R8: the nightly run is the station's clock for filing; documents whose window passed unfiled are
    # flagged (the flag is reported; it holds nothing)
    filing = None if dry_run else _flag_overdue_filing(station, now)
    report = plan_run(
        station, now, policy, dry_run=dry_run, actor=actor, checkpoint=checkpoint, list_limit=list_limit
    )
    report.resumed = resumed
    if filing is not None:
        report.filing_flags = filing
    if dry_run:
        store_report(station, report, RetentionRunStatus.DRY_RUN)
        return report
    share = report.planned_delete_bytes / report.store_bytes if report.store_bytes else 0.0
    if share > station.settings.retention_max_delete_share:
        report.status = RetentionRunStatus.AWAITING_CONFIRMATION
        report.message = (
            f"run {report.run_id} would delete {share:.1%} of the stored bytes, more than the configured "
            f"{station.settings.retention_max_delete_share:.0%}: check it (evidence retention run --dry-run) "
            f"and confirm with: evidence retention run --confirm {report.run_id}"
        )
        store_report(station, report, RetentionRunStatus.AWAITING_CONFIRMATION)
        raise ConfirmationNeeded(report)
    delete_planned(station, report, now, actor, checkpoint)
    report.status = RetentionRunStatus.FINISHED
    store_report(station, report, RetentionRunStatus.FINISHED)
    return report


def _flag_overdue_filing(station: Station, now: datetime) -> dict[str, int]:
    with station.transaction() as session:
        return flag_overdue_filing(session, station, now).as_dict()


def _continue_confirmed(
    station: Station, run_id: int, now: datetime, actor: str, checkpoint: Checkpoint
) -> RunReport:
    with station.transaction() as session:
        run = session.get(RetentionRun, run_id)
        if run is None or run.status != RetentionRunStatus.AWAITING_CONFIRMATION:
            raise ConflictError(f"retention run {run_id} is not awaiting confirmation")
        run.status = RetentionRunStatus.CONFIRMED
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
    delete_planned(station, report, now, actor, checkpoint)
    report.status = RetentionRunStatus.FINISHED
    store_report(station, report, RetentionRunStatus.FINISHED)
    return report
