"""Which processing steps a clip needs, and in what order (pure)."""

from __future__ import annotations

from evidence_store.domain.model import ClipStatus, JobStatus, MediaType, ProcessingStep

STEPS_BY_MEDIA: dict[MediaType, tuple[ProcessingStep, ...]] = {
    MediaType.VIDEO: (
        ProcessingStep.PROBE,
        ProcessingStep.PROXY,
        ProcessingStep.THUMBNAILS,
        ProcessingStep.TIMESTAMP,
    ),
    MediaType.AUDIO: (ProcessingStep.PROBE, ProcessingStep.PROXY, ProcessingStep.TIMESTAMP),
    MediaType.PHOTO: (ProcessingStep.PROBE, ProcessingStep.THUMBNAILS, ProcessingStep.TIMESTAMP),
    MediaType.OTHER: (ProcessingStep.TIMESTAMP,),
}

# A step may start only when these are done (the trusted time-stamp needs nothing but the hash).
PREREQUISITES: dict[ProcessingStep, tuple[ProcessingStep, ...]] = {
    ProcessingStep.PROBE: (),
    ProcessingStep.PROXY: (ProcessingStep.PROBE,),
    ProcessingStep.THUMBNAILS: (ProcessingStep.PROBE,),
    ProcessingStep.TIMESTAMP: (),
}


def steps_for(media_type: MediaType) -> tuple[ProcessingStep, ...]:
    """R3/R4: every clip is time-stamped; media is probed, and made playable and viewable."""
    return STEPS_BY_MEDIA[media_type]


def ready_to_run(step: ProcessingStep, done: set[ProcessingStep]) -> bool:
    return all(pre in done for pre in PREREQUISITES[step])


def unlocked_by(finished: ProcessingStep, done: set[ProcessingStep]) -> set[ProcessingStep]:
    """The steps that `finished` was the last prerequisite of, given every step now `done` (R3, R4).

    After a job ends, only these are sent to the workers: sending every runnable job of the station
    after every job would enqueue each pending job once per finished job (O(n^2) messages).
    """
    return {
        step
        for step, needs in PREREQUISITES.items()
        if finished in needs and step not in done and ready_to_run(step, done)
    }


def clip_status_after(
    statuses: dict[ProcessingStep, tuple[JobStatus, bool]], playable: bool | None
) -> ClipStatus | None:
    """The clip's status once no job is pending or running; None while work remains.

    `statuses` maps each step to (status, permanent failure). A clip whose media cannot be decoded is
    `unplayable` (kept, visible, nothing retried); any other failed step makes it `failed`.
    """
    if any(status in (JobStatus.PENDING, JobStatus.RUNNING) for status, _ in statuses.values()):
        return None
    if playable is False:
        return ClipStatus.UNPLAYABLE
    if any(status is JobStatus.FAILED for status, _ in statuses.values()):
        return ClipStatus.FAILED
    return ClipStatus.READY
