"""Benchmark: planning the retention run (issue 6, R9, R10) over a large station on SQLite.

For each size (default 250,000, 500,000 and 1,000,000 clips) a fresh station is initialised
(`initialise()` in a temporary EVIDENCE_HOME) and filled with synthetic facts, inserted fast with
driver-level executemany (`BulkWriter`, as bench_linking does). The mix, per 1,000,000 clips:

* clips recorded over the last 18 months (about a third younger than 6 months), 0.2 % failed and
  0.1 % unplayable, each with one finished processing job, and 0.5 % with a failed one;
* 20,000 cases in the six R19 categories: 40 % open, 60 % archived at some time in the last 35 years,
  with case-file periods of 10 years (60 %), 30 years (30 %) or permanent (10 %);
* 8 % of the clips linked to a case (1 % to a second one), 85 % of the links as evidence, 2 % of
  the links removed;
* 500 legal holds on clips and 50 on cases (a tenth of each released), 200 export requests
  pending or approved of 5 clips each (and 200 built ones, which hold nothing), open compliance flags
  on 0.5 % of the clips (as many cleared), 100 clips and 5 cases under supervisory review;
* category periods raised for two categories (12 and 24 months).

Timed, each in a fresh child process (its VmHWM, the whole process's peak resident memory, read from
/proc/self/status after the station is opened and after the run):

1. ``dry run``: `run_retention(dry_run=True)`, what `evidence retention run --dry-run` does;
2. ``plan, first``: a real run's plan phase, the first time (a decision recorded for every clip that
   may go, a floor written for every kept clip). The run is stopped after planning by the share guard
   (`EVIDENCE_RETENTION_MAX_DELETE_SHARE` set tiny, so it asks for `--confirm`): nothing is deleted;
3. ``plan, again``: the next night's plan phase (floors already there, decisions already planned).

Method (bench/method.py): ``--rounds`` (default 5) rounds per size; the database is copied after the
fill and put back before each round (not timed), so every round's "plan, first" is a first plan again;
within a round the three runs go in their order (each needs the state the one before left).
``--cache cold|warm|both`` (default both): cold drops the database file's pages (fsync,
``posix_fadvise(DONTNEED)``) before each run, as a nightly run on a station whose page cache went to
the day's footage meets it; the cold and warm rounds alternate. Median and spread (min-max) per run,
the best as an extra column.

The target is planning <= 60 s for 1,000,000 clips on SQLite by the median of the slowest run, with
memory bounded: the peak must not grow with the number of clips (the run streams clips in
keyset-paginated batches).

Usage: .venv/bin/python bench/bench_retention_plan.py [--sizes 250000,500000,1000000] [--rounds 5]
                                                      [--cache both] [--dir /work] [--check] [--keep]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from evidence_store.bootstrap import Station, initialise
from evidence_store.db.bulk import BulkWriter
from evidence_store.db.tables import (
    cases,
    clip_links,
    clips,
    compliance_flags,
    export_requests,
    legal_holds,
    processing_jobs,
    supervision_draws,
    supervision_items,
)
from evidence_store.domain.model import CaseCategory
from evidence_store.settings import load_settings

sys.path.insert(0, str(Path(__file__).resolve().parent))

import method  # bench/method.py: the method every benchmark shares

TARGET_PLAN_S = 60.0
NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
MONTH = timedelta(days=30.44)
CATEGORY_MONTHS = {CaseCategory.PUNISHMENT.value: 12, CaseCategory.COERCION.value: 24}
CHUNK = 100_000


def environment(home: Path, *, max_share: str = "0.10") -> dict[str, str]:
    """The station's settings; the category periods go in `evidence.toml` (a table in TOML)."""
    lines = ["[retention_months_by_category]", *(f'"{k}" = {v}' for k, v in CATEGORY_MONTHS.items())]
    (home / "evidence.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {
        "EVIDENCE_HOME": str(home),
        "EVIDENCE_STATION_NAME": "bench-station",
        "EVIDENCE_RETENTION_MAX_DELETE_SHARE": max_share,
    }


# -- filling ---------------------------------------------------------------------------------------------


def fill(station: Station, n_clips: int, rng: random.Random) -> dict[str, int]:  # noqa: PLR0915
    """The synthetic station (see the module docstring); returns the counts inserted."""
    n_cases = max(10, n_clips // 50)
    scale = n_clips / 1_000_000
    categories = [c.value for c in CaseCategory]
    counts: dict[str, int] = {}
    with station.engine.begin() as connection:
        bulk = BulkWriter(connection)
        created = bulk.time(NOW - 400 * timedelta(days=1))
        case_rows = []
        for cid in range(1, n_cases + 1):
            archived = None if rng.random() < 0.4 else NOW - timedelta(days=rng.randrange(1, 35 * 365))
            roll = rng.random()
            period = "10y" if roll < 0.6 else "30y" if roll < 0.9 else "permanent"
            case_rows.append(
                (
                    cid,
                    f"金普卫监〔{2000 + cid % 26}〕{cid}号",
                    "",
                    rng.choice(categories),
                    "",
                    "金普新区卫生健康监督所",
                    bulk.json([]),
                    period,
                    "normal",
                    bulk.time(archived),
                )
            )
        bulk.insert(
            cases,
            (
                "id",
                "number",
                "title",
                "category",
                "subject",
                "unit",
                "officer_ids",
                "retention_period",
                "confidentiality",
                "archived_at",
            ),
            case_rows,
        )
        counts["cases"] = n_cases
        clip_columns = (
            "id",
            "sha256",
            "size",
            "media_type",
            "original_name",
            "device_path",
            "utc_start",
            "utc_end",
            "clock_status",
            "duration_s",
            "status",
            "ingested_at",
            "late_handover",
            "media_info",
            "warnings",
        )
        link_columns = (
            "clip_id",
            "case_id",
            "origin",
            "is_evidence",
            "uncertain",
            "reason",
            "created_by",
            "created_at",
            "removed_at",
            "removed_by",
        )
        job_columns = (
            "clip_id",
            "step",
            "status",
            "attempts",
            "permanent",
            "last_error",
            "created_at",
            "updated_at",
        )
        flag_columns = ("kind", "clip_id", "details", "opened_at", "updated_at", "cleared_at")
        empty_info, empty_warnings, details = bulk.json({}), bulk.json([]), bulk.json({})
        clip_rows: list[tuple[Any, ...]] = []
        link_rows: list[tuple[Any, ...]] = []
        job_rows: list[tuple[Any, ...]] = []
        flag_rows: list[tuple[Any, ...]] = []
        counts.update(links=0, failed_jobs=0, flags=0)

        def flush() -> None:
            bulk.insert(clips, clip_columns, clip_rows)
            bulk.insert(clip_links, link_columns, link_rows)
            bulk.insert(processing_jobs, job_columns, job_rows)
            bulk.insert(compliance_flags, flag_columns, flag_rows)
            for rows in (clip_rows, link_rows, job_rows, flag_rows):
                rows.clear()

        for cid in range(1, n_clips + 1):
            end = NOW - timedelta(seconds=rng.randrange(1, int(18 * MONTH.total_seconds())))
            roll = rng.random()
            status = "failed" if roll < 0.002 else "unplayable" if roll < 0.003 else "ready"
            clip_rows.append(
                (
                    cid,
                    f"{cid:064x}",
                    rng.randrange(50_000_000, 500_000_000),
                    "video",
                    f"CLIP{cid}.MP4",
                    "",
                    bulk.time(end - timedelta(minutes=10)),
                    bulk.time(end),
                    "measured",
                    600.0,
                    status,
                    bulk.time(end + timedelta(days=1)),
                    False,
                    empty_info,
                    empty_warnings,
                )
            )
            failed = rng.random() < 0.005
            job_rows.append((cid, "proxy", "failed" if failed else "done", 1, False, "", created, created))
            counts["failed_jobs"] += failed
            if rng.random() < 0.08:
                n_links = 2 if rng.random() < 0.125 else 1
                for case_id in rng.sample(range(1, n_cases + 1), n_links):
                    removed = rng.random() < 0.02
                    link_rows.append(
                        (
                            cid,
                            case_id,
                            "auto",
                            rng.random() < 0.85,
                            False,
                            "",
                            "",
                            created,
                            created if removed else None,
                            "bench" if removed else "",
                        )
                    )
                    counts["links"] += 1
            if rng.random() < 0.01:
                cleared = rng.random() < 0.5
                flag_rows.append(
                    ("clip_missing_document", cid, details, created, created, created if cleared else None)
                )
                counts["flags"] += not cleared
            if len(clip_rows) >= CHUNK:
                flush()
                print(f"  {cid:,} clips", end="\r", file=sys.stderr)
        flush()
        counts["clips"] = n_clips

        holds = []
        for _ in range(round(500 * scale)):
            holds.append((rng.randrange(1, n_clips + 1), None))
        for _ in range(round(50 * scale) or 1):
            holds.append((None, rng.randrange(1, n_cases + 1)))
        bulk.insert(
            legal_holds,
            ("clip_id", "case_id", "reason", "placed_by", "placed_at", "released_at", "released_by"),
            [
                (clip_id, case_id, "bench", "bench", created, created if i % 10 == 0 else None, "")
                for i, (clip_id, case_id) in enumerate(holds)
            ],
        )
        counts["holds"] = len(holds)
        requests = []
        for i in range(round(400 * scale) or 2):
            items = [{"clip_id": rng.randrange(1, n_clips + 1)} for _ in range(5)]
            status = ("pending", "approved", "built", "built")[i % 4]
            requests.append(("investigator", "court", "", bulk.json(items), status, "", "", "", created))
        bulk.insert(
            export_requests,
            (
                "requested_by",
                "purpose",
                "recipient",
                "items",
                "status",
                "decided_by",
                "decision_reason",
                "package_sha256",
                "created_at",
            ),
            requests,
        )
        counts["export_requests"] = len(requests)
        draw = connection.execute(
            supervision_draws.insert().values(
                kind="clip",
                seed=7,
                params={},
                population=n_clips,
                population_sha256="0" * 64,
                sample_size=105,
                drawn_by="supervisor",
                drawn_at=NOW,
            )
        ).inserted_primary_key[0]
        review = [(draw, rng.randrange(1, n_clips + 1), None) for _ in range(100)]
        review += [(draw, None, rng.randrange(1, n_cases + 1)) for _ in range(5)]
        bulk.insert(
            supervision_items,
            ("draw_id", "clip_id", "case_id", "status", "notes", "created_at"),
            [(d, clip, case, "open", "", created) for d, clip, case in review],
        )
    raw = station.engine.raw_connection()
    try:
        raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[union-attr]
    finally:
        raw.close()
    print(file=sys.stderr)
    return counts


# -- the child: one timed run -----------------------------------------------------------------------------


def _vm_hwm_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def child(home: Path, mode: str) -> None:
    """Runs in a fresh process: open the station, time one run, report JSON on stdout."""
    from evidence_store.bootstrap import open_station
    from retention.run import ConfirmationNeeded, run_retention

    dry = mode == "dry"
    station = open_station(load_settings(environment(home, max_share="0.10" if dry else "0.000001")))
    before = _vm_hwm_kib()
    started = time.perf_counter()
    cpu = time.process_time()
    try:
        report = run_retention(station, NOW, dry_run=dry, actor="bench")
        stopped = False
    except ConfirmationNeeded as exc:
        report = exc.report
        stopped = True
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu
    station.close()
    data = report.as_dict()
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu": cpu,
                "hwm_before_kib": before,
                "hwm_after_kib": _vm_hwm_kib(),
                "considered": data["clips_considered"],
                "planned_delete": data["planned_delete"],
                "kept_by_rule": data["kept_by_rule"],
                "delete_by_rule": data["delete_by_rule"],
                "deleted": data["deleted"],
                "stopped_for_confirmation": stopped,
            }
        )
    )


def timed(home: Path, mode: str) -> dict[str, Any]:
    # VmHWM of a fresh process (exec resets it); ru_maxrss would carry the parent's peak over.
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--child-home", str(home)],
        stdout=subprocess.PIPE,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


# -- main -------------------------------------------------------------------------------------------------


RUNS = ("dry run", "plan, first", "plan, again")


def _restore(home: Path, snapshot: Path) -> None:
    database = home / "evidence.db"
    for suffix in ("-wal", "-shm"):
        database.with_name(database.name + suffix).unlink(missing_ok=True)
    shutil.copyfile(snapshot, database)


def _rounds(home: Path, n: int, args: argparse.Namespace) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Every round of the three runs on the station in `home` (filled, closed), by cache state."""
    database = home / "evidence.db"
    snapshot = home.parent / f"{home.name}.snapshot.db"
    shutil.copyfile(database, snapshot)
    caches = method.caches_of(args)
    results: dict[tuple[str, str], list[dict[str, Any]]] = {(c, r): [] for c in caches for r in RUNS}
    try:
        for round_ in range(args.rounds):
            for cache in method.round_order(caches, round_):
                _restore(home, snapshot)
                done = []
                for label, mode in zip(RUNS, ("dry", "plan", "plan"), strict=True):
                    if cache == method.COLD:
                        method.drop_cached(home)
                    result = timed(home, mode)
                    results[(cache, label)].append(result)
                    done.append(f"{label} {result['seconds']:.1f} s")
                print(
                    f"  {n:,} clips, {cache} round {round_ + 1}/{args.rounds}: {', '.join(done)}",
                    file=sys.stderr,
                )
                dry, first, again = (results[(cache, r)][-1] for r in RUNS)
                assert dry["considered"] == first["considered"] == again["considered"] == n, (
                    "clips were missed"
                )
                assert first["stopped_for_confirmation"] and first["deleted"] == 0 and again["deleted"] == 0
                assert dry["planned_delete"] == first["planned_delete"] == again["planned_delete"]
    finally:
        snapshot.unlink(missing_ok=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="250000,500000,1000000", help="clip counts, comma-separated")
    parser.add_argument("--dir", type=Path, default=Path("/work"), help="where the temp homes go")
    method.add_method_options(parser, caches=(method.COLD, method.WARM))
    parser.add_argument("--child", choices=["dry", "plan"], help=argparse.SUPPRESS)
    parser.add_argument("--child-home", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child_home, args.child)
        return 0
    sizes = [int(s) for s in args.sizes.split(",")]
    caches = method.caches_of(args)
    method.header("retention planning on SQLite, each run in a fresh child process", args.rounds, caches)
    rows: list[list[str]] = []
    details: list[str] = []
    worst: dict[str, float] = {}
    peaks: list[int] = []
    for n in sizes:
        home = Path(tempfile.mkdtemp(prefix="evidence-bench-retention-", dir=args.dir))
        try:
            station, _ = initialise(load_settings(environment(home)))
            began = time.perf_counter()
            counts = fill(station, n, random.Random(6))
            station.close()
            print(
                f"filled {n:,} clips in {time.perf_counter() - began:.1f} s: "
                + ", ".join(f"{k} {v:,}" for k, v in counts.items() if k != "clips"),
                file=sys.stderr,
            )
            results = _rounds(home, n, args)
            for (cache, label), values in results.items():
                s = method.spread(r["seconds"] for r in values)
                cpu = method.spread(r["cpu"] for r in values).median
                peak = max(r["hwm_after_kib"] for r in values)
                peaks.append(peak)
                if n == max(sizes):
                    worst[cache] = max(worst.get(cache, 0.0), s.median)
                rows.append(
                    [
                        f"{n:,}",
                        label,
                        cache,
                        *s.cells(digits=1),
                        f"{cpu:.1f}",
                        f"{n / s.median:,.0f}",
                        f"{peak / 1024:.0f}",
                        f"{values[0]['hwm_before_kib'] / 1024:.0f}",
                    ]
                )
            dry = next(iter(results.values()))[0]
            details.append(
                f"{n:,} clips: {dry['planned_delete']:,} may go "
                + json.dumps(dry["delete_by_rule"], ensure_ascii=False)
                + "; kept "
                + json.dumps(dict(sorted(dry["kept_by_rule"].items())), ensure_ascii=False)
            )
        finally:
            if args.keep:
                print(f"kept {home}", file=sys.stderr)
            else:
                shutil.rmtree(home)
    method.footer()
    print(f"\nRetention planning (SQLite), each run in a fresh child process, {args.rounds} rounds:")
    method.table(
        [
            "clips",
            "run",
            "cache",
            "median s",
            "min-max s",
            "best s",
            "CPU s (median)",
            "clips/s (median)",
            "peak MiB (max)",
            "after open MiB",
        ],
        rows,
        [True, False, False, *[True] * 7],
    )
    for line in details:
        print(line)
    print(f"peak memory over all runs: {max(peaks) / 1024:.0f} MiB")
    targets = [
        method.Target(
            f"planning 1,000,000 clips <= {TARGET_PLAN_S:.0f} s, slowest run, {cache}",
            seconds,
            TARGET_PLAN_S,
            higher_is_better=False,
            unit=" s",
            judged=method.judged(args) and max(sizes) >= 1_000_000,
        )
        for cache, seconds in worst.items()
    ]
    method.print_targets(targets)
    return 1 if args.check and not method.targets_ok(targets) else 0


if __name__ == "__main__":
    sys.exit(main())
