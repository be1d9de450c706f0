"""Benchmark: `audit verify`'s records check (replay the chain's facts and compare every row) against plain
chain verification of the same log, on SQLite and on PostgreSQL, in one run (issue 15).

Builds one station per database (initialise() in a temporary EVIDENCE_HOME; PostgreSQL is a throw-away
cluster, as tests/fixtures/postgres.py starts one) holding N clips with their events as the services
write them: a `clip.stored` event stating every tracked field of the clip (as `originals.record_originals`
does) and a `clip.processed` event stating its status `ready` (as `workers.service` does), both chained
and signed with the station key (`build_event`, a checkpoint every `audit_checkpoint_interval` events as
`AuditLog.record` makes them); clip rows are bulk-inserted (`db.bulk.BulkWriter`). The same events go
to both databases. Then, per database, `verify_records` (replay + compare) and `verify_audit_log`
(re-hash + checkpoint signatures) are timed in alternating rounds; the table gives the median and the
spread (min-max) of each. Warm: every round after the first reads a database the previous rounds just
read (the page cache holds it; the first round of each is listed too); the load average before and
after the rounds is printed with the table. Finally (not timed) one clip's size is changed and the
records check must name it.

Usage: PYTHONPATH=$PWD .venv/bin/python bench/bench_audit_replay.py [--clips 1000000] [--rounds 5]
       [--databases sqlite,postgresql] [--dir /work] [--check]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, update

from evidence_store.audit import verify_audit_log
from evidence_store.bootstrap import Station, initialise
from evidence_store.db.bulk import BulkWriter
from evidence_store.db.tables import audit_checkpoints, audit_events, clips
from evidence_store.domain.audit_chain import build_checkpoint, build_event
from evidence_store.domain.record_facts import FACTS_KEY, row_fact
from evidence_store.record_check import verify_records
from evidence_store.settings import load_settings

TARGET_EVENTS_PER_S = 100_000
BATCH = 10_000
T0 = datetime(2026, 1, 1, tzinfo=UTC)
CLIP_COLUMNS = (
    "id",
    "sha256",
    "size",
    "media_type",
    "original_name",
    "device_path",
    "device_id",
    "officer_id",
    "transfer_id",
    "device_start",
    "device_end",
    "utc_start",
    "utc_end",
    "clock_offset_s",
    "clock_status",
    "duration_s",
    "status",
    "ingested_at",
    "late_handover",
    "media_info",
    "warnings",
)


def clip_values(clip_id: int) -> dict[str, Any]:
    start = T0 + timedelta(seconds=37 * clip_id)
    return {
        "id": clip_id,
        "sha256": f"{clip_id:064x}",
        "size": 1_000_000 + clip_id,
        "media_type": "video",
        "original_name": f"FILE{clip_id:07d}.MP4",
        "device_path": f"/DCIM/100MEDIA/FILE{clip_id % 10_000:04d}.MP4",
        "device_id": None,
        "officer_id": None,
        "transfer_id": None,
        "device_start": start.replace(tzinfo=None) + timedelta(hours=8),
        "device_end": start.replace(tzinfo=None) + timedelta(hours=8, minutes=5),
        "utc_start": start,
        "utc_end": start + timedelta(minutes=5),
        "clock_offset_s": 1.5,
        "clock_status": "measured",
        "duration_s": 300.0,
        "status": "ingested",
        "ingested_at": start + timedelta(hours=1),
        "late_handover": False,
        "media_info": {},
        "warnings": [],
    }


class ChainWriter:
    """Chains and signs events after a station's head, as `AuditLog.record` does, for several databases
    that hold the same chain."""

    def __init__(self, station: Station) -> None:
        with station.engine.connect() as connection:
            head = connection.execute(
                select(audit_events.c.seq, audit_events.c.hash).order_by(audit_events.c.seq.desc()).limit(1)
            ).one()
        self.prev: tuple[int, str] = (head.seq, head.hash)
        self.key = station.key
        self.source = station.audit.source
        self.interval = station.audit.checkpoint_interval
        self.moment = T0

    def event(self, action: str, object_id: int, details: dict[str, Any]) -> tuple[dict, dict | None]:
        self.moment += timedelta(milliseconds=3)
        event = build_event(
            prev=self.prev,
            at=self.moment,
            actor="dock:D-07" if action == "clip.stored" else "worker",
            action=action,
            object_type="clip",
            object_id=str(object_id),
            source=self.source,
            details=details,
            sign=self.key.sign,
        )
        self.prev = (event.seq, event.hash)
        row = {name: getattr(event, name) for name in (c.name for c in audit_events.c)}
        checkpoint = None
        if event.seq % self.interval == 0:
            made = build_checkpoint(
                seq=event.seq,
                head_hash=event.hash,
                at=self.moment,
                key_fingerprint=self.key.fingerprint,
                sign=self.key.sign,
            )
            checkpoint = {
                "seq": made.seq,
                "head_hash": made.head_hash,
                "at": made.at,
                "key_fingerprint": made.key_fingerprint,
                "signature": made.signature,
            }
        return row, checkpoint


def fill(stations: list[Station], clip_count: int) -> float:
    """Write the same clips and events to every station; return seconds."""
    started = time.perf_counter()
    chain = ChainWriter(stations[0])
    clip_rows: list[tuple[Any, ...]] = []
    event_rows: list[dict[str, Any]] = []
    checkpoint_rows: list[dict[str, Any]] = []
    for clip_id in range(1, clip_count + 1):
        values = clip_values(clip_id)
        stored = {
            "sha256": values["sha256"],
            "size": values["size"],
            "original_name": values["original_name"],
            "device_path": values["device_path"],
            "transfer_id": None,
            "store": "local",
            "new_blob": True,
            "warnings": [],
            FACTS_KEY: [row_fact("clips", clip_id, values, new=True)],
        }
        processed = {
            "status": "ready",
            "steps": {"probe": "done", "proxy": "done", "thumbnails": "done"},
            FACTS_KEY: [row_fact("clips", clip_id, {"status": "ready"}, new=False, fields=("status",))],
        }
        values["status"] = "ready"
        for action, details in (("clip.stored", stored), ("clip.processed", processed)):
            row, checkpoint = chain.event(action, clip_id, details)
            event_rows.append(row)
            if checkpoint:
                checkpoint_rows.append(checkpoint)
        clip_rows.append(tuple(values[name] for name in CLIP_COLUMNS))
        if len(clip_rows) >= BATCH:
            _write(stations, clip_rows, event_rows, checkpoint_rows)
            print(f"  {clip_id:,} clips", end="\r", file=sys.stderr)
    _write(stations, clip_rows, event_rows, checkpoint_rows)
    print(file=sys.stderr)
    return time.perf_counter() - started


def _write(
    stations: list[Station],
    clip_rows: list[tuple[Any, ...]],
    event_rows: list[dict[str, Any]],
    checkpoint_rows: list[dict[str, Any]],
) -> None:
    if not clip_rows:
        return
    for station in stations:
        with station.engine.begin() as connection:
            writer = BulkWriter(connection)
            writer.insert(clips, CLIP_COLUMNS, [_bind(writer, row) for row in clip_rows])
            connection.execute(insert(audit_events), event_rows)
            if checkpoint_rows:
                connection.execute(insert(audit_checkpoints), checkpoint_rows)
    clip_rows.clear()
    event_rows.clear()
    checkpoint_rows.clear()


def _bind(writer: BulkWriter, row: tuple[Any, ...]) -> tuple[Any, ...]:
    """The row in the form the bulk writer's driver takes (times and JSON as its columns store them)."""
    out = []
    for name, value in zip(CLIP_COLUMNS, row, strict=True):
        bound = value
        if name in ("utc_start", "utc_end", "ingested_at"):
            bound = writer.time(value)
        elif name in ("device_start", "device_end") and writer.sqlite:
            bound = value.strftime("%Y-%m-%d %H:%M:%S.%f")  # as SQLAlchemy's SQLite DATETIME stores it
        elif name in ("media_info", "warnings"):
            bound = writer.json(value)
        out.append(bound)
    return tuple(out)


def measure(station: Station, rounds: int) -> dict[str, list[float]]:
    """Alternating rounds of the records check and plain chain verification."""
    times: dict[str, list[float]] = {"replay": [], "chain": []}
    for _ in range(rounds):
        started = time.perf_counter()
        records = verify_records(station.engine)
        times["replay"].append(time.perf_counter() - started)
        assert records.ok, records.as_dict()["findings"][:3]
        started = time.perf_counter()
        chain = verify_audit_log(station.engine, station.key)
        times["chain"].append(time.perf_counter() - started)
        assert chain.ok, chain.problems[:3]
    return times


def sanity(station: Station, clip_id: int) -> str:
    with station.engine.begin() as connection:
        connection.execute(update(clips).where(clips.c.id == clip_id).values(size=clips.c.size + 1))
    verdict = verify_records(station.engine)
    with station.engine.begin() as connection:
        connection.execute(update(clips).where(clips.c.id == clip_id).values(size=clips.c.size - 1))
    findings = verdict.as_dict()["findings"]
    assert [f["object"] for f in findings] == [f"clip {clip_id}"], findings
    return str(findings[0]["text"])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clips", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--dir", type=Path, default=Path("/work"))
    parser.add_argument("--check", action="store_true", help="exit 1 if the target is missed")
    args = parser.parse_args()
    wanted = args.databases.split(",")
    cluster = None
    stations: dict[str, Station] = {}
    with tempfile.TemporaryDirectory(prefix="evidence-bench-replay-", dir=args.dir) as tmp:
        try:
            for name in wanted:
                environ = {"EVIDENCE_HOME": f"{tmp}/{name}", "EVIDENCE_STATION_NAME": "bench-station"}
                if name == "postgresql":
                    from tests.fixtures.postgres import PostgresCluster, _pg_bin  # lazy: only for PostgreSQL

                    bin_dir = _pg_bin()
                    if bin_dir is None:
                        raise SystemExit("PostgreSQL is not installed (no initdb)")
                    cluster = PostgresCluster(bin_dir)
                    cluster.start()
                    environ["EVIDENCE_DATABASE_URL"] = cluster.new_database()
                stations[name], _ = initialise(load_settings(environ))
            # the same chain in every database: each starts with its own init event, so each gets its own
            # chain writer; the clips and their facts are the same
            fill_s = sum(fill([station], args.clips) for station in stations.values())
            print(
                f"built {args.clips:,} clips with their events in {len(stations)} database(s) "
                f"in {fill_s:.0f} s"
            )
            results = []
            load_before = os.getloadavg()
            for name, station in stations.items():
                with station.engine.connect() as connection:
                    events = int(connection.scalar(select(func.count()).select_from(audit_events)) or 0)
                times = measure(station, args.rounds)
                results.append((name, events, times, sanity(station, args.clips // 2)))
            _report(args, results, (load_before, os.getloadavg()))
            met = all(
                events / statistics.median(t["replay"]) >= TARGET_EVENTS_PER_S for _, events, t, _ in results
            )
            print(
                f"target >= {TARGET_EVENTS_PER_S:,} events/s replayed and compared: "
                f"{'met' if met else 'NOT met'}"
            )
            return 1 if args.check and not met else 0
        finally:
            for station in stations.values():
                station.close()
            if cluster is not None:
                cluster.stop()


def _report(
    args: argparse.Namespace,
    results: list[tuple[str, int, dict[str, list[float]], str]],
    loads: tuple[tuple[float, float, float], tuple[float, float, float]],
) -> None:
    print()
    print(
        f"{args.clips:,} clips, {args.rounds} alternating rounds per database; median (min-max) seconds; "
        "warm (the first round of each follows the build, which leaves the data in the page cache); "
        f"load average (1/5/15 min) {' '.join(f'{x:.2f}' for x in loads[0])} before the rounds, "
        f"{' '.join(f'{x:.2f}' for x in loads[1])} after, on {os.cpu_count()} CPUs"
    )
    print()
    print(
        "| database | events | check | median s | min-max s | events/s (median) | vs chain verification "
        "| first round s |"
    )
    print("|---|---:|---|---:|---|---:|---:|---:|")
    for name, events, times, _ in results:
        chain_median = statistics.median(times["chain"])
        for label, key in (("replay + compare rows", "replay"), ("chain verification", "chain")):
            runs = times[key]
            median = statistics.median(runs)
            ratio = f"{median / chain_median:.2f}x its time" if key == "replay" else "—"
            print(
                f"| {name} | {events:,} | {label} | {median:.2f} | {min(runs):.2f}-{max(runs):.2f} "
                f"| {events / median:,.0f} | {ratio} | {runs[0]:.2f} |"
            )
    print()
    for name, _, _, text in results:
        print(f"sanity ({name}): after size + 1, the records check says: {text}")


if __name__ == "__main__":
    sys.exit(main())
