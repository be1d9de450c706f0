"""Text the stores can keep: no NUL character (U+0000) in any text the API takes.

PostgreSQL refuses NUL in text columns while SQLite keeps it, so the same request would answer 400 on
one database and 200 on the other. The rule is therefore stated at the edge, once: the OpenAPI
description gives every free-text string a pattern without NUL, `RefuseNul` answers 422 for a NUL in
the path or the query before any route runs, and the API's body models refuse it in their fields. (A
form of the pages that carries one still ends in the database's refusal, a 400:
`evidence_store.db.transient`.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from web.errors import error_json

# an ECMA 262 (and Python) pattern: any text without U+0000
NO_NUL = "^[^\\x00]*$"
MESSAGE = "text may not contain the NUL character (U+0000)"


def has_nul(scope: Scope) -> bool:
    """Whether the request's path or query holds a NUL, raw or percent-encoded."""
    raw_path = scope.get("raw_path") or scope.get("path", "").encode()
    query = scope.get("query_string", b"")
    return any(b"\x00" in part or b"%00" in part.lower() for part in (raw_path, query))


class RefuseNul:
    """Answer 422 (the API's error shape) for a NUL in the path or the query. (The JSON bodies' models
    refuse it in their fields: `web.api.ApiBody`; text in keys the models ignore never reaches a store.)"""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if has_nul(scope):
            await error_json(422, MESSAGE)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _forbid_nul(node: Any) -> None:
    """Give every free-text string schema (no pattern, format, enum or const) the NO_NUL pattern."""
    if isinstance(node, dict):
        if node.get("type") == "string" and not {"pattern", "format", "enum", "const"} & node.keys():
            node["pattern"] = NO_NUL
        for value in node.values():
            _forbid_nul(value)
    elif isinstance(node, list):
        for value in node:
            _forbid_nul(value)


def install(app: FastAPI) -> None:
    """State the rule in the app's OpenAPI description and enforce it (add before the size limits, so
    they stay outside and bound what this middleware reads)."""
    app.add_middleware(RefuseNul)
    describe: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = describe()
            _forbid_nul(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
