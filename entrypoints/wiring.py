"""The adapters the entry layer chooses for the settings, beside the station `bootstrap` builds."""

from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING

from evidence_store.ports import NoProcessingQueue, ProcessingQueue

if TYPE_CHECKING:
    from dramatiq import Broker

    from evidence_store.bootstrap import Station
    from evidence_store.settings import Settings
    from workers.actors import ProcessingActors
    from workers.steps import Toolkit


def processing_queue_for(settings: Settings) -> ProcessingQueue:
    """New clips are offered to the workers over Redis; without a queue they wait, by status, for
    `evidence process`."""
    if settings.processing_queue == "none":
        return NoProcessingQueue()
    from workers.queue import DramatiqProcessingQueue  # lazy: SQLAlchemy, dramatiq; keeps `--help` fast

    return DramatiqProcessingQueue(sending_actors(settings))


def install_processing_broker(settings: Settings) -> Broker:
    """The Redis broker of the settings, made dramatiq's global broker. Done before any actor is
    declared: a dramatiq actor binds to a broker when declared (the worker process declares its actors
    on this one, so the messages it sends go where the dock's go)."""
    import dramatiq  # lazy: dramatiq and redis; keeps `--help` fast

    broker = _broker(settings.redis_url)
    dramatiq.set_broker(broker)
    return broker


def sending_actors(settings: Settings) -> ProcessingActors:
    """The processing actors, declared on the settings' broker, for a process that sends messages
    (the dock, `evidence import`, `evidence worker` before it hands over to dramatiq, `evidence jobs
    retry`). One set per broker and process: in a worker process, the worker's own actors."""
    from workers.actors import ProcessingActors  # lazy: dramatiq; keeps `--help` fast

    broker = install_processing_broker(settings)
    with _declaring:
        if settings.redis_url not in _declared:
            _declared[settings.redis_url] = ProcessingActors(broker)
        return _declared[settings.redis_url]


def worker_actors(settings: Settings) -> ProcessingActors:
    """The processing actors of a worker process: declared on the settings' broker, run against this
    process's station and media tools (opened on first use)."""
    from workers.actors import ProcessingActors  # lazy: dramatiq; keeps `--help` fast

    broker = install_processing_broker(settings)
    with _declaring:
        # declaring again replaces the send-only actors of this broker, if any: the broker runs these
        _declared[settings.redis_url] = ProcessingActors(broker, StationResources(settings))
        return _declared[settings.redis_url]


_declaring = threading.Lock()
_declared: dict[str, ProcessingActors] = {}


@functools.cache
def _broker(redis_url: str) -> Broker:
    from workers.broker import make_broker  # lazy: dramatiq and redis; keeps `--help` fast

    return make_broker(redis_url)


class StationResources:
    """One station and one toolkit per worker process, opened on first use (a database down at
    start-up then fails a message, which is retried, not the process). Under a lock: the worker threads
    start at once, and each would otherwise open a station (engines and pools of its own)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._opening = threading.Lock()
        self._station: Station | None = None
        self._toolkit: Toolkit | None = None

    def station(self) -> Station:
        with self._opening:
            return self._open_station()

    def toolkit(self) -> Toolkit:
        from workers.steps import default_toolkit  # lazy: PyAV, ffmpeg; only a worker runs steps

        with self._opening:
            if self._toolkit is None:
                self._toolkit = default_toolkit(self._open_station())
            return self._toolkit

    def _open_station(self) -> Station:
        from evidence_store.bootstrap import open_station  # lazy: SQLAlchemy, alembic; `--help` fast

        if self._station is None:
            self._station = open_station(self._settings)
        return self._station
