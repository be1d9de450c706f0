"""A clip's redaction specifications and rendered copies, the storing side (issue 20, R15, R3).

A specification version is written once and never changed: saving a changed specification adds the
next version; saving one equal (same canonical sha256) to the newest version adds nothing and returns
that version. Each write is audited with the specification's sha256, so the audit log alone says who
asked to hide what. The rules of what a specification may be are in `evidence_store.domain.redaction`;
the caller has checked the user's rights: `check_editor` for a named station user (the command line),
the web's own checks for a signed-in one (`Permission.REDACTION_EDIT` and the clip's visibility, R11, R13).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select

from evidence_store.bootstrap import Station
from evidence_store.db.ids import inserted_id
from evidence_store.db.tables import clips, derivatives, redaction_renders, redaction_specs, users
from evidence_store.domain.access import Permission, Role, User
from evidence_store.domain.model import ClipStatus, DerivativeKind
from evidence_store.domain.redaction import (
    RedactionSpec,
    Segment,
    canonical_json,
    spec_from_dict,
    spec_sha256,
)
from evidence_store.errors import ConflictError, InputError, NotFoundError, NotPermittedError
from evidence_store.queries.visibility import clip_visible


def check_editor(station: Station, username: str, clip_id: int) -> User:
    """The station user `username` if they may edit and render clip `clip_id`'s redaction (R11: the
    `redaction.edit` permission; R13: a clip they may not see answers like a missing one)."""
    with station.connect() as connection:
        row = connection.execute(select(users).where(users.c.username == username)).first()
        if row is None or not row.active:
            raise NotPermittedError(f"user {username!r} is not an active station user")
        user = User(
            id=row.id,
            username=row.username,
            display_name=row.display_name,
            role=Role(row.role),
            unit=row.unit or "",
            officer_id=row.officer_id,
        )
        if not user.can(Permission.REDACTION_EDIT):
            raise NotPermittedError(
                f"user {username!r} ({user.role}) does not edit redactions "
                "(R15: a custodian or an investigator does)"
            )
        exists = connection.execute(select(clips.c.id).where(clips.c.id == clip_id)).first() is not None
        if not exists or not clip_visible(connection, user, clip_id):
            raise NotFoundError(f"no clip {clip_id}")  # a hidden clip reads as a missing one (R13)
    return user


@dataclass(frozen=True)
class StoredSpec:
    id: int
    clip_id: int
    version: int
    spec: RedactionSpec
    spec_sha256: str
    created_by: str
    created_at: datetime
    created: bool = False  # True when this save made the version


@dataclass(frozen=True)
class ClipMedia:
    """What redaction needs to know of a clip's original and proxy."""

    clip_id: int
    sha256: str
    original_name: str
    width: int  # as displayed (after the container's rotation), which is what ffmpeg decodes to
    height: int
    duration_s: float
    frame_rate: float
    has_audio: bool
    sample_rate: int
    proxy_sha256: str | None


def clip_media(station: Station, clip_id: int) -> ClipMedia:
    """The original's frame size, duration and audio, from its probe; `ConflictError` for a clip
    without a decodable video (nothing to redact a face in) or deleted at the end of its retention."""
    with station.connect() as connection:
        row = connection.execute(
            select(
                clips.c.id, clips.c.sha256, clips.c.status, clips.c.original_name, clips.c.media_info
            ).where(clips.c.id == clip_id)
        ).first()
        if row is None:
            raise NotFoundError(f"no clip {clip_id}")
        proxy = connection.execute(
            select(derivatives.c.sha256).where(
                derivatives.c.clip_id == clip_id, derivatives.c.kind == DerivativeKind.PROXY
            )
        ).scalar()
    if row.status == ClipStatus.DELETED:
        raise ConflictError(f"clip {clip_id} was deleted at the end of its retention: nothing to redact")
    probe: dict[str, Any] = (row.media_info or {}).get("probe") or {}
    width, height, duration = probe.get("width"), probe.get("height"), probe.get("duration_s")
    if not probe.get("video_decodable") or not width or not height or not duration:
        raise ConflictError(f"clip {clip_id} has no probed, decodable video: run `evidence process` first")
    if int(probe.get("rotation") or 0) % 180 == 90:
        width, height = height, width
    return ClipMedia(
        clip_id=clip_id,
        sha256=row.sha256,
        original_name=row.original_name,
        width=int(width),
        height=int(height),
        duration_s=float(duration),
        frame_rate=float(probe.get("frame_rate") or 25.0),
        has_audio=bool(probe.get("audio_decodable")),
        sample_rate=int(probe.get("sample_rate") or 48000),
        proxy_sha256=proxy,
    )


def check_fits(spec: RedactionSpec, media: ClipMedia) -> None:
    """A specification speaks the original's pixels and seconds: it must be made for this clip."""
    if (spec.width, spec.height) != (media.width, media.height):
        raise InputError(
            f"the specification is for a {spec.width}x{spec.height} frame; clip {media.clip_id}'s original "
            f"is {media.width}x{media.height}"
        )
    if abs(spec.duration_s - media.duration_s) > 0.5:
        raise InputError(
            f"the specification is for {spec.duration_s:g}s; clip {media.clip_id} lasts {media.duration_s:g}s"
        )


def _stored(row: Any, *, created: bool = False) -> StoredSpec:
    return StoredSpec(
        id=row.id,
        clip_id=row.clip_id,
        version=row.version,
        spec=spec_from_dict(json.loads(row.spec)),
        spec_sha256=row.spec_sha256,
        created_by=row.created_by,
        created_at=row.created_at,
        created=created,
    )


def save_spec(
    station: Station,
    clip_id: int,
    raw: Any,
    *,
    actor: str,
    source: str | None = None,
    reason: str = "edited",
) -> StoredSpec:
    """Check `raw` and store it as the clip's next version (R15); the newest version unchanged if equal."""
    spec = spec_from_dict(raw)
    check_fits(spec, clip_media(station, clip_id))
    text = canonical_json(spec)
    digest = spec_sha256(spec)
    with station.transaction() as session:
        connection = session.connection()
        newest = connection.execute(
            select(redaction_specs)
            .where(redaction_specs.c.clip_id == clip_id)
            .order_by(redaction_specs.c.version.desc())
            .limit(1)
        ).first()
        if newest is not None and newest.spec_sha256 == digest:
            return _stored(newest)
        version = (newest.version if newest is not None else 0) + 1
        now = station.clock()
        spec_id = inserted_id(
            connection.execute(
                insert(redaction_specs).values(
                    clip_id=clip_id,
                    version=version,
                    spec=text,
                    spec_sha256=digest,
                    created_by=actor,
                    created_at=now,
                )
            )
        )
        station.audit.record(
            session,
            source=source,
            actor=actor,
            action="redaction.spec_saved",
            object_type="clip",
            object_id=clip_id,
            details={
                "spec_id": spec_id,
                "version": version,
                "spec_sha256": digest,
                "reason": reason,
                "tracks": len(spec.tracks),
                "tracks_accepted": sum(1 for t in spec.tracks if t.accepted),
                "boxes": len(spec.boxes),
                "frame_ranges": len(spec.frames),
                "audio_ranges": len(spec.audio),
            },
        )
        row = connection.execute(select(redaction_specs).where(redaction_specs.c.id == spec_id)).one()
    return _stored(row, created=True)


def load_spec(station: Station, clip_id: int, version: int | None = None) -> StoredSpec:
    """A stored version (the newest when `version` is None)."""
    query = select(redaction_specs).where(redaction_specs.c.clip_id == clip_id)
    if version is None:
        query = query.order_by(redaction_specs.c.version.desc()).limit(1)
    else:
        query = query.where(redaction_specs.c.version == version)
    with station.connect() as connection:
        row = connection.execute(query).first()
    if row is None:
        which = "any redaction specification" if version is None else f"redaction version {version}"
        raise NotFoundError(f"clip {clip_id} has no {which}")
    return _stored(row)


def spec_versions(station: Station, clip_id: int) -> list[dict[str, Any]]:
    """Every version of the clip's specification, oldest first, with the copies rendered from each."""
    with station.connect() as connection:
        specs = connection.execute(
            select(redaction_specs)
            .where(redaction_specs.c.clip_id == clip_id)
            .order_by(redaction_specs.c.version)
        ).all()
        renders = connection.execute(
            select(redaction_renders)
            .where(redaction_renders.c.clip_id == clip_id)
            .order_by(redaction_renders.c.id)
        ).all()
    return [
        {
            "version": s.version,
            "spec_sha256": s.spec_sha256,
            "created_by": s.created_by,
            "created_at": s.created_at.isoformat(),
            "renders": [
                {
                    "id": r.id,
                    "sha256": r.sha256,
                    "rendered_sha256": r.rendered_sha256,
                    "size": r.size,
                    "start_s": r.start_s,
                    "end_s": r.end_s,
                    "created_by": r.created_by,
                    "created_at": r.created_at.isoformat(),
                }
                for r in renders
                if r.spec_id == s.id
            ],
        }
        for s in specs
    ]


def record_render(
    station: Station,
    stored: StoredSpec,
    media: ClipMedia,
    *,
    sha256: str,
    size: int,
    rendered_sha256: str,
    tool: str,
    tool_version: str,
    arguments: list[str],
    lineage: dict[str, Any],
    actor: str,
    source: str | None = None,
    segment: Segment | None = None,
) -> int:
    """Record a rendered copy, already in the blob store, and audit its lineage (R15, R3: the original's
    sha256 it came from, the specification's sha256 and version, the tools)."""
    with station.transaction() as session:
        connection = session.connection()
        render_id = inserted_id(
            connection.execute(
                insert(redaction_renders).values(
                    clip_id=media.clip_id,
                    spec_id=stored.id,
                    kind=DerivativeKind.REDACTED,
                    sha256=sha256,
                    size=size,
                    rendered_sha256=rendered_sha256,
                    mime_type="video/mp4",
                    derived_from_sha256=media.sha256,
                    tool=tool,
                    tool_version=tool_version,
                    arguments=arguments,
                    created_by=actor,
                    created_at=station.clock(),
                    start_s=segment.start_s if segment else None,
                    end_s=segment.end_s if segment else None,
                )
            )
        )
        station.audit.record(
            session,
            source=source,
            actor=actor,
            action="redaction.rendered",
            object_type="clip",
            object_id=media.clip_id,
            details={
                "render_id": render_id,
                "kind": str(DerivativeKind.REDACTED),
                "sha256": sha256,
                "rendered_sha256": rendered_sha256,
                "derived_from": media.sha256,
                **lineage,
            },
        )
    return render_id
