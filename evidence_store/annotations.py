"""Markers and tags on clips, the writing side (issue 19 item 3): add, remove, each audited with the
facts it states (R17), so the audit log alone says who noted what at which moment of which clip.

The caller has checked that the user may annotate (`Permission.CLIP_ANNOTATE`) and may see the clip
(R11, R13); the rules of what a tag or marker may be are in `evidence_store.domain.annotations`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert, select, update

from evidence_store.bootstrap import Station
from evidence_store.db.ids import inserted_id
from evidence_store.db.tables import clip_markers, clip_tags, clips
from evidence_store.domain.annotations import check_marker, normalise_tag
from evidence_store.domain.model import ClipStatus
from evidence_store.errors import ConflictError, NotFoundError


def _clip(connection: Any, clip_id: int) -> Any:
    row = connection.execute(
        select(clips.c.id, clips.c.sha256, clips.c.status, clips.c.duration_s).where(clips.c.id == clip_id)
    ).first()
    if row is None:
        raise NotFoundError(f"no clip {clip_id}")
    if row.status == ClipStatus.DELETED:
        raise ConflictError(f"clip {clip_id} was deleted at the end of its retention: nothing to annotate")
    return row


def add_marker(
    station: Station, clip_id: int, *, offset_s: float, note: str, actor: str, source: str | None = None
) -> int:
    """A note at `offset_s` seconds into the clip; its id."""
    with station.transaction() as session:
        connection = session.connection()
        clip = _clip(connection, clip_id)
        marker = check_marker(offset_s, note, clip.duration_s)
        marker_id = inserted_id(
            connection.execute(
                insert(clip_markers).values(
                    clip_id=clip_id,
                    offset_s=marker.offset_s,
                    note=marker.note,
                    created_by=actor,
                    created_at=station.clock(),
                )
            )
        )
        station.audit.record(
            session,
            source=source,
            actor=actor,
            action="clip.marker_added",
            object_type="clip",
            object_id=clip_id,
            details={
                "marker_id": marker_id,
                "offset_s": marker.offset_s,
                "note": marker.note,
                "sha256": clip.sha256,
            },
        )
    return int(marker_id)


def remove_marker(
    station: Station, clip_id: int, marker_id: int, *, actor: str, source: str | None = None
) -> None:
    """Take a marker off the clip: it stays on record with who removed it and when."""
    with station.transaction() as session:
        connection = session.connection()
        clip = _clip(connection, clip_id)
        marker = connection.execute(
            select(clip_markers).where(clip_markers.c.id == marker_id, clip_markers.c.clip_id == clip_id)
        ).first()
        if marker is None:
            raise NotFoundError(f"clip {clip_id} has no marker {marker_id}")
        if marker.removed_at is not None:
            raise ConflictError(f"marker {marker_id} was already removed")
        connection.execute(
            update(clip_markers)
            .where(clip_markers.c.id == marker_id)
            .values(removed_by=actor, removed_at=station.clock())
        )
        station.audit.record(
            session,
            source=source,
            actor=actor,
            action="clip.marker_removed",
            object_type="clip",
            object_id=clip_id,
            details={
                "marker_id": marker_id,
                "offset_s": marker.offset_s,
                "note": marker.note,
                "sha256": clip.sha256,
            },
        )


def add_tag(
    station: Station,
    clip_id: int,
    tag: str,
    *,
    actor: str,
    source: str | None = None,
    reason: str | None = None,
) -> str:
    """Put a tag on the clip (as normalised); adding one it already carries changes nothing. A bulk
    action's reason is kept with the event."""
    label = normalise_tag(tag)
    with station.transaction() as session:
        connection = session.connection()
        clip = _clip(connection, clip_id)
        present = connection.scalar(
            select(clip_tags.c.id).where(clip_tags.c.clip_id == clip_id, clip_tags.c.tag == label)
        )
        if present is not None:
            return label
        connection.execute(
            insert(clip_tags).values(clip_id=clip_id, tag=label, added_by=actor, added_at=station.clock())
        )
        station.audit.record(
            session,
            source=source,
            actor=actor,
            action="clip.tag_added",
            object_type="clip",
            object_id=clip_id,
            details={"tag": label, "sha256": clip.sha256, **({"reason": reason} if reason else {})},
        )
    return label


def remove_tag(station: Station, clip_id: int, tag: str, *, actor: str, source: str | None = None) -> None:
    """Take a tag off the clip (the audit log keeps that it was there)."""
    label = normalise_tag(tag)
    with station.transaction() as session:
        connection = session.connection()
        clip = _clip(connection, clip_id)
        removed = connection.execute(
            delete(clip_tags).where(clip_tags.c.clip_id == clip_id, clip_tags.c.tag == label)
        ).rowcount
        if not removed:
            raise NotFoundError(f"clip {clip_id} has no tag {label!r}")
        station.audit.record(
            session,
            source=source,
            actor=actor,
            action="clip.tag_removed",
            object_type="clip",
            object_id=clip_id,
            details={"tag": label, "sha256": clip.sha256},
        )
