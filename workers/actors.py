"""Dramatiq actors: thin and idempotent. Each takes an id, calls one service function, and sends
what became runnable. Importing this module installs the Redis broker from the settings."""

from __future__ import annotations

import functools
import logging
import threading
from typing import Any

import dramatiq

from evidence_store.bootstrap import Station, open_station
from evidence_store.errors import DatabaseUnavailableError, TransientError
from evidence_store.settings import load_settings
from workers.broker import install_broker

log = logging.getLogger(__name__)
broker = install_broker()

QUEUE = "processing"
SIX_HOURS_MS = 6 * 3600 * 1000


_opening = threading.Lock()


@functools.cache
def _station_unlocked() -> Station:
    return open_station(load_settings())


def _station() -> Station:
    """One station per worker process, opened on first use. Under a lock: the worker threads start
    at once, and `functools.cache` alone lets each of them open a station (engines and pools of its
    own, and, before `start_mappers` took its lock, a race in the ORM mapping)."""
    with _opening:
        return _station_unlocked()


@functools.cache
def _toolkit_unlocked() -> Any:
    from workers.steps import default_toolkit

    return default_toolkit(_station_unlocked())


def _toolkit() -> Any:
    with _opening:
        return _toolkit_unlocked()


def _retry_transient(retries_so_far: int, exc: BaseException) -> bool:
    """Retry only what may succeed later; permanent failures are recorded on the job instead. A
    database that cannot be reached when the worker opens its station (restarting, failing over) is
    such a failure too: the first message after a worker process started must not be lost to it."""
    return isinstance(exc, (TransientError, DatabaseUnavailableError)) and retries_so_far < 5


@dramatiq.actor(
    queue_name=QUEUE,
    max_retries=5,
    min_backoff=5_000,
    max_backoff=600_000,
    retry_when=_retry_transient,
    time_limit=SIX_HOURS_MS,
)
def run_processing_job(job_id: int) -> None:
    """Run one job, then send what it unlocked, or itself again if another worker holds its lease
    (`deliver_job`)."""
    from workers.service import deliver_job

    delivery = deliver_job(_station(), job_id, _toolkit())
    outcome = delivery.outcome
    log.info(
        "job %s %s of clip %s: %s%s",
        outcome.job_id,
        outcome.step,
        outcome.clip_id,
        outcome.status,
        f" ({outcome.detail})" if outcome.detail else "",
    )
    if delivery.look_again_in is not None:
        delay = delivery.look_again_in.total_seconds()
        log.info("lease of job %s held by a live worker: looking again in %.0f s", job_id, delay)
        run_processing_job.send_with_options(args=(job_id,), delay=int(delay * 1000))
        return
    for next_id in delivery.unlocked:
        run_processing_job.send(next_id)


@dramatiq.actor(queue_name=QUEUE, max_retries=3, min_backoff=1_000, retry_when=_retry_transient)
def plan_new_clips(clip_ids: list[int]) -> None:
    """Create the jobs of newly stored clips and send those that can start (those of these clips only;
    a second delivery creates nothing and sends them again, which is harmless)."""
    from workers.planning import plan_clips, runnable_jobs

    station = _station()
    created = plan_clips(station, clip_ids)
    runnable = runnable_jobs(station, clip_ids=clip_ids)
    log.info("planned %d jobs for %d clips; %d can start", len(created), len(clip_ids), len(runnable))
    for job_id in runnable:
        run_processing_job.send(job_id)
