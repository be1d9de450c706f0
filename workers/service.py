"""Processing service: probe, proxy, thumbnails and trusted time-stamp for each clip (R3, R4, R5).

The database says what is still to do: one `processing_jobs` row per (clip, step), unique. A job is
claimed atomically before it runs, its heavy work runs outside any transaction, and its result is
recorded (with audit events) in one short transaction that also marks it done. A redelivered or
duplicated message finds the job claimed or done and does nothing. Originals are only ever read.

Here: one delivery of a job (claim, run its step under the lease, end the claim, settle the clip),
draining in-process for `evidence process`, and the failed-job list. The claim and its lease are
`workers.leasing`, the steps `workers.steps`, the planning `workers.planning`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from evidence_store.bootstrap import Station
from evidence_store.db.tables import clips, processing_jobs
from evidence_store.domain.model import Clip, ClipStatus, JobStatus, ProcessingJob, ProcessingStep
from evidence_store.domain.record_facts import FACTS_KEY, row_fact
from evidence_store.errors import NotFoundError, PermanentError, TransientError
from workers.leasing import (
    CLAIM_LOST,
    MAX_ATTEMPTS,
    ClaimLostError,
    claim,
    current_lease,
    finish,
    give_up_if_abandoned,
    heartbeat,
    lease_left,
)
from workers.pipeline import clip_status_after
from workers.planning import jobs_unlocked_by, plan_clips, runnable_jobs
from workers.steps import STEPS, Toolkit, default_toolkit

# `evidence process` and `evidence jobs` take the toolkit from here with the service functions
__all__ = [
    "Delivery",
    "JobOutcome",
    "default_toolkit",
    "deliver_job",
    "failed_jobs",
    "process_pending",
    "retry_job",
    "run_job",
]

log = logging.getLogger(__name__)


@dataclass
class JobOutcome:
    job_id: int
    clip_id: int
    step: str
    status: JobStatus
    detail: str = ""


# -- running one job ------------------------------------------------------------------------------------


@dataclass
class Delivery:
    """What one delivery of a job's message comes to, for the queue to act on."""

    outcome: JobOutcome
    look_again_in: timedelta | None  # the job runs under another worker's live lease: send it again then
    unlocked: list[int]  # the jobs the job was the last prerequisite of: send them now


def deliver_job(
    station: Station, job_id: int, toolkit: Toolkit, *, lease: timedelta | None = None
) -> Delivery:
    """`run_processing_job`: run the job (R3, R4), then say which messages to send.

    Only the jobs it unlocked, not every runnable job of the station (that would send each pending job
    once per finished job). A redelivered message finds the job claimed or done and runs nothing, and
    names the same followers again until they are claimed, so a worker that died between finishing a job
    and sending its followers is made good. A job still running under another worker's live lease is
    looked at again when that lease could have run out, so a job whose worker died is always taken up
    again, never silently stuck.
    """
    outcome = run_job(station, job_id, toolkit, lease=lease)
    if outcome.status is JobStatus.RUNNING:
        left = lease_left(station, job_id, lease)
        if left is not None:
            return Delivery(outcome, left + current_lease(station, lease) / 4, [])
    return Delivery(outcome, None, jobs_unlocked_by(station, job_id))


def run_job(station: Station, job_id: int, toolkit: Toolkit, *, lease: timedelta | None = None) -> JobOutcome:
    """Run one job if it is still to do. Transient failures re-raise (for the queue to retry later).

    A job found `running` under a live lease is left alone (outcome status `running`); one whose lease ran
    out is claimed again, or failed if it already had MAX_ATTEMPTS.
    """
    lease = current_lease(station, lease)
    job = claim(station, job_id, lease)
    if job is None:
        abandoned = give_up_if_abandoned(station, job_id, lease)
        if abandoned is not None:
            return _after_job(station, abandoned, toolkit, JobStatus.FAILED, abandoned.last_error)
        with station.connect() as connection:
            row = connection.execute(select(processing_jobs).where(processing_jobs.c.id == job_id)).first()
        if row is None:
            raise NotFoundError(f"no processing job {job_id}")
        return JobOutcome(job_id, row.clip_id, row.step, JobStatus(row.status), "already claimed or finished")
    return _run_claimed(station, job, toolkit, lease)


def _run_claimed(station: Station, job: ProcessingJob, toolkit: Toolkit, lease: timedelta) -> JobOutcome:
    """Run the step of a job this worker has just claimed, and end the claim."""
    step = ProcessingStep(job.step)
    try:
        with heartbeat(station, job, lease):
            STEPS[step](station, job, toolkit)
    except ClaimLostError:
        return _claim_lost(station, job)
    except PermanentError as exc:
        return _end_failed(station, job, toolkit, str(exc), permanent=True)
    except TransientError as exc:
        if job.attempts >= MAX_ATTEMPTS:
            return _end_failed(
                station, job, toolkit, f"gave up after {job.attempts} attempts: {exc}", permanent=False
            )
        if not finish(station, job, JobStatus.PENDING, str(exc), permanent=False):
            return _claim_lost(station, job)
        raise
    except Exception as exc:  # a bug or an unforeseen failure: visible, never retried forever
        log.exception("processing job %s (%s of clip %s) failed", job.id, step, job.clip_id)
        return _end_failed(station, job, toolkit, f"{type(exc).__name__}: {exc}", permanent=True)
    return _after_job(station, job, toolkit, JobStatus.DONE, "")


def _end_failed(
    station: Station, job: ProcessingJob, toolkit: Toolkit, error: str, *, permanent: bool
) -> JobOutcome:
    if not finish(station, job, JobStatus.FAILED, error, permanent=permanent):
        return _claim_lost(station, job)
    return _after_job(station, job, toolkit, JobStatus.FAILED, error)


def _claim_lost(station: Station, job: ProcessingJob) -> JobOutcome:
    """The outcome of a run whose claim another worker took over: the job as that claim has it."""
    log.warning("processing job %s (attempt %s) %s", job.id, job.attempts, CLAIM_LOST)
    with station.connect() as connection:
        status = connection.execute(
            select(processing_jobs.c.status).where(processing_jobs.c.id == job.id)
        ).scalar_one()
    return JobOutcome(job.id or 0, job.clip_id, job.step, JobStatus(status), CLAIM_LOST)


def _after_job(
    station: Station, job: ProcessingJob, toolkit: Toolkit, status: JobStatus, detail: str
) -> JobOutcome:
    """Settle the clip's status when its last job ends, and hand it on."""
    with station.transaction() as session:
        rows = session.execute(
            select(processing_jobs.c.step, processing_jobs.c.status, processing_jobs.c.permanent).where(
                processing_jobs.c.clip_id == job.clip_id
            )
        ).all()
        clip = session.get(Clip, job.clip_id)
        assert clip is not None
        statuses = {ProcessingStep(r.step): (JobStatus(r.status), bool(r.permanent)) for r in rows}
        playable = clip.media_info.get("probe", {}).get("playable") if clip.media_info.get("probe") else None
        final = clip_status_after(statuses, playable)
        if final is not None and clip.status != final:
            clip.status = final
            station.audit.record(
                session,
                actor="worker",
                action="clip.processed",
                object_type="clip",
                object_id=job.clip_id,
                details={
                    "status": str(final),
                    "steps": {str(k): str(v[0]) for k, v in statuses.items()},
                    FACTS_KEY: [row_fact("clips", job.clip_id, clip, new=False, fields=("status",))],
                },
            )
    if final is not None:
        toolkit.hand_off(station, job.clip_id)
    return JobOutcome(job.id or 0, job.clip_id, job.step, status, detail)


# -- draining and failures ------------------------------------------------------------------------------


def process_pending(
    station: Station, toolkit: Toolkit, *, on_outcome: Callable[[JobOutcome], None] | None = None
) -> list[JobOutcome]:
    """`evidence process`: plan every new clip and run every runnable job in-process until none is left.

    Transient failures are left pending for a later run (they are not retried in a tight loop).
    """
    plan_clips(station)
    outcomes: list[JobOutcome] = []
    attempted: set[int] = set()
    while True:
        jobs = [j for j in runnable_jobs(station) if j not in attempted]
        if not jobs:
            return outcomes
        for job_id in jobs:
            attempted.add(job_id)
            try:
                outcome = run_job(station, job_id, toolkit)
            except TransientError as exc:
                outcome = JobOutcome(job_id, 0, "", JobStatus.PENDING, f"will retry: {exc}")
            outcomes.append(outcome)
            if on_outcome:
                on_outcome(outcome)


def failed_jobs(station: Station) -> list[dict[str, Any]]:
    with station.connect() as connection:
        rows = connection.execute(
            select(processing_jobs, clips.c.sha256, clips.c.original_name)
            .join(clips, clips.c.id == processing_jobs.c.clip_id)
            .where(processing_jobs.c.status == JobStatus.FAILED)
            .order_by(processing_jobs.c.id)
        ).all()
    return [
        {
            "job_id": r.id,
            "clip_id": r.clip_id,
            "step": r.step,
            "attempts": r.attempts,
            "permanent": r.permanent,
            "error": r.last_error,
            "sha256": r.sha256,
            "original_name": r.original_name,
            "failed_at": r.finished_at.isoformat() if r.finished_at else None,
        }
        for r in rows
    ]


def retry_job(station: Station, job_id: int, *, actor: str) -> None:
    """Put a failed job back in the queue (an operator decided it is worth another try)."""
    now = station.clock()
    with station.transaction() as session:
        job = session.get(ProcessingJob, job_id)
        if job is None:
            raise NotFoundError(f"no processing job {job_id}")
        if JobStatus(job.status) is not JobStatus.FAILED:
            raise NotFoundError(f"job {job_id} is {job.status}, not failed")
        job.status, job.attempts, job.permanent, job.updated_at, job.finished_at = (
            JobStatus.PENDING,
            0,
            False,
            now,
            None,
        )
        clip = session.get(Clip, job.clip_id)
        facts = []
        if clip is not None and clip.status in (ClipStatus.FAILED, ClipStatus.UNPLAYABLE):
            clip.status = ClipStatus.PROCESSING
            facts.append(row_fact("clips", job.clip_id, clip, new=False, fields=("status",)))
        station.audit.record(
            session,
            actor=actor,
            action="processing.retried",
            object_type="clip",
            object_id=job.clip_id,
            details={"job_id": job_id, "step": job.step, FACTS_KEY: facts},
        )
