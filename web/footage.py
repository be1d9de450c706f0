"""Footage operations shared by the pages and the JSON API (search, view, play, download, verify), each
doing its permission check (R11, R13) and audit record (R17) for the request."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from fastapi import Response

from evidence_store.annotations import add_marker, add_tag, remove_marker, remove_tag
from evidence_store.clip_search import recorded_search
from evidence_store.clip_verification import verify_now
from evidence_store.domain.access import Permission
from evidence_store.domain.model import ClipStatus, DerivativeKind, MediaType
from evidence_store.errors import InputError
from evidence_store.export.workflow import parse_time
from evidence_store.queries.clips import (
    clip_detail,
    clip_id_by_sha256,
    clip_row,
    custody_events,
    derivative_for,
    verification_state,
)
from evidence_store.queries.search import MAX_LIMIT, ClipQuery, SearchPage
from evidence_store.queries.visibility import clip_visible, may_download_original
from web.context import Ctx
from web.deps import MAX_ID
from web.errors import NoDerivative
from web.media import blob_response

SHA256 = re.compile(r"^[0-9a-f]{64}$")
SERVED_KINDS = {
    "proxy": DerivativeKind.PROXY,
    "poster": DerivativeKind.POSTER,
    "contact_sheet": DerivativeKind.CONTACT_SHEET,
}
SEARCH_FIELDS = (
    "officer",
    "device",
    "start_from",
    "start_to",
    "case_number",
    "document",
    "flag",
    "media_type",
    "status",
    "transfer_id",
    "sha256_prefix",
    "tag",
    "note",
    "sort",
    "limit",
    "offset",
    "after",
)


def _int(ctx: Ctx, value: str | None, name: str, default: int | None = None) -> int | None:
    if value in (None, ""):
        return default
    text = str(value).strip()
    # at most 19 digits: a larger number names no row and no page, and no database column holds it
    if not re.fullmatch(r"-?\d{1,19}", text) or not -MAX_ID <= int(text) <= MAX_ID:
        raise InputError(ctx.t("error.bad_number", field=name))
    return int(text)


def clip_query(ctx: Ctx, values: Mapping[str, Any]) -> ClipQuery:
    """A search from form or query values (all text); `InputError` for a value that makes no sense."""

    def text(name: str) -> str | None:
        value = values.get(name)
        return str(value).strip() or None if value is not None else None

    media_type = text("media_type")
    status = text("status")
    if media_type is not None and media_type not in {m.value for m in MediaType}:
        raise InputError(ctx.t("error.bad_value", field="media_type"))
    if status is not None and status not in {s.value for s in ClipStatus}:
        raise InputError(ctx.t("error.bad_value", field="status"))
    query = ClipQuery(
        officer=text("officer"),
        device=text("device"),
        start_from=ctx.parse_time(text("start_from")),
        start_to=ctx.parse_time(text("start_to")),
        case_number=text("case_number"),
        document=text("document"),
        flag=text("flag"),
        media_type=MediaType(media_type) if media_type else None,
        status=ClipStatus(status) if status else None,
        transfer_id=_int(ctx, text("transfer_id"), "transfer_id"),
        sha256_prefix=text("sha256_prefix"),
        tag=text("tag"),
        note=text("note"),
        sort=text("sort") or "start_desc",  # type: ignore[arg-type]
        limit=_int(ctx, text("limit"), "limit", 50) or 50,
        offset=_int(ctx, text("offset"), "offset", 0) or 0,
        after=text("after"),
    )
    query.check()
    return query


def run_search(ctx: Ctx, query: ClipQuery) -> SearchPage:
    user = ctx.require(Permission.CLIP_SEARCH)
    query.limit = min(query.limit, MAX_LIMIT)
    actor = ctx.session.user.actor if ctx.session else "web:anonymous"
    page = recorded_search(ctx.station, query, user, actor=actor, source=ctx.client)
    ids = [hit.id for hit in page.hits]
    session_id = ctx.session.id if ctx.session else ""
    for clip_id in ids:  # the thumbnails of these results are covered by this event
        ctx.web.seen.mark((session_id, clip_id, "image"))
    return page


def visible_clip_row(ctx: Ctx, clip_id: int, permission: Permission) -> Any:
    """The clip's row if the user may see it; otherwise 403 (role) or 404 (missing or confidential)."""
    user = ctx.require(permission)
    with ctx.station.connect() as connection:
        row = clip_row(connection, clip_id)
        visible = row is not None and clip_visible(connection, user, clip_id)
    if row is None or not visible:
        ctx.hidden("clip", clip_id, missing=row is None)
    return row


def view_clip(ctx: Ctx, clip_id: int) -> dict[str, Any]:
    row = visible_clip_row(ctx, clip_id, Permission.CLIP_VIEW)
    user = ctx.user
    # recorded first, so the chain of custody shown includes this very look
    ctx.audit("clip.viewed", "clip", clip_id, {"sha256": row.sha256})
    with ctx.station.connect() as connection:
        detail = clip_detail(connection, clip_id, user)
        assert detail is not None
        detail["custody"] = custody_events(connection, clip_id, row.transfer_id)
        detail["verification"] = verification_state(connection, clip_id, row.sha256)
        detail["may_download_original"] = may_download_original(connection, user, clip_id, ctx.now())
    detail["may_verify"] = user.can(Permission.CLIP_VERIFY)
    detail["frame_rate"] = _frame_rate(detail.get("media_info"))
    detail["may_annotate"] = user.can(Permission.CLIP_ANNOTATE) and detail["status"] != ClipStatus.DELETED
    if ctx.session:
        ctx.web.seen.mark((ctx.session.id, clip_id, "image"))
    return detail


def serve_derivative(ctx: Ctx, clip_id: int, kind: str) -> Response:
    wanted = SERVED_KINDS.get(kind)
    if wanted is None:
        raise InputError(ctx.t("error.bad_value", field="kind"))
    permission = Permission.CLIP_PLAY if wanted is DerivativeKind.PROXY else Permission.CLIP_VIEW
    visible_clip_row(ctx, clip_id, permission)
    with ctx.station.connect() as connection:
        derived = derivative_for(connection, clip_id, wanted)
    if derived is None:
        raise NoDerivative(f"clip {clip_id} has no {wanted.value}")
    range_header = ctx.request.headers.get("range")
    session_id = ctx.session.id if ctx.session else ""
    if wanted is DerivativeKind.PROXY:
        if ctx.web.seen.first((session_id, clip_id, "play")):
            ctx.audit("clip.played", "clip", clip_id, {"proxy": derived.sha256, "range": range_header})
    elif ctx.web.seen.first((session_id, clip_id, "image")):
        ctx.audit("clip.image_viewed", "clip", clip_id, {"kind": wanted.value, "sha256": derived.sha256})
    return blob_response(ctx.station.blobs, derived.sha256, derived.size, derived.mime_type, range_header)


def download_original(ctx: Ctx, clip_id: int, reason: str) -> Response:
    row = visible_clip_row(ctx, clip_id, Permission.CLIP_DOWNLOAD_ORIGINAL)
    with ctx.station.connect() as connection:
        allowed = may_download_original(connection, ctx.user, clip_id, ctx.now())
    if not allowed:
        ctx.deny(
            reason="no approved export request covers this clip",
            permission=Permission.CLIP_DOWNLOAD_ORIGINAL,
            object_type="clip",
            object_id=clip_id,
        )
    reason = reason.strip()
    if not reason:
        raise InputError(ctx.t("error.reason_required"))
    range_header = ctx.request.headers.get("range")
    ctx.audit(
        "clip.original_downloaded",
        "clip",
        clip_id,
        {"sha256": row.sha256, "size": row.size, "reason": reason[:2000], "range": range_header},
    )
    return blob_response(
        ctx.station.blobs,
        row.sha256,
        row.size,
        "application/octet-stream",
        range_header,
        download_name=row.original_name,
    )


def verify_clip(ctx: Ctx, clip_id: int) -> dict[str, Any]:
    row = visible_clip_row(ctx, clip_id, Permission.CLIP_VERIFY)
    return verify_now(ctx.station, clip_id, row.sha256, actor=ctx.user.actor, source=ctx.client)


def clip_by_sha256(ctx: Ctx, sha256: str) -> int:
    ctx.require(Permission.CLIP_VIEW)
    clip_id = None
    if SHA256.match(sha256):  # any other text is the hash of no clip: 404, as for an unknown hash
        with ctx.station.connect() as connection:
            clip_id = clip_id_by_sha256(connection, sha256)
    if clip_id is None:
        ctx.hidden("clip", sha256[:64], missing=True)
    return clip_id


def annotate(ctx: Ctx, clip_id: int, change: str, **values: Any) -> dict[str, Any]:
    """Add or remove a marker or a tag on a clip the user may see (R11, R13); audited by the service."""
    visible_clip_row(ctx, clip_id, Permission.CLIP_VIEW)
    user = ctx.require(Permission.CLIP_ANNOTATE)
    who = {"actor": user.actor, "source": ctx.client}
    if change == "add_marker":
        offset = values["at"]
        offset_s = parse_time(offset) if isinstance(offset, str) else float(offset)
        return {"marker_id": add_marker(ctx.station, clip_id, offset_s=offset_s, note=values["note"], **who)}
    if change == "remove_marker":
        remove_marker(ctx.station, clip_id, values["marker_id"], **who)
        return {"ok": True}
    if change == "add_tag":
        return {"tag": add_tag(ctx.station, clip_id, values["tag"], **who)}
    if change == "remove_tag":
        remove_tag(ctx.station, clip_id, values["tag"], **who)
        return {"ok": True}
    raise ValueError(change)


def _frame_rate(media_info: Any) -> float | None:
    """The probed frame rate (frames per second) the player steps by, if the probe found one."""
    info = media_info if isinstance(media_info, dict) else {}
    probe = info.get("probe") if isinstance(info.get("probe"), dict) else info
    rate = probe.get("frame_rate") if isinstance(probe, dict) else None
    return float(rate) if isinstance(rate, int | float) and 1 <= rate <= 1000 else None
