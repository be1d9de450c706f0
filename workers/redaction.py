"""Redaction jobs (issue 20 items 2 and 3, R15): detect faces on a clip's proxy into a new version of
its specification; render a version into a redacted copy of the original, signed with C2PA.

Both read the original or its proxy and never write them (R3). The heavy work (decoding, detection,
encoding, signing) runs outside any transaction; each result is recorded in one short transaction with
its audit event (`evidence_store.redactions`).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from evidence_store.bootstrap import Station
from evidence_store.domain.redaction import (
    TIME_SLACK_S,
    RedactionSpec,
    canonical_json,
    link_tracks,
    scale_box,
    segment_of,
    spec_sha256,
)
from evidence_store.errors import ConflictError, IntegrityError, NotFoundError
from evidence_store.export.c2pa_signing import derivative_manifest, ensure_c2pa_credentials, sign_file
from evidence_store.export.package import MIME_BY_EXT, extension_of
from evidence_store.redactions import (
    StoredSpec,
    clip_media,
    load_spec,
    record_render,
    save_spec,
)
from workers.steps import original_path


@dataclass(frozen=True)
class Rendered:
    render_id: int
    version: int
    spec_sha256: str
    sha256: str  # the stored, signed copy
    rendered_sha256: str  # ffmpeg's output before the C2PA manifest was embedded
    size: int
    start_s: float | None = None  # the segment of the clip the copy covers; None: the whole clip
    end_s: float | None = None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(4 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def detect(station: Station, clip_id: int, *, actor: str, source: str | None = None) -> StoredSpec:
    """Find faces on the clip's proxy, link them into tracks, scale them to the original's pixels and
    store them as the next version of the clip's specification. Hand-drawn boxes and ranges of the
    newest version are kept; its tracks are replaced (a reviewer accepts or rejects the new ones)."""
    from ingest.transcode.faces import detect_faces  # lazy: OpenCV loads only where faces are detected

    media = clip_media(station, clip_id)
    if media.proxy_sha256 is None:
        raise ConflictError(f"clip {clip_id} has no proxy yet: run `evidence process` first")
    with original_path(station, media.proxy_sha256) as proxy:
        found = detect_faces(proxy)
    size = (media.width, media.height)
    scaled = [
        (frame.t, [scale_box(box, (found.width, found.height), size) for box in frame.boxes])
        for frame in found.frames
    ]
    tracks = link_tracks(scaled)
    try:
        base: RedactionSpec = load_spec(station, clip_id).spec
    except NotFoundError:
        base = RedactionSpec(media.width, media.height, media.duration_s)
    # a proxy's last frame may sit past the original's probed duration: such boxes are dropped, not
    # moved (moved, two boxes of a track could share a time)
    limit = base.duration_s + TIME_SLACK_S
    kept = (replace(t, boxes=tuple(b for b in t.boxes if b.t <= limit)) for t in tracks)
    tracks = tuple(t for t in kept if t.boxes)
    spec = replace(base, tracks=tracks)
    stored = save_spec(station, clip_id, _plain(spec), actor=actor, source=source, reason="faces detected")
    with station.transaction() as session:
        station.audit.record(
            session,
            source=source,
            actor=actor,
            action="redaction.faces_detected",
            object_type="clip",
            object_id=clip_id,
            details={
                "version": stored.version,
                "spec_sha256": stored.spec_sha256,
                "proxy_sha256": media.proxy_sha256,
                "detector": found.detector,
                "frames": len(found.frames),
                "frames_with_faces": sum(1 for f in found.frames if f.boxes),
                "tracks": len(tracks),
            },
        )
    return stored


def _plain(spec: RedactionSpec) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(canonical_json(spec))
    return loaded


def render(
    station: Station,
    clip_id: int,
    *,
    version: int | None = None,
    actor: str,
    source: str | None = None,
    start_s: float | None = None,
    end_s: float | None = None,
    timeout_s: float | None = 6 * 3600,
) -> Rendered:
    """Render a version (the newest by default) of the clip's specification into a redacted copy at
    the original's resolution, embed a C2PA manifest naming the original as ingredient and the
    redaction as the action, store it and audit its lineage (R15, R3). With `start_s`/`end_s` the copy
    covers only that segment of the clip (a party's copy of one part), recorded with its lineage."""
    from ingest.transcode.faces import opencv_version  # lazy: as above
    from ingest.transcode.redact import RenderSettings, render_redaction

    media = clip_media(station, clip_id)
    stored = load_spec(station, clip_id, version)
    if spec_sha256(stored.spec) != stored.spec_sha256:
        # never render what the audit log does not name: a stored version must hash as it was recorded
        raise IntegrityError(
            f"clip {clip_id} redaction version {stored.version} no longer hashes to its recorded sha256"
        )
    segment = segment_of(stored.spec, start_s, end_s)
    settings = station.settings
    credentials, _created = ensure_c2pa_credentials(
        settings.keys_dir,
        organisation=settings.unit_name or settings.station_name,
        station_name=settings.station_name,
        now=station.clock(),
    )
    part = f"-{segment.start_s:g}s-{segment.end_s:g}s" if segment else ""
    name = f"clip{clip_id}-redacted-v{stored.version}{part}.mp4"
    with (
        original_path(station, media.sha256) as original,
        tempfile.TemporaryDirectory(prefix="evidence-redact-") as work,
    ):
        unsigned, signed = Path(work) / f"unsigned-{name}", Path(work) / name
        run = render_redaction(
            original,
            unsigned,
            stored.spec,
            has_audio=media.has_audio,
            sample_rate=media.sample_rate,
            settings=RenderSettings(fps=media.frame_rate),
            segment=segment,
            timeout_s=timeout_s,
        )
        rendered_sha256 = _sha256(unsigned)
        lineage = {
            "original_sha256": media.sha256,
            "spec_sha256": stored.spec_sha256,
            "spec_version": stored.version,
            "tool": run.tool,
            "tool_version": run.tool_version,
            "detector": opencv_version(),
            "rendered_sha256": rendered_sha256,
            "segment": {"start_s": segment.start_s, "end_s": segment.end_s} if segment else None,
        }
        sign_file(
            unsigned,
            signed,
            credentials,
            derivative_manifest(
                title=name,
                original_title=media.original_name,
                original_sha256=media.sha256,
                original_format=MIME_BY_EXT.get(
                    extension_of(media.original_name), "application/octet-stream"
                ),
                description=(
                    f"redacted copy (R15): redaction specification version {stored.version}, "
                    f"sha256 {stored.spec_sha256}"
                    + (f"; segment {segment.start_s:g}s to {segment.end_s:g}s of the clip" if segment else "")
                ),
                lineage={"kind": "redacted", **lineage},
                software=run.tool_version,
            ),
        )
        with signed.open("rb") as handle:
            blob = station.blobs.put(handle)
    render_id = record_render(
        station,
        stored,
        media,
        sha256=blob.sha256,
        size=blob.size,
        rendered_sha256=rendered_sha256,
        tool=run.tool,
        tool_version=run.tool_version,
        arguments=[str(a) for a in run.arguments],
        lineage=lineage,
        actor=actor,
        source=source,
        segment=segment,
    )
    return Rendered(
        render_id,
        stored.version,
        stored.spec_sha256,
        blob.sha256,
        rendered_sha256,
        blob.size,
        segment.start_s if segment else None,
        segment.end_s if segment else None,
    )
