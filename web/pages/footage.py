"""Footage pages: search, a clip, its derivatives, verify now, the original's download."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form
from fastapi.responses import Response

from evidence_store.domain.model import ClipStatus, MediaType
from evidence_store.queries.search import SearchPage
from web.context import Ctx
from web.deps import ClipCtx, Id, OriginalCtx, SearchCtx, VerifyCtx
from web.footage import (
    SEARCH_FIELDS,
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


def _search_page(ctx: Ctx, values: dict[str, Any], page: SearchPage | None, error: str = "") -> Response:
    """The search form with its values, and the page of results or the error (400)."""
    base = {k: v for k, v in values.items() if v and k != "offset"}
    next_link = prev_link = ""
    if page is not None:
        if page.has_next:
            next_link = "/search?" + urlencode({**base, "go": 1, "offset": page.offset + page.limit})
        if page.offset > 0:
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
    )


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
