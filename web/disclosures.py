"""A party's applications to read or copy records (R15), for the pages: each step checks what the web
adds (the permission, R11; an application naming a case or clip the user may not see answers 404 like
a missing one, R13) and calls the service the CLI calls (`evidence_store.disclosure`), which applies
the rules (roles, states, the recorder never decides, only redacted copies) and keeps the audit
record. A viewing serves only the redacted copies, never an original."""

from __future__ import annotations

from typing import Any

from fastapi.responses import FileResponse, Response

from evidence_store.disclosure import (
    decide_application,
    list_applications,
    record_application,
    record_viewing,
    redacted_copies,
    show_application,
)
from evidence_store.domain.access import Permission
from evidence_store.errors import ConflictError, NotFoundError
from evidence_store.export.disclosure_package import build_disclosure_package, zip_path_of
from web.context import Ctx
from web.media import blob_response

STATES = ("received", "approved", "refused", "viewed", "delivered", "withdrawn")
ANY = (Permission.DISCLOSURE_RECORD, Permission.DISCLOSURE_DECIDE, Permission.DISCLOSURE_DELIVER)


def require_any(ctx: Ctx) -> None:
    """The applications are for those who record, decide or hand them over (R11, R15)."""
    if not any(ctx.user.can(p) for p in ANY):
        ctx.deny(reason="role", permission=Permission.DISCLOSURE_RECORD)


def applications_for(ctx: Ctx, state: str | None = None) -> list[dict[str, Any]]:
    require_any(ctx)
    return list_applications(ctx.station, state=state if state in STATES else None, seen_by=ctx.user)


def overdue_for(ctx: Ctx) -> list[dict[str, Any]]:
    """The unanswered applications past their deadline the user sees (the dashboard's list); none for
    a role that has nothing to do with them."""
    if not any(ctx.user.can(p) for p in ANY):
        return []
    return list_applications(ctx.station, only_overdue=True, seen_by=ctx.user)


def application_for(ctx: Ctx, application_id: int) -> dict[str, Any]:
    require_any(ctx)
    return show_application(ctx.station, application_id, seen_by=ctx.user)


def record(ctx: Ctx, **fields: Any) -> dict[str, Any]:
    ctx.require(Permission.DISCLOSURE_RECORD)
    return record_application(ctx.station, user=ctx.user.username, source=ctx.client, **fields)


def decide(ctx: Ctx, application_id: int, *, approve: bool, reason: str) -> dict[str, Any]:
    ctx.require(Permission.DISCLOSURE_DECIDE)
    application_for(ctx, application_id)
    return decide_application(
        ctx.station, application_id, user=ctx.user.username, approve=approve, reason=reason, source=ctx.client
    )


def deliver(ctx: Ctx, application_id: int) -> None:
    ctx.require(Permission.DISCLOSURE_DELIVER)
    application_for(ctx, application_id)
    build_disclosure_package(ctx.station, application_id, user=ctx.user.username, source=ctx.client)


def package(ctx: Ctx, application_id: int) -> Response:
    """The newest disclosure package's zip, to a custodian; each download on the audit record."""
    ctx.require(Permission.DISCLOSURE_DELIVER)
    shown = application_for(ctx, application_id)
    path = zip_path_of(ctx.station, application_id)
    if shown["state"] != "delivered" or not path.is_file():
        raise NotFoundError(f"application {application_id} has no package here")
    deliveries = [h for h in shown["handovers"] if h["kind"] == "delivery"]
    ctx.audit(
        "disclosure.downloaded",
        "disclosure",
        application_id,
        {"package": path.name, "manifest_sha256": deliveries[-1]["details"].get("manifest_sha256")},
    )
    return FileResponse(path, media_type="application/zip", filename=path.name)


def view(ctx: Ctx, application_id: int) -> tuple[dict[str, Any], list[Any]]:
    """Open an approved read's redacted copies for the party, the user supervising: on record."""
    ctx.require(Permission.DISCLOSURE_DELIVER)
    application_for(ctx, application_id)
    return record_viewing(ctx.station, application_id, user=ctx.user.username, source=ctx.client)


def copy(ctx: Ctx, application_id: int, number: int) -> Response:
    """The `number`th redacted copy of a read whose viewing is on record (the player's source); only
    ever a redaction's render, never an original (R13, R15)."""
    ctx.require(Permission.DISCLOSURE_DELIVER)
    shown = application_for(ctx, application_id)
    if shown["kind"] != "read" or shown["state"] != "viewed":
        raise ConflictError(f"application {application_id} has no viewing on record")
    copies = redacted_copies(ctx.station, shown["clip_ids"])
    if not 1 <= number <= len(copies):
        raise NotFoundError(f"application {application_id} has no copy {number}")
    chosen = copies[number - 1]
    return blob_response(
        ctx.station.blobs, chosen.sha256, chosen.size, "video/mp4", ctx.request.headers.get("range")
    )
