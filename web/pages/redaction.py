"""The redaction page of a clip (issue 20 item 4, R15): the editor (`static/redaction.js`) over the
proxy, and the rendered copies to play or download. The editor talks to the JSON API
(`/api/clips/{id}/redaction...`); the page only hands it the newest specification and the words."""

from __future__ import annotations

from fastapi import APIRouter, Query
from fastapi.responses import Response

from web.deps import Id, RedactCtx
from web.pages.rendering import render
from web.redaction import copy_url, redaction_state, serve_copy

router = APIRouter()
# the words the editor's script writes into the page (`redact.js.<key>` in both catalogues)
SCRIPT_WORDS = (
    "box",
    "track",
    "frames",
    "audio",
    "span",
    "select",
    "selected",
    "end_here",
    "remove",
    "hide",
    "extend",
    "saving",
    "saved",
    "unchanged",
    "detecting",
    "detected",
    "rendering",
    "failed",
    "none",
    "blur",
    "black",
    "mute",
    "bleep",
    "play",
    "pause",
)


@router.get("/clips/{clip_id}/redaction")
def redaction_page(ctx: RedactCtx, clip_id: Id) -> Response:
    state = redaction_state(ctx, clip_id)
    copies = [
        {**made, "version": v["version"], "url": copy_url(clip_id, made["id"])}
        for v in state["versions"]
        for made in v["renders"]
    ]
    rendered = ctx.request.query_params.get("rendered", "")
    return render(
        ctx,
        "redaction.html",
        state=state,
        copies=list(reversed(copies)),
        rendered=rendered if rendered.isdigit() else "",
        words={key: ctx.t(f"redact.js.{key}") for key in SCRIPT_WORDS},
    )


@router.get("/clips/{clip_id}/redaction/copies/{render_id}")
def redaction_copy(ctx: RedactCtx, clip_id: Id, render_id: Id, download: bool = Query(False)) -> Response:
    return serve_copy(ctx, clip_id, render_id, download=download)
