"""Putting an original file into the store and onto the record, in the one safe order (R3, R10).

Bytes first (written, fsynced, linked to their hash), then the Clip row and its audit event in one
transaction. A crash in between leaves an orphan blob that `scrub` reports and the next ingest of the
same file adopts; it can never leave a Clip without bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence_store.audit import AuditLog
from evidence_store.db.tables import clips
from evidence_store.domain.model import Clip
from evidence_store.ports import BlobStore, Clock, StoredBlob

ClipFactory = Callable[[str, int, datetime], Clip]  # (sha256, size, now) -> Clip


@dataclass(frozen=True)
class StoredOriginal:
    clip_id: int
    sha256: str
    size: int
    duplicate: bool  # the same bytes were already on record


def store_original(
    *,
    source: BinaryIO,
    blobs: BlobStore,
    session: Session,
    audit: AuditLog,
    clock: Clock,
    make_clip: ClipFactory,
    actor: str,
) -> StoredOriginal:
    """Store the bytes, then record the clip (unless the same bytes are on record already).

    `make_clip(sha256, size, now)` builds the Clip from what the caller knows about the file; the
    session's transaction is committed by the caller, after which the clip exists.
    """
    stored = blobs.put(source)
    return record_original(
        stored=stored,
        store_name=blobs.name,
        session=session,
        audit=audit,
        clock=clock,
        make_clip=make_clip,
        actor=actor,
    )


def record_original(
    *,
    stored: StoredBlob,
    store_name: str,
    session: Session,
    audit: AuditLog,
    clock: Clock,
    make_clip: ClipFactory,
    actor: str,
) -> StoredOriginal:
    """Put a clip whose bytes are already durable in the store on the record (and the audit log)."""
    existing = session.scalar(select(clips.c.id).where(clips.c.sha256 == stored.sha256))
    if existing is not None:
        return StoredOriginal(existing, stored.sha256, stored.size, duplicate=True)
    clip = make_clip(stored.sha256, stored.size, clock())
    session.add(clip)
    session.flush()
    assert clip.id is not None
    audit.record(
        session,
        actor=actor,
        action="clip.stored",
        object_type="clip",
        object_id=clip.id,
        details={
            "sha256": stored.sha256,
            "size": stored.size,
            "original_name": clip.original_name,
            "device_path": clip.device_path,
            "transfer_id": clip.transfer_id,
            "store": store_name,
            "new_blob": stored.created,
            "warnings": [w.code for w in clip.warnings],
        },
    )
    return StoredOriginal(clip.id, stored.sha256, stored.size, duplicate=False)
