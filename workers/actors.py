"""Dramatiq actors: thin and idempotent. Each takes an id, calls one service function, and sends
what became runnable. Importing this module installs the Redis broker from the settings."""

from __future__ import annotations

import functools
from typing import Any

import dramatiq

from evidence_store.bootstrap import Station, open_station
from evidence_store.errors import TransientError
from evidence_store.settings import load_settings
from workers.broker import install_broker

broker = install_broker()

QUEUE = "processing"
SIX_HOURS_MS = 6 * 3600 * 1000


@functools.cache
def _station() -> Station:
    """One station per worker process, opened on first use."""
    return open_station(load_settings())


@functools.cache
def _toolkit() -> Any:
    from workers.service import default_toolkit

    return default_toolkit(_station())


def _retry_transient(retries_so_far: int, exc: BaseException) -> bool:
    """Retry only what may succeed later; permanent failures are recorded on the job instead."""
    return isinstance(exc, TransientError) and retries_so_far < 5


@dramatiq.actor(
    queue_name=QUEUE,
    max_retries=5,
    min_backoff=5_000,
    max_backoff=600_000,
    retry_when=_retry_transient,
    time_limit=SIX_HOURS_MS,
)
def run_processing_job(job_id: int) -> None:
    from workers.service import run_job, runnable_jobs

    station = _station()
    run_job(station, job_id, _toolkit())
    for next_id in runnable_jobs(station):
        run_processing_job.send(next_id)


@dramatiq.actor(queue_name=QUEUE, max_retries=3, min_backoff=1_000, retry_when=_retry_transient)
def plan_new_clips(clip_ids: list[int]) -> None:
    from workers.service import plan_clips, runnable_jobs

    station = _station()
    plan_clips(station, clip_ids)
    for job_id in runnable_jobs(station):
        run_processing_job.send(job_id)
