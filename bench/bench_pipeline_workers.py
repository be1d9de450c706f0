"""Benchmark: throughput of the whole processing pipeline, `evidence worker` with 2 processes against 1.

The real path, as on a station: a fresh station (SQLite, local store) and a fresh `redis-server` (own
port, own directory) per run; `evidence import FOLDER` of `--clips` short clips with
`EVIDENCE_PROCESSING_QUEUE=redis` (the import offers them over Redis; not timed); then
`evidence worker --processes N --threads T` is started and timed from its start until every clip is
settled (ready, unplayable or failed) and every processing job finished (done or failed) in the
database; messages still queued then are redundant deliveries and delayed re-checks of jobs already
finished (not waited for: one re-check is delayed 150 s; how many were left is printed): dramatiq
start-up, probe
(PyAV), proxy (ffmpeg, libx264 veryfast, 2 encoder threads), poster and contact sheet (ffmpeg),
station-signed time-stamp, the database and audit writes and the hand-off to case linking, for every
clip. The worker is then stopped with SIGTERM (not timed) and the result checked: every clip ready,
three derivatives and one time-stamp each, no failed job.

The clips are made once with ffmpeg (testsrc2 + sine, libx264 veryfast CRF 23, AAC; `--seconds` at
`--size`, 30 fps) and cached in `--media-cache`; the copies differ only by a metadata tag (`-c copy`),
so each is a distinct original. By the method of bench/method.py: the variants (`--processes 1,2`)
alternate, the order rotated every round (`--rounds`, default 5; about 10 minutes per round at the
default size on 2 cores); the table gives the median and the spread (min-max) of each, the best as an
extra column, and the speed-up by medians. Cache: as the import leaves the originals and the database
(the store writes whole chunks with O_DIRECT; small files, partial chunks and SQLite go through the page
cache; the share of the station's home resident when the worker starts is printed), which is what a
worker meets. CPU seconds are those of the worker and everything it started
(RUSAGE_CHILDREN, read after it has exited); "CPU use" is CPU seconds / (wall seconds x CPUs). The
load average and CPU pressure are printed before and after.

Usage: flock /tmp/evidence-bench.lock .venv/bin/python bench/bench_pipeline_workers.py
       [--clips 100] [--seconds 6] [--size 1280x720] [--processes 1,2] [--threads 1] [--rounds 5]
       [--dir /work] [--media-cache DIR] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

import method  # noqa: E402  (bench/method.py: the method every benchmark shares)

SETTLED = ("ready", "unplayable", "failed")
NAMESPACE, QUEUE = "evidence", "processing"  # workers.broker, workers.actors


@dataclass
class Run:
    processes: int
    wall_s: float
    cpu_s: float
    clips: int
    resident: str = ""  # how much of the station's home was in the page cache when the worker started
    messages_left: int = 0  # redundant messages still queued when every job had finished (not waited for)


def parse_options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clips", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=6, help="length of each clip")
    parser.add_argument("--size", default="1280x720", help="frame size of each clip")
    parser.add_argument("--processes", default="1,2", help="worker process counts to compare")
    parser.add_argument("--threads", type=int, default=1, help="threads per worker process")
    parser.add_argument("--dir", default="/work", help="where the temporary directory goes")
    parser.add_argument("--media-cache", default="/tmp/evidence-bench-media", help="where clips are cached")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds allowed per run")
    method.add_method_options(parser)
    return parser.parse_args()


# -- media ------------------------------------------------------------------------------------------------


def make_clips(cache: Path, count: int, seconds: int, size: str) -> list[Path]:
    """`count` distinct clips of the same picture, made once and cached."""
    directory = cache / f"pipeline-{seconds}s-{size}"
    directory.mkdir(parents=True, exist_ok=True)
    source = directory / "source.mp4"
    if not source.exists():
        partial = directory / "source.part.mp4"
        subprocess.run(
            [
                *("ffmpeg", "-nostdin", "-y", "-loglevel", "error"),
                *("-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30"),
                *("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"),
                *("-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast", "-crf", "23"),
                *("-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", "2", str(partial)),
            ],
            check=True,
        )
        partial.rename(source)
    clips = []
    for n in range(1, count + 1):
        clip = directory / f"clip-{n:04d}.mp4"
        if not clip.exists():
            partial = directory / f"clip-{n:04d}.part.mp4"
            subprocess.run(
                [
                    *("ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-i", str(source)),
                    *("-c", "copy", "-metadata", f"comment=bench-pipeline-{n}", str(partial)),
                ],
                check=True,
            )
            partial.rename(clip)
        clips.append(clip)
    return clips


# -- a station and its Redis ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_redis(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    import redis

    directory.mkdir(parents=True)
    port = free_port()
    process = subprocess.Popen(
        [
            *("redis-server", "--bind", "127.0.0.1", "--port", str(port), "--dir", str(directory)),
            *("--save", "", "--appendonly", "no", "--logfile", str(directory / "redis.log")),
        ],
        stdin=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    for _ in range(200):
        try:
            client.ping()
            return process, url
        except redis.ConnectionError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"redis-server did not start on port {port}")


def station_env(home: Path, redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
    env.update(
        {
            "EVIDENCE_HOME": str(home),
            "EVIDENCE_DATABASE_URL": f"sqlite:///{home / 'evidence.db'}",
            "EVIDENCE_STATION_NAME": "bench-station",
            "EVIDENCE_PROCESSING_QUEUE": "redis",
            "EVIDENCE_REDIS_URL": redis_url,
        }
    )
    return env


def evidence(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "entrypoints", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"evidence {' '.join(args)} exited {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout


def settled_clips(database: Path) -> tuple[int, int, int]:
    """(clips settled, clips on record, processing jobs not finished), read straight from SQLite."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as connection:
        row = connection.execute(
            "SELECT sum(lower(status) IN (?, ?, ?)), count(*) FROM clips", SETTLED
        ).fetchone()
        open_jobs = connection.execute(
            "SELECT count(*) FROM processing_jobs WHERE lower(status) NOT IN ('done', 'failed')"
        ).fetchone()[0]
    return int(row[0] or 0), int(row[1]), int(open_jobs)


def queue_state(redis_url: str) -> tuple[int, int]:
    """(messages ready or in a worker's hands, messages delayed) in the processing queue."""
    import redis

    client = redis.Redis.from_url(redis_url)
    ready = client.hlen(f"{NAMESPACE}:{QUEUE}.msgs")
    delayed = client.hlen(f"{NAMESPACE}:{QUEUE}.DQ.msgs")
    unacked = sum(client.scard(key) for key in client.scan_iter(f"{NAMESPACE}:__acks__.*"))
    return ready + unacked, delayed


def check_result(database: Path, clips: int) -> None:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        statuses = dict(connection.execute("SELECT lower(status), count(*) FROM clips GROUP BY 1").fetchall())
        derived = connection.execute("SELECT count(*) FROM derivatives").fetchone()[0]
        stamps = connection.execute("SELECT count(*) FROM timestamp_tokens").fetchone()[0]
        failed = connection.execute(
            "SELECT count(*) FROM processing_jobs WHERE lower(status) = 'failed'"
        ).fetchone()[0]
    expected = {"ready": clips}
    if statuses != expected or derived != 3 * clips or stamps != clips or failed:
        raise RuntimeError(
            f"unexpected result: clips {statuses}, {derived} derivatives, {stamps} time-stamps, "
            f"{failed} failed jobs"
        )


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def one_run(work: Path, clips: list[Path], processes: int, threads: int, timeout: float) -> Run:
    """Import the clips into a fresh station and Redis, then time `evidence worker` processing them."""
    redis_process, redis_url = start_redis(work / "redis")
    try:
        home = work / "home"
        env = station_env(home, redis_url)
        evidence(["init"], env)
        folder = work / "footage"
        folder.mkdir()
        for clip in clips:
            os.link(clip, folder / clip.name)
        summary = json.loads(
            evidence(["import", str(folder), "--device", "BENCH1", "--officer", "399001", "--json"], env)
        )
        if summary["files_ingested"] != len(clips):
            raise RuntimeError(f"imported {summary['files_ingested']} of {len(clips)} clips")
        database = home / "evidence.db"
        resident = method.resident_share(home)
        log = (work / "worker.log").open("w")
        cpu_before = children_cpu_s()
        started = time.perf_counter()
        command = ["worker", "--processes", str(processes), "--threads", str(threads)]
        worker = subprocess.Popen(
            [sys.executable, "-m", "entrypoints", *command],
            env=env,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = started + timeout
            left = 0
            while True:
                settled, total, open_jobs = settled_clips(database)
                # Done when every clip is settled and every job finished. Messages left then are
                # redundant: a re-check of a job whose lease another process held is delayed 150 s
                # ("looking again in 150 s") and a worker holds it unacknowledged until then; waiting
                # for the queue to empty added 150 s of nothing to 2 of 3 two-process runs of 4 clips.
                if settled == total == len(clips) and open_jobs == 0:
                    left = sum(queue_state(redis_url))
                    break
                if worker.poll() is not None:
                    raise RuntimeError(f"the worker exited {worker.returncode}; see {work / 'worker.log'}")
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"{settled} of {len(clips)} clips settled after {timeout} s")
                time.sleep(0.2)
            wall = time.perf_counter() - started
        finally:
            worker.send_signal(signal.SIGTERM)
            code = worker.wait(timeout=120)
            log.close()
        cpu = children_cpu_s() - cpu_before  # the worker has exited: its children's CPU is counted too
        if code != 0:
            raise RuntimeError(f"the worker exited {code} on SIGTERM; see {work / 'worker.log'}")
        check_result(database, len(clips))
        return Run(processes, wall, cpu, len(clips), resident, left)
    finally:
        redis_process.terminate()
        redis_process.wait(timeout=30)


def report(runs: list[Run], cpus: int, threads: int, rounds: int) -> None:
    """Median and spread of each variant, the best as an extra column; the speed-up by medians."""
    by_processes: dict[int, list[Run]] = {}
    for run in runs:
        by_processes.setdefault(run.processes, []).append(run)
    first = min(by_processes)
    baseline = method.spread(r.wall_s for r in by_processes[first])
    resident = sorted({r.resident for r in runs})
    print(
        f"\n{rounds} alternating rounds; originals as the import left them ({', '.join(resident)} of the "
        "station's home in the page cache when the worker started):"
    )
    rows = []
    for processes, group in sorted(by_processes.items()):
        s = method.spread(r.wall_s for r in group)
        cpu = method.spread(r.cpu_s for r in group).median
        rows.append(
            [
                f"{processes} x {threads}",
                str(group[0].clips),
                *s.cells(digits=1),
                f"{group[0].clips / s.median:.2f}",
                f"{baseline.median / s.median:.2f}x",
                f"{baseline.best / s.best:.2f}x",
                f"{cpu:.1f}",
                f"{cpu / (s.median * cpus) * 100:.0f}%",
            ]
        )
    method.table(
        [
            "worker processes x threads",
            "clips",
            "wall median s",
            "min-max s",
            "best s",
            "clips/s (median)",
            f"speed-up vs {first} (medians)",
            "speed-up (best)",
            "CPU s (median)",
            f"CPU use of {cpus} cores",
        ],
        rows,
        [False, *[True] * 9],
    )


def main() -> int:
    options = parse_options()
    variants = [int(p) for p in options.processes.split(",")]
    for tool in ("ffmpeg", "redis-server"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed", file=sys.stderr)
            return 2
    cpus = os.cpu_count() or 1
    version = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, check=True).stdout
    print(f"{version.splitlines()[0]}; {cpus} CPUs; Python {sys.version.split()[0]}")
    print(
        f"making {options.clips} clips of {options.seconds} s at {options.size} "
        f"(cached in {options.media_cache}) ...",
        flush=True,
    )
    clips = make_clips(Path(options.media_cache), options.clips, options.seconds, options.size)
    size_mb = sum(c.stat().st_size for c in clips) / 1e6
    print(f"  {len(clips)} clips, {size_mb:.1f} MB, {options.clips * options.seconds} s of footage")

    work = Path(tempfile.mkdtemp(prefix="bench-pipeline-", dir=options.dir))
    runs: list[Run] = []
    try:
        method.header("processing pipeline, evidence worker", options.rounds, ["as the import leaves it"])
        for round_number in range(options.rounds):
            for processes in method.round_order(variants, round_number):
                run_dir = work / f"round{round_number + 1}-p{processes}"
                run_dir.mkdir()
                run = one_run(run_dir, clips, processes, options.threads, options.timeout)
                runs.append(run)
                print(
                    f"  round {round_number + 1}: {processes} process(es) x {options.threads} thread(s): "
                    f"{run.wall_s:7.1f} s wall, {run.cpu_s:7.1f} s CPU, "
                    f"{run.clips / run.wall_s:.2f} clips/s, {run.messages_left} redundant message(s) left "
                    f"(load average {os.getloadavg()[0]:.2f})",
                    flush=True,
                )
                if not options.keep:
                    shutil.rmtree(run_dir, ignore_errors=True)
        method.footer()
        report(runs, cpus, options.threads, options.rounds)
        return 0
    finally:
        if options.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
