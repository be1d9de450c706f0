"""The ASGI application: the custodian web UI (server-rendered pages) and the JSON API under /api.

Security measures applied to every request here:
* security headers (CSP without inline script or style, X-Frame-Options DENY, nosniff, Referrer-Policy,
  Permissions-Policy; HSTS when served over TLS);
* CSRF: every POST/PUT/PATCH/DELETE carries a token (form field `csrf_token` or header `X-CSRF-Token`)
  equal to the session's synchronizer token; login forms use a double-submit cookie instead;
* session cookies are HttpOnly, SameSite=Strict, Secure over TLS; sessions live in the database;
* the client address (login rate limits, the audit record's `source`) is the socket's peer; only a
  request that arrives from a proxy named in `web_trusted_proxies` has its X-Forwarded-For (the
  right-most address no trusted proxy added) and X-Forwarded-Proto believed;
* request bodies above `web_max_body_bytes` are refused with 413 as they arrive (by Content-Length, or
  counted as a chunked body streams in), never read whole.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from evidence_store.bootstrap import Station
from evidence_store.ports import DerivativeCutter
from web import errors, limits, readable, text_rules
from web.api import router as api_router
from web.auth import ConfigCache, WebConfig, tokens_match
from web.context import LOGIN_CSRF_COOKIE, STATIC_DIR, TEMPLATES_DIR, Ctx, SeenCache, Web, session_of
from web.errors import SAFE_METHODS, CsrfRejected
from web.pages import router as pages_router

LOGIN_PATHS = {"/login", "/api/login"}
CSP = (
    "default-src 'self'; img-src 'self' data:; media-src 'self'; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


async def csrf_guard(request: Request) -> None:
    """Refuse a state-changing request whose CSRF token does not match (an app-wide dependency, so no
    route can forget it)."""
    if request.method in SAFE_METHODS:
        return
    given = request.headers.get("x-csrf-token")
    content_type = request.headers.get("content-type", "")
    if given is None and (
        content_type.startswith("application/x-www-form-urlencoded")
        or content_type.startswith("multipart/form-data")
    ):
        form = await request.form()
        value = form.get("csrf_token")
        given = value if isinstance(value, str) else None
    if request.url.path in LOGIN_PATHS:
        if not tokens_match(request.cookies.get(LOGIN_CSRF_COOKIE, ""), given):
            raise CsrfRejected
        return
    active = await run_in_threadpool(session_of, request)
    if active is None:
        return  # not signed in: the route itself answers 401 (or redirects to the login page)
    if not tokens_match(active.csrf_token, given):
        ctx = Ctx(request)

        def record() -> None:
            ctx.audit(
                "access.denied",
                "web",
                request.url.path,
                {
                    "reason": "csrf",
                    "role": active.user.role.value,
                    "method": request.method,
                    "path": request.url.path,
                },
            )

        await run_in_threadpool(record)
        raise CsrfRejected


def create_app(
    station: Station, *, config: WebConfig | None = None, cutter: DerivativeCutter | None = None
) -> FastAPI:
    """The application. `cutter` cuts the segments an export asks for (without one, only whole clips
    are built)."""
    app = FastAPI(
        title="Body-worn camera evidence station",
        version="0.1.0",
        description="Custodian API: search, playback, cases, supervision, statistics, audit log. "
        "Sign in with POST /api/login; send the returned csrf_token as X-CSRF-Token on every POST.",
        openapi_url="/api/openapi.json",
        docs_url=None,  # Swagger UI would load scripts from a CDN: against the CSP and offline stations
        redoc_url=None,
        dependencies=[Depends(csrf_guard)],
    )
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    readable.install_filters(templates.env)
    app.state.web = Web(
        station=station,
        config=ConfigCache(station, config or WebConfig()),
        templates=templates,
        seen=SeenCache(),
        cutter=cutter,
    )

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CSP)
        headers["X-Frame-Options"] = "DENY"
        headers["X-Content-Type-Options"] = "nosniff"
        headers["Referrer-Policy"] = "no-referrer"
        headers["Cross-Origin-Opener-Policy"] = "same-origin"
        headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
        if request.url.scheme == "https":
            headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
        if "cache-control" not in headers and request.url.path != "/healthz":
            headers["Cache-Control"] = "no-store"
        return response

    errors.install(app)
    text_rules.install(app)  # inside the size limits, which bound the body it reads
    limits.install(app, station.settings.web_max_body_bytes)
    if station.settings.web_trusted_proxies:
        # added last, so outermost: every later step sees the client and scheme the proxy reported
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(station.settings.web_trusted_proxies))

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, Any]:
        return {"ok": True, "station": station.settings.station_name}

    app.include_router(api_router)
    app.include_router(pages_router)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    return app
