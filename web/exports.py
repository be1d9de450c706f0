"""Certified exports (R12) shared by the pages and the JSON API: each step checks what the web adds
(the permission, R11, and that the user sees every clip and the case, R13: 404 like a missing object,
audited as `access.denied`) and then calls the workflow the CLI calls (`evidence_store.export`), which
applies the rules of the steps (roles, nobody decides their own request, states, validity) and keeps
their audit record. The workflow names station users by user name, as the CLI does; the events carry
the client address as their source, as the web's own do."""

from __future__ import annotations

from typing import Any

from fastapi.responses import FileResponse, Response

from evidence_store.domain.access import Permission
from evidence_store.errors import NotFoundError
from evidence_store.export.package import BuildResult, build_package, default_out_dir, zip_path_of
from evidence_store.export.workflow import (
    decide_export,
    describe,
    expire_due,
    list_exports,
    normalise_item,
    request_export,
    show_export,
)
from evidence_store.queries.cases import case_detail, case_row
from web.context import Ctx
from web.footage import visible_clip_row

STATUSES = ("pending", "approved", "rejected", "built", "expired")


def exports_for(ctx: Ctx, status: str | None = None) -> list[dict[str, Any]]:
    """The requests the user sees, newest first (approvals past their validity expire first, as in
    `evidence export list`)."""
    ctx.require(Permission.EXPORT_VIEW)
    expire_due(ctx.station)
    return list_exports(ctx.station, status=status if status in STATUSES else None, seen_by=ctx.user)


def waiting_for(ctx: Ctx) -> list[dict[str, Any]]:
    """The pending requests an approver may decide (the dashboard's list); none for anyone else."""
    if not ctx.user.can(Permission.EXPORT_DECIDE):
        return []
    return list_exports(ctx.station, status="pending", seen_by=ctx.user)


def export_of(ctx: Ctx, export_id: int, permission: Permission = Permission.EXPORT_VIEW) -> dict[str, Any]:
    """One request the user sees; hidden or missing: 404 (R13)."""
    ctx.require(permission)
    expire_due(ctx.station)
    return show_export(ctx.station, export_id, seen_by=ctx.user)


def _case_number(ctx: Ctx, case_id: int | None) -> str | None:
    if case_id is None:
        return None
    with ctx.station.connect() as connection:
        detail = case_detail(connection, case_id, ctx.user)
        missing = detail is None and case_row(connection, case_id) is None
    if detail is None:
        ctx.hidden("case", case_id, missing=missing)
    return str(detail["case"]["number"])


def request(
    ctx: Ctx, items: list[dict[str, Any]], *, purpose: str, recipient: str, case_id: int | None
) -> dict[str, Any]:
    """An investigator's request for clips they see, optionally of a case they see."""
    ctx.require(Permission.EXPORT_REQUEST)
    normalised = [normalise_item(item) for item in items]
    case_number = _case_number(ctx, case_id)
    for item in normalised:  # a hidden clip answers like a missing one, audited (R13, R17)
        visible_clip_row(ctx, item["clip_id"], Permission.CLIP_VIEW)
    made = request_export(
        ctx.station,
        user=ctx.user.username,
        items=normalised,
        purpose=purpose,
        recipient=recipient,
        case_number=case_number,
        source=ctx.client,
    )
    return describe(made, case_number)


def decide(ctx: Ctx, export_id: int, *, approve: bool, reason: str) -> dict[str, Any]:
    """An approver's decision; the workflow refuses (409, audited) one on their own request."""
    shown = export_of(ctx, export_id, Permission.EXPORT_DECIDE)
    decided = decide_export(
        ctx.station, export_id, user=ctx.user.username, approve=approve, reason=reason, source=ctx.client
    )
    return describe(decided, shown["case"])


def build(ctx: Ctx, export_id: int) -> BuildResult:
    """The requester builds the package, where the CLI builds it by default (the zip is served from
    there); segments and disclosure copies are cut by the application's cutter (ffmpeg)."""
    export_of(ctx, export_id, Permission.EXPORT_REQUEST)
    return build_package(
        ctx.station,
        export_id,
        user=ctx.user.username,
        out_dir=default_out_dir(ctx.station),
        cutter=ctx.web.cutter,
        source=ctx.client,
    )


def package(ctx: Ctx, export_id: int) -> Response:
    """The built package's zip, to its requester only: the copy handed over (R12), each download on
    the audit record with the manifest's sha256 that identifies it."""
    shown = export_of(ctx, export_id, Permission.EXPORT_REQUEST)
    if shown["requested_by"] != ctx.user.username:
        ctx.deny(
            reason="not the requester",
            permission=Permission.EXPORT_REQUEST,
            object_type="export",
            object_id=export_id,
        )
    path = zip_path_of(ctx.station, export_id)
    if shown["status"] != "built" or not path.is_file():  # not built, or built by the CLI elsewhere
        raise NotFoundError(f"export {export_id} has no package here")
    ctx.audit(
        "export.downloaded",
        "export",
        export_id,
        {"package": path.name, "size": path.stat().st_size, "manifest_sha256": shown["manifest_sha256"]},
    )
    return FileResponse(path, media_type="application/zip", filename=path.name)
