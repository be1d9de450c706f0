"""Phase 2 of the retention run, deleting (R9, R10), decision by decision:

    planned --(policy asked again with fresh facts)--> skipped | deleting
    deleting --(purge original, then derivatives)--> tombstoned (tombstone + audit event, one transaction)

A run killed anywhere leaves decisions `planned` or `deleting`; the next run finishes them first
(`resume_unfinished`). A `deleting` decision whose original is still in the store is decided again (so
a hold placed meanwhile wins); one whose original is gone is finished. Nothing the current policy keeps
is ever purged.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from evidence_store.bootstrap import Station
from evidence_store.db.tables import (
    cases,
    clip_links,
    clips,
    derivatives,
    redaction_renders,
    retention_decisions,
    retention_runs,
)
from evidence_store.domain.model import (
    Clip,
    ClipStatus,
    DecisionState,
    RetentionAction,
    RetentionRunStatus,
    Tombstone,
)
from evidence_store.domain.record_facts import FACTS_KEY, gone_fact, row_fact
from evidence_store.errors import ObjectLockedError
from retention.attachments import blob_shared_with_attachment, delete_orphaned_attachments
from retention.facts import BATCH, decide_clips
from retention.run_record import Checkpoint, RunReport, store_report


def resume_unfinished(station: Station, now: datetime, actor: str, checkpoint: Checkpoint) -> int:
    """Finish decisions an earlier run left `planned` or `deleting` (it was killed or stopped)."""
    with station.connect() as connection:
        pending_runs = (
            connection.execute(
                select(retention_decisions.c.run_id)
                .join(retention_runs, retention_runs.c.id == retention_decisions.c.run_id)
                .where(
                    retention_decisions.c.state.in_([DecisionState.PLANNED, DecisionState.DELETING]),
                    retention_runs.c.status != RetentionRunStatus.AWAITING_CONFIRMATION,
                )
                .distinct()
            )
            .scalars()
            .all()
        )
    resumed = 0
    for run_id in pending_runs:
        with station.connect() as connection:
            as_of = connection.scalar(select(retention_runs.c.as_of).where(retention_runs.c.id == run_id))
            version = connection.scalar(
                select(retention_runs.c.policy_version).where(retention_runs.c.id == run_id)
            )
        report = RunReport(run_id, False, as_of or now, version or "")
        delete_planned(station, report, now, actor, checkpoint)
        resumed += report.deleted + len(report.skipped)
        store_report(station, report, RetentionRunStatus.FINISHED, merge=True)
    return resumed


def delete_planned(
    station: Station, report: RunReport, now: datetime, actor: str, checkpoint: Checkpoint
) -> None:
    purger = station.retention_purger()
    while True:
        with station.connect() as connection:
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
            # the sidecars whose last clip this run deleted go now, with it (issue 17)
            delete_orphaned_attachments(station, report, now, actor)
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
                    if not blob_shared_with_attachment(station, row.sha256):
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
    with station.connect() as connection:
        hashes = set(connection.scalars(select(derivatives.c.sha256).where(derivatives.c.clip_id == clip_id)))
        # the clip's redacted copies (issue 20) go with it: a copy must not outlive its original (R9)
        redacted = set(
            connection.scalars(
                select(redaction_renders.c.sha256).where(redaction_renders.c.clip_id == clip_id)
            )
        )
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
    for sha256 in sorted((hashes - shared) | redacted):
        purger.purge(sha256, run_id=run_id)


def _tombstone(station: Station, decision_id: int, clip_id: int, report: RunReport, actor: str) -> None:
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
        tombstone = Tombstone(
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
        session.add(tombstone)
        session.flush()
        assert tombstone.id is not None
        clip.status = ClipStatus.DELETED
        derivative_ids = session.scalars(
            select(derivatives.c.id).where(derivatives.c.clip_id == clip_id)
        ).all()
        session.execute(derivatives.delete().where(derivatives.c.clip_id == clip_id))
        # their bytes were purged in the step before; the specifications (positions, times) stay on record
        session.execute(redaction_renders.delete().where(redaction_renders.c.clip_id == clip_id))
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
                FACTS_KEY: [
                    row_fact("clips", clip_id, clip, new=False, fields=("status",)),
                    row_fact("tombstones", tombstone.id, tombstone, new=True),
                    *(gone_fact("derivatives", d) for d in derivative_ids),
                ],
            },
        )
