"""The lease on a claimed processing job (R3, R4): a job whose worker vanished is claimed again and
completed; one whose worker is alive (its heartbeat renews the lease) is never claimed twice; one that
lost its worker MAX_ATTEMPTS times is failed and visible, not retried forever."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select, update
from sqlalchemy.exc import DBAPIError

from evidence_store.bootstrap import Station
from evidence_store.db.tables import clips, processing_jobs, timestamp_tokens
from evidence_store.domain.model import ClipStatus, JobStatus
from evidence_store.errors import PermanentError, TransientError
from tests.conftest import run_cli
from tests.fixtures.postgres import PostgresCluster
from workers.leasing import CLAIM_LOST, MAX_ATTEMPTS, lease_left, running_jobs
from workers.planning import plan_clips
from workers.service import JobOutcome, deliver_job, run_job
from workers.steps import default_toolkit

LEASE = timedelta(seconds=1)


@pytest.fixture
def timestamp_job(station: Station, station_env: dict[str, str], tmp_path: Path) -> int:
    """A stored file whose only job is its time-stamp (no media tools needed), planned, not run."""
    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / "notes.txt").write_text("sidecar", encoding="utf-8")
    imported = run_cli(
        ["import", str(volume), "--device", "DSJ7", "--officer", "310777", "--json"], station_env
    )
    assert imported.code == 0, imported.stderr
    (job_id,) = plan_clips(station)
    return job_id


def job_row(station: Station, job_id: int) -> Any:
    with station.engine.connect() as connection:
        return connection.execute(select(processing_jobs).where(processing_jobs.c.id == job_id)).one()


def clip_status(station: Station, clip_id: int) -> ClipStatus:
    with station.engine.connect() as connection:
        return ClipStatus(connection.scalar(select(clips.c.status).where(clips.c.id == clip_id)))


def abandon(station: Station, job_id: int, *, attempts: int, silent_for: timedelta) -> None:
    """What a worker killed mid-job leaves behind: the job `running`, its lease not renewed since."""
    with station.engine.begin() as connection:
        connection.execute(
            update(processing_jobs)
            .where(processing_jobs.c.id == job_id)
            .values(status=JobStatus.RUNNING, attempts=attempts, updated_at=station.clock() - silent_for)
        )


def test_a_job_whose_worker_vanished_is_claimed_again_and_completed(
    station: Station, timestamp_job: int
) -> None:
    abandon(station, timestamp_job, attempts=1, silent_for=2 * LEASE)
    assert running_jobs(station) == [timestamp_job]
    assert lease_left(station, timestamp_job, LEASE) == timedelta(0)

    outcome = run_job(station, timestamp_job, default_toolkit(station), lease=LEASE)

    assert (outcome.status, outcome.detail) == (JobStatus.DONE, "")
    row = job_row(station, timestamp_job)
    assert (JobStatus(row.status), row.attempts) == (JobStatus.DONE, 2)
    assert clip_status(station, row.clip_id) is ClipStatus.READY
    with station.engine.connect() as connection:
        stamps = connection.scalars(
            select(timestamp_tokens.c.id).where(timestamp_tokens.c.clip_id == row.clip_id)
        ).all()
    assert len(stamps) == 1
    assert running_jobs(station) == []


def test_a_job_within_its_lease_is_not_claimed(station: Station, timestamp_job: int) -> None:
    abandon(station, timestamp_job, attempts=1, silent_for=LEASE / 2)
    outcome = run_job(station, timestamp_job, default_toolkit(station), lease=LEASE)
    assert (outcome.status, outcome.detail) == (JobStatus.RUNNING, "already claimed or finished")
    assert job_row(station, timestamp_job).attempts == 1
    left = lease_left(station, timestamp_job, LEASE)
    assert left is not None and timedelta(0) < left <= LEASE / 2


class BlockingAuthority:
    """The station's time-stamping authority, held up until the test lets it go."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.started = threading.Event()
        self.release = threading.Event()

    def stamp(self, sha256: str) -> Any:
        self.started.set()
        assert self.release.wait(timeout=120), "the test never released the job"
        return self.real.stamp(sha256)


def test_a_live_heartbeat_keeps_the_job_from_being_claimed_twice(
    station: Station, timestamp_job: int
) -> None:
    toolkit = default_toolkit(station)
    blocking = BlockingAuthority(toolkit.timestamp_authority)
    toolkit.timestamp_authority = blocking
    first: list[JobOutcome | BaseException] = []

    def run_first() -> None:
        try:
            first.append(run_job(station, timestamp_job, toolkit, lease=LEASE))
        except BaseException as exc:  # reported by the main thread
            first.append(exc)

    holder = threading.Thread(target=run_first)
    holder.start()
    try:
        assert blocking.started.wait(timeout=60), "the first claim never started its step"
        claimed_at = job_row(station, timestamp_job).updated_at
        # wait, with a deadline, until the claim is older than the lease and has been renewed since
        deadline = time.monotonic() + 30
        while True:
            renewed = job_row(station, timestamp_job).updated_at
            if station.clock() - claimed_at > 2 * LEASE and renewed - claimed_at > LEASE:
                break
            assert time.monotonic() < deadline, f"the lease was not renewed (claimed {claimed_at})"
            time.sleep(0.05)

        second = run_job(station, timestamp_job, default_toolkit(station), lease=LEASE)

        assert (second.status, second.detail) == (JobStatus.RUNNING, "already claimed or finished")
        row = job_row(station, timestamp_job)
        assert (JobStatus(row.status), row.attempts) == (JobStatus.RUNNING, 1)
    finally:
        blocking.release.set()
        holder.join(timeout=60)
    assert not holder.is_alive()
    assert len(first) == 1 and isinstance(first[0], JobOutcome), first
    assert first[0].status is JobStatus.DONE
    row = job_row(station, timestamp_job)
    assert (JobStatus(row.status), row.attempts) == (JobStatus.DONE, 1)
    # the heartbeat stopped with the job: the lease is no longer renewed
    settled_at = row.updated_at
    time.sleep(LEASE.total_seconds() / 2)
    assert job_row(station, timestamp_job).updated_at == settled_at


def test_a_job_that_lost_its_worker_too_often_is_failed_and_visible(
    station: Station, station_env: dict[str, str], timestamp_job: int
) -> None:
    abandon(station, timestamp_job, attempts=MAX_ATTEMPTS, silent_for=2 * LEASE)

    outcome = run_job(station, timestamp_job, default_toolkit(station), lease=LEASE)

    assert outcome.status is JobStatus.FAILED
    row = job_row(station, timestamp_job)
    assert (JobStatus(row.status), row.attempts, row.permanent) == (JobStatus.FAILED, MAX_ATTEMPTS, False)
    assert "the worker running it stopped" in row.last_error
    assert clip_status(station, row.clip_id) is ClipStatus.FAILED
    listed = run_cli(["jobs", "--failed", "--json"], station_env)
    assert listed.code == 0, listed.stderr
    assert [j["job_id"] for j in json.loads(listed.stdout)["failed_jobs"]] == [timestamp_job]
    events = run_cli(["audit", "log", "--action", "processing.failed", "--json"], station_env)
    assert events.code == 0, events.stderr
    assert [e["details"]["job_id"] for e in json.loads(events.stdout)["events"]] == [timestamp_job]
    # a further delivery changes nothing
    again = run_job(station, timestamp_job, default_toolkit(station), lease=LEASE)
    assert (again.status, again.detail) == (JobStatus.FAILED, "already claimed or finished")


def test_a_delivery_under_a_live_lease_looks_again_once_the_lease_could_have_run_out(
    station: Station, timestamp_job: int
) -> None:
    """The message of a job another worker holds is sent again for later (`run_processing_job`), late
    enough that a worker which died meanwhile has lost its lease by then: the job is taken up again."""
    abandon(station, timestamp_job, attempts=1, silent_for=LEASE / 2)

    delivery = deliver_job(station, timestamp_job, default_toolkit(station), lease=LEASE)

    assert delivery.outcome.status is JobStatus.RUNNING
    assert delivery.unlocked == []
    assert delivery.look_again_in is not None
    assert LEASE / 4 < delivery.look_again_in <= LEASE / 2 + LEASE / 4
    assert job_row(station, timestamp_job).attempts == 1  # looked at, not claimed

    time.sleep(delivery.look_again_in.total_seconds())  # the holder died: nothing renewed the lease
    again = deliver_job(station, timestamp_job, default_toolkit(station), lease=LEASE)

    assert (again.outcome.status, again.look_again_in, again.unlocked) == (JobStatus.DONE, None, [])
    row = job_row(station, timestamp_job)
    assert (JobStatus(row.status), row.attempts) == (JobStatus.DONE, 2)


def test_a_redelivered_finished_job_sends_the_jobs_it_unlocked_until_they_are_claimed(
    station: Station, station_env: dict[str, str], tmp_path: Path
) -> None:
    """A worker that died after finishing a job but before sending its followers is made good by the
    redelivery of the job's message; followers already claimed are not sent again."""
    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / "clip.mp4").write_bytes(b"not really a video" * 100)
    imported = run_cli(
        ["import", str(volume), "--device", "DSJ7", "--officer", "310777", "--json"], station_env
    )
    assert imported.code == 0, imported.stderr
    plan_clips(station)
    with station.engine.begin() as connection:
        jobs = {
            row.step: row.id
            for row in connection.execute(select(processing_jobs.c.step, processing_jobs.c.id))
        }
        assert set(jobs) == {"probe", "proxy", "thumbnails", "timestamp"}
        connection.execute(  # the probe finished; its worker died before sending anything
            update(processing_jobs)
            .where(processing_jobs.c.id == jobs["probe"])
            .values(status=JobStatus.DONE, attempts=1)
        )
    toolkit = default_toolkit(station)

    first = deliver_job(station, jobs["probe"], toolkit, lease=LEASE)
    again = deliver_job(station, jobs["probe"], toolkit, lease=LEASE)

    for delivery in (first, again):
        assert (delivery.outcome.status, delivery.outcome.detail) == (
            JobStatus.DONE,
            "already claimed or finished",
        )
        assert delivery.look_again_in is None
        assert delivery.unlocked == sorted([jobs["proxy"], jobs["thumbnails"]])
    abandon(station, jobs["proxy"], attempts=1, silent_for=timedelta(0))  # a worker claims the proxy
    assert deliver_job(station, jobs["probe"], toolkit, lease=LEASE).unlocked == [jobs["thumbnails"]]
    # a job held by a live worker unlocks nothing yet: it is looked at again later
    held = deliver_job(station, jobs["proxy"], toolkit, lease=LEASE)
    assert held.look_again_in is not None and held.unlocked == []


class FailingAuthority(BlockingAuthority):
    """Held up like BlockingAuthority, then fails with the error given."""

    def __init__(self, real: Any, error: Exception) -> None:
        super().__init__(real)
        self.error = error

    def stamp(self, sha256: str) -> Any:
        super().stamp(sha256)
        raise self.error


def run_and_lose_the_claim(station: Station, job_id: int, toolkit: Any, held: BlockingAuthority) -> Any:
    """Run the job in a thread; while its step is held up, a second worker claims the job; then let the
    step go on. The first run's outcome (or exception)."""
    result: list[Any] = []

    def run() -> None:
        try:
            result.append(run_job(station, job_id, toolkit, lease=LEASE))
        except BaseException as exc:  # reported by the main thread
            result.append(exc)

    toolkit.timestamp_authority = held
    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert held.started.wait(timeout=60), "the first claim never started its step"
        claim_as_second_worker(station, job_id)
    finally:
        held.release.set()
        thread.join(timeout=60)
    assert not thread.is_alive()
    assert len(result) == 1, result
    return result[0]


def claim_as_second_worker(station: Station, job_id: int) -> None:
    """What a second worker's claim writes once the first one's lease ran out unrenewed (a database
    outage longer than the lease, a paused VM): the next attempt, running, from now."""
    with station.engine.begin() as connection:
        connection.execute(
            update(processing_jobs)
            .where(processing_jobs.c.id == job_id)
            .values(
                status=JobStatus.RUNNING, attempts=processing_jobs.c.attempts + 1, updated_at=station.clock()
            )
        )


def audit_actions(station_env: dict[str, str], action: str) -> list[Any]:
    events = run_cli(["audit", "log", "--action", action, "--json"], station_env)
    assert events.code == 0, events.stderr
    return list(json.loads(events.stdout)["events"])


def test_a_worker_that_lost_its_claim_leaves_the_job_and_its_result_to_the_new_claim(
    station: Station, station_env: dict[str, str], timestamp_job: int
) -> None:
    toolkit = default_toolkit(station)
    first = run_and_lose_the_claim(
        station, timestamp_job, toolkit, BlockingAuthority(toolkit.timestamp_authority)
    )

    assert isinstance(first, JobOutcome), first
    assert (first.status, first.detail) == (JobStatus.RUNNING, CLAIM_LOST)
    row = job_row(station, timestamp_job)
    assert (JobStatus(row.status), row.attempts) == (JobStatus.RUNNING, 2)  # still the second claim's
    with station.engine.connect() as connection:
        stamps = connection.scalars(select(timestamp_tokens.c.id)).all()
    assert stamps == []  # the first worker's result was rolled back with its status
    assert audit_actions(station_env, "clip.timestamped") == []


@pytest.mark.parametrize(
    ("error", "ends_as"),
    [
        (TransientError("the time-stamping authority did not answer"), JobStatus.PENDING),
        (PermanentError("the authority refused the request"), JobStatus.FAILED),
    ],
)
def test_a_worker_that_lost_its_claim_does_not_fail_or_requeue_the_job_under_the_new_claim(
    station: Station, station_env: dict[str, str], timestamp_job: int, error: Exception, ends_as: JobStatus
) -> None:
    toolkit = default_toolkit(station)
    first = run_and_lose_the_claim(
        station, timestamp_job, toolkit, FailingAuthority(toolkit.timestamp_authority, error)
    )

    # not raised for a retry either: the job is the second claim's to settle
    assert isinstance(first, JobOutcome), first
    assert (first.status, first.detail) == (JobStatus.RUNNING, CLAIM_LOST)
    row = job_row(station, timestamp_job)
    assert (JobStatus(row.status), row.attempts, row.last_error) == (JobStatus.RUNNING, 2, "")
    assert audit_actions(station_env, "processing.failed") == []

    # the same failure under a claim still held ends the job as it always did
    abandon(station, timestamp_job, attempts=1, silent_for=2 * LEASE)
    if isinstance(error, TransientError):
        with pytest.raises(TransientError):
            run_job(station, timestamp_job, toolkit, lease=LEASE)
    else:
        assert run_job(station, timestamp_job, toolkit, lease=LEASE).status is JobStatus.FAILED
    assert JobStatus(job_row(station, timestamp_job).status) is ends_as


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_database_restart_during_a_job_ends_in_a_retry_that_completes(
    station: Station, station_env: dict[str, str], timestamp_job: int, postgres_cluster: PostgresCluster
) -> None:
    """The database restarts while the worker records the job's result: the cut connection is a
    transient failure, so the job goes back to pending and the queue retries it (`_retry_transient`);
    the retry completes it. Not failed, not permanent, nothing half-recorded."""
    from workers.actors import _retry_transient

    restarts: list[str] = []

    def restart_while_recording(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
    ) -> None:
        # the step's transaction is open and about to write its result: cut it here, once
        if statement.lstrip().upper().startswith("INSERT INTO TIMESTAMP_TOKENS") and not restarts:
            restarts.append(statement)
            postgres_cluster.restart()

    event.listen(station.engine, "before_cursor_execute", restart_while_recording)
    try:
        with pytest.raises(TransientError) as raised:
            deliver_job(station, timestamp_job, default_toolkit(station), lease=LEASE)
    finally:
        event.remove(station.engine, "before_cursor_execute", restart_while_recording)

    assert len(restarts) == 1
    assert isinstance(raised.value.__cause__, DBAPIError)
    assert _retry_transient(0, raised.value)  # the actor hands it back to dramatiq for a later try
    row = job_row(station, timestamp_job)
    assert (JobStatus(row.status), row.attempts, row.permanent) == (JobStatus.PENDING, 1, False)
    assert clip_status(station, row.clip_id) is ClipStatus.PROCESSING
    with station.engine.connect() as connection:
        assert connection.scalars(select(timestamp_tokens.c.id)).all() == []
    assert audit_actions(station_env, "processing.failed") == []

    retried = deliver_job(station, timestamp_job, default_toolkit(station), lease=LEASE)

    assert (retried.outcome.status, retried.look_again_in) == (JobStatus.DONE, None)
    row = job_row(station, timestamp_job)
    assert (JobStatus(row.status), row.attempts, row.last_error) == (JobStatus.DONE, 2, "")
    assert clip_status(station, row.clip_id) is ClipStatus.READY
    with station.engine.connect() as connection:
        assert len(connection.scalars(select(timestamp_tokens.c.id)).all()) == 1
    assert len(audit_actions(station_env, "clip.timestamped")) == 1
