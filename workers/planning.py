"""Which processing jobs a clip gets, and which of them can run now (R3, R4).

The database says what is still to do: one `processing_jobs` row per (clip, step), unique; the order of
the steps is the pure rule in `workers.pipeline`.
"""

from __future__ import annotations

from sqlalchemy import select

from evidence_store.bootstrap import Station
from evidence_store.db.tables import clips, processing_jobs
from evidence_store.domain.model import Clip, ClipStatus, JobStatus, ProcessingJob, ProcessingStep
from evidence_store.domain.record_facts import FACTS_KEY, row_fact
from workers.pipeline import ready_to_run, steps_for, unlocked_by


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
            # R3: the status change is stated in the chain, so `audit verify` can replay it
            station.audit.record(
                session,
                actor="worker",
                action="clip.planned",
                object_type="clip",
                object_id=clip.id or 0,
                details={
                    "steps": [step.value for step in steps_for(clip.media_type)],
                    FACTS_KEY: [row_fact("clips", clip.id or 0, clip, new=False, fields=("status",))],
                },
                flush=False,
            )
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
