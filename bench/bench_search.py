"""Benchmark: clip search (issue 8) at 1,000,000 clips, on SQLite and PostgreSQL.

Fills a fresh station (initialise() in a temporary EVIDENCE_HOME; PostgreSQL in a throw-away cluster
like the tests') with synthetic rows, fast, through SQLAlchemy Core executemany in batches:
500 officers in 10 units, 500 recorders, 20,000 transfers, `--clips` clips spread over two years,
20,000 cases (5 % confidential, in various units) with 40,000 documents and 200,000 clip links, and
157,000 open compliance flags on clips of three kinds (150,000 / 5,000 / 2,000). PostgreSQL gets a
VACUUM ANALYZE after the load (autovacuum does both after a bulk insert on a live station) and keeps
the test cluster's settings (shared_buffers 128 MB); SQLite is searched as it ships (no ANALYZE).

Then times `evidence_store.queries.search.search_clips` - the very function the API, the pages and
`evidence clips search` call, with the confidentiality clause of a custodian of one unit and the page
description (thumbnails, officers, flags, cases) included - for random instances of each query kind:

  officer+time   one officer, a 30-day window, newest first, 50 rows
  case number    the clips of one case, newest first
  flag           clips with an open flag of one kind (a common, a rare, a very rare kind), newest first
  (later pages)  officer and flag on pages 2-10, reached by cursor
  (extras)       late handovers (2 % of clips, the clip's own fact) pages 1-3; sha256 prefix of 6 hex
                 digits; the newest page with no filter

Method (bench/method.py): ``--queries`` queries of each kind in ``--rounds`` blocks (each a fresh
process), the kinds alternating query by query (the order rotated each time), so a busy moment of the
machine spreads over all of them; p50 (the median), p95, the spread (min-max). ``--cache cold|warm|both``
(default both): **cold** before every query (untimed) a fresh connection and the database's pages
dropped from the page cache (SQLite: fsync and ``posix_fadvise(DONTNEED)`` on the database file and its
WAL; PostgreSQL: the server stopped, its database directory and shared catalogs dropped the same way,
the server started again and waited for - its shared_buffers are emptied only so; ``--no-pg-restart``
drops the OS cache only). What is timed after a restart: opening the connection (a new backend) and the
search, including loading the catalog caches the restart emptied (some milliseconds per table a search
touches); the restart itself is not timed. **warm**: 5 untimed queries per block first, then what the
previous queries left. On PostgreSQL each working copy gets a VACUUM ANALYZE after its code migrated it
(as autovacuum soon does on a live station), both variants alike.

Targets (judged by p95): warm, p95 <= 100 ms on SQLite and <= 50 ms on PostgreSQL (issue 8); cold,
p95 <= 100 ms on both (issue 21), for the three named kinds and the officer and flag kinds on later
pages.

Usage: .venv/bin/python bench/bench_search.py [--clips 1000000] [--queries 200] [--backends sqlite,postgresql]
       [--cache both] [--dir /work] [--keep] [--check]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
if os.environ.get("BENCH_SEARCH_CODE"):  # a worker timing another checkout's code (--against)
    sys.path.insert(0, os.environ["BENCH_SEARCH_CODE"])

import method  # bench/method.py: the method every benchmark shares

from evidence_store.bootstrap import Station, initialise, open_station
from evidence_store.db.tables import (
    cases,
    clip_links,
    clips,
    compliance_flags,
    devices,
    documents,
    officers,
    transfers,
)
from evidence_store.domain.access import Role, User
from evidence_store.domain.model import (
    CaseCategory,
    ClipStatus,
    ClockStatus,
    Confidentiality,
    LinkOrigin,
    MediaType,
    RetentionPeriod,
    TransferOutcome,
    TransferSource,
)
from evidence_store.queries.search import ClipQuery, search_clips
from evidence_store.settings import load_settings

BATCH = 20_000
OFFICERS = 500
UNITS = [f"单位{i:02d}" for i in range(10)]
DEVICES = 500
TRANSFERS = 20_000
CASES = 20_000
DOCUMENTS = 40_000
LINKS = 200_000
FLAG_KINDS = {"unassigned_footage": 150_000, "starts_late": 5_000, "coverage_gap": 2_000}
EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
SPAN = timedelta(days=730)
TARGET_MS = {("sqlite", "warm"): 100.0, ("postgresql", "warm"): 50.0}
TARGET_COLD_MS = 100.0  # issue 21 item 5, both databases
NAMED_KINDS = ("officer+time", "case number", "flag", "officer, pages 2-10", "flag, pages 2-10")


def batches(rows: Iterator[dict[str, Any]], size: int = BATCH) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def load(engine: Engine, table: Any, rows: Iterator[dict[str, Any]]) -> int:
    count = 0
    for batch in batches(rows):
        with engine.begin() as connection:
            connection.execute(insert(table), batch)
        count += len(batch)
    return count


def fill(station: Station, n_clips: int, rng: random.Random) -> dict[str, Any]:
    engine = station.engine
    started = time.perf_counter()
    officer_rows = (
        {"badge_number": f"{100000 + i}", "name": f"警员{i}", "unit": UNITS[i % len(UNITS)], "active": True}
        for i in range(OFFICERS)
    )
    load(engine, officers, officer_rows)
    device_rows = (
        {"serial": f"DSJ-{i:05d}", "model": "DSJ-X", "vendor": "", "profile": "cn-standard"}
        for i in range(DEVICES)
    )
    load(engine, devices, device_rows)
    load(
        engine,
        transfers,
        (
            {
                "source": TransferSource.DOCK,
                "device_id": rng.randrange(DEVICES) + 1,
                "officer_id": rng.randrange(OFFICERS) + 1,
                "started_at": EPOCH + SPAN * rng.random(),
                "outcome": TransferOutcome.COMPLETE,
                "problems": [],
            }
            for _ in range(TRANSFERS)
        ),
    )

    def clip_rows() -> Iterator[dict[str, Any]]:
        for i in range(n_clips):
            officer = rng.randrange(OFFICERS) + 1
            start = EPOCH + SPAN * rng.random()
            duration = rng.uniform(30, 1800)
            yield {
                "sha256": rng.randbytes(32).hex(),
                "size": rng.randrange(1_000_000, 2_000_000_000),
                "media_type": MediaType.VIDEO if i % 20 else MediaType.PHOTO,
                "original_name": f"FILE{i:07d}.MP4",
                "device_path": f"/DCIM/100MEDIA/FILE{i % 10_000:04d}.MP4",
                "device_id": officer,
                "officer_id": officer,
                "transfer_id": rng.randrange(TRANSFERS) + 1,
                "utc_start": start,
                "utc_end": start + timedelta(seconds=duration),
                "clock_status": ClockStatus.MEASURED,
                "duration_s": duration,
                "status": ClipStatus.READY if i % 50 else ClipStatus.FAILED,
                "ingested_at": start + timedelta(hours=rng.uniform(1, 30)),
                "late_handover": rng.random() < 0.02,
                "media_info": {},
                "warnings": [],
            }

    load(engine, clips, clip_rows())
    levels = [Confidentiality.NORMAL] * 19 + [Confidentiality.PERSONAL_PRIVACY]
    load(
        engine,
        cases,
        (
            {
                "number": f"卫监-{2025 + i % 2}-{i:06d}",
                "title": "",
                "category": list(CaseCategory)[i % len(CaseCategory)],
                "subject": "",
                "unit": UNITS[i % len(UNITS)],
                "officer_ids": [rng.randrange(OFFICERS) + 1],
                "opened_at": EPOCH + SPAN * rng.random(),
                "retention_period": RetentionPeriod.YEARS_10,
                "confidentiality": levels[i % len(levels)],
            }
            for i in range(CASES)
        ),
    )
    load(
        engine,
        documents,
        (
            {
                "external_id": f"DOC-{i:07d}",
                "case_id": i % CASES + 1,
                "kind": "现场检查笔录",
                "title": "",
                "officer_ids": [],
                "start": EPOCH + SPAN * rng.random(),
                "requires_video": True,
            }
            for i in range(DOCUMENTS)
        ),
    )
    now = datetime.now(UTC)
    load(
        engine,
        clip_links,
        (
            {
                "clip_id": rng.randrange(n_clips) + 1,
                "case_id": i % CASES + 1,
                "document_id": i % DOCUMENTS + 1,
                "origin": LinkOrigin.AUTO,
                "is_evidence": False,
                "uncertain": False,
                "reason": "",
                "created_by": "auto-linking",
                "created_at": now,
                "removed_by": "",
            }
            for i in range(LINKS)
        ),
    )
    scaled = {kind: max(1, count * n_clips // 1_000_000) for kind, count in FLAG_KINDS.items()}
    flagged = rng.sample(range(1, n_clips + 1), sum(scaled.values()))
    kinds = [kind for kind, count in scaled.items() for _ in range(count)]
    load(
        engine,
        compliance_flags,
        (
            {"kind": kind, "clip_id": clip_id, "details": {}, "opened_at": now, "updated_at": now}
            for kind, clip_id in zip(kinds, flagged, strict=True)
        ),
    )
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    return {"seconds": time.perf_counter() - started}


def measure_block(
    station: Station,
    user: User,
    kinds: dict[str, Callable[[random.Random], ClipQuery]],
    first: int,
    n: int,
    warmup: int,
    drop: Callable[[], None] | None,
) -> dict[str, Any]:
    """Queries `first` .. `first + n - 1` of each kind (the same instances whatever code runs them),
    after `warmup` untimed ones, the kinds alternating query by query; `drop` (cold) runs before each
    query, untimed."""
    rngs = {name: random.Random(f"{name}:{first}") for name in kinds}
    times: dict[str, list[float]] = {name: [] for name in kinds}
    rows: dict[str, list[int]] = {name: [] for name in kinds}
    for i in range(n + warmup):
        for name in method.round_order(list(kinds), first + i):
            query = kinds[name](rngs[name])
            if query.offset and KEYSET:
                query = as_keyset(station, query, user)
            if drop is not None:
                drop()
            started = time.perf_counter()
            with station.engine.connect() as connection:
                page = search_clips(connection, query, user)
            elapsed = (time.perf_counter() - started) * 1000
            if i >= warmup:
                times[name].append(elapsed)
                rows[name].append(len(page.hits))
    return {"times": times, "rows": rows}


# code that pages by cursor (ClipQuery.after, issue 21) reaches a later page the way its pages link to it
KEYSET = "after" in ClipQuery.__dataclass_fields__


def as_keyset(station: Station, query: ClipQuery, user: User) -> ClipQuery:
    """The same page reached by the cursor of the page before it (looked up untimed, before the drop)."""
    before = dataclasses.replace(query, offset=query.offset - query.limit)
    with station.engine.connect() as connection:
        cursor = search_clips(connection, before, user).next_after  # type: ignore[attr-defined]
    return dataclasses.replace(query, offset=0, after=cursor)  # type: ignore[call-arg]


def summary(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    s = method.spread(values)
    return {"p50": s.median, "p95": values[max(0, int(len(values) * 0.95) - 1)], "min": s.low, "max": s.high}


def query_kinds(n_clips: int) -> dict[str, Callable[[random.Random], ClipQuery]]:
    def officer_time(rng: random.Random) -> ClipQuery:
        start = EPOCH + SPAN * rng.random()
        return ClipQuery(
            officer=f"{100000 + rng.randrange(OFFICERS)}",
            start_from=start,
            start_to=start + timedelta(days=30),
        )

    def case_number(rng: random.Random) -> ClipQuery:
        i = rng.randrange(CASES)
        return ClipQuery(case_number=f"卫监-{2025 + i % 2}-{i:06d}")

    def flag(rng: random.Random) -> ClipQuery:
        return ClipQuery(flag=rng.choice(list(FLAG_KINDS)))

    def late(rng: random.Random) -> ClipQuery:
        return ClipQuery(flag="late_handover", offset=rng.randrange(0, 3) * 50)

    def sha_prefix(rng: random.Random) -> ClipQuery:
        return ClipQuery(sha256_prefix=rng.randbytes(3).hex())

    def newest(rng: random.Random) -> ClipQuery:
        return ClipQuery(offset=rng.randrange(0, 20) * 50)

    def officer_later(rng: random.Random) -> ClipQuery:
        return ClipQuery(officer=f"{100000 + rng.randrange(OFFICERS)}", offset=rng.randrange(1, 10) * 50)

    def flag_later(rng: random.Random) -> ClipQuery:
        return ClipQuery(flag=rng.choice(list(FLAG_KINDS)), offset=rng.randrange(1, 10) * 50)

    return {
        "officer+time": officer_time,
        "case number": case_number,
        "flag": flag,
        "officer, pages 2-10": officer_later,
        "flag, pages 2-10": flag_later,
        "late handover, pages 1-3": late,
        "sha256 prefix": sha_prefix,
        "newest, pages 1-20": newest,
    }


PRISTINE = "pristine"  # the built station, at the schema it was built with; runs work on copies


def _pg_server(data_dir: Path) -> Any:
    """A PostgreSQL server over a cluster kept under `data_dir` (made by initdb the first time, started
    on a free port every time), as tests/fixtures/postgres.py starts one."""
    from tests.fixtures.postgres import PostgresCluster, _pg_bin

    bin_dir = _pg_bin()
    if bin_dir is None:
        raise SystemExit("PostgreSQL server binaries are not installed")
    cluster = PostgresCluster(bin_dir)
    shutil.rmtree(cluster.dir, ignore_errors=True)
    cluster.dir = data_dir
    cluster.data = data_dir / "data"
    if not cluster.data.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        for up in (data_dir.parent, data_dir.parent.parent):  # the server's user must reach it
            up.chmod(up.stat().st_mode | 0o055)
        shutil.chown(data_dir, "postgres", "postgres") if os.geteuid() == 0 else None
        cluster.start()
        return cluster
    _pg_start(cluster)
    return cluster


def _pg_start(cluster: Any) -> None:
    from tests.fixtures.postgres import _as_cluster_owner

    options = f"-p {cluster.port} -k {cluster.dir} -c listen_addresses=127.0.0.1"
    options += " -c fsync=off -c full_page_writes=off"
    subprocess.run(
        _as_cluster_owner(
            [
                str(cluster.bin_dir / "pg_ctl"),
                "-D",
                str(cluster.data),
                "-o",
                options,
                "-l",
                str(cluster.dir / "server.log"),
                "-w",
                "-t",
                "60",
                "start",
            ]
        ),
        check=True,
        capture_output=True,
        timeout=90,
    )


def _pg_stop(cluster: Any) -> None:
    from tests.fixtures.postgres import _as_cluster_owner

    subprocess.run(
        _as_cluster_owner(
            [str(cluster.bin_dir / "pg_ctl"), "-D", str(cluster.data), "-m", "fast", "-w", "stop"]
        ),
        capture_output=True,
        timeout=90,
        check=False,
    )


def _pg_admin(cluster: Any, statement: str) -> None:
    import psycopg

    with psycopg.connect(
        f"host=127.0.0.1 port={cluster.port} user=evidence dbname=postgres", autocommit=True
    ) as conn:
        conn.execute(statement)


def _pg_vacuum(port: int, name: str) -> None:
    """VACUUM ANALYZE a working copy after its code migrated it, as autovacuum soon does on a live
    station: a migration that rewrites rows (0013 fills `compliance_flags.clip_start`) leaves the
    visibility map unset, and index-only scans visit the heap until a vacuum; both variants get it."""
    import psycopg

    with psycopg.connect(f"host=127.0.0.1 port={port} user=evidence dbname={name}", autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def _pg_oid(cluster: Any, name: str) -> int:
    import psycopg

    with psycopg.connect(f"host=127.0.0.1 port={cluster.port} user=evidence dbname=postgres") as conn:
        row = conn.execute("SELECT oid FROM pg_database WHERE datname = %s", (name,)).fetchone()
    assert row is not None
    return int(row[0])


def _built_env(home: Path, url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
    env.update({"EVIDENCE_HOME": str(home), "EVIDENCE_STATION_NAME": "bench"})
    if url:
        env["EVIDENCE_DATABASE_URL"] = url
    return env


def build(backend: str, args: argparse.Namespace, data: Path, cluster: Any) -> None:
    """Build the station once into `data` (kept between runs with --data): `PRISTINE` is its home (and,
    on PostgreSQL, its database). With --against the baseline's code builds it, at the baseline's
    schema, which every variant's migrations can bring to its own (a station built at this code's newer
    schema could not be opened by the older code)."""
    marker = data / f"{PRISTINE}.json"
    if marker.exists() and json.loads(marker.read_text())["clips"] == args.clips:
        print(f"{backend}: reusing the station of {args.clips:,} clips built in {data}", flush=True)
        return
    shutil.rmtree(data / PRISTINE, ignore_errors=True)
    url = None
    if cluster is not None:
        _pg_admin(cluster, f'DROP DATABASE IF EXISTS "{PRISTINE}"')
        _pg_admin(cluster, f'CREATE DATABASE "{PRISTINE}"')
        url = cluster.url(PRISTINE)
    spec = {"build": True, "home": str(data / PRISTINE), "url": url, "clips": args.clips}
    filled = _run_worker(args.against.resolve(), spec) if args.against else _build_here(spec)
    print(f"{backend}: loaded {args.clips:,} clips and the rest in {filled['seconds']:.0f} s", flush=True)
    marker.write_text(json.dumps({"clips": args.clips, "seconds": filled["seconds"]}))


def _build_here(spec: dict[str, Any]) -> dict[str, Any]:
    station, _ = initialise(load_settings(_built_env(Path(spec["home"]), spec["url"])))
    filled = fill(station, spec["clips"], random.Random(20261124))
    station.close()
    return filled


def working_copy(backend: str, data: Path, cluster: Any, name: str) -> dict[str, str]:
    """A copy of the built station named `name` (the file copied on SQLite; a database made from the
    built one as its template on PostgreSQL), so a run that migrates or changes it leaves the build."""
    home = data / name
    shutil.rmtree(home, ignore_errors=True)
    shutil.copytree(data / PRISTINE, home)
    url = None
    if cluster is not None:
        _pg_admin(cluster, f'DROP DATABASE IF EXISTS "{name}"')
        _pg_admin(cluster, f'CREATE DATABASE "{name}" TEMPLATE "{PRISTINE}"')
        url = cluster.url(name)
    return _built_env(home, url)


def _worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One block of queries with one variant's code (this process's `evidence_store`), for the parent."""
    if spec.get("build"):
        return _build_here(spec)
    settings = load_settings(spec["env"])
    if spec.get("init"):
        initialise(settings)[0].close()  # migrates the copy to this code's schema
        if spec["cluster"]:
            _pg_vacuum(spec["cluster"]["port"], spec["database"])
        return {}
    station = open_station(settings)
    cluster = None
    if spec["cluster"]:
        cluster = argparse.Namespace(**{k: Path(v) if k != "port" else v for k, v in spec["cluster"].items()})
    files = [Path(f) for f in spec["files"]]
    user = User(id=1, username="bench", display_name="", role=Role.CUSTODIAN, unit=UNITS[0])

    def drop() -> None:
        station.engine.dispose()  # a fresh connection: SQLite's page cache is the connection's
        if cluster is not None and spec["pg_restart"]:
            _pg_stop(cluster)  # PostgreSQL's shared_buffers are emptied only by a restart
        for path in files:
            method.drop_cached(path)
        if cluster is not None and spec["pg_restart"]:
            _pg_start(cluster)

    cold = spec["cache"] == method.COLD
    block = measure_block(
        station,
        user,
        query_kinds(spec["clips"]),
        spec["first"],
        spec["n"],
        0 if cold else 5,
        drop if cold else None,
    )
    station.close()
    return block


def _run_worker(code: Path, spec: dict[str, Any]) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(code), BENCH_SEARCH_CODE=str(code))
    out = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(spec)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"worker ({code}) failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _timed_block(args: argparse.Namespace, code: Path, spec: dict[str, Any]) -> dict[str, Any]:
    """One block of queries in a fresh process; with --quiet-below it first waits for a quiet machine
    (CPU pressure below the limit), as `method.rounds` does before each run."""
    if args.quiet_below:
        method.wait_until_quiet(args.quiet_below, args.quiet_max_wait)
    return _run_worker(code, spec)


def run_backend(backend: str, args: argparse.Namespace, data: Path) -> dict[str, Any]:  # noqa: PLR0912
    cluster = _pg_server(data / "cluster") if backend == "postgresql" else None
    try:
        build(backend, args, data, cluster)
        if args.build_only:
            return {}
        here = Path(__file__).resolve().parent.parent
        variants = {"this code": here}
        if args.against:
            variants["baseline"] = args.against.resolve()
        specs = {}
        for index, (name, code) in enumerate(variants.items()):
            env = working_copy(backend, data, cluster, f"run{index}")
            if cluster is not None:  # the database's own files and the shared catalogs
                files = [
                    str(cluster.data / "base" / str(_pg_oid(cluster, f"run{index}"))),
                    str(cluster.data / "global"),
                ]
            else:
                database = Path(env["EVIDENCE_HOME"]) / "evidence.db"
                files = [str(database), str(database.with_name("evidence.db-wal"))]
            specs[name] = {
                "env": env,
                "files": files,
                "clips": args.clips,
                "pg_restart": args.pg_restart,
                "cluster": None
                if cluster is None
                else {
                    "bin_dir": str(cluster.bin_dir),
                    "dir": str(cluster.dir),
                    "data": str(cluster.data),
                    "port": cluster.port,
                },
            }
            _run_worker(code, {**specs[name], "init": True, "database": f"run{index}"})
        restart = (
            "the server restarted before each query (the restart not timed)"
            if args.pg_restart
            else "shared_buffers NOT emptied"
        )
        method.header(
            f"search, {backend}, {args.clips:,} clips, {args.queries} queries of each kind in {args.rounds} "
            f"alternating rounds ({', '.join(f'{k}: {v}' for k, v in variants.items())})",
            args.rounds,
            method.caches_of(args),
        )
        per_round = -(-args.queries // args.rounds)
        results: dict[str, Any] = {}
        for cache in method.caches_of(args):
            times: dict[str, dict[str, list[float]]] = {v: {} for v in variants}
            rows: dict[str, dict[str, list[int]]] = {v: {} for v in variants}
            for round_ in range(args.rounds):
                for name in method.round_order(list(variants), round_):
                    spec = {**specs[name], "cache": cache, "first": round_ * per_round, "n": per_round}
                    block = _timed_block(args, variants[name], spec)
                    for kind, values in block["times"].items():
                        times[name].setdefault(kind, []).extend(values)
                        rows[name].setdefault(kind, []).extend(block["rows"][kind])
            for name in variants:
                if rows[name] != rows["this code"]:
                    print(f"NOTE: {name} returned other row counts than this code", flush=True)
            how = ""
            if cache == method.COLD:
                how = (
                    " (SQLite: a fresh connection, the file and WAL dropped with fadvise DONTNEED;"
                    f" PostgreSQL: {restart}, the OS cache dropped)"
                )
            print(f"\n{backend}, {cache}{how}; {per_round * args.rounds} queries of each kind:")
            heads = ["query (50 rows, newest first)"]
            for name in variants:
                heads += [f"{name} p50 ms", f"{name} p95 ms", f"{name} min-max ms"]
            heads.append("rows (mean)")
            table_rows = []
            for kind in times["this code"]:
                cells = [kind]
                for name in variants:
                    r = summary(times[name][kind])
                    cells += [f"{r['p50']:.1f}", f"{r['p95']:.1f}", f"{r['min']:.1f}-{r['max']:.1f}"]
                found = rows["this code"][kind]
                cells.append(f"{sum(found) / len(found):.1f}")
                table_rows.append(cells)
            method.table(heads, table_rows, [False] + [True] * (len(heads) - 1))
            results[cache] = {kind: summary(values) for kind, values in times["this code"].items()}
        method.footer()
        return results
    finally:
        if cluster is not None:
            _pg_stop(cluster)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clips", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--dir", type=Path, default=Path("/work"))
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="keep the built stations here and reuse them next time (building 1M clips takes minutes)",
    )
    parser.add_argument(
        "--no-pg-restart",
        dest="pg_restart",
        action="store_false",
        help="cold on PostgreSQL drops only the OS cache (by default the server is restarted before every "
        "cold query, which empties its shared_buffers)",
    )
    parser.add_argument(
        "--against",
        type=Path,
        default=None,
        help="another checkout (e.g. `git archive main | tar -x -C DIR`) timed side by side on a copy",
    )
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--build-only", action="store_true", help="build (or find) the stations, time nothing"
    )
    method.add_method_options(parser, caches=(method.COLD, method.WARM))
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(_worker(json.loads(args.worker))))
        return
    workdir = args.data or Path(tempfile.mkdtemp(prefix="bench-search-", dir=args.dir))
    targets = []
    try:
        for backend in args.backends.split(","):
            results = run_backend(backend, args, workdir / backend)
            for cache, measured in results.items():
                goal = TARGET_COLD_MS if cache == method.COLD else TARGET_MS[(backend, cache)]
                targets += [
                    method.Target(
                        f"{backend} {kind}, {cache}: p95",
                        measured[kind]["p95"],
                        goal,
                        higher_is_better=False,
                        unit=" ms",
                        judged=args.queries >= 100 and args.rounds >= 5,
                    )
                    for kind in NAMED_KINDS
                ]
    finally:
        if not args.keep and args.data is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print("\nTargets are judged by p95 (of at least 100 queries each):")
    method.print_targets(targets, by="p95")
    if args.check and not method.targets_ok(targets):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
