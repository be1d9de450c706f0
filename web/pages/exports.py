"""Export pages (R12): the list, one request with its decision and build forms, the request form's
target (from a clip or a case page), and the package's download."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form
from fastapi.responses import Response
from pydantic import Field

from evidence_store.export.workflow import parse_clip_spec
from web import exports
from web.context import Ctx
from web.deps import MAX_ID, DecideExportCtx, ExportCtx, Id, RequestExportCtx
from web.pages.rendering import redirect, render

router = APIRouter()


@router.get("/exports")
def exports_page(ctx: ExportCtx, status: str = "") -> Response:
    found = exports.exports_for(ctx, status or None)
    return render(ctx, "exports.html", exports=found, chosen=status, statuses=exports.STATUSES)


@router.post("/exports")
def export_request(
    ctx: RequestExportCtx,
    clip_id: Annotated[list[Annotated[int, Field(ge=1, le=MAX_ID)]], Form()],
    purpose: Annotated[str, Form()] = "",
    recipient: Annotated[str, Form()] = "",
    case_id: Annotated[str, Form()] = "",
    segment_start: Annotated[str, Form()] = "",
    segment_end: Annotated[str, Form()] = "",
) -> Response:
    # back to the page the form was on, with the message
    origin = f"/cases/{case_id}" if case_id.strip().isdigit() else f"/clips/{clip_id[0]}"
    ctx.on_input_error_go_to(origin)
    segment = f"@{segment_start.strip()}-{segment_end.strip()}" if segment_start or segment_end else ""
    # the CLI's own `ID@START-END` parsing, so both refuse the same segments
    items = [parse_clip_spec(f"{clip}{segment}") for clip in dict.fromkeys(clip_id)]
    made = exports.request(
        ctx,
        items,
        purpose=purpose,
        recipient=recipient,
        case_id=int(case_id) if case_id.strip().isdigit() else None,
    )
    return redirect(f"/exports/{made['id']}")


@router.get("/exports/{export_id}")
def export_page(ctx: ExportCtx, export_id: Id) -> Response:
    shown = exports.export_of(ctx, export_id)
    return render(ctx, "export.html", e=shown, error=ctx.request.query_params.get("error", ""))


def _decide(ctx: Ctx, export_id: int, approve: bool, reason: str) -> Response:
    ctx.on_input_error_go_to(f"/exports/{export_id}")
    exports.decide(ctx, export_id, approve=approve, reason=reason)
    return redirect(f"/exports/{export_id}")


@router.post("/exports/{export_id}/approve")
def export_approve(ctx: DecideExportCtx, export_id: Id, reason: Annotated[str, Form()] = "") -> Response:
    return _decide(ctx, export_id, True, reason)


@router.post("/exports/{export_id}/reject")
def export_reject(ctx: DecideExportCtx, export_id: Id, reason: Annotated[str, Form()] = "") -> Response:
    return _decide(ctx, export_id, False, reason)


@router.post("/exports/{export_id}/build")
def export_build(ctx: RequestExportCtx, export_id: Id) -> Response:
    exports.build(ctx, export_id)
    return redirect(f"/exports/{export_id}")


@router.get("/exports/{export_id}/package")
def export_package(ctx: RequestExportCtx, export_id: Id) -> Response:
    return exports.package(ctx, export_id)
