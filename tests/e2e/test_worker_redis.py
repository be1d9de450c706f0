"""`evidence worker` against a real Redis, as an operator runs it (R3, R4, R5).

A station configured with `EVIDENCE_PROCESSING_QUEUE=redis` imports a recorder's folder (three good clips
and one truncated file); the import offers the clips to the workers over Redis, and `evidence worker`
(dramatiq: two processes, two threads each) processes them. Then, against the same Redis and the same
running worker: the good clips are ready, with a proxy, thumbnails and a time-stamp, and linked to the
case document they cover (the hand-off to linking); the truncated one is `unplayable` with a warning,
listed by `evidence jobs --failed`, tried once and never again; the same messages delivered a second
time change nothing; `evidence jobs retry ID` runs the job once more through the queue; SIGTERM stops
the worker cleanly.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from evidence_store.bootstrap import Station
from evidence_store.db.tables import audit_events, clips, derivatives, processing_jobs, timestamp_tokens
from evidence_store.domain.model import Clip, ClipStatus, DerivativeKind, JobStatus, StoredTimestamp
from evidence_store.timestamping import TimestampToken, verify_token
from tests.conftest import REPO, run_cli
from tests.fixtures.media import make_video
from tests.fixtures.redis import RedisServer

pytestmark = pytest.mark.slow

CASE = "金普卫监罚〔2026〕12号"
SAMPLING_DOCUMENT = "JPWS-2026-0012-02"  # 2026-03-02 10:20-10:40, officers 310777 and 310778
GOOD = [f"DSJA1_310777_{stamp}_{seq:04d}.MP4" for seq, stamp in enumerate(["20260302102400",
        "20260302102800", "20260302103200"], start=1)]  # fmt: skip
TRUNCATED = "DSJA1_310777_20260302103600_0004.MP4"
LONG = "DSJA1_310777_20260302103800_0005.MP4"  # long enough to be mid-transcode when stopped
NAMESPACE = "evidence"  # workers.broker.make_broker
QUEUE = "processing"


def stage_recorder(root: Path, tmp_path: Path) -> None:
    """A recorder's folder: device-info file (its clock read now), three clips, one cut short."""
    now = datetime.now(ZoneInfo("Asia/Shanghai")).replace(tzinfo=None, microsecond=0)
    root.mkdir(parents=True)
    (root / "DeviceInfo.txt").write_text(
        f"Serial=DSJA1\nOfficer=310777\nUnit=金普新区卫生健康监督所\nTime={now:%Y-%m-%d %H:%M:%S}\n",
        encoding="utf-8",
    )
    media = root / "DCIM" / "100MEDIA"
    for name in GOOD:
        make_video(media / name, seconds=2, size="320x240", tag=f"worker-e2e-{name}")
    whole = make_video(tmp_path / "whole.mp4", seconds=3, size="320x240", tag="worker-e2e-truncated")
    (media / TRUNCATED).write_bytes(whole.read_bytes()[: whole.stat().st_size // 3])


class Worker:
    """`evidence worker` in a child process; dramatiq's log goes to a file."""

    def __init__(self, env: dict[str, str], log: Path, processes: int = 2, threads: int = 2) -> None:
        self.log = log
        self._handle = log.open("w")
        command = ["worker", "--processes", str(processes), "--threads", str(threads)]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "entrypoints", *command],
            env=env,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=self._handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: `kill_all` reaches dramatiq's workers and ffmpeg
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_until(self, condition: Callable[[], bool], what: str, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.proc.poll() is None, f"worker exited {self.proc.returncode}:\n{self.text()}"
            assert time.monotonic() < deadline, f"timed out waiting until {what}:\n{self.text()[-5000:]}"
            time.sleep(0.2)

    def kill_all(self) -> None:
        """SIGKILL to the whole process group (supervisor, worker processes, ffmpeg): a power cut."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self, timeout: float = 60) -> int | None:
        """SIGTERM, as systemd stops it; the exit code, or None if it had to be killed."""
        code: int | None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
            code = None
        self._handle.close()
        return code


@pytest.fixture
def queue_env(station_env: dict[str, str], redis_server: RedisServer) -> dict[str, str]:
    return {**station_env, "EVIDENCE_PROCESSING_QUEUE": "redis", "EVIDENCE_REDIS_URL": redis_server.url}


@pytest.fixture
def worker(queue_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    started: list[Worker] = []

    def start(**extra_env: str) -> Worker:
        started.append(Worker({**queue_env, **extra_env}, tmp_path / f"worker-{len(started)}.log"))
        return started[-1]

    yield start
    for running in started:  # a failed assertion must not leave a worker behind
        running.stop()


def queue_counts(redis: Any) -> dict[str, int]:
    """Messages waiting (main queue), scheduled for a retry (delay queue) and dead-lettered."""
    return {
        "waiting": redis.hlen(f"{NAMESPACE}:{QUEUE}.msgs"),
        "delayed": redis.hlen(f"{NAMESPACE}:{QUEUE}.DQ.msgs"),
        "dead": redis.hlen(f"{NAMESPACE}:{QUEUE}.XQ.msgs"),
    }


def unacked(redis: Any) -> int:
    """Messages a worker has taken and not yet acknowledged."""
    return sum(redis.scard(key) for key in redis.scan_iter(f"{NAMESPACE}:__acks__.*"))


def idle(redis: Any) -> bool:
    counts = queue_counts(redis)
    return counts["waiting"] == 0 and counts["delayed"] == 0 and unacked(redis) == 0


def clip_statuses(station: Station) -> dict[str, ClipStatus]:
    with station.engine.connect() as connection:
        return {
            row.original_name: ClipStatus(row.status)
            for row in connection.execute(select(clips.c.original_name, clips.c.status))
        }


def counts(station: Station) -> dict[str, int]:
    with station.engine.connect() as connection:
        return {
            name: connection.scalar(select(func.count()).select_from(table)) or 0
            for name, table in [
                ("derivatives", derivatives),
                ("timestamps", timestamp_tokens),
                ("jobs", processing_jobs),
                ("audit_events", audit_events),
            ]
        }


def jobs_of(station: Station) -> dict[int, tuple[str, str, int]]:
    """job id -> (step, status, attempts)."""
    with station.engine.connect() as connection:
        return {
            row.id: (row.step, str(row.status), row.attempts)
            for row in connection.execute(
                select(processing_jobs.c.id, processing_jobs.c.step, processing_jobs.c.status)
                .add_columns(processing_jobs.c.attempts)
                .order_by(processing_jobs.c.id)
            )
        }


def job_status(station: Station, name: str, step: str) -> JobStatus | None:
    with station.engine.connect() as connection:
        status = connection.scalar(
            select(processing_jobs.c.status)
            .join(clips, clips.c.id == processing_jobs.c.clip_id)
            .where(clips.c.original_name == name, processing_jobs.c.step == step)
        )
    return None if status is None else JobStatus(status)


def failed_jobs(env: dict[str, str]) -> list[dict[str, Any]]:
    listed = run_cli(["jobs", "--failed", "--json"], env)
    assert listed.code == 0, listed.stderr
    jobs: list[dict[str, Any]] = json.loads(listed.stdout)["failed_jobs"]
    return jobs


def audit_actions(env: dict[str, str], action: str) -> list[dict[str, Any]]:
    listed = run_cli(["audit", "log", "--action", action, "--limit", "1000", "--json"], env)
    assert listed.code == 0, listed.stderr
    events: list[dict[str, Any]] = json.loads(listed.stdout)["events"]
    return events


def linked_to(document: str, env: dict[str, str]) -> set[int]:
    shown = run_cli(["cases", "show", CASE, "--json"], env)
    assert shown.code == 0, shown.stderr
    return set({d["id"]: d["linked_clips"] for d in json.loads(shown.stdout)["documents"]}[document])


def test_worker_processes_imported_clips_over_redis(
    station: Station,
    queue_env: dict[str, str],
    redis_server: RedisServer,
    worker: Callable[[], Worker],
    tmp_path: Path,
    ffmpeg_available: None,
) -> None:
    from dramatiq import Message

    from workers.broker import make_broker

    redis = redis_server.client()
    cases = run_cli(["cases", "import", str(REPO / "docs" / "examples" / "cases-example.json")], queue_env)
    assert cases.code == 0, cases.stderr

    volume = tmp_path / "recorder"
    stage_recorder(volume, tmp_path)
    imported = run_cli(["import", str(volume), "--json"], queue_env, timeout=300)
    assert imported.code == 0, imported.stderr
    summary = json.loads(imported.stdout)
    assert summary["files_ingested"] == 4
    assert summary["files_attached"] == 1  # the device-info file is kept too, as an attachment
    # the import offered the clips to the workers over Redis, and nothing has processed them yet
    assert queue_counts(redis)["waiting"] == 1
    offered = [Message.decode(raw) for raw in redis.hvals(f"{NAMESPACE}:{QUEUE}.msgs")]
    assert [m.actor_name for m in offered] == ["plan_new_clips"]
    assert set(clip_statuses(station).values()) == {ClipStatus.INGESTED}
    assert linked_to(SAMPLING_DOCUMENT, queue_env) == set()  # linking waits for processing

    # a delivery that finds its job under another process's live lease looks again when that lease could
    # have run out (lease + a quarter): with the default 120 s lease the queue is empty only 150 s later
    running = worker(EVIDENCE_WORKER_LEASE_SECONDS="10")
    names = {*GOOD, TRUNCATED}  # DeviceInfo.txt is a sidecar: an attachment, never a clip (issue 17)
    settled = {ClipStatus.READY, ClipStatus.UNPLAYABLE, ClipStatus.FAILED}
    running.wait_until(
        lambda: (
            set(clip_statuses(station)) == names
            and set(clip_statuses(station).values()) <= settled
            and idle(redis)
        ),
        "every clip is processed and the queue is empty",
    )

    # each job ran once; besides, it was delivered at most once more (the worker's start-up sweep and the
    # import's message both send the jobs that can start at once), not once per other finished job
    deliveries = re.findall(
        r"job (\d+) \w+ of clip \d+: \w+( \(already claimed or finished\))?", running.text()
    )
    assert sorted(int(job) for job, again in deliveries if not again) == sorted(jobs_of(station))
    # a delivery that found its job running under a live lease sent itself once more, for when the lease
    # could have run out: those re-sends come on top, one each, and nothing else
    resent = re.findall(r"lease of job \d+ held by a live worker: looking again", running.text())
    assert len(deliveries) - len(resent) <= 2 * len(jobs_of(station)), (deliveries, resent)

    # good clips: ready, one proxy, one poster, one contact sheet, a verifiable time-stamp, an end time
    statuses = clip_statuses(station)
    assert {name: statuses[name] for name in GOOD} == dict.fromkeys(GOOD, ClipStatus.READY)
    assert statuses[TRUNCATED] is ClipStatus.UNPLAYABLE
    with station.sessions() as session:
        by_name = {c.original_name: c for c in session.scalars(select(Clip))}
        stamps = {s.clip_id: s for s in session.scalars(select(StoredTimestamp))}
    with station.engine.connect() as connection:
        kinds: dict[int, list[DerivativeKind]] = {}
        for row in connection.execute(select(derivatives.c.clip_id, derivatives.c.kind)):
            kinds.setdefault(row.clip_id, []).append(DerivativeKind(row.kind))
    for name in GOOD:
        clip = by_name[name]
        assert sorted(kinds[clip.id or 0]) == sorted(
            [DerivativeKind.PROXY, DerivativeKind.POSTER, DerivativeKind.CONTACT_SHEET]
        ), name
        assert clip.utc_end is not None and clip.utc_start is not None and clip.utc_end > clip.utc_start
        stamp = stamps[clip.id or 0]
        token = TimestampToken.from_stored(stamp)
        assert stamp.sha256 == clip.sha256
        assert verify_token(token, clip.sha256, station_public_key=station.key.public()).ok
    truncated = by_name[TRUNCATED]
    assert truncated.warnings, "the truncated clip carries a warning"
    assert (truncated.id or 0) not in kinds  # nothing could be derived from it ...
    assert (truncated.id or 0) in stamps  # ... but its bytes are time-stamped like any other (R3)

    # handed to case linking when processing ended (R5): the clips cover the sampling document
    assert {by_name[name].id for name in GOOD} <= linked_to(SAMPLING_DOCUMENT, queue_env)

    # the corrupt file's failures are visible, permanent, and were tried exactly once
    failed = failed_jobs(queue_env)
    assert {(j["original_name"], j["step"]) for j in failed} == {
        (TRUNCATED, "proxy"),
        (TRUNCATED, "thumbnails"),
    }
    assert all(j["permanent"] and j["attempts"] == 1 for j in failed), failed
    assert len(audit_actions(queue_env, "processing.failed")) == 2
    # no retry scheduled, nothing dead-lettered
    assert queue_counts(redis) == {"waiting": 0, "delayed": 0, "dead": 0}, running.text()
    assert all(attempts == 1 for _, _, attempts in jobs_of(station).values())

    # the same messages delivered again (a redelivery, a duplicate send) change nothing
    before_counts, before_jobs, before_statuses = counts(station), jobs_of(station), clip_statuses(station)
    broker = make_broker(redis_server.url)
    broker.declare_queue(QUEUE)
    log_before = len(running.text())
    for message in offered:
        broker.enqueue(message)
    for job_id in before_jobs:
        broker.enqueue(Message(QUEUE, "run_processing_job", (job_id,), {}, {}))
    running.wait_until(lambda: idle(redis), "the duplicates are consumed", timeout=120)
    log = running.text()[log_before:]
    assert f"planned 0 jobs for {len(names)} clips; 0 can start" in log, log
    for job_id in before_jobs:  # each one was delivered, and found its job settled
        assert re.search(rf"job {job_id} \w+ of clip \d+: \w+ \(already claimed or finished\)", log), job_id
    assert counts(station) == before_counts
    assert jobs_of(station) == before_jobs
    assert clip_statuses(station) == before_statuses
    assert queue_counts(redis)["dead"] == 0

    # an operator retries a failed job by id: it runs once more through the queue and fails again
    proxy_job = next(j["job_id"] for j in failed if j["step"] == "proxy")
    retried = run_cli(["jobs", "retry", str(proxy_job)], queue_env)
    assert retried.code == 0, retried.stderr
    assert f"job {proxy_job} queued again" in retried.stdout
    running.wait_until(
        lambda: len(audit_actions(queue_env, "processing.failed")) == 3 and idle(redis),
        "the retried job has run",
        timeout=120,
    )
    assert [e["details"]["job_id"] for e in audit_actions(queue_env, "processing.retried")] == [proxy_job]
    again = {j["job_id"]: j for j in failed_jobs(queue_env)}
    assert set(again) == {j["job_id"] for j in failed}
    assert again[proxy_job]["attempts"] == 1 and again[proxy_job]["permanent"]
    assert clip_statuses(station)[TRUNCATED] is ClipStatus.UNPLAYABLE
    assert jobs_of(station)[proxy_job] == (before_jobs[proxy_job][0], str(JobStatus.FAILED), 1)

    # SIGTERM while a proxy is being made: the worker finishes the job in hand, then exits cleanly
    later = tmp_path / "later"
    make_video(later / "DCIM" / "100MEDIA" / LONG, seconds=20, size="1280x720", tag="worker-e2e-long")
    imported = run_cli(
        ["import", str(later), "--device", "DSJA1", "--officer", "310777", "--json"], queue_env
    )
    assert imported.code == 0, imported.stderr
    running.wait_until(lambda: job_status(station, LONG, "proxy") == JobStatus.RUNNING, "the proxy starts")
    code = running.stop()
    log = running.text()
    assert code == 0, log
    assert "Traceback" not in log, log
    assert job_status(station, LONG, "proxy") == JobStatus.DONE
    assert unacked(redis) == 0  # nothing left taken and unacknowledged
    assert run_cli(["audit", "verify"], queue_env).code == 0


def proxies_of(station: Station, name: str) -> int:
    with station.engine.connect() as connection:
        return (
            connection.scalar(
                select(func.count())
                .select_from(derivatives)
                .join(clips, clips.c.id == derivatives.c.clip_id)
                .where(clips.c.original_name == name, derivatives.c.kind == DerivativeKind.PROXY)
            )
            or 0
        )


def job_attempts(station: Station, name: str, step: str) -> int | None:
    with station.engine.connect() as connection:
        return connection.scalar(
            select(processing_jobs.c.attempts)
            .join(clips, clips.c.id == processing_jobs.c.clip_id)
            .where(clips.c.original_name == name, processing_jobs.c.step == step)
        )


def test_a_worker_killed_mid_transcode_leaves_nothing_stuck(
    station: Station,
    queue_env: dict[str, str],
    redis_server: RedisServer,
    worker: Callable[..., Worker],
    tmp_path: Path,
    ffmpeg_available: None,
) -> None:
    """SIGKILL to the whole worker (no chance to clean up) while it transcodes: the proxy job is left
    `running`. Its lease (6 s here) is no longer renewed, so the restarted worker takes it up again:
    the clip ends `ready` with exactly one proxy, the job `done` on its second attempt."""
    redis = redis_server.client()
    lease = {"EVIDENCE_WORKER_LEASE_SECONDS": "6"}
    volume = tmp_path / "recorder"
    make_video(volume / "DCIM" / "100MEDIA" / LONG, seconds=20, size="1280x720", tag="worker-e2e-killed")
    imported = run_cli(
        ["import", str(volume), "--device", "DSJA1", "--officer", "310777", "--json"], queue_env
    )
    assert imported.code == 0, imported.stderr

    first = worker(**lease)
    first.wait_until(lambda: job_status(station, LONG, "proxy") == JobStatus.RUNNING, "the proxy starts")
    first.kill_all()
    # the messages the dead worker had taken and not acknowledged (dramatiq requeues them only after
    # its heartbeat timeout, at a random maintenance pass): known now, before another worker runs
    held_by_the_dead = {
        message_id for key in redis.scan_iter(f"{NAMESPACE}:__acks__.*") for message_id in redis.smembers(key)
    }
    # what a dead worker leaves: the job claimed, nothing derived, the clip still processing
    assert job_status(station, LONG, "proxy") == JobStatus.RUNNING
    assert job_attempts(station, LONG, "proxy") == 1
    assert proxies_of(station, LONG) == 0
    assert clip_statuses(station)[LONG] is ClipStatus.PROCESSING

    second = worker(**lease)
    second.wait_until(
        lambda: clip_statuses(station)[LONG] is ClipStatus.READY,
        "the restarted worker finishes the clip",
        timeout=300,
    )
    assert job_status(station, LONG, "proxy") == JobStatus.DONE
    assert job_attempts(station, LONG, "proxy") == 2
    assert proxies_of(station, LONG) == 1
    assert all(status == str(JobStatus.DONE) for _, status, _ in jobs_of(station).values()), jobs_of(station)
    assert failed_jobs(queue_env) == []
    # no message keeps looking at the settled job, none waits and none was dead-lettered. (The killed
    # worker's unacknowledged messages stay in Redis until dramatiq requeues them, after its heartbeat
    # timeout; delivered then, they find their jobs settled and do nothing. A delayed one stays in the
    # delay queue's message hash meanwhile, so those are not counted as scheduled; any other is.)

    def nothing_waits_or_is_scheduled() -> bool:
        scheduled = set(redis.hkeys(f"{NAMESPACE}:{QUEUE}.DQ.msgs")) - held_by_the_dead
        return redis.llen(f"{NAMESPACE}:{QUEUE}") == 0 and not scheduled

    second.wait_until(nothing_waits_or_is_scheduled, "no message waits or is scheduled", timeout=60)
    assert queue_counts(redis)["dead"] == 0
    code = second.stop()
    log = second.text()
    assert code == 0, log
    assert "Traceback" not in log, log
    assert run_cli(["audit", "verify"], queue_env).code == 0
