"""A clip's redaction in the browser (issue 20 item 4, R15), shared by the page and the JSON API: the
newest specification and the copies rendered, saving an edited specification as the next version,
detecting faces on the proxy, rendering a version (the whole clip or a segment), serving a rendered copy.

Every step needs `redaction.edit` (R11: a custodian or an investigator) and a clip the user sees (R13: a
hidden clip answers 404 like a missing one, audited as a refusal). The steps call what the command line
calls (`evidence_store.redactions`, `workers.redaction`); detection and rendering run in the request, as
the export's build does: the page shows "working" until the answer comes. A specification the rules
refuse (a box outside the frame, a range past the end, a spec for another frame size) answers 409 with
the rule's words: the body had the API's shape, the clip's facts refused it; so does a proxy or an
original that does not decode.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import Response
from sqlalchemy import select

from evidence_store.db.tables import redaction_renders
from evidence_store.domain.access import Permission
from evidence_store.domain.redaction import RedactionSpec, spec_to_dict
from evidence_store.errors import ConflictError, InputError, NotFoundError, PermanentError
from evidence_store.redactions import ClipMedia, clip_media, load_spec, save_spec, spec_versions
from web.context import Ctx
from web.footage import visible_clip_row
from web.media import blob_response


class RedactionRefused(ConflictError):
    """A specification or a segment the clip's facts refuse (R15): 409 with the rule's words."""


def _editable(ctx: Ctx, clip_id: int) -> Any:
    return visible_clip_row(ctx, clip_id, Permission.REDACTION_EDIT)


def _media(clip_id: int, ctx: Ctx) -> tuple[ClipMedia | None, str]:
    try:
        return clip_media(ctx.station, clip_id), ""
    except ConflictError as exc:  # no decodable video (yet), or deleted: nothing to draw on
        return None, str(exc)


def redaction_state(ctx: Ctx, clip_id: int) -> dict[str, Any]:
    """What the editor needs: the original's frame size and length (the specification's pixels and
    seconds), whether there is a proxy to draw on, the newest specification (an empty one before the
    first save), every version with the copies rendered from it."""
    row = _editable(ctx, clip_id)
    media, problem = _media(clip_id, ctx)
    spec: dict[str, Any] | None = None
    version = None
    spec_sha256 = None
    try:
        stored = load_spec(ctx.station, clip_id)
        spec, version, spec_sha256 = spec_to_dict(stored.spec), stored.version, stored.spec_sha256
    except NotFoundError:
        if media is not None:
            spec = spec_to_dict(RedactionSpec(media.width, media.height, media.duration_s))
    return {
        "clip_id": clip_id,
        "original_name": row.original_name,
        "media": None
        if media is None
        else {
            "width": media.width,
            "height": media.height,
            "duration_s": media.duration_s,
            "frame_rate": media.frame_rate,
            "has_audio": media.has_audio,
            "has_proxy": media.proxy_sha256 is not None,
        },
        "problem": problem,
        "version": version,
        "spec_sha256": spec_sha256,
        "spec": spec,
        "versions": spec_versions(ctx.station, clip_id),
    }


def save(ctx: Ctx, clip_id: int, raw: dict[str, Any]) -> dict[str, Any]:
    """Store the edited specification as the clip's next version (unchanged: the newest is kept)."""
    user = ctx.require(Permission.REDACTION_EDIT)
    _editable(ctx, clip_id)
    try:
        stored = save_spec(ctx.station, clip_id, raw, actor=user.actor, source=ctx.client)
    except InputError as exc:
        raise RedactionRefused(str(exc)) from exc
    return {"version": stored.version, "spec_sha256": stored.spec_sha256, "created": stored.created}


def detect(ctx: Ctx, clip_id: int) -> dict[str, Any]:
    """Faces on the proxy into the next version (tracks replaced, drawn boxes and ranges kept)."""
    from workers.redaction import detect as detect_faces  # lazy: OpenCV loads only where faces are found

    user = ctx.require(Permission.REDACTION_EDIT)
    _editable(ctx, clip_id)
    try:
        stored = detect_faces(ctx.station, clip_id, actor=user.actor, source=ctx.client)
    except PermanentError as exc:  # a proxy that does not decode is a fact of the clip, not of the request
        raise RedactionRefused(str(exc)) from exc
    return {
        "version": stored.version,
        "spec_sha256": stored.spec_sha256,
        "tracks": len(stored.spec.tracks),
    }


def render(
    ctx: Ctx, clip_id: int, *, version: int | None, start_s: float | None, end_s: float | None
) -> dict[str, Any]:
    """Render a version (the newest by default), the whole clip or a segment, into a signed copy."""
    from workers.redaction import render as render_copy  # lazy: as above

    user = ctx.require(Permission.REDACTION_EDIT)
    _editable(ctx, clip_id)
    try:
        done = render_copy(
            ctx.station,
            clip_id,
            version=version,
            actor=user.actor,
            source=ctx.client,
            start_s=start_s,
            end_s=end_s,
        )
    except (InputError, PermanentError) as exc:  # a refused segment, an original ffmpeg cannot decode
        raise RedactionRefused(str(exc)) from exc
    return {
        "render_id": done.render_id,
        "version": done.version,
        "spec_sha256": done.spec_sha256,
        "sha256": done.sha256,
        "size": done.size,
        "start_s": done.start_s,
        "end_s": done.end_s,
        "url": copy_url(clip_id, done.render_id),
    }


def copy_url(clip_id: int, render_id: int) -> str:
    return f"/clips/{clip_id}/redaction/copies/{render_id}"


def serve_copy(ctx: Ctx, clip_id: int, render_id: int, *, download: bool) -> Response:
    """A rendered copy of a clip the user may redact, to play in the page or to download (audited:
    a download each time, playing once per session and copy, as the proxy's)."""
    _editable(ctx, clip_id)
    with ctx.station.connect() as connection:
        row = connection.execute(
            select(redaction_renders).where(
                redaction_renders.c.id == render_id, redaction_renders.c.clip_id == clip_id
            )
        ).first()
    if row is None:
        raise NotFoundError(f"clip {clip_id} has no redacted copy {render_id}")
    range_header = ctx.request.headers.get("range")
    details = {"render_id": render_id, "sha256": row.sha256, "range": range_header}
    session_id = ctx.session.id if ctx.session else ""
    if download:
        ctx.audit("redaction.copy_downloaded", "clip", clip_id, details)
    elif ctx.web.seen.first((session_id, clip_id, f"redacted-{render_id}")):
        ctx.audit("redaction.copy_played", "clip", clip_id, details)
    return blob_response(
        ctx.station.blobs,
        row.sha256,
        row.size,
        row.mime_type,
        range_header,
        download_name=f"clip{clip_id}-redacted-{render_id}.mp4" if download else None,
    )
