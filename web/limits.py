"""Request bodies are bounded (issue #16): a body larger than `web_max_body_bytes` is refused with 413
before it is read whole. The web takes JSON and forms only (there are no uploads), so one small limit
covers every route.

Two layers, both before any route runs: a declared `Content-Length` over the limit is answered at once
(in the API's error shape), without reading a byte of the body; a chunked body is counted as it streams
in by Starlette's `RequestBodyLimitMiddleware`, which stops reading at the limit and raises a 413 that
`web.errors` answers like any other."""

from __future__ import annotations

from fastapi import FastAPI, Request
from starlette.datastructures import Headers
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from web.errors import answer, language
from web.i18n import translate


class DeclaredSizeLimit:
    """Refuse a request whose Content-Length is over the limit before reading its body."""

    def __init__(self, app: ASGIApp, max_body_size: int) -> None:
        self.app = app
        self.max_body_size = max_body_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self._too_large(Headers(scope=scope).get("content-length")):
            request = Request(scope, receive)
            response = answer(request, 413, translate(language(request), "error.too_large"))
            response.headers["Connection"] = "close"  # the rest of the body is not read
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _too_large(self, declared: str | None) -> bool:
        if declared is None or not declared.strip().isdigit():
            return False  # no length, or a malformed one the HTTP server refuses itself
        digits = declared.strip().lstrip("0")
        return len(digits) > len(str(self.max_body_size)) or int(digits or "0") > self.max_body_size


def install(app: FastAPI, max_body_size: int) -> None:
    """Bound every request body of `app` (add before any middleware that must see the client first)."""
    app.add_middleware(RequestBodyLimitMiddleware, max_body_size=max_body_size)
    app.add_middleware(DeclaredSizeLimit, max_body_size=max_body_size)
