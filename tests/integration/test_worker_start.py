"""`evidence worker` at start (R3, R4): work whose message was lost (Redis was down during the import, a
worker died holding a job) is found in the database and sent again; with Redis down, the command stops
with one clear line before anything is planned."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from dramatiq import Message
from sqlalchemy import select, update

from evidence_store.bootstrap import Station
from evidence_store.db.tables import clips, processing_jobs
from evidence_store.domain.model import ClipStatus, JobStatus
from tests.conftest import REPO, run_cli
from tests.fixtures.redis import RedisServer
from tests.fixtures.services import free_port
from workers.planning import plan_clips

NAMESPACE, QUEUE = "evidence", "processing"  # workers.broker.NAMESPACE, workers.actors.QUEUE

OFFER = """
from entrypoints.wiring import sending_actors
from evidence_store.bootstrap import open_station
from evidence_store.settings import load_settings
from workers.queue import offer_waiting_work

settings = load_settings()
station = open_station(settings)
print(*offer_waiting_work(station, sending_actors(settings)))
station.close()
"""


def import_files(env: dict[str, str], volume: Path, files: dict[str, bytes]) -> None:
    volume.mkdir()
    for name, content in files.items():
        (volume / name).write_bytes(content)
    imported = run_cli(["import", str(volume), "--device", "DSJ7", "--officer", "310777", "--json"], env)
    assert imported.code == 0, imported.stderr


def clip_ids(station: Station) -> dict[str, int]:
    with station.engine.connect() as connection:
        return {
            row.original_name: row.id for row in connection.execute(select(clips.c.original_name, clips.c.id))
        }


def clip_statuses(station: Station) -> dict[str, ClipStatus]:
    with station.engine.connect() as connection:
        return {
            row.original_name: ClipStatus(row.status)
            for row in connection.execute(select(clips.c.original_name, clips.c.status))
        }


def job_ids(station: Station) -> dict[tuple[int, str], int]:
    with station.engine.connect() as connection:
        return {
            (row.clip_id, row.step): row.id
            for row in connection.execute(
                select(processing_jobs.c.clip_id, processing_jobs.c.step, processing_jobs.c.id)
            )
        }


def test_worker_start_sends_work_whose_message_was_lost(
    station: Station, station_env: dict[str, str], redis_server: RedisServer, tmp_path: Path
) -> None:
    # imported while nothing was offered to the workers (as when Redis was down)
    import_files(station_env, tmp_path / "volume", {"clip.mp4": b"not a video" * 100, "notes.txt": b"x"})
    ids = clip_ids(station)
    plan_clips(station, [ids["clip.mp4"]])  # the video's jobs were planned ...
    before = job_ids(station)
    probe = before[(ids["clip.mp4"], "probe")]
    with station.engine.begin() as connection:  # ... and its probe's worker died holding it
        connection.execute(
            update(processing_jobs).where(processing_jobs.c.id == probe).values(status=JobStatus.RUNNING)
        )
    assert clip_statuses(station)["notes.txt"] is ClipStatus.INGESTED  # never planned
    redis = redis_server.client()

    child = subprocess.run(
        [sys.executable, "-c", OFFER],
        env={**station_env, "EVIDENCE_PROCESSING_QUEUE": "redis", "EVIDENCE_REDIS_URL": redis_server.url},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert child.returncode == 0, child.stderr
    jobs = job_ids(station)
    assert set(jobs) - set(before) == {(ids["notes.txt"], "timestamp")}  # the waiting clip was planned
    assert clip_statuses(station)["notes.txt"] is ClipStatus.PROCESSING
    expected = {
        jobs[(ids["notes.txt"], "timestamp")],  # can start
        jobs[(ids["clip.mp4"], "timestamp")],  # can start
        probe,  # left running: claimed again once its lease runs out
    }
    assert child.stdout.split() == ["1", str(len(expected))]
    sent = [Message.decode(raw) for raw in redis.hvals(f"{NAMESPACE}:{QUEUE}.msgs")]
    assert {m.actor_name for m in sent} == {"run_processing_job"}
    assert sorted(m.args[0] for m in sent) == sorted(expected)  # not the proxy nor the thumbnails yet


def test_worker_start_with_redis_down_fails_in_one_line_and_plans_nothing(
    station: Station, station_env: dict[str, str], tmp_path: Path
) -> None:
    down = {
        **station_env,
        "EVIDENCE_PROCESSING_QUEUE": "redis",
        "EVIDENCE_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
    }
    # the import does not fail over it: the clip waits, `ingested`
    import_files(down, tmp_path / "volume", {"notes.txt": b"x"})
    assert clip_statuses(station) == {"notes.txt": ClipStatus.INGESTED}

    started = run_cli(["worker", "--processes", "1", "--threads", "1"], down, timeout=120)

    assert started.code == 3, (started.stdout, started.stderr)  # EXIT_FAILED
    assert "cannot reach Redis" in started.stderr, started.stderr
    assert "Traceback" not in started.stderr, started.stderr
    assert clip_statuses(station) == {"notes.txt": ClipStatus.INGESTED}
    assert job_ids(station) == {}


def test_jobs_retry_with_redis_down_says_why_the_job_was_not_sent(
    station: Station, station_env: dict[str, str], tmp_path: Path
) -> None:
    down = {
        **station_env,
        "EVIDENCE_PROCESSING_QUEUE": "redis",
        "EVIDENCE_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
    }
    import_files(down, tmp_path / "volume", {"notes.txt": b"x"})
    plan_clips(station, [clip_ids(station)["notes.txt"]])
    (job,) = job_ids(station).values()
    with station.engine.begin() as connection:
        connection.execute(
            update(processing_jobs).where(processing_jobs.c.id == job).values(status=JobStatus.FAILED)
        )

    retried = run_cli(["jobs", "retry", str(job)], down)

    assert retried.code == 0, (retried.stdout, retried.stderr)
    assert f"job {job} is pending again" in retried.stdout
    # the reason is reported, not dropped: the operator sees Redis is the problem
    assert "not sent to the workers" in retried.stdout and "Connection refused" in retried.stdout, (
        retried.stdout
    )
    with station.engine.connect() as connection:
        status = connection.execute(select(processing_jobs.c.status).where(processing_jobs.c.id == job))
        assert status.scalar_one() == JobStatus.PENDING
