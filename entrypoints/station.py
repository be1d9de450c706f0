"""Start-up of the long-running HTTP side: `evidence station` and `evidence web`."""

from __future__ import annotations

import logging

import uvicorn

from evidence_store.bootstrap import Station
from web.app import create_app
from web.auth import WebConfig

log = logging.getLogger(__name__)


def run_station(station: Station, *, host: str, port: int) -> None:
    """Serve the station's HTTP side until stopped. Dock daemon and workers join here as they land."""
    _log_to_stderr(station)
    log.info("station %s serving on http://%s:%d", station.settings.station_name, host, port)
    uvicorn.run(
        create_app(station),
        host=host,
        port=port,
        log_level=station.settings.log_level.lower(),
        proxy_headers=False,  # the app believes X-Forwarded-* from `web_trusted_proxies` only
    )


def run_web(
    station: Station,
    *,
    host: str,
    port: int,
    session_idle_minutes: int | None = None,
    session_max_hours: int | None = None,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
) -> None:
    """Serve the custodian web UI and API until stopped; HTTPS when a certificate is given."""
    defaults = WebConfig()
    config = WebConfig(
        session_idle_minutes=session_idle_minutes or defaults.session_idle_minutes,
        session_max_hours=session_max_hours or defaults.session_max_hours,
    )
    _log_to_stderr(station)
    uvicorn.run(
        create_app(station, config=config),
        host=host,
        port=port,
        log_level=station.settings.log_level.lower(),
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        proxy_headers=False,  # the app believes X-Forwarded-* from `web_trusted_proxies` only
    )


def _log_to_stderr(station: Station) -> None:
    logging.basicConfig(
        level=station.settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
