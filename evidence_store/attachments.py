"""Putting a recorder's sidecar files on the record as attachments, never as clips (issue 17; R2, R3).

A sidecar's bytes go to the same content-addressed store as footage, first; then its row and audit event
in the caller's transaction. It belongs to its transfer, or to the one clip whose base name it carries
(a GPS track or log beside `X.MP4`), and retention deletes it with them (`retention.attachments`).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from evidence_store.audit import AuditLog
from evidence_store.db.tables import attachments, clips
from evidence_store.domain.model import Attachment, AttachmentKind, ClipStatus


def attachment_facts(attachment: Attachment, **extra: object) -> dict[str, object]:
    """What an attachment's audit events state: its provenance and hash."""
    return {
        "sha256": attachment.sha256,
        "size": attachment.size,
        "kind": attachment.kind,
        "original_name": attachment.original_name,
        "device_path": attachment.device_path,
        "device_mtime": attachment.device_mtime.isoformat() if attachment.device_mtime else None,
        "transfer_id": attachment.transfer_id,
        "clip_id": attachment.clip_id,
        "device_id": attachment.device_id,
        **extra,
    }


def record_attachments(
    items: Iterable[tuple[Attachment, bool]],
    *,
    store_name: str,
    session: Session,
    audit: AuditLog,
    actor: str,
) -> list[int]:
    """Put attachments whose bytes are durable in the store on the record, each with an
    `attachment.stored` event (`new_blob`: whether the store had to write the bytes)."""
    rows = list(items)
    session.add_all(attachment for attachment, _ in rows)
    session.flush()
    ids: list[int] = []
    for attachment, new_blob in rows:
        assert attachment.id is not None
        audit.record(
            session,
            actor=actor,
            action="attachment.stored",
            object_type="attachment",
            object_id=attachment.id,
            details=attachment_facts(attachment, store=store_name, new_blob=new_blob),
            flush=False,
        )
        ids.append(attachment.id)
    session.flush()
    return ids


def _stem(path: str) -> str:
    directory, name = posixpath.split(path)
    base = name.rsplit(".", 1)[0] if "." in name else name
    return posixpath.join(directory, base).lower()


def link_to_clips(session: Session, *, transfer_id: int, audit: AuditLog, actor: str) -> int:
    """Give each unlinked attachment of a transfer the clip of the same device whose path has the same
    base name (`DCIM/X.gps` beside `DCIM/X.MP4`), audited; device-info files stay the transfer's.
    Returns how many were linked."""
    pending = session.execute(
        select(attachments.c.id, attachments.c.device_id, attachments.c.device_path).where(
            attachments.c.transfer_id == transfer_id,
            attachments.c.clip_id.is_(None),
            attachments.c.kind != AttachmentKind.DEVICE_INFO.value,
        )
    ).all()
    linked = 0
    for row in pending:
        if row.device_id is None:
            continue
        stem = _stem(row.device_path)
        candidates = session.execute(
            select(clips.c.id, clips.c.device_path)
            .where(
                clips.c.device_id == row.device_id,
                clips.c.status != ClipStatus.DELETED,
                func.lower(clips.c.device_path).like(f"{_like_escape(stem)}.%", escape="\\"),
            )
            .order_by(clips.c.id.desc())
        ).all()
        match = next((c.id for c in candidates if _stem(c.device_path) == stem), None)
        if match is None:
            continue
        session.execute(update(attachments).where(attachments.c.id == row.id).values(clip_id=match))
        audit.record(
            session,
            actor=actor,
            action="attachment.linked_to_clip",
            object_type="attachment",
            object_id=row.id,
            details={"clip_id": match, "device_path": row.device_path, "transfer_id": transfer_id},
            flush=False,
        )
        linked += 1
    session.flush()
    return linked


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
