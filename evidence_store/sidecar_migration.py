"""Converting sidecars an older station stored as clips into attachments (issue 17; R3, R10).

Run by `evidence init` after the schema upgrade; idempotent (a converted clip row is gone, its
attachment remembers `former_clip_id`). Each conversion is one transaction with its audit event: the
bytes stay where they are (same sha256, verified by reading them back first), the clip row's facts and
whatever hung on it (processing jobs, time-stamp tokens, compliance flags, retention floors and
finished decisions) are kept in the attachment's `former_clip`, then the clip row goes. A sidecar clip
that is linked to a case, held, drawn for review, tombstoned, mid-deletion or has derivatives is left
as it is and reported: a person decides.
"""

from __future__ import annotations

import base64
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from evidence_store.attachments import attachment_facts
from evidence_store.audit import AuditLog
from evidence_store.db.tables import (
    clip_links,
    clips,
    compliance_flags,
    derivatives,
    legal_holds,
    processing_jobs,
    retention_decisions,
    retention_floors,
    retention_shortenings,
    supervision_items,
    timestamp_tokens,
    tombstones,
)
from evidence_store.domain.model import Attachment, ClipStatus, DecisionState, MediaType
from evidence_store.domain.record_facts import FACTS_KEY, gone_fact
from evidence_store.domain.sidecars import kind_by_name
from evidence_store.errors import BlobNotFoundError
from evidence_store.ports import BlobStore


class Station(Protocol):
    """What the conversion uses of the station (it runs inside `evidence_store.bootstrap.initialise`,
    so it cannot import the Station class from there)."""

    engine: Engine
    blobs: BlobStore
    audit: AuditLog

    def transaction(self) -> AbstractContextManager[Session]: ...


# what makes a sidecar clip more than a sidecar: a person decides, the conversion leaves it
_BLOCKERS = (
    ("linked to a case", clip_links),
    ("under a legal hold", legal_holds),
    ("drawn for supervision review", supervision_items),
    ("named in a retention shortening", retention_shortenings),
    ("has derivatives", derivatives),
    ("tombstoned", tombstones),
)


@dataclass
class ConversionReport:
    converted: list[int] = field(default_factory=list)  # the former clip ids
    left: dict[int, str] = field(default_factory=dict)  # clip id -> why it stays a clip


def convert_sidecar_clips(station: Station, *, actor: str = "system") -> ConversionReport:
    """Turn every live clip an older ingest marked `media_info.sidecar` into an attachment."""
    report = ConversionReport()
    with station.engine.connect() as connection:
        candidates = connection.execute(
            select(clips.c.id, clips.c.media_info).where(
                clips.c.media_type == MediaType.OTHER, clips.c.status != ClipStatus.DELETED
            )
        ).all()
    for row in candidates:
        if not (isinstance(row.media_info, dict) and row.media_info.get("sidecar") is True):
            continue
        with station.transaction() as session:
            why = _convert(station, session, row.id, actor)
        if isinstance(why, str):
            report.left[row.id] = why
            continue
        report.converted.append(row.id)
        if why.store_hold and hasattr(station.blobs, "set_legal_hold"):
            # the S3 legal hold the retention run put on it as an undated clip; an attachment goes
            # with its footage instead. Released after the commit: should this fail, the blob merely
            # stays held (the retention run reports "store refused") and nothing is lost.
            station.blobs.set_legal_hold(why.sha256, False)
    return report


@dataclass(frozen=True)
class _Converted:
    sha256: str
    store_hold: bool


def _convert(station: Station, session: Session, clip_id: int, actor: str) -> str | _Converted:
    clip = session.execute(select(clips).where(clips.c.id == clip_id)).one()
    problem = _why_it_stays(session, clip) or _verify_blob(station, clip.sha256)
    if problem:
        return problem
    former = {
        "clip": {key: _plain(value) for key, value in clip._mapping.items()},
        "processing_jobs": _rows(session, processing_jobs, clip_id),
        "timestamp_tokens": _rows(session, timestamp_tokens, clip_id),
        "compliance_flags": _rows(session, compliance_flags, clip_id),
        "retention_floors": _rows(session, retention_floors, clip_id),
        "retention_decisions": _rows(session, retention_decisions, clip_id),
    }
    attachment = Attachment(
        transfer_id=clip.transfer_id,
        device_id=clip.device_id,
        kind=kind_by_name(clip.original_name),
        original_name=clip.original_name,
        device_path=clip.device_path,
        size=clip.size,
        sha256=clip.sha256,
        device_mtime=clip.device_mtime,
        stored_at=clip.ingested_at,
        former_clip_id=clip_id,
        former_clip=former,
    )
    for table in (processing_jobs, timestamp_tokens, compliance_flags, retention_floors, retention_decisions):
        session.execute(delete(table).where(table.c.clip_id == clip_id))
    session.execute(delete(clips).where(clips.c.id == clip_id))
    session.add(attachment)
    session.flush()
    assert attachment.id is not None
    station.audit.record(
        session,
        actor=actor,
        action="attachment.converted_from_clip",
        object_type="attachment",
        object_id=attachment.id,
        details=attachment_facts(
            attachment,
            former_clip_id=clip_id,
            blob_verified=True,
            carried_over={key: len(value) for key, value in former.items() if key != "clip"},
            # the clip row leaves the record here: `audit verify` replays its removal from this event
            **{FACTS_KEY: [gone_fact("clips", clip_id)]},
        ),
    )
    held = any(floor.get("store_hold") for floor in former["retention_floors"])
    return _Converted(clip.sha256, held)


def _why_it_stays(session: Session, clip: Any) -> str | None:
    if clip.transfer_id is None:
        return "it has no transfer to belong to"
    for why, table in _BLOCKERS:
        if session.scalar(select(table.c.clip_id).where(table.c.clip_id == clip.id).limit(1)) is not None:
            return why
    in_flight = session.scalar(
        select(retention_decisions.c.id)
        .where(
            retention_decisions.c.clip_id == clip.id,
            retention_decisions.c.state.in_([DecisionState.PLANNED, DecisionState.DELETING]),
        )
        .limit(1)
    )
    return "a retention deletion of it is under way" if in_flight is not None else None


def _verify_blob(station: Station, sha256: str) -> str | None:
    """Why the stored bytes cannot become an attachment (missing, or no longer their sha256), if so."""
    try:
        found = station.blobs.rehash(sha256)
    except BlobNotFoundError:
        return "its bytes are missing from the store (see 'evidence scrub')"
    if found != sha256:
        return "its bytes in the store do not match its sha256 (see 'evidence scrub')"
    return None


def _rows(session: Session, table: Any, clip_id: int) -> list[dict[str, Any]]:
    rows = session.execute(select(table).where(table.c.clip_id == clip_id)).all()
    return [{key: _plain(value) for key, value in row._mapping.items()} for row in rows]


def _plain(value: Any) -> Any:
    """A column value as JSON can hold it (times as ISO text, bytes as base64, warnings as dicts)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "__dataclass_fields__"):
        return {k: _plain(getattr(value, k)) for k in value.__dataclass_fields__}
    return value
