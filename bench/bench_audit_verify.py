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

Method (bench/method.py): the default mode runs ``--rounds`` (default 5) alternating rounds, cold and
warm alternating in each round (``--cache both``, the default): **cold** drops the database file's
pages (and its WAL's) before the run (fsync, ``posix_fadvise(DONTNEED)``, checked with ``fincore``), as
the first verification after a night or a restart meets it; **warm** runs on what the previous run
left in the page cache. Median and spread (min-max) of each, the best as an extra column; the target is
judged by the median. ``all_signatures=True`` (about 20x slower) runs ``--all-signatures-repeat`` times
(default 1), warm, for reference only.

Usage: .venv/bin/python bench/bench_audit_verify.py [--events 1000000] [--rounds 5] [--cache both]
       [--dir /work] [--check]
       [--home DIR]  (kept; reused when it already holds --events events)
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import shutil
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

import method  # bench/method.py: the method every benchmark shares

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
    parser.add_argument(
        "--all-signatures-repeat", type=int, default=1, help="timed runs with all_signatures (default 1)"
    )
    parser.add_argument("--tail", type=int, default=5, help="last events appended by AuditLog.record")
    parser.add_argument("--dir", type=Path, default=Path("/work"), help="where the temp home goes")
    method.add_method_options(parser, caches=(method.COLD, method.WARM))
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


def _bench(args: argparse.Namespace, home: Path) -> int:  # noqa: PLR0915
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
        database = settings.home / "evidence.db"
        print(f"database {db_size / 1e6:.0f} MB ({checkpoints:,} checkpoints)")
        assert stored == args.events

        caches = method.caches_of(args)
        method.header(f"audit verify: {args.events:,} events on SQLite", args.rounds, caches)
        wal = database.with_name(database.name + "-wal")
        residency: set[str] = set()

        def verify(all_signatures: bool) -> Any:
            verdict = verify_audit_log(engine, station.key, all_signatures=all_signatures)
            assert verdict.ok, verdict.problems[:3]
            assert verdict.events_checked == args.events
            return verdict

        def before(name: str) -> None:
            if name.endswith(method.COLD):
                for path in (database, wal):
                    if path.exists():
                        method.drop_cached(path)
                residency.add(method.resident_share(database))

        verify(False)  # warm: the first warm run does not read a cold file
        runs = method.run_rounds(
            {f"default, {cache}": (lambda: verify(False)) for cache in caches},
            args.rounds,
            before=before,
            quiet_below=args.quiet_below,
            quiet_max_wait=args.quiet_max_wait,
        )
        runs |= method.run_rounds(
            {"all_signatures=True, warm": lambda: verify(True)}, args.all_signatures_repeat
        )
        method.footer()
        print()
        print(
            f"verify_audit_log on SQLite, {args.events:,} events; default mode {args.rounds} alternating "
            "rounds (cold: database dropped from the page cache before each run, "
            f"{', '.join(sorted(residency)) or '-'} after it; warm: what the previous run left), "
            "all_signatures for reference:"
        )
        rows = []
        medians = {}
        for name, values in runs.items():
            s = method.spread(r.wall for r in values)
            verdict = values[0].result
            medians[name] = verdict.events_checked / s.median
            signatures = verdict.signatures_checked + verdict.checkpoints_checked
            rows.append(
                [
                    name,
                    f"{verdict.events_checked:,}",
                    f"{signatures:,}",
                    *s.cells(digits=2),
                    f"{medians[name]:,.0f}",
                    f"{medians[name] / TARGET_EVENTS_PER_S:.2f}x",
                ]
            )
        method.table(
            [
                "mode, cache",
                "events",
                "signatures checked",
                "median s",
                "min-max s",
                "best s",
                "events/s (median)",
                "vs 100k/s",
            ],
            rows,
            [False, *[True] * 7],
        )

        sanity_check(station, args.events // 2)

        targets = [
            method.Target(
                f">= {TARGET_EVENTS_PER_S:,} events/s, default mode, {cache}",
                medians[f"default, {cache}"],
                TARGET_EVENTS_PER_S,
                unit=" events/s",
                judged=method.judged(args),
            )
            for cache in caches
        ]
        method.print_targets(targets)
        return 1 if args.check and not method.targets_ok(targets) else 0
    finally:
        station.close()


if __name__ == "__main__":
    sys.exit(main())
