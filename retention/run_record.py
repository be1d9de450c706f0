"""The bookkeeping of a retention run (R9, R10): its report, stored on the run's row and audited at each
status change, and the signal that a large run must be confirmed by a person.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select

from evidence_store.bootstrap import Station
from evidence_store.db.tables import retention_decisions
from evidence_store.domain.model import DecisionState, RetentionRun
from evidence_store.errors import EvidenceError

Checkpoint = Callable[[str], None]  # called between steps; tests use it to kill the run


def no_checkpoint(step: str) -> None:
    return None


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
    attachments_deleted: int = 0  # sidecars deleted with the last clip they describe
    skipped: list[dict[str, Any]] = field(default_factory=list)
    resumed: int = 0
    would_delete: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""
    shortening_needs_approval: int = 0  # kept by an earlier, longer date; the policy now gives less
    shortened: int = 0  # dates lowered under an authorisation (a dry run: would be)
    shortenings: list[dict[str, Any]] = field(default_factory=list)
    # what is kept, by which rule, until when: per rule the next and the last date a kept clip may go
    # (None: undated, e.g. until a review closes), and the first kept clips with their reasons
    kept_until: dict[str, list[datetime | None]] = field(default_factory=dict)  # rule: [next, last]
    held: list[dict[str, Any]] = field(default_factory=list)
    filing_flags: dict[str, int] = field(default_factory=dict)  # R8 flags opened/cleared by this run

    def note_kept(
        self, clip_id: int, rule: str, until: datetime | None, reasons: tuple[str, ...], limit: int
    ) -> None:
        """Count one kept clip into `kept_until` (by rule: the next and the last date a kept clip may
        go; none for an undated keep such as a review not yet closed) and, while there is room, list it
        with its reasons in `held`."""
        span = self.kept_until.get(rule)
        if span is None:
            span = self.kept_until[rule] = [until, until]
        elif until is not None:
            if span[0] is None or until < span[0]:
                span[0] = until
            if span[1] is None or until > span[1]:
                span[1] = until
        if len(self.held) < limit:
            self.held.append(
                {
                    "clip_id": clip_id,
                    "rule": rule,
                    "until": until.isoformat() if until is not None else None,
                    "reasons": list(reasons),
                }
            )

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
            "attachments_deleted": self.attachments_deleted,
            "skipped": self.skipped,
            "resumed": self.resumed,
            "would_delete": self.would_delete,
            "message": self.message,
            "shortening_needs_approval": self.shortening_needs_approval,
            "shortened": self.shortened,
            "shortenings": self.shortenings,
            "kept_until": {
                rule: {"next": _iso(span[0]), "last": _iso(span[1])} for rule, span in self.kept_until.items()
            },
            "held": self.held,
            "filing_flags": self.filing_flags,
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


class ConfirmationNeeded(EvidenceError):
    """The run would delete more than the configured share of the store; a person must confirm it."""

    def __init__(self, report: RunReport) -> None:
        super().__init__(report.message)
        self.report = report


def store_report(station: Station, report: RunReport, status: str, *, merge: bool = False) -> None:
    report.status = status
    with station.transaction() as session:
        run = session.get(RetentionRun, report.run_id)
        assert run is not None
        data = report.as_dict()
        data["would_delete"] = data["would_delete"][:100]
        data["held"] = data["held"][:100]
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
    with station.connect() as connection:
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
