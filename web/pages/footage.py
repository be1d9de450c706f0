"""Footage pages: search, a clip, its derivatives, verify now, the original's download."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form
from fastapi.responses import Response

from evidence_store.domain.annotations import MarkerOutsideClip
from evidence_store.domain.model import ClipStatus, MediaType
from evidence_store.queries.search import SearchPage, is_cursor
from web.bulk import actions_for, run_bulk
from web.context import Ctx
from web.deps import AnnotateCtx, ClipCtx, Id, OriginalCtx, SearchCtx, UserCtx, VerifyCtx
from web.footage import (
    SEARCH_FIELDS,
    annotate,
    clip_query,
    download_original,
    run_search,
    serve_derivative,
    verify_clip,
    view_clip,
)
from web.pages.rendering import redirect, render

router = APIRouter()


@router.get("/search")
def search_page(ctx: SearchCtx) -> Response:
    values = {k: v for k, v in ctx.request.query_params.items() if k in SEARCH_FIELDS}
    asked = (
        any(v for k, v in values.items() if k not in ("sort", "limit", "offset"))
        or "go" in ctx.request.query_params
    )
    ctx.on_input_error(lambda message: _search_page(ctx, values, None, message))
    page = run_search(ctx, clip_query(ctx, values)) if asked else None
    return _search_page(ctx, values, page)


# The cursors of the pages before this one ride along in `trail` (oldest first, "start" for the first
# page), so a page reached by cursor still links back: a cursor names where a page ends, and nothing
# in it leads backwards. Bounded, and any entry that is not a cursor drops the back link.
TRAIL_FIRST = "start"
TRAIL_MAX = 100


def _trail(raw: str | None) -> list[str] | None:
    """The pages before this one, or None when the request carries no usable trail."""
    if raw is None:
        return None
    entries = raw.split(".")
    if len(entries) > TRAIL_MAX or not all(e == TRAIL_FIRST or is_cursor(e) for e in entries):
        return None
    return entries


def _search_page(ctx: Ctx, values: dict[str, Any], page: SearchPage | None, error: str = "") -> Response:
    """The search form with its values, and the page of results or the error (400)."""
    base = {k: v for k, v in values.items() if v and k not in ("offset", "after")}
    next_link = prev_link = ""
    if page is not None:
        after = values.get("after") or ""
        trail = _trail(ctx.request.query_params.get("trail")) if after else []
        if page.has_next and page.next_after:  # keyset: the next page costs what this one did
            ahead = {**base, "go": 1, "after": page.next_after}
            if trail is not None:
                ahead["trail"] = ".".join([*trail, after or TRAIL_FIRST][-TRAIL_MAX:])
            next_link = "/search?" + urlencode(ahead)
        if after and trail:  # back along the trail: the cursor of the page before, or the first page
            back = {**base, "go": 1}
            if trail[-1] != TRAIL_FIRST:
                back["after"] = trail[-1]
            if trail[:-1]:
                back["trail"] = ".".join(trail[:-1])
            prev_link = "/search?" + urlencode(back)
        elif page.offset > 0 and not after:
            prev_link = "/search?" + urlencode({**base, "go": 1, "offset": max(0, page.offset - page.limit)})
    return render(
        ctx,
        "search.html",
        400 if error else 200,
        values=values,
        page=page,
        error=error,
        next_link=next_link,
        prev_link=prev_link,
        media_types=[m.value for m in MediaType],
        statuses=[s.value for s in ClipStatus],
        bulk_actions=actions_for(ctx),
    )


@router.post("/clips/bulk")
def clips_bulk(
    ctx: UserCtx,
    action: Annotated[str, Form()] = "",
    clip_id: Annotated[list[int], Form()] = [],  # noqa: B006 (FastAPI copies a default list)
    reason: Annotated[str, Form()] = "",
    case_number: Annotated[str, Form()] = "",
    tag: Annotated[str, Form()] = "",
) -> Response:
    result = run_bulk(ctx, action, clip_id, reason=reason, case_number=case_number, tag=tag)
    return render(ctx, "bulk.html", result=result)


@router.get("/clips/{clip_id}")
def clip_page(ctx: ClipCtx, clip_id: Id) -> Response:
    detail = view_clip(ctx, clip_id)
    return render(ctx, "clip.html", clip=detail, message=ctx.request.query_params.get("message", ""))


@router.get("/clips/{clip_id}/derivative/{kind}")
def clip_derivative(ctx: ClipCtx, clip_id: Id, kind: str) -> Response:
    return serve_derivative(ctx, clip_id, kind)


@router.post("/clips/{clip_id}/verify")
def clip_verify(ctx: VerifyCtx, clip_id: Id) -> Response:
    result = verify_clip(ctx, clip_id)
    return redirect(f"/clips/{clip_id}?message={'verified_ok' if result['ok'] else 'verified_bad'}")


@router.post("/clips/{clip_id}/original")
def clip_original(ctx: OriginalCtx, clip_id: Id, reason: Annotated[str, Form()] = "") -> Response:
    return download_original(ctx, clip_id, reason)


@router.post("/clips/{clip_id}/markers")
def clip_add_marker(
    ctx: AnnotateCtx, clip_id: Id, at: Annotated[str, Form()] = "", note: Annotated[str, Form()] = ""
) -> Response:
    ctx.on_input_error(lambda message: _annotation_refused(ctx, clip_id, message))
    try:
        annotate(ctx, clip_id, "add_marker", at=at, note=note)
    except MarkerOutsideClip as exc:  # the form shown again, like any other refused marker
        return _annotation_refused(ctx, clip_id, str(exc))
    return redirect(f"/clips/{clip_id}?message=marker_added#markers")


@router.post("/clips/{clip_id}/markers/{marker_id}/remove")
def clip_remove_marker(ctx: AnnotateCtx, clip_id: Id, marker_id: Id) -> Response:
    annotate(ctx, clip_id, "remove_marker", marker_id=marker_id)
    return redirect(f"/clips/{clip_id}?message=marker_removed#markers")


@router.post("/clips/{clip_id}/tags")
def clip_add_tag(ctx: AnnotateCtx, clip_id: Id, tag: Annotated[str, Form()] = "") -> Response:
    ctx.on_input_error(lambda message: _annotation_refused(ctx, clip_id, message))
    annotate(ctx, clip_id, "add_tag", tag=tag)
    return redirect(f"/clips/{clip_id}?message=tag_added#tags")


@router.post("/clips/{clip_id}/tags/remove")
def clip_remove_tag(ctx: AnnotateCtx, clip_id: Id, tag: Annotated[str, Form()] = "") -> Response:
    annotate(ctx, clip_id, "remove_tag", tag=tag)
    return redirect(f"/clips/{clip_id}?message=tag_removed#tags")


def _annotation_refused(ctx: Ctx, clip_id: int, message: str) -> Response:
    """The clip page again, with what was wrong (400); nothing was written."""
    detail = view_clip(ctx, clip_id)
    return render(ctx, "clip.html", 400, clip=detail, message="", error=message)
