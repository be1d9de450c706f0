"""The one translation of errors to HTTP, for the pages and the JSON API alike.

Project errors (`evidence_store.errors`), wherever a route or a service raises them:
    InputError          400, its message (a page that set `Ctx.on_input_error` answers its own way:
                        the form again, or a redirect back to it with the message)
    NotPermittedError   403 "forbidden", or 404 "not found" for an `AccessRefused` that must not show
                        whether the object exists (R13); every refusal is put on the audit record (R17)
    NotFoundError       404 "not found" (`NoDerivative`: "no such derivative")
    ConflictError       409, its message
    TransientError      503 with `Retry-After` (the database restarting or busy: try again)
The API answers every error in one shape, `ErrorBody`: `{"error": message, "type": kind}` (plus
`detail`, the fields at fault, for 422); the pages show the error page. Two web-only signals are
answered here too: `NeedLogin` (401, or a redirect to the login page) and `CsrfRejected` (403, audited
where it is raised, since it is found before any route runs). Framework errors (validation 422, or 400
on the pages; unknown paths 404; wrong methods 405 with `Allow`; bodies over the limit 413) keep their
statuses with our bodies.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from evidence_store.domain.access import AccessRefused
from evidence_store.errors import ConflictError, InputError, NotFoundError, NotPermittedError, TransientError
from web.context import INPUT_ERROR_ANSWER, LANG_COOKIE, Ctx, NeedLogin, Web
from web.i18n import DEFAULT_LANGUAGE, LANGUAGES, translate

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
ProjectError = InputError | NotPermittedError | NotFoundError | ConflictError


# the `type` of each status's error body: a stable word a client can branch on
ERROR_TYPES = {
    400: "bad_request",
    401: "login_required",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    416: "range_not_satisfiable",
    422: "invalid",
    429: "rate_limited",
    503: "try_again",
}


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str


class ErrorBody(BaseModel):
    """Every error the API answers (see `ERROR_TYPES` for `type`)."""

    error: str
    type: str
    detail: list[FieldError] | None = None


def error_json(
    status: int,
    message: str,
    *,
    kind: str | None = None,
    detail: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"error": message, "type": kind or ERROR_TYPES.get(status, "error")}
    if detail is not None:
        body["detail"] = detail
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses, all with the `ErrorBody` shape."""
    return {status: {"model": ErrorBody, "description": ERROR_TYPES[status]} for status in statuses}


class CsrfRejected(Exception):
    """A state-changing request without the session's CSRF token: an HTTP-level check made before any
    route runs, so not one of the project's errors."""


class NoDerivative(NotFoundError):
    """The clip has no derivative of the kind asked for (yet)."""


def wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def language(request: Request) -> str:
    lang = request.cookies.get(LANG_COOKIE, DEFAULT_LANGUAGE)
    return lang if lang in LANGUAGES else DEFAULT_LANGUAGE


def error_page(request: Request, status: int, message: str) -> Response:
    web: Web = request.app.state.web
    lang = language(request)
    return web.templates.TemplateResponse(
        request,
        "error.html",
        {
            "t": lambda key, **values: translate(lang, key, **values),
            "lang": lang,
            "status": status,
            "message": message,
            "user": None,
            "languages": LANGUAGES,
            "here": request.url.path,
            "csrf": "",
        },
        status_code=status,
    )


def answer(request: Request, status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    if wants_json(request):
        return error_json(status, message, headers=headers)
    response = error_page(request, status, message)
    response.headers.update(headers or {})
    return response


def status_and_message(request: Request, exc: ProjectError) -> tuple[int, str]:
    """The HTTP status of a project error and the message shown (translated where it is ours)."""
    lang = language(request)
    if isinstance(exc, AccessRefused) and exc.hidden:
        return 404, translate(lang, "error.not_found")
    if isinstance(exc, NotPermittedError):
        return 403, translate(lang, "error.forbidden")
    if isinstance(exc, NoDerivative):
        return 404, translate(lang, "error.no_derivative")
    if isinstance(exc, NotFoundError):
        return 404, translate(lang, "error.not_found")
    if isinstance(exc, ConflictError):
        return 409, str(exc)
    return 400, str(exc)


def audit_refusal(request: Request, exc: NotPermittedError) -> None:
    """Put a refusal on the audit record (R17): why, which permission, who (role), what was asked."""
    ctx = Ctx(request)
    refused = exc if isinstance(exc, AccessRefused) else AccessRefused(str(exc))
    ctx.audit(
        "access.denied",
        refused.object_type or "web",
        refused.object_id if refused.object_id is not None else request.url.path,
        {
            "reason": refused.reason,
            "permission": refused.permission.value if refused.permission else None,
            "role": ctx.session.user.role.value if ctx.session else None,
            "method": request.method,
            "path": request.url.path,
        },
    )


async def project_error(request: Request, exc: Exception) -> Response:
    """The one handler of the project's errors (see the module docstring)."""
    assert isinstance(exc, ProjectError)
    if isinstance(exc, NotPermittedError):
        await run_in_threadpool(audit_refusal, request, exc)
    status, message = status_and_message(request, exc)
    page_answer = getattr(request.state, INPUT_ERROR_ANSWER, None)
    if isinstance(exc, InputError) and page_answer is not None and not wants_json(request):
        response: Response = page_answer(message)
        return response
    return answer(request, status, message)


async def transient(request: Request, exc: Exception) -> Response:
    """A failure that may pass (the database restarting, busy): 503 with a hint when to try again."""
    return answer(request, 503, translate(language(request), "error.try_again"), headers={"Retry-After": "5"})


async def need_login(request: Request, exc: Exception) -> Response:
    if wants_json(request):
        return error_json(401, "login required")
    if request.method in SAFE_METHODS:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)
    return error_page(request, 401, translate(language(request), "error.login_required"))


async def csrf_rejected(request: Request, exc: Exception) -> Response:
    return answer(request, 403, translate(language(request), "error.csrf"))


def _shown(text: str) -> str:
    """Text of the request echoed in an answer, with a NUL written out as `\\x00`: no text the API
    describes holds a NUL (`web.text_rules`), its answers included; a misspelt key may hold one."""
    return text.replace("\x00", "\\x00")


async def invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    if wants_json(request):
        errors: list[Any] = [
            {
                "loc": [part if isinstance(part, int) else _shown(str(part)) for part in e.get("loc", ())],
                "msg": _shown(e.get("msg", "")),
            }
            for e in exc.errors()
        ]
        return error_json(422, "invalid request", detail=errors)
    return error_page(request, 400, translate(language(request), "error.bad_request"))


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    key = {404: "error.not_found", 413: "error.too_large"}.get(exc.status_code, "error.bad_request")
    # 405 keeps its `Allow` header (RFC 9110 section 15.5.6)
    return answer(request, exc.status_code, translate(language(request), key), headers=exc.headers)


def install(app: FastAPI) -> None:
    """Register the handlers on the application."""
    for family in (InputError, NotPermittedError, NotFoundError, ConflictError):
        app.add_exception_handler(family, project_error)
    app.add_exception_handler(TransientError, transient)
    app.add_exception_handler(NeedLogin, need_login)
    app.add_exception_handler(CsrfRejected, csrf_rejected)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
