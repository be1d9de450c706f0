"""Benchmark: `audit verify` on a large SQLite audit log.

Fills a fresh station (initialise() in a temporary EVIDENCE_HOME) with N audit events, fast: the
chained, signed events are built with `build_event` (and a checkpoint with `build_checkpoint` every
`settings.audit_checkpoint_interval` events, exactly as `AuditLog.record` does) and bulk-inserted with
SQLAlchemy Core executemany in batches. The first event is the one `initialise` records and the last
`--tail` events are appended through `AuditLog.record` itself, so the bulk rows must chain to and from
rows the real code wrote. Then `verify_audit_log` is timed in its default mode (re-hash every event;
check the checkpoint signatures and the signatures after the last checkpoint) and with
`all_signatures=True`. The verdict must be ok. Finally (not timed) one row is altered and the verdict
must name it.

Usage: .venv/bin/python bench/bench_audit_verify.py [--events 1000000] [--repeat 3] [--dir /work] [--check]
       [--home DIR]  (kept; reused when it already holds --events events)
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, insert, select, update

from evidence_store.audit import verify_audit_log
from evidence_store.bootstrap import Station, initialise
from evidence_store.db.engine import make_engine
from evidence_store.db.tables import audit_checkpoints, audit_events
from evidence_store.domain.audit_chain import build_checkpoint, build_event
from evidence_store.keys import load_station_key
from evidence_store.settings import load_settings

TARGET_EVENTS_PER_S = 100_000
BATCH = 20_000

ACTIONS = [
    ("clip.ingested", "clip"),
    ("clip.viewed", "clip"),
    ("clip.linked", "case"),
    ("case.opened", "case"),
    ("transfer.finished", "transfer"),
    ("export.requested", "export"),
    ("retention.decided", "clip"),
]
ACTORS = ["system", "dock:D-07", "cli:custodian", "web:王警官", "web:li.ming", "worker:derivatives"]


def fake_details(rng: random.Random, seq: int) -> dict[str, Any]:
    """Details of the size and shape real events carry (hashes, sizes, paths, some Chinese text)."""
    details: dict[str, Any] = {
        "sha256": rng.randbytes(32).hex(),
        "size": rng.randrange(1_000, 4_000_000_000),
        "device_path": f"/DCIM/100MEDIA/FILE{seq % 10_000:04d}.MP4",
    }
    if seq % 3 == 0:
        details["note"] = "现场执法记录"
    if seq % 5 == 0:
        details["warnings"] = ["clock_drift"]
    return details


def fill(station: Station, environ: dict[str, str], events: int, tail: int) -> tuple[float, int]:
    """Append events until the log holds `events` (the init event included); return (seconds, bulk rows).

    The bulk part runs in a fresh process: there the ORM mapping is not set up, so `AuditEvent` is a
    plain dataclass (instrumented attribute sets would double the generation time); the rows are the
    same either way."""
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        bulk = pool.submit(bulk_fill, environ, station.audit.source, events - tail).result()
    # The last events go through the real AuditLog.record, on top of the bulk rows.
    engine = station.engine
    with engine.connect() as connection:
        head = connection.scalar(select(func.max(audit_events.c.seq)))
    for i in range(events - head):
        with station.transaction() as session:
            station.audit.record(
                session,
                actor="cli:custodian",
                action="clip.viewed",
                object_type="clip",
                object_id=i,
                details={"i": i, "note": "现场检查"},
            )
    # Move the WAL into the database file, as a long-running station would have (outside a transaction).
    raw = engine.raw_connection()
    try:
        raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[union-attr]
    finally:
        raw.close()
    return time.perf_counter() - started, bulk


def bulk_fill(environ: dict[str, str], source: str, until: int) -> int:
    """In the child: chain, sign and insert events after the current head up to seq `until`, with a
    checkpoint every `audit_checkpoint_interval` events, as `AuditLog.record` makes them."""
    settings = load_settings(environ)
    key = load_station_key(settings.keys_dir)
    interval = settings.audit_checkpoint_interval
    engine = make_engine(settings.effective_database_url)
    with engine.connect() as connection:
        head = connection.execute(
            select(audit_events.c.seq, audit_events.c.hash).order_by(audit_events.c.seq.desc()).limit(1)
        ).one()
    prev: tuple[int, str] = (head.seq, head.hash)
    rng = random.Random(2)
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    step = timedelta(milliseconds=37)  # the clock: both the event and its checkpoint read it once
    event_rows: list[dict[str, Any]] = []
    checkpoint_rows: list[dict[str, Any]] = []
    bulk = 0
    while prev[0] < until:
        seq = prev[0] + 1
        action, object_type = ACTIONS[seq % len(ACTIONS)]
        moment += step
        event = build_event(
            prev=prev,
            at=moment,
            actor=ACTORS[seq % len(ACTORS)],
            action=action,
            object_type=object_type,
            object_id=str(rng.randrange(1, 200_000)),
            source=source,
            details=fake_details(rng, seq),
            sign=key.sign,
        )
        event_rows.append(
            {
                "seq": event.seq,
                "at": event.at,
                "actor": event.actor,
                "action": event.action,
                "object_type": event.object_type,
                "object_id": event.object_id,
                "source": event.source,
                "details": event.details,
                "prev_hash": event.prev_hash,
                "hash": event.hash,
                "signature": event.signature,
            }
        )
        if event.seq % interval == 0:
            checkpoint = build_checkpoint(
                seq=event.seq,
                head_hash=event.hash,
                at=moment,
                key_fingerprint=key.fingerprint,
                sign=key.sign,
            )
            checkpoint_rows.append(
                {
                    "seq": checkpoint.seq,
                    "head_hash": checkpoint.head_hash,
                    "at": checkpoint.at,
                    "key_fingerprint": checkpoint.key_fingerprint,
                    "signature": checkpoint.signature,
                }
            )
        prev = (event.seq, event.hash)
        bulk += 1
        if len(event_rows) >= BATCH:
            _insert(engine, event_rows, checkpoint_rows)
            print(f"  generated {prev[0]:,} events", end="\r", file=sys.stderr)
    _insert(engine, event_rows, checkpoint_rows)
    engine.dispose()
    print(file=sys.stderr)
    return bulk


def _insert(engine: Engine, event_rows: list[dict[str, Any]], checkpoint_rows: list[dict[str, Any]]) -> None:
    if not event_rows:
        return
    with engine.begin() as connection:
        connection.execute(insert(audit_events), event_rows)
        if checkpoint_rows:
            connection.execute(insert(audit_checkpoints), checkpoint_rows)
    event_rows.clear()
    checkpoint_rows.clear()


def _resident_bytes(path: Path) -> int | None:
    """How much of `path` is in the page cache (util-linux fincore), or None if unknown."""
    if shutil.which("fincore") is None:
        return None
    out = subprocess.run(
        ["fincore", "--bytes", "--noheadings", "--output", "RES", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        return int(out.stdout.strip())
    except ValueError:
        return None


def _load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def sanity_check(station: Station, victim: int) -> None:
    """Not timed: an altered row is caught and named (then put back, so a kept home stays valid)."""
    engine = station.engine
    where = audit_events.c.seq == victim
    with engine.begin() as connection:
        actor = connection.scalar(select(audit_events.c.actor).where(where))
        connection.execute(update(audit_events).where(where).values(actor="intruder"))
    verdict = verify_audit_log(engine, station.key)
    with engine.begin() as connection:
        connection.execute(update(audit_events).where(where).values(actor=actor))
    assert not verdict.ok
    assert verdict.first_problem is not None and verdict.first_problem.seq == victim, verdict.problems
    print()
    print(f"sanity: after altering event {victim}, verify says: {verdict.first_problem.reason}")


def main() -> int:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the log (default 1000000)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per mode, best kept (default 3)")
    parser.add_argument(
        "--all-signatures-repeat", type=int, default=1, help="timed runs with all_signatures (default 1)"
    )
    parser.add_argument("--tail", type=int, default=5, help="last events appended by AuditLog.record")
    parser.add_argument("--dir", type=Path, default=Path("/work"), help="where the temp home goes")
    parser.add_argument("--check", action="store_true", help="exit 1 if the target is missed")
    parser.add_argument("--keep", action="store_true", help="keep the temporary EVIDENCE_HOME")
    parser.add_argument(
        "--home",
        type=Path,
        help="use this EVIDENCE_HOME (kept); a log already filled to --events by this benchmark is reused",
    )
    args = parser.parse_args()

    if args.home is not None:
        return _bench(args, args.home.absolute())
    home = Path(tempfile.mkdtemp(prefix="evidence-bench-audit-", dir=args.dir))
    try:
        return _bench(args, home)
    finally:
        if args.keep:
            print(f"kept {home}", file=sys.stderr)
        else:
            shutil.rmtree(home)


def _bench(args: argparse.Namespace, home: Path) -> int:
    environ = {"EVIDENCE_HOME": str(home), "EVIDENCE_STATION_NAME": "bench-station"}
    settings = load_settings(environ)
    station, _created = initialise(settings)
    engine = station.engine
    bulk = 0
    try:
        with engine.connect() as connection:
            stored = connection.scalar(select(func.count()).select_from(audit_events))
        if stored == args.events:
            print(f"reusing the {stored:,} events already in {home}")
        else:
            generation_s, bulk = fill(station, environ, args.events, args.tail)
        with engine.connect() as connection:
            stored = connection.scalar(select(func.count()).select_from(audit_events))
            checkpoints = connection.scalar(select(func.count()).select_from(audit_checkpoints))
        db_size = Path(settings.home / "evidence.db").stat().st_size
        if bulk:
            print(
                f"generated {stored:,} events ({bulk:,} bulk-inserted, 1 by initialise, {args.tail} by "
                f"AuditLog.record) and {checkpoints:,} checkpoints in {generation_s:.1f} s "
                f"({bulk / generation_s:,.0f} events/s)"
            )
        resident = _resident_bytes(settings.home / "evidence.db")
        cached = "unknown" if resident is None else f"{100 * resident / db_size:.0f}%"
        print(f"database {db_size / 1e6:.0f} MB ({checkpoints:,} checkpoints), {cached} in the page cache")
        assert stored == args.events

        load_before = _load_average()
        rows = []
        for label, all_signatures, repeat in (
            ("default (re-hash all; signatures of checkpoints + tail)", False, args.repeat),
            ("all_signatures=True", True, args.all_signatures_repeat),
        ):
            times = []
            for _ in range(repeat):
                started = time.perf_counter()
                verdict = verify_audit_log(engine, station.key, all_signatures=all_signatures)
                times.append(time.perf_counter() - started)
                assert verdict.ok, verdict.problems[:3]
                assert verdict.events_checked == args.events
            rows.append((label, verdict, times))

        print(f"load average (1, 5, 15 min) before timing: {load_before}; after: {_load_average()}")
        print()
        print(f"verify_audit_log on SQLite, {args.events:,} events, best of the runs listed:")
        print()
        print("| mode | events | signatures checked | seconds (best) | all runs | events/s | vs 100k/s |")
        print("|---|---:|---:|---:|---|---:|---:|")
        for label, verdict, times in rows:
            best = min(times)
            rate = verdict.events_checked / best
            signatures = verdict.signatures_checked + verdict.checkpoints_checked
            print(
                f"| {label} | {verdict.events_checked:,} | {signatures:,} "
                f"| {best:.2f} | {' '.join(f'{t:.2f}' for t in times)} | {rate:,.0f} | "
                f"{rate / TARGET_EVENTS_PER_S:.2f}x |"
            )

        sanity_check(station, args.events // 2)

        default_rate = rows[0][1].events_checked / min(rows[0][2])
        met = default_rate >= TARGET_EVENTS_PER_S
        print(f"target >= {TARGET_EVENTS_PER_S:,} events/s (default mode): {'met' if met else 'NOT met'}")
        return 1 if args.check and not met else 0
    finally:
        station.close()


if __name__ == "__main__":
    sys.exit(main())
