"""Supervision pages (R16): draws, their items, assigning and reviewing."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Form
from fastapi.responses import Response

from evidence_store.domain.access import Permission
from evidence_store.domain.model import CaseCategory
from evidence_store.domain.sampling import DrawRequest
from evidence_store.errors import InputError
from evidence_store.queries.supervision import get_draw, items_for, list_draws, reviewers
from evidence_store.supervision import assign, create_draw, review
from web.context import Ctx
from web.deps import MAX_ID, DrawCtx, Id, ReviewCtx, SupervisionCtx
from web.pages.rendering import redirect, render

router = APIRouter()


@router.get("/supervision")
def supervision_page(ctx: SupervisionCtx) -> Response:
    user = ctx.user
    with ctx.station.connect() as connection:
        draws = list_draws(connection, user)
        mine = items_for(connection, user) if user.can(Permission.SUPERVISION_REVIEW) else []
        names = reviewers(connection)
    return render(
        ctx,
        "supervision.html",
        draws=draws,
        mine=mine,
        reviewers=names,
        categories=[c.value for c in CaseCategory],
        error=ctx.request.query_params.get("error", ""),
    )


def _form_time(ctx: Ctx, value: str) -> datetime | None:
    return ctx.parse_time(value) if value else None


def _form_seed(value: str) -> int | None:
    try:
        return int(value) if value.strip() else None
    except ValueError as exc:
        raise InputError(str(exc)) from exc


@router.post("/supervision/draws")
def supervision_draw(
    ctx: DrawCtx,
    kind: Annotated[str, Form()] = "clip",
    size: Annotated[int, Form()] = 10,
    period_from: Annotated[str, Form()] = "",
    period_to: Annotated[str, Form()] = "",
    unit: Annotated[str, Form()] = "",
    officer: Annotated[str, Form()] = "",
    category: Annotated[str, Form()] = "",
    seed: Annotated[str, Form()] = "",
    reviewer: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
) -> Response:
    user = ctx.user
    ctx.on_input_error_go_to("/supervision")
    request = DrawRequest(
        kind="case" if kind == "case" else "clip",
        size=size,
        period_from=_form_time(ctx, period_from),
        period_to=_form_time(ctx, period_to),
        unit=unit.strip(),
        officer=officer.strip(),
        category=category.strip(),
        seed=_form_seed(seed),
        reviewer=reviewer.strip(),
        note=note,
    )
    draw_id = create_draw(ctx.station, request, user, source=ctx.client)
    return redirect(f"/supervision/draws/{draw_id}")


@router.get("/supervision/draws/{draw_id}")
def supervision_draw_page(ctx: SupervisionCtx, draw_id: Id) -> Response:
    with ctx.station.connect() as connection:
        draw = get_draw(connection, draw_id, ctx.user)
        names = reviewers(connection)
    if draw is None:
        ctx.hidden("supervision_draw", draw_id, missing=True)
    return render(
        ctx, "draw.html", draw=draw, reviewers=names, error=ctx.request.query_params.get("error", "")
    )


@router.post("/supervision/items/{item_id}/assign")
def supervision_assign(
    ctx: DrawCtx,
    item_id: Id,
    reviewer: Annotated[str, Form()] = "",
    draw_id: Annotated[int, Form(ge=0, le=MAX_ID)] = 0,
) -> Response:
    user = ctx.user
    ctx.on_input_error_go_to(f"/supervision/draws/{draw_id}")
    assign(ctx.station, item_id, reviewer.strip(), user, source=ctx.client)
    return redirect(f"/supervision/draws/{draw_id}")


@router.post("/supervision/items/{item_id}/review")
def supervision_review(
    ctx: ReviewCtx,
    item_id: Id,
    outcome: Annotated[str, Form()] = "",
    notes: Annotated[str, Form()] = "",
    draw_id: Annotated[int, Form(ge=0, le=MAX_ID)] = 0,
) -> Response:
    user = ctx.user
    ctx.on_input_error_go_to(f"/supervision/draws/{draw_id}")
    review(ctx.station, item_id, outcome, notes, user, source=ctx.client)
    return redirect(f"/supervision/draws/{draw_id}" if draw_id else "/supervision")
