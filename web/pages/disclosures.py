"""Pages of a party's applications to read or copy records (R15): the list with the form to record
one, one application with its decision, delivery and viewing, the viewing page (players of the
redacted copies) and the package's download."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Path
from fastapi.responses import Response
from pydantic import Field

from evidence_store.domain.access import Permission as P
from web import disclosures
from web.context import Ctx, need, user_ctx
from web.deps import MAX_ID, Id
from web.pages.rendering import redirect, render

router = APIRouter()
AnyCtx = Annotated[Ctx, Depends(user_ctx)]  # list and show: any of the three disclosure permissions
RecordCtx = Annotated[Ctx, Depends(need(P.DISCLOSURE_RECORD))]
DecideCtx = Annotated[Ctx, Depends(need(P.DISCLOSURE_DECIDE))]
DeliverCtx = Annotated[Ctx, Depends(need(P.DISCLOSURE_DELIVER))]
Number = Annotated[int, Path(ge=1, le=1000)]


@router.get("/disclosures")
def disclosures_page(ctx: AnyCtx, state: str = "") -> Response:
    found = disclosures.applications_for(ctx, state or None)
    return render(
        ctx,
        "disclosures.html",
        applications=found,
        chosen=state,
        states=disclosures.STATES,
        error=ctx.request.query_params.get("error", ""),
    )


@router.post("/disclosures")
def disclosure_record(
    ctx: RecordCtx,
    party_name: Annotated[str, Form()] = "",
    id_document_type: Annotated[str, Form()] = "",
    id_document_number: Annotated[str, Form()] = "",
    kind: Annotated[str, Form()] = "",
    purpose: Annotated[str, Form()] = "",
    case_number: Annotated[str, Form()] = "",
    clip_id: Annotated[list[Annotated[int, Field(ge=1, le=MAX_ID)]] | None, Form()] = None,
    received_at: Annotated[str, Form()] = "",
    contact: Annotated[str, Form()] = "",
) -> Response:
    ctx.on_input_error_go_to("/disclosures")
    made = disclosures.record(
        ctx,
        party_name=party_name,
        id_document_type=id_document_type,
        id_document_number=id_document_number,
        kind=kind,
        purpose=purpose,
        case_number=case_number.strip() or None,
        clip_ids=list(clip_id or []),
        received_at=ctx.parse_time(received_at),
        contact=contact,
    )
    return redirect(f"/disclosures/{made['id']}")


@router.get("/disclosures/{application_id}")
def disclosure_page(ctx: AnyCtx, application_id: Id) -> Response:
    shown = disclosures.application_for(ctx, application_id)
    return render(ctx, "disclosure.html", a=shown, error=ctx.request.query_params.get("error", ""))


def _decide(ctx: Ctx, application_id: int, approve: bool, reason: str) -> Response:
    ctx.on_input_error_go_to(f"/disclosures/{application_id}")
    disclosures.decide(ctx, application_id, approve=approve, reason=reason)
    return redirect(f"/disclosures/{application_id}")


@router.post("/disclosures/{application_id}/approve")
def disclosure_approve(ctx: DecideCtx, application_id: Id, reason: Annotated[str, Form()] = "") -> Response:
    return _decide(ctx, application_id, True, reason)


@router.post("/disclosures/{application_id}/refuse")
def disclosure_refuse(ctx: DecideCtx, application_id: Id, reason: Annotated[str, Form()] = "") -> Response:
    return _decide(ctx, application_id, False, reason)


@router.post("/disclosures/{application_id}/deliver")
def disclosure_deliver(ctx: DeliverCtx, application_id: Id) -> Response:
    disclosures.deliver(ctx, application_id)
    return redirect(f"/disclosures/{application_id}")


@router.get("/disclosures/{application_id}/package")
def disclosure_package(ctx: DeliverCtx, application_id: Id) -> Response:
    return disclosures.package(ctx, application_id)


@router.post("/disclosures/{application_id}/view")
def disclosure_view(ctx: DeliverCtx, application_id: Id) -> Response:
    shown, copies = disclosures.view(ctx, application_id)
    return render(ctx, "disclosure_view.html", a=shown, copies=copies)


@router.get("/disclosures/{application_id}/copies/{number}")
def disclosure_copy(ctx: DeliverCtx, application_id: Id, number: Number) -> Response:
    return disclosures.copy(ctx, application_id, number)
