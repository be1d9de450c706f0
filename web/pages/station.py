"""The station page and its kiosk view (issue 19): each bay's recorder, officer, progress, speed, time
left, verified files and "safe to unplug", kept current by server-sent events (`web.station`)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from web.deps import StationCtx
from web.pages.rendering import render
from web.station import snapshot

router = APIRouter()


@router.get("/station")
def station_page(ctx: StationCtx) -> Response:
    return render(ctx, "station.html", bays=snapshot(ctx), kiosk=False)


@router.get("/station/kiosk")
def station_kiosk(ctx: StationCtx) -> Response:
    """Large type for a touch screen beside the bays: no navigation, nothing to press."""
    return render(ctx, "station_kiosk.html", bays=snapshot(ctx), kiosk=True)
