"""The lease on a claimed processing job (R3, R4): claiming, renewing, and the writes that end a claim.

A claim is a lease: while the job runs, a heartbeat thread renews the job's `updated_at` every lease/4.
A `running` job whose `updated_at` is older than the lease (`worker_lease_seconds`) lost its worker
(killed, out of memory, power cut) and may be claimed again, counting an attempt; after MAX_ATTEMPTS it
is failed, and visible.

Every write that ends a job (done, failed, back to pending) is conditioned on the claim still being
this worker's (status running, same attempt). A worker that lost its lease while it worked (a database
outage longer than the lease, a paused VM) and was replaced by a second claim leaves the job to that
claim: its result is rolled back, its failure not recorded, and nothing is retried on its account.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update

from evidence_store.bootstrap import Station
from evidence_store.db.tables import processing_jobs
from evidence_store.domain.model import JobStatus, ProcessingJob
from evidence_store.errors import EvidenceError

log = logging.getLogger(__name__)

CLAIM_LOST = "lost its claim: another worker took the job after this one's lease ran out"


class ClaimLostError(EvidenceError):
    """The job this worker was running was claimed by another worker after the lease ran out."""


# The lease of a claimed job (setting `worker_lease_seconds`, default 120 s): its worker renews
# `updated_at` every lease/4 while it runs (however long a transcode takes); a `running` job not renewed
# for a lease was abandoned and may be claimed again.
MAX_ATTEMPTS = 5


def current_lease(station: Station, lease: timedelta | None = None) -> timedelta:
    """The lease to use: the one given (tests), else the station's setting."""
    return lease if lease is not None else timedelta(seconds=station.settings.worker_lease_seconds)


def claim(station: Station, job_id: int, lease: timedelta) -> ProcessingJob | None:
    """Claim the job for this worker (one attempt more, the lease from now) if it is pending, or running
    under a lease that ran out with attempts left; None if it is not to be claimed now."""
    now = station.clock()
    with station.transaction() as session:
        claimed = session.execute(
            update(processing_jobs)
            .where(
                processing_jobs.c.id == job_id,
                or_(
                    processing_jobs.c.status == JobStatus.PENDING,
                    (processing_jobs.c.status == JobStatus.RUNNING)
                    & (processing_jobs.c.updated_at < now - lease)
                    & (processing_jobs.c.attempts < MAX_ATTEMPTS),
                ),
            )
            .values(status=JobStatus.RUNNING, attempts=processing_jobs.c.attempts + 1, updated_at=now)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            return None
        job = session.get(ProcessingJob, job_id)
        assert job is not None
        session.expunge(job)
        return job


def give_up_if_abandoned(station: Station, job_id: int, lease: timedelta) -> ProcessingJob | None:
    """A job whose lease ran out after its last allowed attempt is failed (visible in `evidence jobs
    --failed`), not run again: a file that kills its worker every time must not do so forever."""
    now = station.clock()
    with station.transaction() as session:
        row = session.execute(
            select(processing_jobs.c.attempts).where(
                processing_jobs.c.id == job_id,
                processing_jobs.c.status == JobStatus.RUNNING,
                processing_jobs.c.updated_at < now - lease,
                processing_jobs.c.attempts >= MAX_ATTEMPTS,
            )
        ).first()
        if row is None:
            return None
        error = (
            f"gave up after {row.attempts} attempts: the worker running it stopped "
            f"(no heartbeat for {lease.total_seconds():g} s)"
        )
        failed = session.execute(
            update(processing_jobs)
            .where(
                processing_jobs.c.id == job_id,
                processing_jobs.c.status == JobStatus.RUNNING,
                processing_jobs.c.attempts == row.attempts,
                processing_jobs.c.updated_at < now - lease,
            )
            .values(
                status=JobStatus.FAILED, last_error=error, permanent=False, updated_at=now, finished_at=now
            )
        )
        if failed.rowcount != 1:  # type: ignore[attr-defined]
            return None  # renewed or settled meanwhile
        job = session.get(ProcessingJob, job_id)
        assert job is not None
        _record_failed(station, session, job, error, permanent=False)
        session.flush()
        session.expunge(job)
        return job


@contextmanager
def heartbeat(station: Station, job: ProcessingJob, lease: timedelta) -> Iterator[None]:
    """Renew the job's lease every LEASE/4 while the body runs; stop (and wait for the thread) when it
    ends. The renewal only touches this claim (status running, same attempt), so a worker that lost its
    lease never extends another's. A failed renewal is logged and tried again at the next beat."""
    stop = threading.Event()
    interval = lease.total_seconds() / 4

    def beat() -> None:
        while not stop.wait(interval):
            try:
                with station.begin() as connection:
                    renewed = connection.execute(
                        update(processing_jobs).where(*_still_claimed(job)).values(updated_at=station.clock())
                    )
                if renewed.rowcount != 1:
                    return  # settled, or claimed by another worker after this one lost its lease
            except Exception:
                log.exception("renewing the lease of job %s failed", job.id)

    thread = threading.Thread(target=beat, name=f"lease-job-{job.id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=60)


def running_jobs(station: Station) -> list[int]:
    """Jobs claimed by some worker (`evidence worker` sends them at start: a stale one is claimed again,
    a live one is looked at again when its lease could have run out)."""
    with station.connect() as connection:
        return list(
            connection.scalars(
                select(processing_jobs.c.id)
                .where(processing_jobs.c.status == JobStatus.RUNNING)
                .order_by(processing_jobs.c.id)
            )
        )


def lease_left(station: Station, job_id: int, lease: timedelta | None = None) -> timedelta | None:
    """How long until a `running` job's lease runs out (zero if it has); None if it is not running."""
    with station.connect() as connection:
        row = connection.execute(
            select(processing_jobs.c.status, processing_jobs.c.updated_at).where(
                processing_jobs.c.id == job_id
            )
        ).first()
    if row is None or JobStatus(row.status) is not JobStatus.RUNNING:
        return None
    renewed: datetime = row.updated_at
    return max(renewed + current_lease(station, lease) - station.clock(), timedelta(0))


def finish(station: Station, job: ProcessingJob, status: JobStatus, error: str, *, permanent: bool) -> bool:
    """End this claim with `status`; False (and nothing written) if the claim is no longer ours."""
    now = station.clock()
    with station.transaction() as session:
        ended = session.execute(
            update(processing_jobs)
            .where(*_still_claimed(job))
            .values(
                status=status,
                last_error=error[-4000:],
                permanent=permanent,
                updated_at=now,
                finished_at=now if status in (JobStatus.DONE, JobStatus.FAILED) else None,
            )
        )
        if ended.rowcount != 1:  # type: ignore[attr-defined]
            return False
        if status is JobStatus.FAILED:
            _record_failed(station, session, job, error, permanent=permanent)
    return True


def _still_claimed(job: ProcessingJob) -> tuple[Any, ...]:
    """The row is still this worker's claim: running, at the attempt it claimed."""
    return (
        processing_jobs.c.id == job.id,
        processing_jobs.c.status == JobStatus.RUNNING,
        processing_jobs.c.attempts == job.attempts,
    )


def _record_failed(
    station: Station, session: Any, job: ProcessingJob, error: str, *, permanent: bool
) -> None:
    """The audit event of a job that ended failed (a step's error, or a job that kept losing its worker)."""
    station.audit.record(
        session,
        actor="worker",
        action="processing.failed",
        object_type="clip",
        object_id=job.clip_id,
        details={"job_id": job.id, "step": job.step, "error": error[-500:], "permanent": permanent},
    )


def mark_done(session: Any, job: ProcessingJob, now: datetime) -> None:
    """Mark the job done in the transaction that records its result; if the claim is no longer ours,
    raise ClaimLostError so that the whole result is rolled back (the current claim records its own)."""
    done = session.execute(
        update(processing_jobs)
        .where(*_still_claimed(job))
        .values(status=JobStatus.DONE, updated_at=now, finished_at=now, last_error="")
    )
    if done.rowcount != 1:
        raise ClaimLostError(f"processing job {job.id} (attempt {job.attempts}) {CLAIM_LOST}")
