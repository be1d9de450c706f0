"""`evidence station`: the long-running station process."""

from __future__ import annotations

import logging

import uvicorn

from evidence_store.bootstrap import Station

log = logging.getLogger(__name__)


def run_station(station: Station, *, host: str, port: int) -> None:
    """Serve the station's HTTP side until stopped. Dock daemon and workers join here as they land."""
    from web.app import create_app

    logging.basicConfig(
        level=station.settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    log.info("station %s serving on http://%s:%d", station.settings.station_name, host, port)
    uvicorn.run(create_app(station), host=host, port=port, log_level=station.settings.log_level.lower())
