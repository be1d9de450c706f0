"""Start-up of the long-running parts: `evidence station` (dock, workers and web together, supervised)
and `evidence web`."""

from __future__ import annotations

import logging
import sys
from collections.abc import Collection
from types import FrameType

import uvicorn

from entrypoints.cli.support import UNIT_NAME_MISSING
from entrypoints.supervisor import Role, Supervisor
from evidence_store.bootstrap import Station
from evidence_store.settings import Settings
from ingest.transcode.segment import FfmpegCutter
from web.app import create_app
from web.auth import WebConfig
from web.station import close_streams

log = logging.getLogger(__name__)

ROLES = ("dock", "worker", "web", "forward")


def station_roles(settings: Settings, *, host: str, port: int, without: Collection[str] = ()) -> list[Role]:
    """The roles of a docking station, each the `evidence` command that runs it alone: the dock daemon
    (udev events, read-only mounts), the processing workers (not when `EVIDENCE_PROCESSING_QUEUE=none`:
    clips then wait for `evidence process`), the web UI, and with a shared backend (a database URL or
    S3) the forwarding of the spool every `spool_forward_interval_s`."""
    command = (sys.executable, "-m", "entrypoints")
    roles = [
        Role("dock", (*command, "dock")),
        Role("worker", (*command, "worker")),
        Role("web", (*command, "web", "--host", host, "--port", str(port))),
    ]
    if settings.spool_enabled and (settings.database_url or settings.blob_store == "s3"):
        # a shared backend may be out of reach: what the dock spooled meanwhile is forwarded (issue 18);
        # the embedded default (SQLite and store in the station's home) has nothing to forward to
        every = f"{settings.spool_forward_interval_s:g}"
        roles.append(Role("forward", (*command, "spool", "forward", "--every", every)))
    skipped = set(without)
    if settings.processing_queue == "none":
        skipped.add("worker")
    return [role for role in roles if role.name not in skipped]


def run_station(
    station: Station,
    *,
    host: str,
    port: int,
    without: Collection[str] = (),
    stop_timeout: float = 30.0,
) -> None:
    """Run the whole station until SIGINT or SIGTERM: every role in a child process of its own,
    restarted when it dies, all stopped together (R3: a docked recorder is pulled and processed with
    nothing else started)."""
    settings = station.settings
    station.close()  # initialised; each role opens its own
    _log_to_stderr(settings)
    warn_missing_unit_name(settings)
    roles = station_roles(settings, host=host, port=port, without=without)
    if settings.processing_queue == "none" and "worker" not in without:
        log.warning("EVIDENCE_PROCESSING_QUEUE=none: no workers; new clips wait for `evidence process`")
    log.info(
        "station %s: running %s; web UI on http://%s:%d",
        settings.station_name,
        ", ".join(role.name for role in roles),
        host,
        port,
    )
    Supervisor(roles, stop_timeout=stop_timeout).run()
    log.info("station %s stopped", settings.station_name)


def warn_missing_unit_name(settings: Settings) -> None:
    if not settings.unit_name.strip():
        log.warning(UNIT_NAME_MISSING)


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
    _log_to_stderr(station.settings)
    server = _WebServer(
        uvicorn.Config(
            create_app(station, config=config, cutter=FfmpegCutter()),
            host=host,
            port=port,
            log_level=station.settings.log_level.lower(),
            ssl_certfile=ssl_certfile,
            ssl_keyfile=ssl_keyfile,
            proxy_headers=False,  # the app believes X-Forwarded-* from `web_trusted_proxies` only
        )
    )
    server.run()


class _WebServer(uvicorn.Server):
    """uvicorn's server, which also ends the open event streams when told to stop: uvicorn waits for
    every open response to finish, and a station page's stream would otherwise hold the stop for
    minutes."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        close_streams()
        super().handle_exit(sig, frame)


def _log_to_stderr(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
