"""What every page module uses: rendering a template with the request's context, safe redirects, and
where each role starts."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse

from evidence_store.domain.access import Permission, Role
from web.context import Ctx
from web.i18n import LANGUAGES


def render(ctx: Ctx, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    user = ctx.session.user if ctx.session else None
    return ctx.web.templates.TemplateResponse(
        ctx.request,
        template,
        {
            "ctx": ctx,
            "t": ctx.t,
            "r": ctx.readable,
            "user": user,
            "P": Permission,
            "csrf": ctx.csrf_token,
            "languages": LANGUAGES,
            "lang": ctx.lang,
            "here": _here(ctx.request),
            **context,
        },
        status_code=status,
    )


def _here(request: Request) -> str:
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


def safe_next(target: str | None) -> str:
    """Only a local path may be a redirect target (no open redirect)."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if (
        parts.scheme
        or parts.netloc
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
    ):
        return "/"
    return target


def redirect(target: str) -> RedirectResponse:
    return RedirectResponse(target, status_code=303)


def home_for(role: Role) -> str:
    return {
        Role.OFFICER: "/search",
        Role.CUSTODIAN: "/dashboard",
        Role.INVESTIGATOR: "/search",
        Role.APPROVER: "/dashboard",
        Role.SUPERVISOR: "/supervision",
        Role.AUDITOR: "/audit",
        Role.ADMIN: "/admin/users",
    }[role]
