"""Dramatiq actors: thin and idempotent. Each takes an id, calls one service function, and sends
what became runnable.

Importing this module declares nothing and connects to nothing. A dramatiq actor is bound to a broker
when it is declared, so the actors are declared by `ProcessingActors(broker, ...)`, on the broker the
entry layer chose from the settings (`entrypoints/worker.py` in a worker process, `entrypoints/wiring.py`
in a process that only sends, such as the dock).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol

import dramatiq

from evidence_store.errors import ConfigurationError, DatabaseUnavailableError, TransientError
from workers.planning import plan_clips, runnable_jobs
from workers.service import deliver_job

if TYPE_CHECKING:
    from dramatiq import Broker

    from evidence_store.bootstrap import Station
    from workers.steps import Toolkit

log = logging.getLogger(__name__)

QUEUE = "processing"
SIX_HOURS_MS = 6 * 3600 * 1000


class WorkerResources(Protocol):
    """What the actors run against in a worker process: its station and its media tools, both opened
    by the entry layer (on first use, so that a database down at start-up fails a message, which is
    retried, rather than the process)."""

    def station(self) -> Station: ...

    def toolkit(self) -> Toolkit: ...


class _SendOnly:
    """The resources of a process that only sends messages (the dock, `evidence import`)."""

    def station(self) -> Station:
        raise ConfigurationError("this process only sends processing messages; run `evidence worker`")

    def toolkit(self) -> Toolkit:
        raise ConfigurationError("this process only sends processing messages; run `evidence worker`")


def _retry_transient(retries_so_far: int, exc: BaseException) -> bool:
    """Retry only what may succeed later; permanent failures are recorded on the job instead. A
    database that cannot be reached when the worker opens its station (restarting, failing over) is
    such a failure too: the first message after a worker process started must not be lost to it."""
    return isinstance(exc, (TransientError, DatabaseUnavailableError)) and retries_so_far < 5


class ProcessingActors:
    """`run_processing_job` and `plan_new_clips`, declared on `broker`. Without `resources` the actors
    can be sent but not run: that is the sending side of the queue."""

    def __init__(self, broker: Broker, resources: WorkerResources | None = None) -> None:
        self.broker = broker
        self._resources: WorkerResources = resources or _SendOnly()
        self.run_processing_job: dramatiq.Actor[[int], None] = dramatiq.actor(
            actor_name="run_processing_job",
            broker=broker,
            queue_name=QUEUE,
            max_retries=5,
            min_backoff=5_000,
            max_backoff=600_000,
            retry_when=_retry_transient,
            time_limit=SIX_HOURS_MS,
        )(self._run_processing_job)
        self.plan_new_clips: dramatiq.Actor[[list[int]], None] = dramatiq.actor(
            actor_name="plan_new_clips",
            broker=broker,
            queue_name=QUEUE,
            max_retries=3,
            min_backoff=1_000,
            retry_when=_retry_transient,
        )(self._plan_new_clips)
        # redaction jobs (issue 20): asked for by a person, not planned per clip, so not processing steps
        self.detect_faces: dramatiq.Actor[[int, str], None] = dramatiq.actor(
            actor_name="detect_faces",
            broker=broker,
            queue_name=QUEUE,
            max_retries=5,
            min_backoff=5_000,
            retry_when=_retry_transient,
            time_limit=SIX_HOURS_MS,
        )(self._detect_faces)
        self.render_redaction: dramatiq.Actor[[int, int, str], None] = dramatiq.actor(
            actor_name="render_redaction",
            broker=broker,
            queue_name=QUEUE,
            max_retries=5,
            min_backoff=5_000,
            retry_when=_retry_transient,
            time_limit=SIX_HOURS_MS,
        )(self._render_redaction)

    def _run_processing_job(self, job_id: int) -> None:
        """Run one job, then send what it unlocked, or itself again if another worker holds its lease
        (`deliver_job`)."""
        delivery = deliver_job(self._resources.station(), job_id, self._resources.toolkit())
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
            self.run_processing_job.send_with_options(args=(job_id,), delay=int(delay * 1000))
            return
        for next_id in delivery.unlocked:
            self.run_processing_job.send(next_id)

    def _plan_new_clips(self, clip_ids: list[int]) -> None:
        """Create the jobs of newly stored clips and send those that can start (those of these clips
        only; a second delivery creates nothing and sends them again, which is harmless)."""
        station = self._resources.station()
        created = plan_clips(station, clip_ids)
        runnable = runnable_jobs(station, clip_ids=clip_ids)
        log.info("planned %d jobs for %d clips; %d can start", len(created), len(clip_ids), len(runnable))
        for job_id in runnable:
            self.run_processing_job.send(job_id)

    def _detect_faces(self, clip_id: int, actor: str) -> None:
        """Faces on the clip's proxy into the next version of its redaction specification (R15)."""
        from workers.redaction import detect  # lazy: OpenCV loads only in a worker that detects

        stored = detect(self._resources.station(), clip_id, actor=actor)
        log.info("faces of clip %s: version %s, %d tracks", clip_id, stored.version, len(stored.spec.tracks))

    def _render_redaction(self, clip_id: int, version: int, actor: str) -> None:
        """Render a version of the clip's redaction (a named version: the newest may change meanwhile)."""
        from workers.redaction import render  # lazy: as above

        done = render(self._resources.station(), clip_id, version=version, actor=actor)
        log.info("clip %s redaction version %s rendered: %s", clip_id, version, done.sha256)

    def ping(self) -> None:
        """Raise if the broker's Redis does not answer."""
        client: Any = getattr(self.broker, "client", None)
        if client is not None:
            client.ping()
