"""Processing service: probe, proxy, thumbnails and trusted time-stamp for each clip (R3, R4, R5).

The database says what is still to do: one `processing_jobs` row per (clip, step), unique. A job is
claimed atomically before it runs, its heavy work runs outside any transaction, and its result is
recorded (with audit events) in one short transaction that also marks it done. A redelivered or
duplicated message finds the job claimed or done and does nothing. Originals are only ever read.

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
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from evidence_store.blobs.local import LocalBlobStore
from evidence_store.bootstrap import Station
from evidence_store.db.tables import clips, processing_jobs
from evidence_store.domain.device_clock import ClockReading, place_in_time
from evidence_store.domain.model import (
    Clip,
    ClipStatus,
    ClockStatus,
    Derivative,
    DerivativeKind,
    JobStatus,
    ProcessingJob,
    ProcessingStep,
    StoredTimestamp,
)
from evidence_store.errors import EvidenceError, NotFoundError, PermanentError, TransientError
from workers.pipeline import clip_status_after, ready_to_run, steps_for, unlocked_by

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


@dataclass
class JobOutcome:
    job_id: int
    clip_id: int
    step: str
    status: JobStatus
    detail: str = ""


ClipHandOff = Callable[[Station, int], None]  # called when a clip's processing has ended


def _no_hand_off(station: Station, clip_id: int) -> None:
    return None


@dataclass
class Toolkit:
    """The media and time-stamping tools the steps use (real ones wired by `default_toolkit`)."""

    probe: Callable[[Path], Any]
    make_proxy: Callable[..., Any]
    make_poster: Callable[..., Any]
    make_contact_sheet: Callable[..., Any]
    timestamp_authority: Any
    hand_off: ClipHandOff = _no_hand_off
    transcode_timeout_s: float = 6 * 3600


def default_toolkit(station: Station) -> Toolkit:
    from ingest.transcode.probe import probe_media
    from ingest.transcode.proxy import make_proxy
    from ingest.transcode.thumbnails import make_contact_sheet, make_poster
    from workers.timestamps import authority_for

    return Toolkit(
        probe=probe_media,
        make_proxy=make_proxy,
        make_poster=make_poster,
        make_contact_sheet=make_contact_sheet,
        timestamp_authority=authority_for(station),
        hand_off=_linking_hand_off(),
    )


def _linking_hand_off() -> ClipHandOff:
    """Case linking takes the clip once processed (R5): link it to the documents it matches and
    refresh its flags and theirs. A failure is logged, not raised: the clip's processing is recorded
    already, and `evidence cases relink` repairs any link that was missed."""
    from evidence_store.cases.linking_service import link_clip

    def hand_off(station: Station, clip_id: int) -> None:
        try:
            link_clip(station, clip_id)
        except Exception:
            log.exception("linking clip %s after processing failed", clip_id)

    return hand_off


# -- planning -----------------------------------------------------------------------------------------


def plan_clips(station: Station, clip_ids: list[int] | None = None) -> list[int]:
    """Create the jobs of clips that have none yet (status `ingested`); return the new job ids."""
    now = station.clock()
    created: list[int] = []
    with station.transaction() as session:
        query = select(Clip).where(clips.c.status == ClipStatus.INGESTED)
        if clip_ids is not None:
            query = query.where(clips.c.id.in_(clip_ids))
        for clip in session.scalars(query):
            existing = set(
                session.scalars(select(processing_jobs.c.step).where(processing_jobs.c.clip_id == clip.id))
            )
            for step in steps_for(clip.media_type):
                if step.value in existing:
                    continue
                job = ProcessingJob(clip_id=clip.id or 0, step=step.value, created_at=now, updated_at=now)
                session.add(job)
                session.flush()
                created.append(job.id or 0)
            clip.status = ClipStatus.PROCESSING
    return created


def runnable_jobs(station: Station, limit: int = 1000, clip_ids: list[int] | None = None) -> list[int]:
    """Pending jobs whose prerequisites are done, oldest first (of `clip_ids` only, if given)."""
    with station.connect() as connection:
        query = (
            select(processing_jobs.c.id, processing_jobs.c.clip_id, processing_jobs.c.step)
            .where(processing_jobs.c.status == JobStatus.PENDING)
            .order_by(processing_jobs.c.id)
            .limit(limit)
        )
        if clip_ids is not None:
            query = query.where(processing_jobs.c.clip_id.in_(clip_ids))
        pending = connection.execute(query).all()
        if not pending:
            return []
        pending_clips = {row.clip_id for row in pending}
        done_rows = connection.execute(
            select(processing_jobs.c.clip_id, processing_jobs.c.step).where(
                processing_jobs.c.clip_id.in_(pending_clips), processing_jobs.c.status == JobStatus.DONE
            )
        ).all()
    done: dict[int, set[ProcessingStep]] = {}
    for row in done_rows:
        done.setdefault(row.clip_id, set()).add(ProcessingStep(row.step))
    return [row.id for row in pending if ready_to_run(ProcessingStep(row.step), done.get(row.clip_id, set()))]


def jobs_unlocked_by(station: Station, job_id: int) -> list[int]:
    """The pending jobs of the same clip that job `job_id`, now done, was the last prerequisite of.

    Empty while the job is not done. Asking again (a redelivered message) gives the same answer until
    those jobs are claimed, so a worker that died between finishing a job and sending its followers
    is made good by the redelivery; sending a job twice is harmless (it is claimed once).
    """
    with station.connect() as connection:
        job = connection.execute(
            select(processing_jobs.c.clip_id, processing_jobs.c.step, processing_jobs.c.status).where(
                processing_jobs.c.id == job_id
            )
        ).first()
        if job is None or JobStatus(job.status) is not JobStatus.DONE:
            return []
        siblings = connection.execute(
            select(processing_jobs.c.id, processing_jobs.c.step, processing_jobs.c.status)
            .where(processing_jobs.c.clip_id == job.clip_id)
            .order_by(processing_jobs.c.id)
        ).all()
    done = {ProcessingStep(r.step) for r in siblings if JobStatus(r.status) is JobStatus.DONE}
    unlocked = unlocked_by(ProcessingStep(job.step), done)
    return [
        r.id
        for r in siblings
        if JobStatus(r.status) is JobStatus.PENDING and ProcessingStep(r.step) in unlocked
    ]


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
    job = _claim(station, job_id, lease)
    if job is None:
        abandoned = _give_up_if_abandoned(station, job_id, lease)
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
        with _heartbeat(station, job, lease):
            _STEPS[step](station, job, toolkit)
    except ClaimLostError:
        return _claim_lost(station, job)
    except PermanentError as exc:
        return _end_failed(station, job, toolkit, str(exc), permanent=True)
    except TransientError as exc:
        if job.attempts >= MAX_ATTEMPTS:
            return _end_failed(
                station, job, toolkit, f"gave up after {job.attempts} attempts: {exc}", permanent=False
            )
        if not _finish(station, job, JobStatus.PENDING, str(exc), permanent=False):
            return _claim_lost(station, job)
        raise
    except Exception as exc:  # a bug or an unforeseen failure: visible, never retried forever
        log.exception("processing job %s (%s of clip %s) failed", job.id, step, job.clip_id)
        return _end_failed(station, job, toolkit, f"{type(exc).__name__}: {exc}", permanent=True)
    return _after_job(station, job, toolkit, JobStatus.DONE, "")


def _end_failed(
    station: Station, job: ProcessingJob, toolkit: Toolkit, error: str, *, permanent: bool
) -> JobOutcome:
    if not _finish(station, job, JobStatus.FAILED, error, permanent=permanent):
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


def _claim(station: Station, job_id: int, lease: timedelta) -> ProcessingJob | None:
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


def _give_up_if_abandoned(station: Station, job_id: int, lease: timedelta) -> ProcessingJob | None:
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
def _heartbeat(station: Station, job: ProcessingJob, lease: timedelta) -> Iterator[None]:
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


def _finish(station: Station, job: ProcessingJob, status: JobStatus, error: str, *, permanent: bool) -> bool:
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
                details={"status": str(final), "steps": {str(k): str(v[0]) for k, v in statuses.items()}},
            )
    if final is not None:
        toolkit.hand_off(station, job.clip_id)
    return JobOutcome(job.id or 0, job.clip_id, job.step, status, detail)


# -- the steps ------------------------------------------------------------------------------------------


@contextmanager
def original_path(station: Station, sha256: str) -> Iterator[Path]:
    """A path where tools can read the original: the blob itself locally, a temp copy from S3."""
    if isinstance(station.blobs, LocalBlobStore):
        yield station.blobs.path_for(sha256)
        return
    with tempfile.TemporaryDirectory(prefix="evidence-original-") as directory:
        target = Path(directory) / sha256
        with station.blobs.open(sha256) as source, target.open("wb") as sink:
            shutil.copyfileobj(source, sink, 4 * 1024 * 1024)
        yield target


def _load_clip(station: Station, clip_id: int) -> Clip:
    with station.session() as session:
        clip = session.get(Clip, clip_id)
        if clip is None:
            raise NotFoundError(f"no clip {clip_id}")
        session.expunge(clip)
        return clip


def _step_probe(station: Station, job: ProcessingJob, toolkit: Toolkit) -> None:
    clip = _load_clip(station, job.clip_id)
    with original_path(station, clip.sha256) as path:
        probe = toolkit.probe(path)
    found = probe.to_dict()
    with station.transaction() as session:
        row = session.get(Clip, clip.id)
        assert row is not None
        row.media_info = {**row.media_info, "probe": found}
        for warning in probe.warnings:
            row.add_warning(warning.code, warning.message)
        if probe.duration_s is not None and probe.duration_s > 0:
            row.duration_s = probe.duration_s
            _place_end(station, row)
        station.audit.record(
            session,
            actor="worker",
            action="clip.probed",
            object_type="clip",
            object_id=job.clip_id,
            details={"playable": found.get("playable"), "warnings": [w.code for w in probe.warnings]},
        )
        _mark_done(session, job, station.clock())


def _place_end(station: Station, clip: Clip) -> None:
    """R5: with the duration known, the end time follows from the start and the docking's offset."""
    if clip.device_start is None or clip.duration_s is None:
        return
    clip.device_end = clip.device_start + timedelta(seconds=clip.duration_s)
    reading = ClockReading(clip.clock_offset_s if clip.clock_status is not ClockStatus.UNKNOWN else None)
    placed = place_in_time(clip.device_start, clip.device_end, reading, ZoneInfo(station.settings.timezone))
    clip.utc_start, clip.utc_end = placed.utc_start, placed.utc_end


def _step_proxy(station: Station, job: ProcessingJob, toolkit: Toolkit) -> None:
    clip = _load_clip(station, job.clip_id)
    _require_playable(clip, "a browser proxy")
    with (
        original_path(station, clip.sha256) as path,
        tempfile.TemporaryDirectory(prefix="evidence-proxy-") as out,
    ):
        probe = toolkit.probe(path)
        run = toolkit.make_proxy(path, Path(out), probe, timeout_s=toolkit.transcode_timeout_s)
        _store_derivatives(station, job, clip, [(DerivativeKind.PROXY, run)])


def _step_thumbnails(station: Station, job: ProcessingJob, toolkit: Toolkit) -> None:
    clip = _load_clip(station, job.clip_id)
    _require_playable(clip, "thumbnails")
    with (
        original_path(station, clip.sha256) as path,
        tempfile.TemporaryDirectory(prefix="evidence-thumbs-") as out,
    ):
        probe = toolkit.probe(path)
        runs = [(DerivativeKind.POSTER, toolkit.make_poster(path, Path(out), probe))]
        if clip.media_type.value == "video":
            runs.append((DerivativeKind.CONTACT_SHEET, toolkit.make_contact_sheet(path, Path(out), probe)))
        _store_derivatives(station, job, clip, runs)


def _require_playable(clip: Clip, what: str) -> None:
    found = clip.media_info.get("probe")
    if not found or not found.get("playable"):
        reasons = "; ".join(found.get("warnings_text", [])) if found else ""
        raise PermanentError(f"cannot make {what}: the original has no decodable stream {reasons}".strip())


def _store_derivatives(
    station: Station, job: ProcessingJob, clip: Clip, runs: list[tuple[DerivativeKind, Any]]
) -> None:
    stored = []
    for kind, run in runs:
        with Path(run.output).open("rb") as handle:
            blob = station.blobs.put(handle)
        stored.append((kind, run, blob))
    now = station.clock()
    try:
        with station.transaction() as session:
            for kind, run, blob in stored:
                derivative = Derivative(
                    clip_id=clip.id or 0,
                    kind=kind,
                    sha256=blob.sha256,
                    size=blob.size,
                    mime_type=run.mime_type,
                    derived_from_sha256=clip.sha256,
                    tool=run.tool,
                    tool_version=run.tool_version,
                    arguments=[str(a) for a in run.arguments],
                    created_at=now,
                )
                session.add(derivative)
                session.flush()
                station.audit.record(
                    session,
                    actor="worker",
                    action="derivative.created",
                    object_type="clip",
                    object_id=clip.id or 0,
                    details={
                        "kind": str(kind),
                        "sha256": blob.sha256,
                        "derived_from": clip.sha256,
                        "tool": run.tool,
                        "tool_version": run.tool_version,
                    },
                )
            _mark_done(session, job, now)
    except SAIntegrityError:
        # another delivery of this job recorded the same derivatives first: nothing more to do
        log.info("derivatives of job %s were already recorded", job.id)


def _step_timestamp(station: Station, job: ProcessingJob, toolkit: Toolkit) -> None:
    clip = _load_clip(station, job.clip_id)
    token = toolkit.timestamp_authority.stamp(clip.sha256)
    now = station.clock()
    try:
        with station.transaction() as session:
            session.add(
                StoredTimestamp(
                    clip_id=clip.id or 0,
                    sha256=clip.sha256,
                    kind=token.kind,
                    authority=token.authority,
                    gen_time=token.gen_time,
                    serial=token.serial,
                    token=token.token,
                    created_at=now,
                )
            )
            station.audit.record(
                session,
                actor="worker",
                action="clip.timestamped",
                object_type="clip",
                object_id=clip.id or 0,
                details={
                    "kind": token.kind,
                    "authority": token.authority,
                    "gen_time": token.gen_time.isoformat(),
                    "serial": token.serial,
                    "sha256": clip.sha256,
                },
            )
            _mark_done(session, job, now)
    except SAIntegrityError:
        log.info("time-stamp of job %s was already recorded", job.id)


def _mark_done(session: Any, job: ProcessingJob, now: datetime) -> None:
    """Mark the job done in the transaction that records its result; if the claim is no longer ours,
    raise ClaimLostError so that the whole result is rolled back (the current claim records its own)."""
    done = session.execute(
        update(processing_jobs)
        .where(*_still_claimed(job))
        .values(status=JobStatus.DONE, updated_at=now, finished_at=now, last_error="")
    )
    if done.rowcount != 1:
        raise ClaimLostError(f"processing job {job.id} (attempt {job.attempts}) {CLAIM_LOST}")


_STEPS: dict[ProcessingStep, Callable[[Station, ProcessingJob, Toolkit], None]] = {
    ProcessingStep.PROBE: _step_probe,
    ProcessingStep.PROXY: _step_proxy,
    ProcessingStep.THUMBNAILS: _step_thumbnails,
    ProcessingStep.TIMESTAMP: _step_timestamp,
}


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
        if clip is not None and clip.status in (ClipStatus.FAILED, ClipStatus.UNPLAYABLE):
            clip.status = ClipStatus.PROCESSING
        station.audit.record(
            session,
            actor=actor,
            action="processing.retried",
            object_type="clip",
            object_id=job.clip_id,
            details={"job_id": job_id, "step": job.step},
        )
