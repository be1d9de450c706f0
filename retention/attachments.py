"""The retention run's last step: deleting the sidecars (attachments) whose footage is gone (R9, R10).

Runs after the clips of the run are tombstoned, so an attachment goes in the same run as the last clip
it describes, never before (`evidence_store.domain.sidecars.sidecar_goes` decides). A blob shared with a
live clip or another live attachment (the store is content-addressed) is left in place. The purge comes
before the row is marked, so a killed run leaves a live row whose blob may be gone; the next run finishes it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, exists, func, or_, select, update

from evidence_store.bootstrap import Station
from evidence_store.db.tables import attachments, clips, transfers
from evidence_store.domain.model import ClipStatus
from evidence_store.domain.sidecars import SidecarFacts, sidecar_goes
from evidence_store.errors import ObjectLockedError
from retention.policy import add_months
from retention.run_record import RunReport

BATCH = 500


def blob_shared_with_attachment(station: Station, sha256: str) -> bool:
    """Whether a live attachment holds these bytes (then a clip's purge must leave the blob)."""
    with station.connect() as connection:
        return (
            connection.scalar(
                select(attachments.c.id)
                .where(attachments.c.sha256 == sha256, attachments.c.deleted_at.is_(None))
                .limit(1)
            )
            is not None
        )


def delete_orphaned_attachments(station: Station, report: RunReport, now: datetime, actor: str) -> None:
    """Delete every live attachment whose clip, or whose transfer's last clip, is gone (R9)."""
    purger = station.retention_purger()
    months = station.settings.retention_non_evidence_months
    last_id = 0
    while True:
        facts = _facts(station, last_id, months)
        if not facts:
            return
        last_id = facts[-1][0].attachment_id
        for fact, sha256 in facts:
            reason = sidecar_goes(fact, now)
            if reason is None:
                continue
            purged = False
            if not _blob_still_used(station, fact.attachment_id, sha256):
                try:
                    purged = purger.purge(sha256, run_id=report.run_id)
                except ObjectLockedError as exc:
                    report.skipped.append(
                        {"attachment_id": fact.attachment_id, "reason": f"store refused: {exc}"}
                    )
                    continue
            _mark_deleted(station, fact, sha256, reason, purged, report, actor)


def _facts(station: Station, after_id: int, months: int) -> list[tuple[SidecarFacts, str]]:
    """The next batch of live attachments whose footage may be gone: a clip's whose clip is deleted,
    a transfer's whose transfer has no live clip (filtered in SQL, so a run reads only those)."""
    live_clip_of_transfer = exists().where(
        clips.c.transfer_id == attachments.c.transfer_id, clips.c.status != ClipStatus.DELETED
    )
    clip_deleted = exists().where(clips.c.id == attachments.c.clip_id, clips.c.status == ClipStatus.DELETED)
    ever = select(func.count()).where(clips.c.transfer_id == attachments.c.transfer_id).scalar_subquery()
    with station.connect() as connection:
        rows = connection.execute(
            select(
                attachments.c.id,
                attachments.c.clip_id,
                attachments.c.sha256,
                transfers.c.started_at,
                ever.label("ever"),
            )
            .join(transfers, transfers.c.id == attachments.c.transfer_id)
            .where(
                attachments.c.id > after_id,
                attachments.c.deleted_at.is_(None),
                or_(
                    and_(attachments.c.clip_id.is_not(None), clip_deleted),
                    and_(attachments.c.clip_id.is_(None), ~live_clip_of_transfer),
                ),
            )
            .order_by(attachments.c.id)
            .limit(BATCH)
        ).all()
    return [
        (
            SidecarFacts(
                attachment_id=row.id,
                clip_id=row.clip_id,
                clip_live=False,  # chosen above: its clip is deleted, or its transfer has none live
                transfer_live_clips=0,
                transfer_clips_ever=int(row.ever or 0),
                ordinary_until=add_months(row.started_at, months),
            ),
            row.sha256,
        )
        for row in rows
    ]


def _blob_still_used(station: Station, attachment_id: int, sha256: str) -> bool:
    with station.connect() as connection:
        other_attachment = connection.scalar(
            select(attachments.c.id)
            .where(
                attachments.c.sha256 == sha256,
                attachments.c.id != attachment_id,
                attachments.c.deleted_at.is_(None),
            )
            .limit(1)
        )
        clip = connection.scalar(
            select(clips.c.id).where(clips.c.sha256 == sha256, clips.c.status != ClipStatus.DELETED).limit(1)
        )
    return other_attachment is not None or clip is not None


def _mark_deleted(
    station: Station,
    fact: SidecarFacts,
    sha256: str,
    reason: str,
    purged: bool,
    report: RunReport,
    actor: str,
) -> None:
    with station.transaction() as session:
        still_live = session.scalar(
            select(attachments.c.id).where(
                and_(attachments.c.id == fact.attachment_id, attachments.c.deleted_at.is_(None))
            )
        )
        if still_live is None:
            return
        session.execute(
            update(attachments)
            .where(attachments.c.id == fact.attachment_id)
            .values(deleted_at=station.clock(), deleted_by_run_id=report.run_id)
        )
        station.audit.record(
            session,
            actor=actor,
            action="attachment.deleted_by_retention",
            object_type="attachment",
            object_id=fact.attachment_id,
            details={
                "sha256": sha256,
                "reason": reason,
                "clip_id": fact.clip_id,
                "blob_purged": purged,
                "run_id": report.run_id,
                "policy_version": report.policy_version,
            },
        )
    report.attachments_deleted += 1
