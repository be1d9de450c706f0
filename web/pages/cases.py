"""Case pages: the list, a case with its timeline, and the manual link decisions (R13 applied)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form
from fastapi.responses import Response

from evidence_store.case_links import link_clip, mark_evidence, unlink
from evidence_store.domain.access import Permission
from evidence_store.queries.cases import case_detail, case_playback, case_row, list_cases, timeline_svg
from web.context import Ctx
from web.deps import MAX_ID, CaseCtx, Id, LinkCtx
from web.footage import visible_clip_row
from web.pages.rendering import redirect, render

router = APIRouter()


@router.get("/cases")
def cases_page(ctx: CaseCtx, number: str = "", offset: int = 0) -> Response:
    user = ctx.user
    offset = max(0, min(offset, 10_000))
    with ctx.station.connect() as connection:
        found, has_next = list_cases(connection, user, number=number.strip(), offset=offset)
    return render(ctx, "cases.html", cases=found, number=number, offset=offset, has_next=has_next)


@router.get("/cases/{case_id}")
def case_page(ctx: CaseCtx, case_id: Id) -> Response:
    user = ctx.user
    with ctx.station.connect() as connection:
        detail = case_detail(connection, case_id, user)
        playback = case_playback(connection, case_id, user) if detail is not None else None
    if detail is None:
        with ctx.station.connect() as connection:
            missing = case_row(connection, case_id) is None
        ctx.hidden("case", case_id, missing=missing)
    ctx.audit("case.viewed", "case", case_id, {"number": detail["case"]["number"]})
    return render(
        ctx,
        "case.html",
        detail=detail,
        document_numbers={d["id"]: d["external_id"] for d in detail["documents"]},
        has_timeline=True,
        playback=playback,
        may_link=user.can(Permission.CASE_LINK),
        error=ctx.request.query_params.get("error", ""),
    )


@router.get("/cases/{case_id}/timeline.svg")
def case_timeline(ctx: CaseCtx, case_id: Id) -> Response:
    user = ctx.user
    with ctx.station.connect() as connection:
        detail = case_detail(connection, case_id, user)
    if detail is None:
        ctx.hidden("case", case_id, missing=False)
    svg = timeline_svg(ctx.station, case_id, user, legend=ctx.readable.timeline_legend())
    if svg is None:
        return Response(status_code=404)
    return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "private, no-store"})


def _case_action(ctx: Ctx, case_id: int) -> None:
    """A manual decision on a case the user may see; its refusals go back to the case page."""
    user = ctx.require(Permission.CASE_LINK)
    with ctx.station.connect() as connection:
        detail = case_detail(connection, case_id, user)
    if detail is None:
        ctx.hidden("case", case_id, missing=False)
    ctx.on_input_error_go_to(f"/cases/{case_id}")


def _back_to_case(case_id: int) -> Response:
    return redirect(f"/cases/{case_id}")


@router.post("/cases/{case_id}/links")
def case_link(
    ctx: LinkCtx,
    case_id: Id,
    clip_id: Annotated[int, Form(ge=1, le=MAX_ID)],
    reason: Annotated[str, Form()] = "",
    document: Annotated[str, Form()] = "",
    evidence: Annotated[str, Form()] = "",
) -> Response:
    _case_action(ctx, case_id)
    visible_clip_row(ctx, clip_id, Permission.CLIP_VIEW)
    link_clip(
        ctx.station,
        case_id,
        clip_id,
        document_external_id=document.strip(),
        reason=reason,
        is_evidence=bool(evidence),
        user=ctx.user,
    )
    return _back_to_case(case_id)


@router.post("/cases/{case_id}/links/{link_id}/unlink")
def case_unlink(ctx: LinkCtx, case_id: Id, link_id: Id, reason: Annotated[str, Form()] = "") -> Response:
    _case_action(ctx, case_id)
    unlink(ctx.station, case_id, link_id, reason=reason, user=ctx.user)
    return _back_to_case(case_id)


@router.post("/cases/{case_id}/links/{link_id}/evidence")
def case_mark_evidence(
    ctx: LinkCtx,
    case_id: Id,
    link_id: Id,
    reason: Annotated[str, Form()] = "",
    evidence: Annotated[str, Form()] = "1",
) -> Response:
    _case_action(ctx, case_id)
    mark_evidence(ctx.station, case_id, link_id, evidence == "1", reason=reason, user=ctx.user)
    return _back_to_case(case_id)
