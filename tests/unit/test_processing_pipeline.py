"""Which steps a clip needs, when a step may run, and the clip's status when its jobs end."""

from __future__ import annotations

from evidence_store.domain.model import ClipStatus, JobStatus, MediaType, ProcessingStep
from workers.pipeline import clip_status_after, ready_to_run, steps_for, unlocked_by

P, X, T, S = ProcessingStep.PROBE, ProcessingStep.PROXY, ProcessingStep.THUMBNAILS, ProcessingStep.TIMESTAMP
DONE, FAILED, PENDING = JobStatus.DONE, JobStatus.FAILED, JobStatus.PENDING


def test_every_clip_is_time_stamped_and_media_is_probed_first() -> None:
    assert steps_for(MediaType.VIDEO) == (P, X, T, S)
    assert steps_for(MediaType.AUDIO) == (P, X, S)
    assert steps_for(MediaType.PHOTO) == (P, T, S)
    assert steps_for(MediaType.OTHER) == (S,)


def test_proxy_and_thumbnails_wait_for_the_probe_but_the_time_stamp_does_not() -> None:
    assert ready_to_run(P, set())
    assert ready_to_run(S, set())
    assert not ready_to_run(X, set())
    assert not ready_to_run(T, {S})
    assert ready_to_run(X, {P})


def test_status_while_work_remains_is_undecided() -> None:
    assert clip_status_after({P: (DONE, False), X: (PENDING, False)}, True) is None


def test_all_done_is_ready() -> None:
    assert (
        clip_status_after({P: (DONE, False), X: (DONE, False), T: (DONE, False), S: (DONE, False)}, True)
        is ClipStatus.READY
    )


def test_undecodable_media_is_unplayable_even_with_failed_proxy() -> None:
    statuses = {P: (DONE, False), X: (FAILED, True), T: (FAILED, True), S: (DONE, False)}
    assert clip_status_after(statuses, False) is ClipStatus.UNPLAYABLE


def test_another_failure_is_failed() -> None:
    assert clip_status_after({P: (DONE, False), S: (FAILED, False)}, True) is ClipStatus.FAILED
    assert clip_status_after({S: (FAILED, True)}, None) is ClipStatus.FAILED


def test_a_finished_step_unlocks_only_the_steps_it_was_the_last_prerequisite_of() -> None:
    assert unlocked_by(P, {P}) == {X, T}
    assert unlocked_by(P, {P, S}) == {X, T}
    assert unlocked_by(P, {P, X}) == {T}  # the proxy is done already (a redelivered probe)
    assert unlocked_by(S, {S}) == set()  # nothing waits for the time-stamp
    assert unlocked_by(X, {P, X}) == set()
