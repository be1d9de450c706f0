"""The JSON API under /api (described at /api/openapi.json). The same session cookie as the pages;
every state-changing call carries the session's CSRF token in the `X-CSRF-Token` header."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated, Any, Literal

from annotated_types import Ge, Le
from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from evidence_store import accounts
from evidence_store.accounts import MIN_PASSWORD_LENGTH, USERNAME
from evidence_store.case_links import link_clip, mark_evidence, unlink
from evidence_store.domain.access import Permission, Role
from evidence_store.domain.model import CaseCategory, ClipStatus, MediaType
from evidence_store.domain.sampling import DrawRequest
from evidence_store.queries.audit_browse import AuditQuery, browse
from evidence_store.queries.cases import case_detail, case_row, list_cases
from evidence_store.queries.dashboard import dashboard
from evidence_store.queries.search import CURSOR_PATTERN
from evidence_store.queries.statistics import annual_statistics
from evidence_store.queries.supervision import get_draw, list_draws, redraw
from evidence_store.status import describe
from evidence_store.supervision import create_draw, review
from ingest.spool import local_spool_status
from web import auth, exports, redaction, station, text_rules
from web.bulk import run_bulk
from web.context import LOGIN_CSRF_COOKIE, SESSION_COOKIE, Ctx
from web.deps import (
    MAX_ID,
    AnnotateCtx,
    AnyCtx,
    AuditCtx,
    CaseCtx,
    ClipCtx,
    DashboardCtx,
    DecideExportCtx,
    DrawCtx,
    ExportCtx,
    Id,
    LinkCtx,
    OptionalIdQuery,
    OptionalSeqQuery,
    RedactCtx,
    RequestExportCtx,
    ReviewCtx,
    SearchCtx,
    SettingsCtx,
    StationCtx,
    StatsCtx,
    SupervisionCtx,
    TimeQuery,
    UserCtx,
    UsersCtx,
    VerifyCtx,
    iso_time,
)
from web.errors import documented, error_json
from web.footage import (
    annotate,
    clip_by_sha256,
    clip_query,
    run_search,
    verify_clip,
    view_clip,
    visible_clip_row,
)

# every route may answer these (the errors' one shape is `web.errors.ErrorBody`)
router = APIRouter(prefix="/api", responses=documented(400, 401, 403, 404, 413, 422))
LINK_ERRORS = documented(409)
P = Permission


# a text with something in it: a character that neither JSON Schema's \s nor Python's str.strip() drops
NOT_BLANK = r"^[^\x00]*[^\s\x00\x1c-\x1f\x85][^\x00]*$"  # and no NUL (web.text_rules)


def _json_integer(value: Any) -> Any:
    """An integer as JSON Schema has it: 7 or 7.0, never `false` or "7" (pydantic would take both)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("must be an integer")
        return int(value)
    return value


def _json_boolean(value: Any) -> Any:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


JsonInt = Annotated[int, BeforeValidator(_json_integer)]
# the largest integer a JSON body carries: beyond 2^53 - 1 a JSON number is not the same number everywhere
# (RFC 8259 section 6), and schema validators compare it as a float
MAX_JSON_INT = 2**53 - 1
JsonBool = Annotated[bool, BeforeValidator(_json_boolean)]
JsonTime = Annotated[datetime | None, BeforeValidator(iso_time)]


class ApiBody(BaseModel):
    """A JSON body of the API: its text holds no NUL character (`web.text_rules`), on every database, and
    it names no field the route does not know: a misspelt `is_evidance` is refused (422), not ignored."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if isinstance(value, str) and "\x00" in value:
            raise ValueError(text_rules.MESSAGE)
        return value


class LoginBody(ApiBody):
    username: str = Field(max_length=200)
    password: str = Field(max_length=1000)


class LinkBody(ApiBody):
    clip_id: JsonInt = Field(ge=1, le=MAX_ID)
    reason: str = Field(min_length=1, max_length=2000, pattern=NOT_BLANK)
    document: str = Field("", max_length=200)
    is_evidence: JsonBool = False


class ReasonBody(ApiBody):
    reason: str = Field(min_length=1, max_length=2000, pattern=NOT_BLANK)


class EvidenceBody(ReasonBody):
    is_evidence: JsonBool = True


class MarkerBody(ApiBody):
    at: str = Field(
        min_length=1, max_length=20, pattern=r"^(\d+:){0,2}\d+(\.\d+)?$", description="90, 1:30 or 00:01:30.5"
    )
    note: str = Field(min_length=1, max_length=2000, pattern=NOT_BLANK)


# a tag as `domain.annotations.normalise_tag` takes it: no comma (nor a full-width one), no control
# character, something that is not blank, at most 40 characters as typed
TAG_TEXT = r"^[^,\uff0c\x00-\x1f\x7f-\x9f]*[^\s,\uff0c\x00-\x1f\x7f-\x9f][^,\uff0c\x00-\x1f\x7f-\x9f]*$"
TagText = Annotated[str, Field(min_length=1, max_length=40, pattern=TAG_TEXT)]
ClipId = Annotated[int, Ge(1), Le(MAX_ID), BeforeValidator(_json_integer)]


class TagBody(ApiBody):
    tag: TagText


class _Bulk(ApiBody):
    clip_ids: list[ClipId] = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=2000, pattern=NOT_BLANK)


class BulkLink(_Bulk):
    action: Literal["link"]
    case_number: str = Field(min_length=1, max_length=200, pattern=NOT_BLANK)


class BulkPlain(_Bulk):
    action: Literal["hold", "release", "export"]


class BulkTag(_Bulk):
    action: Literal["tag"]
    tag: TagText


BulkBody = Annotated[BulkLink | BulkPlain | BulkTag, Field(discriminator="action")]


class DrawBody(ApiBody):
    kind: Literal["clip", "case"]
    size: JsonInt = Field(ge=1, le=1000)
    period_from: JsonTime = None
    period_to: JsonTime = None
    unit: str = ""
    officer: str = ""
    category: CaseCategory | Literal[""] = ""
    # strict: `false` or "7" is not a seed
    # a seed the station chose may be larger: GET .../redraw recomputes such a draw
    seed: Annotated[int, Ge(0), Le(MAX_JSON_INT), BeforeValidator(_json_integer)] | None = None
    reviewer: str = ""
    note: str = ""


class PassReview(ApiBody):
    outcome: Literal["pass"]
    notes: str = Field("", max_length=4000)


class IssuesReview(ApiBody):
    outcome: Literal["issues"]
    notes: str = Field(min_length=1, max_length=4000, pattern=NOT_BLANK)  # the issues, described


ReviewBody = Annotated[PassReview | IssuesReview, Field(discriminator="outcome")]


class _UserFields(ApiBody):
    username: str = Field(pattern=USERNAME.pattern)  # as stored: lower case, no blanks
    password: str = Field(min_length=MIN_PASSWORD_LENGTH, max_length=1000)
    unit: str = Field("", max_length=200)
    display_name: str = Field("", max_length=200)


class OfficerUserBody(_UserFields):
    role: Literal[Role.OFFICER]
    officer: str = Field(
        min_length=1, max_length=50, pattern=NOT_BLANK
    )  # an officer account names its officer


class StaffUserBody(_UserFields):
    role: Literal[tuple(role for role in Role if role is not Role.OFFICER)]  # type: ignore[valid-type]
    officer: str | None = Field(None, max_length=50)


UserBody = Annotated[OfficerUserBody | StaffUserBody, Field(discriminator="role")]


class ExportItem(ApiBody):
    """One clip of an export request; a segment (seconds from the clip's start) as `evidence export
    request --clip ID@START-END`."""

    clip_id: JsonInt = Field(ge=1, le=MAX_ID)
    start_s: float | None = Field(None, ge=0, le=1e7)
    end_s: float | None = Field(None, ge=0, le=1e7)
    cut: Literal["exact", "keyframe"] = "exact"
    disclosure: JsonBool = False


class ExportRequestBody(ApiBody):
    items: list[ExportItem] = Field(min_length=1, max_length=200)
    purpose: str = Field(min_length=1, max_length=2000, pattern=NOT_BLANK)
    recipient: str = Field("", max_length=2000)
    case_id: JsonInt | None = Field(None, ge=1, le=MAX_ID)


# -- a redaction specification (issue 20, R15): the shape here, the rules (inside the frame, inside the clip,
# keyframes in order) in `evidence_store.domain.redaction`, refused with 409 by the clip's facts
Seconds = Annotated[float, Field(ge=0, le=1e7, allow_inf_nan=False)]
Pixels = Annotated[float, Field(ge=0, le=100_000, allow_inf_nan=False)]
Extent = Annotated[float, Field(gt=0, le=100_000, allow_inf_nan=False)]
ItemId = Annotated[int, Ge(1), Le(MAX_JSON_INT), BeforeValidator(_json_integer)]
# The lists of a specification have no item bound of their own: a detected track has a box per frame
# (90,000 in an hour), and the body's size is what bounds them, by the web's body limit (413,
# `web_max_body_bytes`, 1 MiB by default: about 10,000 boxes; docs/redaction.md). A bound here small
# enough that its longest body fits under that limit would refuse real specifications.


class KeyframeBody(ApiBody):
    t: Seconds
    x: Pixels
    y: Pixels
    w: Extent
    h: Extent


class TrackBody(ApiBody):
    id: ItemId
    accepted: JsonBool = True
    boxes: list[KeyframeBody] = Field(min_length=1)


class DrawnBoxBody(ApiBody):
    id: ItemId
    label: str = Field("", max_length=200)
    keyframes: list[KeyframeBody] = Field(min_length=1)


class FrameRangeBody(ApiBody):
    start_s: Seconds
    end_s: Seconds
    effect: Literal["blur", "black"] = "blur"


class AudioRangeBody(ApiBody):
    start_s: Seconds
    end_s: Seconds
    effect: Literal["mute", "bleep"] = "mute"


class RedactionSpecBody(ApiBody):
    """A whole specification, in the ORIGINAL's pixels (as displayed) and seconds from the clip's start."""

    format: Literal[1] = 1
    width: JsonInt = Field(ge=1, le=100_000)
    height: JsonInt = Field(ge=1, le=100_000)
    duration_s: float = Field(gt=0, le=1e7, allow_inf_nan=False)
    box_effect: Literal["blur", "black"] = "blur"
    notes: str = Field("", max_length=4000)
    tracks: list[TrackBody] = []
    boxes: list[DrawnBoxBody] = []
    frames: list[FrameRangeBody] = []
    audio: list[AudioRangeBody] = []


class RenderBody(ApiBody):
    """Which version to render (default: the newest) and, for a copy of one part, the segment."""

    # the bounds inside the type: on `JsonInt | None` a Field's bounds leave the schema as unknown words
    version: Annotated[int, Ge(1), Le(MAX_ID), BeforeValidator(_json_integer)] | None = None
    start_s: Seconds | None = None
    end_s: Seconds | None = None


class ApprovalBody(ApiBody):
    reason: str = Field("", max_length=2000)  # an approval's note is optional, a rejection's reason not


ZIP_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"description": "the package (zip)", "content": {"application/zip": {}}}
}


def _me(ctx: Ctx) -> dict[str, Any]:
    user = ctx.user
    return {
        "username": user.username,
        "display_name": user.display_name,
        "role": user.role.value,
        "unit": user.unit,
        "permissions": sorted(p.value for p in Permission if user.can(p)),
        "csrf_token": ctx.csrf_token,
    }


# -- sign-in -------------------------------------------------------------------------------------------


@router.get("/csrf", summary="A login CSRF token (double-submit: also set as a cookie)")
def login_csrf(ctx: AnyCtx) -> Response:
    token = ctx.request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = JSONResponse({"csrf_token": token})
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=ctx.request.url.scheme == "https"
    )
    return response


@router.post(
    "/login", summary="Sign in (send the token from /api/csrf as X-CSRF-Token)", responses=documented(429)
)
def api_login(ctx: AnyCtx, body: LoginBody) -> Response:
    try:
        new = auth.login(
            ctx.station,
            ctx.web.config.get(),
            body.username,
            body.password,
            client=ctx.client,
            user_agent=ctx.request.headers.get("user-agent", ""),
        )
    except auth.LoginRefused as refused:
        status = 429 if refused.reason == "rate_limited" else 401
        return error_json(status, refused.reason, kind=refused.reason)
    response = JSONResponse(
        {
            "username": new.user.username,
            "role": new.user.role.value,
            "csrf_token": new.csrf_token,
            "expires_at": new.expires_at.isoformat(),
        }
    )
    response.set_cookie(
        SESSION_COOKIE, new.token, httponly=True, samesite="strict", secure=ctx.request.url.scheme == "https"
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE)
    return response


@router.post("/logout")
def api_logout(ctx: UserCtx) -> Response:
    assert ctx.session is not None
    auth.logout(ctx.station, ctx.session, client=ctx.client)
    response = JSONResponse({"ok": True})
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/me")
def me(ctx: UserCtx) -> dict[str, Any]:
    return _me(ctx)


# -- footage -------------------------------------------------------------------------------------------


@router.get("/clips", summary="Search clips (sorted, paginated; every search is audited)")
def api_search(
    ctx: SearchCtx,
    officer: str | None = None,
    device: str | None = None,
    start_from: TimeQuery = None,
    start_to: TimeQuery = None,
    case_number: str | None = None,
    document: str | None = None,
    flag: str | None = Query(None, description="a compliance flag kind, 'late_handover' or 'any'"),
    media_type: MediaType | None = None,
    status: ClipStatus | None = None,
    transfer_id: OptionalIdQuery = None,
    sha256_prefix: Annotated[str | None, Query(pattern="^[0-9a-f]{0,64}$")] = None,
    tag: Annotated[str | None, Query(max_length=200, description="a tag the clip carries")] = None,
    note: Annotated[str | None, Query(max_length=2000, description="words in a marker's note")] = None,
    sort: Literal["start_desc", "start_asc", "id_desc", "id_asc"] = "start_desc",
    limit: int = Query(50, ge=1, le=200),
    offset: int = Query(0, ge=0, le=10_000),
    after: Annotated[
        str | None,
        Query(
            pattern=CURSOR_PATTERN,
            description="continue after this cursor: the next_after of the page before (keyset paging)",
        ),
    ] = None,
) -> dict[str, Any]:
    values = {
        "officer": officer,
        "device": device,
        "start_from": ctx.instant(start_from),
        "start_to": ctx.instant(start_to),
        "case_number": case_number,
        "document": document,
        "flag": flag,
        "media_type": media_type.value if media_type else None,
        "status": status.value if status else None,
        "transfer_id": transfer_id,
        "sha256_prefix": sha256_prefix,
        "tag": tag,
        "note": note,
        "sort": sort,
        "limit": limit,
        "offset": offset,
        "after": after,
    }
    return run_search(ctx, clip_query(ctx, values)).as_dict()


@router.get("/clips/by-sha256/{sha256}")
def api_clip_by_sha256(ctx: ClipCtx, sha256: str) -> dict[str, Any]:
    return view_clip(ctx, clip_by_sha256(ctx, sha256))


@router.get("/clips/{clip_id}", summary="A clip: metadata, hashes, verification, custody, links (audited)")
def api_clip(ctx: ClipCtx, clip_id: Id) -> dict[str, Any]:
    return view_clip(ctx, clip_id)


@router.post("/clips/{clip_id}/verify", summary="Re-hash the stored original now (audited)")
def api_verify(ctx: VerifyCtx, clip_id: Id) -> dict[str, Any]:
    return verify_clip(ctx, clip_id)


@router.post(
    "/clips/bulk",
    summary="One action on many clips (link, hold, release, export, tag), one reason; refused per clip",
)
def api_bulk(ctx: UserCtx, body: BulkBody) -> dict[str, Any]:
    return run_bulk(
        ctx,
        body.action,
        list(body.clip_ids),
        reason=body.reason,
        case_number=body.case_number if isinstance(body, BulkLink) else "",
        tag=body.tag if isinstance(body, BulkTag) else "",
    )


@router.post(
    "/clips/{clip_id}/markers", summary="A note at a moment of the clip (audited)", responses=documented(409)
)
def api_add_marker(ctx: AnnotateCtx, clip_id: Id, body: MarkerBody) -> dict[str, Any]:
    return annotate(ctx, clip_id, "add_marker", at=body.at, note=body.note)


@router.post(
    "/clips/{clip_id}/markers/{marker_id}/remove",
    summary="Take a marker off (it stays on record)",
    responses=documented(409),
)
def api_remove_marker(ctx: AnnotateCtx, clip_id: Id, marker_id: Id) -> dict[str, Any]:
    return annotate(ctx, clip_id, "remove_marker", marker_id=marker_id)


@router.post("/clips/{clip_id}/tags", summary="Put a tag on the clip (audited)", responses=documented(409))
def api_add_tag(ctx: AnnotateCtx, clip_id: Id, body: TagBody) -> dict[str, Any]:
    return annotate(ctx, clip_id, "add_tag", tag=body.tag)


@router.post(
    "/clips/{clip_id}/tags/remove", summary="Take a tag off the clip (audited)", responses=documented(409)
)
def api_remove_tag(ctx: AnnotateCtx, clip_id: Id, body: TagBody) -> dict[str, Any]:
    return annotate(ctx, clip_id, "remove_tag", tag=body.tag)


# -- redaction (issue 20 item 4, R15) ---------------------------------------------------------------------


@router.get(
    "/clips/{clip_id}/redaction", summary="The newest redaction specification and every copy rendered"
)
def api_redaction(ctx: RedactCtx, clip_id: Id) -> dict[str, Any]:
    return redaction.redaction_state(ctx, clip_id)


@router.post(
    "/clips/{clip_id}/redaction",
    summary="Store an edited specification as the next version (audited; equal to the newest: kept)",
    responses=documented(409),
)
def api_save_redaction(ctx: RedactCtx, clip_id: Id, body: RedactionSpecBody) -> dict[str, Any]:
    return redaction.save(ctx, clip_id, body.model_dump())


@router.post(
    "/clips/{clip_id}/redaction/detect",
    summary="Detect faces on the proxy into the next version (audited)",
    responses=documented(409),
)
def api_detect_faces(ctx: RedactCtx, clip_id: Id) -> dict[str, Any]:
    return redaction.detect(ctx, clip_id)


@router.post(
    "/clips/{clip_id}/redaction/render",
    summary="Render a version (the whole clip or a segment) into a signed redacted copy (audited)",
    responses=documented(409),
)
def api_render_redaction(ctx: RedactCtx, clip_id: Id, body: RenderBody) -> dict[str, Any]:
    return redaction.render(ctx, clip_id, version=body.version, start_s=body.start_s, end_s=body.end_s)


# -- cases ---------------------------------------------------------------------------------------------


@router.get("/cases")
def api_cases(ctx: CaseCtx, number: str = "", offset: int = Query(0, ge=0, le=10_000)) -> dict[str, Any]:
    with ctx.station.connect() as connection:
        found, has_next = list_cases(connection, ctx.user, number=number.strip(), offset=offset)
    return {"items": found, "offset": offset, "has_next": has_next}


def _case(ctx: Ctx, case_id: int) -> dict[str, Any]:
    with ctx.station.connect() as connection:
        detail = case_detail(connection, case_id, ctx.user)
        missing = detail is None and case_row(connection, case_id) is None
    if detail is None:
        ctx.hidden("case", case_id, missing=missing)
    return detail


@router.get("/cases/{case_id}", summary="A case: documents, linked footage, flags, exceptions (audited)")
def api_case(ctx: CaseCtx, case_id: Id) -> dict[str, Any]:
    detail = _case(ctx, case_id)
    ctx.audit("case.viewed", "case", case_id, {"number": detail["case"]["number"]})
    return detail


@router.post(
    "/cases/{case_id}/links", summary="Link a clip to the case by hand, with a reason", responses=LINK_ERRORS
)
def api_link(ctx: LinkCtx, case_id: Id, body: LinkBody) -> dict[str, Any]:
    _case(ctx, case_id)
    visible_clip_row(ctx, body.clip_id, P.CLIP_VIEW)
    link_id = link_clip(
        ctx.station,
        case_id,
        body.clip_id,
        document_external_id=body.document.strip(),
        reason=body.reason,
        is_evidence=body.is_evidence,
        user=ctx.user,
    )
    return {"link_id": link_id}


@router.post("/cases/{case_id}/links/{link_id}/unlink", responses=LINK_ERRORS)
def api_unlink(ctx: LinkCtx, case_id: Id, link_id: Id, body: ReasonBody) -> dict[str, Any]:
    _case(ctx, case_id)
    unlink(ctx.station, case_id, link_id, reason=body.reason, user=ctx.user)
    return {"ok": True}


@router.post("/cases/{case_id}/links/{link_id}/evidence", responses=LINK_ERRORS)
def api_evidence(ctx: LinkCtx, case_id: Id, link_id: Id, body: EvidenceBody) -> dict[str, Any]:
    _case(ctx, case_id)
    mark_evidence(ctx.station, case_id, link_id, body.is_evidence, reason=body.reason, user=ctx.user)
    return {"ok": True}


# -- exports (R12) ---------------------------------------------------------------------------------------


@router.get("/exports", summary="Export requests the user sees, newest first")
def api_exports(
    ctx: ExportCtx,
    status: Literal["pending", "approved", "rejected", "built", "expired"] | None = None,
) -> dict[str, Any]:
    return {"exports": exports.exports_for(ctx, status)}


@router.post(
    "/exports",
    summary="Request clips as a certified package (an investigator; audited)",
    responses=documented(409),
)
def api_request_export(ctx: RequestExportCtx, body: ExportRequestBody) -> dict[str, Any]:
    items = [item.model_dump(exclude_defaults=True) | {"clip_id": item.clip_id} for item in body.items]
    return exports.request(ctx, items, purpose=body.purpose, recipient=body.recipient, case_id=body.case_id)


@router.get("/exports/{export_id}", summary="One export request")
def api_export(ctx: ExportCtx, export_id: Id) -> dict[str, Any]:
    return exports.export_of(ctx, export_id)


@router.post(
    "/exports/{export_id}/approve",
    summary="Approve a pending request (an approver, never its requester; audited)",
    responses=documented(409),
)
def api_approve_export(ctx: DecideExportCtx, export_id: Id, body: ApprovalBody) -> dict[str, Any]:
    return exports.decide(ctx, export_id, approve=True, reason=body.reason)


@router.post(
    "/exports/{export_id}/reject",
    summary="Reject a pending request with a reason (an approver; audited)",
    responses=documented(409),
)
def api_reject_export(ctx: DecideExportCtx, export_id: Id, body: ReasonBody) -> dict[str, Any]:
    return exports.decide(ctx, export_id, approve=False, reason=body.reason)


@router.post(
    "/exports/{export_id}/build",
    summary="Build the package of an approved request (its requester, once; audited)",
    responses=documented(409),
)
def api_build_export(ctx: RequestExportCtx, export_id: Id) -> dict[str, Any]:
    built = exports.build(ctx, export_id)
    return {
        **exports.export_of(ctx, export_id),
        "package": built.zip_path.name if built.zip_path else None,
        "files": built.files,
        "bytes": built.bytes_total,
    }


@router.get(
    "/exports/{export_id}/package",
    summary="Download the built package (its requester; audited)",
    responses=ZIP_RESPONSE,
    response_class=Response,
)
def api_export_package(ctx: RequestExportCtx, export_id: Id) -> Response:
    return exports.package(ctx, export_id)


# -- the station's bays (issue 19) -------------------------------------------------------------------------


@router.get("/station")
def api_station(ctx: StationCtx) -> dict[str, Any]:
    """The bays: each running transfer, and those finished within the last 30 minutes, with its
    recorder, officer, files and bytes done and listed, files verified, speed and time left (over the
    transfer so far), state (`waiting`, `copying`, `verifying`, `releasing`, `done`, `error`), the
    error's code and whether the recorder is safe to unplug."""
    return {"bays": station.snapshot(ctx)}


@router.get(
    "/station/events",
    include_in_schema=False,  # a text/event-stream, not JSON: described in docs/web.md
)
def api_station_events(ctx: StationCtx, kiosk: bool = False) -> Response:
    """The bays as server-sent events (event `bays`: the rendered list), sent when they change."""
    return station.event_stream(ctx, kiosk=kiosk)


# -- dashboard, supervision, statistics, audit, users ----------------------------------------------------


@router.get("/dashboard")
def api_dashboard(ctx: DashboardCtx) -> dict[str, Any]:
    with ctx.station.connect() as connection:
        data = dashboard(
            connection,
            ctx.now(),
            ctx.user,
            filing_window_days=ctx.station.settings.retention_filing_window_days,
        )
    spool = local_spool_status(ctx.station.settings)  # this host's spool (issue 18), if it has one
    data["spool"] = spool.as_dict() if spool is not None else None
    return data


@router.get("/supervision/draws")
def api_draws(ctx: SupervisionCtx) -> dict[str, Any]:
    with ctx.station.connect() as connection:
        return {"draws": list_draws(connection, ctx.user)}


@router.post(
    "/supervision/draws",
    summary="Draw a seeded random sample of clips or cases (R16)",
    responses=documented(409),
)
def api_draw(ctx: DrawCtx, body: DrawBody) -> dict[str, Any]:
    request = DrawRequest(
        **{
            **body.model_dump(),
            "category": body.category and body.category.value,
            "period_from": ctx.instant(body.period_from),
            "period_to": ctx.instant(body.period_to),
        }
    )
    draw_id = create_draw(ctx.station, request, ctx.user, source=ctx.client)
    with ctx.station.connect() as connection:
        draw = get_draw(connection, draw_id, ctx.user)
    assert draw is not None
    return draw


@router.get("/supervision/draws/{draw_id}")
def api_get_draw(ctx: SupervisionCtx, draw_id: Id) -> dict[str, Any]:
    with ctx.station.connect() as connection:
        draw = get_draw(connection, draw_id, ctx.user)
    if draw is None:
        ctx.hidden("supervision_draw", draw_id, missing=True)
    return draw


@router.get("/supervision/draws/{draw_id}/redraw", summary="Recompute a draw from its seed and compare")
def api_redraw(ctx: SupervisionCtx, draw_id: Id) -> dict[str, Any]:
    with ctx.station.connect() as connection:
        return redraw(connection, draw_id, ctx.user)


@router.post(
    "/supervision/items/{item_id}/review",
    summary="Record a review outcome (pass / issues)",
    responses=documented(409),
)
def api_review(ctx: ReviewCtx, item_id: Id, body: ReviewBody) -> dict[str, Any]:
    review(ctx.station, item_id, body.outcome, body.notes, ctx.user, source=ctx.client)
    return {"ok": True}


@router.get("/stats", summary="Annual statistics per unit and month (R18)")
def api_stats(ctx: StatsCtx, year: int = Query(..., ge=2000, le=2200)) -> dict[str, Any]:
    with ctx.station.connect() as connection:
        stats = annual_statistics(connection, year, ctx.station.settings.timezone)
    ctx.audit("stats.viewed", "statistics", year, {"format": "json"})
    return stats


@router.get("/audit", summary="Browse the audit log (newest first)")
def api_audit(
    ctx: AuditCtx,
    actor: str = "",
    action: str = "",
    object_type: str = "",
    object_id: str = "",
    since: TimeQuery = None,
    until: TimeQuery = None,
    before_seq: OptionalSeqQuery = None,
    limit: int = Query(100, ge=1, le=500),
) -> dict[str, Any]:
    query = AuditQuery(
        actor=actor,
        action=action,
        object_type=object_type,
        object_id=object_id,
        since=ctx.instant(since),
        until=ctx.instant(until),
        before_seq=before_seq,
        limit=limit,
    )
    with ctx.station.connect() as connection:
        result = browse(connection, query, ctx.user)
    ctx.audit("audit.viewed", "audit_log", "events", {"filters": query.filters()})
    return result


@router.get(
    "/status",
    summary="Station status for its administrator: configuration and store totals, no footage",
)
def api_status(ctx: SettingsCtx) -> dict[str, Any]:
    # the database URL, the store's path and its totals are the administrator's, not anyone's who asks
    return describe(ctx.station)


@router.get("/users")
def api_users(ctx: UsersCtx) -> dict[str, Any]:
    with ctx.station.connect() as connection:
        return {"users": accounts.list_users(connection)}


@router.post("/users", responses=documented(409))
def api_create_user(ctx: UsersCtx, body: UserBody) -> dict[str, Any]:
    user_id = accounts.create_user(
        ctx.station,
        username=body.username,
        password=body.password,
        role=body.role,
        unit=body.unit,
        display_name=body.display_name,
        officer_badge=body.officer,
        actor=ctx.user.actor,
        source=ctx.client,
    )
    return {"id": user_id}
