"""The processing queue adapter: offers new clips to the workers over Redis."""

from __future__ import annotations

import logging

from evidence_store.bootstrap import Station
from evidence_store.errors import TransientError
from workers.actors import ProcessingActors
from workers.leasing import running_jobs
from workers.planning import plan_clips, runnable_jobs

log = logging.getLogger(__name__)


class DramatiqProcessingQueue:
    """`ProcessingQueue` over dramatiq, sending through `actors` (declared on the broker the entry layer
    chose). If Redis is down the clips simply wait: their status says they are still to process, and
    `evidence process` or the next start of `evidence worker` finds them (`offer_waiting_work`)."""

    def __init__(self, actors: ProcessingActors) -> None:
        self._actors = actors

    def clips_stored(self, clip_ids: list[int]) -> None:
        try:
            self._actors.plan_new_clips.send(clip_ids)
        except Exception as exc:  # the queue is a hint; never lose an ingest over it
            log.warning(
                "could not offer %d clips to the workers (%s); they wait for `evidence process` or the "
                "next start of `evidence worker`",
                len(clip_ids),
                exc,
            )


def offer_waiting_work(station: Station, actors: ProcessingActors) -> tuple[int, int]:
    """When `evidence worker` starts: plan the clips still `ingested` (their message was lost, e.g.
    Redis was down during the import) and send every job that can start. A job that already has a
    message waiting gets a second one, which finds it claimed and does nothing. Jobs left `running` are
    sent too: one whose worker died (its lease ran out) is claimed again at once, one still held is
    looked at again when its lease could have run out. Returns (jobs planned, jobs sent). Raises
    `TransientError` when Redis cannot be reached."""
    try:
        actors.ping()
    except Exception as exc:
        raise TransientError(f"cannot reach Redis at {station.settings.redis_url}: {exc}") from exc
    planned = plan_clips(station)
    runnable = runnable_jobs(station, limit=1_000_000) + running_jobs(station)
    for job_id in runnable:
        actors.run_processing_job.send(job_id)
    return len(planned), len(runnable)
