"""The ASGI application."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from evidence_store.bootstrap import Station
from evidence_store.status import describe


def create_app(station: Station) -> FastAPI:
    app = FastAPI(title="Body-worn camera evidence station", version="0.1.0")

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"ok": True, "station": station.settings.station_name}

    @app.get("/api/status")
    def status() -> dict[str, Any]:
        return describe(station)

    return app
