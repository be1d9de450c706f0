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
from evidence_store.domain.record_facts import FACTS_KEY, row_fact
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
    clip = make_clip(stored.sha256, stored.size, clock())
    return record_originals(
        [(stored, clip)], store_name=store_name, session=session, audit=audit, actor=actor
    )[0]


def record_originals(
    items: list[tuple[StoredBlob, Clip]],
    *,
    store_name: str,
    session: Session,
    audit: AuditLog,
    actor: str,
) -> list[StoredOriginal]:
    """Put many clips whose bytes are durable in the store on the record, in the caller's transaction.

    Bytes already on record (or twice in `items`) become duplicates of the existing clip, never a
    second clip. One insert and one audit append per new clip, flushed together.
    """
    hashes = {stored.sha256 for stored, _ in items}
    existing: dict[str, int] = dict(
        session.execute(select(clips.c.sha256, clips.c.id).where(clips.c.sha256.in_(hashes))).tuples().all()
    )
    new_clips: dict[str, Clip] = {}
    for stored, clip in items:
        if stored.sha256 not in existing and stored.sha256 not in new_clips:
            new_clips[stored.sha256] = clip
    session.add_all(new_clips.values())
    session.flush()
    created = {stored.sha256: stored.created for stored, _ in items}
    for sha256, clip in new_clips.items():
        assert clip.id is not None
        audit.record(
            session,
            actor=actor,
            action="clip.stored",
            object_type="clip",
            object_id=clip.id,
            details={
                "sha256": sha256,
                "size": clip.size,
                "original_name": clip.original_name,
                "device_path": clip.device_path,
                "transfer_id": clip.transfer_id,
                "store": store_name,
                "new_blob": created[sha256],
                "warnings": [w.code for w in clip.warnings],
                FACTS_KEY: [row_fact("clips", clip.id, clip, new=True)],
            },
            flush=False,
        )
    session.flush()
    results: list[StoredOriginal] = []
    for stored, clip in items:
        if stored.sha256 in existing:
            results.append(
                StoredOriginal(existing[stored.sha256], stored.sha256, stored.size, duplicate=True)
            )
        elif new_clips[stored.sha256] is clip:
            assert clip.id is not None
            results.append(StoredOriginal(clip.id, stored.sha256, stored.size, duplicate=False))
        else:
            first = new_clips[stored.sha256]
            assert first.id is not None
            results.append(StoredOriginal(first.id, stored.sha256, stored.size, duplicate=True))
    return results
