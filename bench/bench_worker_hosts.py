"""Clips per hour with one and with two worker hosts on one shared backend, against the CPU ceiling of
the machine (issue 18).

The office is made of network namespaces (tests/fixtures/netns.py): a backend namespace running
PostgreSQL, a single-node Ceph radosgw (Object Lock bucket) and Redis (started by the test fixtures' own
code, bound to the backend's address), a station host and two worker hosts, each running the real
`evidence` command in its own namespace with its own `EVIDENCE_HOME` (its own key, enrolled and
approved). Every run starts from a fresh database and bucket: the station imports `--clips` clips
(made once with ffmpeg and cached, as bench_pipeline_workers.py makes them) with the processing queue on
Redis (untimed), then `evidence worker --processes 1 --threads 1` is started on one or on both worker
hosts and timed until every clip is settled and every processing job finished in the database (probe,
proxy, poster, contact sheet, time-stamp, case linking; the originals read from and the derivatives
written to radosgw). The workers are then stopped (SIGTERM, untimed) and the result checked: every clip
ready with its three derivatives.

The variants alternate, the order rotated every round (bench/method.py). The table gives clips per hour
by the median wall time, the CPU use of the workers (their CPU seconds / (wall x CPUs)) and the
machine's ceiling: the clips per hour if every CPU did nothing but this work at the CPU cost per clip
measured in the same run. All "hosts" share this machine's CPUs, so a second worker host can add at
most what a second worker process on one host adds (bench_pipeline_workers.py). Warm: the originals
were just imported. Needs root, iproute2, PostgreSQL, Ceph and redis-server
(deploy/install-system-packages.sh test).

    .venv/bin/python bench/bench_worker_hosts.py                          # 5 rounds of 12 clips
    .venv/bin/python bench/bench_worker_hosts.py --clips 4 --rounds 1     # quick check
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import method  # noqa: E402  bench/method.py: the method every benchmark shares
from bench_pipeline_workers import make_clips  # noqa: E402  the same cached clips

WORKERS = ("worker1", "worker2")
SETTLED = ("ready", "unplayable", "failed")


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wait_settled(database_url: str, clips: int, deadline: float) -> None:
    """Until every clip is settled and no processing job is open (run inside a host's namespace)."""
    from sqlalchemy import bindparam, create_engine, text

    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        while True:
            with engine.connect() as connection:
                settled = connection.execute(
                    text("SELECT count(*) FROM clips WHERE lower(status::text) IN :settled").bindparams(
                        bindparam("settled", SETTLED, expanding=True)
                    )
                ).scalar_one()
                open_jobs = connection.execute(
                    text(
                        "SELECT count(*) FROM processing_jobs WHERE lower(status::text) NOT IN :ended"
                    ).bindparams(bindparam("ended", ("done", "failed"), expanding=True))
                ).scalar_one()
            if settled == clips and open_jobs == 0:
                return
            if time.monotonic() > deadline:
                raise SystemExit(f"{settled} of {clips} clips settled before the deadline")
            time.sleep(0.2)
    finally:
        engine.dispose()


def check_result(database_url: str, clips: int) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as connection:
            ready = connection.execute(
                text("SELECT count(*) FROM clips WHERE lower(status::text) = 'ready'")
            ).scalar_one()
            derived = connection.execute(text("SELECT count(*) FROM derivatives")).scalar_one()
    finally:
        engine.dispose()
    if ready != clips or derived != 3 * clips:
        raise SystemExit(f"unexpected result: {ready} of {clips} clips ready, {derived} derivatives")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clips", type=int, default=12, help="clips per run (default 12)")
    parser.add_argument("--seconds", type=int, default=4, help="length of each clip (default 4)")
    parser.add_argument("--size", default="1280x720", help="frame size of each clip")
    parser.add_argument("--dir", type=Path, default=Path("/work"), help="where the temporary directory goes")
    parser.add_argument("--media-cache", type=Path, default=Path("/tmp/evidence-bench-media"))
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed per run")
    method.add_method_options(parser)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("network namespaces need root")
    work = Path(tempfile.mkdtemp(prefix="evidence-bench-hosts-", dir=args.dir))
    try:
        return _bench(args, work)
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            subprocess.run(["rm", "-rf", str(work)], check=False)


def _bench(args: argparse.Namespace, work: Path) -> int:  # noqa: PLR0915  one office, set up in order
    from tests.fixtures.netns import in_namespace, office
    from tests.fixtures.postgres import PostgresCluster, _pg_bin
    from tests.fixtures.radosgw import running_radosgw
    from tests.fixtures.redis import running_redis

    clips = make_clips(args.media_cache, args.clips, args.seconds, args.size)
    cpus = os.cpu_count() or 1
    method.header(
        f"clips per hour, `evidence worker` on 1 and on 2 worker hosts, {args.clips} clips of "
        f"{args.seconds} s at {args.size}",
        args.rounds,
        [method.WARM],
    )
    bin_dir = _pg_bin()
    if bin_dir is None:
        raise SystemExit("PostgreSQL server binaries not installed")
    with office(["station", *WORKERS]) as hosts:
        where = {"address": hosts.backend.address, "namespace": hosts.backend.namespace}
        station_ns = hosts.hosts["station"].namespace
        cluster = PostgresCluster(bin_dir, **where)
        try:
            cluster.start()
            with running_radosgw(**where) as s3, running_redis(**where) as redis_server:
                common = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
                common.update(
                    {
                        "PYTHONPATH": str(ROOT),
                        "EVIDENCE_BLOB_STORE": "s3",
                        "EVIDENCE_S3_ENDPOINT_URL": s3.endpoint_url,
                        "EVIDENCE_S3_ACCESS_KEY_ID": s3.access_key_id,
                        "EVIDENCE_S3_SECRET_ACCESS_KEY": s3.secret_access_key,
                        "EVIDENCE_S3_DEFAULT_RETENTION_DAYS": "1",
                        "EVIDENCE_REDIS_URL": redis_server.url,
                        "EVIDENCE_PROCESSING_QUEUE": "redis",
                    }
                )
                state: dict[str, Any] = {"n": 0}

                def on(host: str, args_: list[str]) -> list[str]:
                    return [
                        "ip",
                        "netns",
                        "exec",
                        hosts.hosts[host].namespace,
                        sys.executable,
                        "-m",
                        "entrypoints",
                        *args_,
                    ]

                def evidence(host: str, args_: list[str]) -> str:
                    done = subprocess.run(on(host, args_), env=state["envs"][host], cwd=ROOT,
                                          capture_output=True, text=True, check=False)  # fmt: skip
                    if done.returncode != 0:
                        raise SystemExit(f"{host}: evidence {' '.join(args_)}: {done.stderr[-2000:]}")
                    return done.stdout

                def before(_name: str) -> None:
                    """A fresh database, bucket, homes and queue; the station imports the clips."""
                    state["n"] += 1
                    n = state["n"]
                    url = cluster.new_database()
                    state["url"] = url
                    state["envs"] = {
                        host: {
                            **common,
                            "EVIDENCE_HOME": str(work / f"run-{n}" / host),
                            "EVIDENCE_STATION_NAME": host,
                            "EVIDENCE_DATABASE_URL": url,
                            "EVIDENCE_S3_BUCKET": f"bench-hosts-{n}",
                        }
                        for host in ("station", *WORKERS)
                    }
                    in_namespace(station_ns, _flush_redis, redis_server.url)
                    evidence("station", ["init"])
                    for host in WORKERS:
                        evidence(host, ["init"])
                        evidence("station", ["stations", "approve", host])
                    folder = work / f"run-{n}" / "footage"
                    folder.mkdir(parents=True)
                    for clip in clips:
                        os.link(clip, folder / clip.name)
                    evidence("station", ["import", str(folder), "--device", "BENCH1", "--officer", "399001"])

                def processing(worker_hosts: tuple[str, ...]) -> dict[str, float]:
                    cpu_before = children_cpu_s()
                    started = time.perf_counter()
                    logs = [(work / f"run-{state['n']}" / f"{host}.log").open("w") for host in worker_hosts]
                    workers = [
                        subprocess.Popen(
                            on(host, ["worker", "--processes", "1", "--threads", "1"]),
                            env=state["envs"][host],
                            cwd=ROOT,
                            stdin=subprocess.DEVNULL,
                            stdout=log,
                            stderr=subprocess.STDOUT,
                            start_new_session=True,
                        )
                        for host, log in zip(worker_hosts, logs, strict=True)
                    ]
                    try:
                        in_namespace(
                            station_ns,
                            wait_settled,
                            state["url"],
                            len(clips),
                            time.monotonic() + args.timeout,
                        )
                        wall = time.perf_counter() - started
                    finally:
                        for worker in workers:
                            os.killpg(worker.pid, signal.SIGTERM)
                        for worker in workers:
                            worker.wait(timeout=120)
                        for log in logs:
                            log.close()
                    in_namespace(station_ns, check_result, state["url"], len(clips))
                    return {"wall": wall, "cpu": children_cpu_s() - cpu_before}

                variants = {
                    "1 worker host": lambda: processing(WORKERS[:1]),
                    "2 worker hosts": lambda: processing(WORKERS),
                }
                runs = method.run_rounds(
                    variants, args.rounds, before=before,
                    quiet_below=args.quiet_below, quiet_max_wait=args.quiet_max_wait,
                )  # fmt: skip
        finally:
            cluster.stop()

    print(f"\nwarm: the originals just imported; {cpus} CPUs shared by every namespace 'host'")
    rows = []
    medians: dict[str, float] = {}
    for name, values in runs.items():
        walls = method.spread(r.result["wall"] for r in values)
        cpu = statistics.median(r.result["cpu"] for r in values)
        per_hour = len(clips) * 3600 / walls.median
        ceiling = len(clips) * 3600 / (cpu / cpus)
        medians[name] = per_hour
        rows.append(
            [
                name,
                *walls.cells(1),
                f"{per_hour:,.0f}",
                f"{cpu / (walls.median * cpus):.0%}",
                f"{ceiling:,.0f}",
            ]
        )
    method.table(
        ["variant", "median s", "spread s", "best s", "clips/hour", "CPU use", "CPU ceiling clips/hour"], rows
    )
    print(f"two hosts / one host, by medians: {medians['2 worker hosts'] / medians['1 worker host']:.2f}x")
    method.footer()
    return 0


def _flush_redis(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushall()


if __name__ == "__main__":
    raise SystemExit(main())
