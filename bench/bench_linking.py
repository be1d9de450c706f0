"""Benchmark: case linking (issue 5) on SQLite.

Fills a fresh station (initialise() in a temporary EVIDENCE_HOME) with synthetic officers, cases,
documents (with their `document_officers` index rows) and clips, inserted fast with driver-level
executemany (`evidence_store.db.bulk.BulkWriter`, the same writer the linking service uses). The data
is shaped like a year of a large station's work: officers in pairs, documents of 20-120 minutes in
office hours (2 % without an end time), one to three clips covering each officer's part of a document,
and unrelated clips (patrols) for the rest; 5 % of the clips have an unknown recorder clock.

Timed:
1. `relink_all` on the full data, first run (every link created, every flag of every clip and
   document computed - the unassigned footage too, since the fill computes none), with the linking
   part and the flags part shown separately; the target is <= 30 s on SQLite.
2. `relink_all` again: nothing changes (checked), and how long it takes to find that out.
3. `link_clip` for 100 new clips (each inserted first, then linked in its own transaction with its
   flags, its audit event and the commit): median and p95; the target is <= 10 ms.
4. The naive clips x documents definition (`link_naively`) against the sweep (`link_clips`) on a
   10,000 x 2,000 subset, in memory, to show the growth; both must give the same links.

Usage: .venv/bin/python bench/bench_linking.py [--clips 1000000] [--documents 200000] [--officers 2000]
                                                [--dir /work] [--check] [--keep]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from evidence_store.bootstrap import Station, initialise
from evidence_store.cases.kinds import load_kinds
from evidence_store.cases.linking_service import link_clip, relink_all
from evidence_store.db.bulk import BulkWriter
from evidence_store.db.tables import (
    cases,
    clip_links,
    clips,
    compliance_flags,
    document_officers,
    documents,
    officers,
)
from evidence_store.domain.linking import ClipSpan, DocumentWindow, link_clips, link_naively
from evidence_store.settings import load_settings

TARGET_RELINK_S = 30.0
TARGET_INCREMENTAL_MS = 10.0
YEAR_START = datetime(2025, 1, 1, tzinfo=UTC)  # 08:00 in Asia/Shanghai is 00:00 UTC
TOLERANCE = timedelta(minutes=5)


def _day_time(rng: random.Random) -> datetime:
    """A moment in office hours (08:00-17:00 station time) on a day of the year."""
    return YEAR_START + timedelta(days=rng.randrange(365), minutes=rng.randrange(9 * 60))


def generate(
    rng: random.Random, n_clips: int, n_documents: int, n_officers: int
) -> tuple[list[ClipSpan], list[DocumentWindow]]:
    """The synthetic year: documents first, then clips covering them, then unrelated clips."""
    docs: list[DocumentWindow] = []
    per_case = 4
    for i in range(n_documents):
        first = rng.randrange(n_officers)
        officers_of = (
            (first + 1, (first ^ 1) + 1) if rng.random() < 0.7 and (first ^ 1) < n_officers else (first + 1,)
        )
        start = _day_time(rng)
        end = None if rng.random() < 0.02 else start + timedelta(minutes=rng.randrange(20, 121))
        docs.append(DocumentWindow(i + 1, i // per_case + 1, officers_of, start, end))
    spans: list[ClipSpan] = []
    for doc in docs:
        assert doc.start is not None
        doc_end = doc.end or doc.start + timedelta(minutes=5)
        for officer in doc.officer_ids:
            if len(spans) >= n_clips:
                break
            moment = doc.start + timedelta(seconds=rng.randrange(-180, 240))
            for _ in range(rng.choice((1, 2, 2, 3))):
                length = timedelta(minutes=rng.randrange(5, 31))
                spans.append(ClipSpan(len(spans) + 1, officer, moment, moment + length, rng.random() >= 0.05))
                moment += length + timedelta(seconds=rng.randrange(0, 90))
                if moment >= doc_end or len(spans) >= n_clips:
                    break
    while len(spans) < n_clips:
        moment = _day_time(rng)
        spans.append(
            ClipSpan(
                len(spans) + 1,
                rng.randrange(n_officers) + 1,
                moment,
                moment + timedelta(minutes=rng.randrange(1, 31)),
                rng.random() >= 0.05,
            )
        )
    return spans, docs


def fill(station: Station, spans: list[ClipSpan], docs: list[DocumentWindow], n_officers: int) -> float:
    started = time.perf_counter()
    kinds = list(load_kinds(None).kinds.values())
    now = datetime(2026, 1, 10, tzinfo=UTC)
    with station.engine.begin() as connection:
        bulk = BulkWriter(connection)
        bulk.insert(
            officers,
            ("id", "badge_number", "name", "unit", "active"),
            [
                (i, f"31{i:05d}", f"执法人员{i}", "金普新区卫生健康监督所", True)
                for i in range(1, n_officers + 1)
            ],
        )
        case_ids = sorted({d.case_id for d in docs})
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
                "opened_at",
            ),
            [
                (
                    cid,
                    f"金普卫监〔2025〕{cid}号",
                    "",
                    "行政检查",
                    "",
                    "金普新区卫生健康监督所",
                    bulk.json([]),
                    "10y",
                    "normal",
                    bulk.time(YEAR_START),
                )
                for cid in case_ids
            ],
        )
        doc_rows = []
        officer_rows = []
        for d in docs:
            kind = kinds[d.document_id % len(kinds)]
            doc_rows.append(
                (
                    d.document_id,
                    f"DOC-{d.document_id:07d}",
                    d.case_id,
                    kind.code,
                    "",
                    bulk.json(list(d.officer_ids)),
                    bulk.time(d.start),
                    bulk.time(d.end),
                    kind.requires_video,
                )
            )
            officer_rows.extend((d.document_id, o) for o in d.officer_ids)
        bulk.insert(
            documents,
            (
                "id",
                "external_id",
                "case_id",
                "kind",
                "title",
                "officer_ids",
                "start",
                "end",
                "requires_video",
            ),
            doc_rows,
        )
        bulk.insert(document_officers, ("document_id", "officer_id"), officer_rows)
        print(f"  {len(docs):,} documents in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        ingested = bulk.time(now)
        empty_info, empty_warnings = bulk.json({}), bulk.json([])
        columns = (
            "id",
            "sha256",
            "size",
            "media_type",
            "original_name",
            "device_path",
            "officer_id",
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
        batch: list[tuple[Any, ...]] = []
        for s in spans:
            assert s.start is not None and s.end is not None
            batch.append(
                (
                    s.clip_id,
                    f"{s.clip_id:064x}",
                    1_000_000,
                    "video",
                    f"CLIP{s.clip_id}.MP4",
                    "",
                    s.officer_id,
                    bulk.time(s.start),
                    bulk.time(s.end),
                    "measured" if s.clock_known else "unknown",
                    (s.end - s.start).total_seconds(),
                    "ready",
                    ingested,
                    False,
                    empty_info,
                    empty_warnings,
                )
            )
            if len(batch) >= 100_000:
                bulk.insert(clips, columns, batch)
                batch = []
                print(f"  {s.clip_id:,} clips", end="\r", file=sys.stderr)
        bulk.insert(clips, columns, batch)
    _checkpoint(station)
    print(file=sys.stderr)
    return time.perf_counter() - started


def _checkpoint(station: Station) -> None:
    raw = station.engine.raw_connection()
    try:
        raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[union-attr]
    finally:
        raw.close()


def _counts(station: Station) -> dict[str, int]:
    with station.engine.connect() as connection:
        return {
            "active_links": connection.scalar(
                select(func.count()).select_from(clip_links).where(clip_links.c.removed_at.is_(None))
            )
            or 0,
            "all_links": connection.scalar(select(func.count()).select_from(clip_links)) or 0,
            "open_flags": connection.scalar(
                select(func.count())
                .select_from(compliance_flags)
                .where(compliance_flags.c.cleared_at.is_(None))
            )
            or 0,
        }


def incremental(
    station: Station, rng: random.Random, docs: list[DocumentWindow], first_id: int
) -> list[float]:
    """Insert 100 new clips (most of them inside a document's window) and link each on its own."""
    timings: list[float] = []
    for i in range(100):
        doc = docs[rng.randrange(len(docs))]
        assert doc.start is not None
        start = doc.start + timedelta(minutes=rng.randrange(0, 15)) if i % 4 else _day_time(rng)
        clip_id = first_id + i
        with station.engine.begin() as connection:
            bulk = BulkWriter(connection)
            bulk.insert(
                clips,
                (
                    "id",
                    "sha256",
                    "size",
                    "media_type",
                    "original_name",
                    "device_path",
                    "officer_id",
                    "utc_start",
                    "utc_end",
                    "clock_status",
                    "status",
                    "ingested_at",
                    "late_handover",
                    "media_info",
                    "warnings",
                ),
                [
                    (
                        clip_id,
                        f"{clip_id:064x}",
                        1,
                        "video",
                        f"NEW{clip_id}.MP4",
                        "",
                        doc.officer_ids[0],
                        bulk.time(start),
                        bulk.time(start + timedelta(minutes=10)),
                        "measured",
                        "ready",
                        bulk.time(datetime.now(UTC)),
                        False,
                        bulk.json({}),
                        bulk.json([]),
                    )
                ],
            )
        began = time.perf_counter()
        link_clip(station, clip_id)
        timings.append((time.perf_counter() - began) * 1000)
    return timings


def naive_vs_sweep(spans: list[ClipSpan], docs: list[DocumentWindow]) -> tuple[int, int, float, float, int]:
    """A 10,000 x 2,000 subset: the officers of the first documents, all their clips and documents."""
    chosen: set[int] = set()
    sub_docs: list[DocumentWindow] = []
    for doc in docs:
        if len(sub_docs) >= 2_000:
            break
        sub_docs.append(doc)
        chosen.update(doc.officer_ids)
    sub_clips = [s for s in spans if s.officer_id in chosen][:10_000]
    began = time.perf_counter()
    swept = link_clips(sub_clips, sub_docs, TOLERANCE)
    sweep_s = time.perf_counter() - began
    began = time.perf_counter()
    naive = link_naively(sub_clips, sub_docs, TOLERANCE)
    naive_s = time.perf_counter() - began
    assert swept == naive, "the sweep and the definition disagree"
    return len(sub_clips), len(sub_docs), naive_s, sweep_s, len(swept)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clips", type=int, default=1_000_000)
    parser.add_argument("--documents", type=int, default=200_000)
    parser.add_argument("--officers", type=int, default=2_000)
    parser.add_argument("--dir", type=Path, default=Path("/work"), help="where the temp home goes")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    parser.add_argument("--keep", action="store_true", help="keep the temporary EVIDENCE_HOME")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="evidence-bench-linking-", dir=args.dir))
    try:
        return _bench(args, home)
    finally:
        if args.keep:
            print(f"kept {home}", file=sys.stderr)
        else:
            shutil.rmtree(home)


def _bench(args: argparse.Namespace, home: Path) -> int:
    settings = load_settings({"EVIDENCE_HOME": str(home), "EVIDENCE_STATION_NAME": "bench-station"})
    station, _ = initialise(settings)
    rng = random.Random(5)
    spans, docs = generate(rng, args.clips, args.documents, args.officers)
    fill_s = fill(station, spans, docs, args.officers)
    print(
        f"filled {len(spans):,} clips, {len(docs):,} documents, {args.officers:,} officers in {fill_s:.1f} s",
        file=sys.stderr,
    )

    cpu = time.process_time()
    first = relink_all(station, TOLERANCE)
    first_cpu = time.process_time() - cpu
    after_first = _counts(station)
    _checkpoint(station)
    cpu = time.process_time()
    second = relink_all(station, TOLERANCE)
    second_cpu = time.process_time() - cpu
    after_second = _counts(station)
    assert not second.changed and not any(second.flag_counts.values()), "a second relink changed something"
    assert after_first == after_second
    timings = incremental(station, rng, docs, len(spans) + 1)
    median = statistics.median(timings)
    p95 = statistics.quantiles(timings, n=20)[-1]
    sub_clips, sub_docs, naive_s, sweep_s, sub_links = naive_vs_sweep(spans, docs)
    station.close()

    rows = [
        (
            "full relink, first run (links + flags)",
            f"{first.seconds:.1f} s",
            f"{first.added:,} links, {first.flag_counts.get('flags_opened', 0):,} flags; "
            f"target <= {TARGET_RELINK_S:.0f} s",
        ),
        ("  of which linking", f"{first.link_seconds:.1f} s", f"{first.uncertain_added:,} uncertain links"),
        ("  of which flags, audit, commit", f"{first.seconds - first.link_seconds:.1f} s", ""),
        ("  CPU time of the process", f"{first_cpu:.1f} s", "wall minus CPU: waiting for disk or a core"),
        ("full relink, second run (no change)", f"{second.seconds:.1f} s", "0 links, 0 flags changed"),
        ("  CPU time of the process", f"{second_cpu:.1f} s", ""),
        (
            "incremental link_clip, median",
            f"{median:.2f} ms",
            f"100 clips; target <= {TARGET_INCREMENTAL_MS:.0f} ms",
        ),
        ("incremental link_clip, p95", f"{p95:.2f} ms", "incl. flags, audit event, commit"),
        (f"naive {sub_clips:,} x {sub_docs:,} (link_naively)", f"{naive_s:.2f} s", f"{sub_links:,} links"),
        (
            f"sweep {sub_clips:,} x {sub_docs:,} (link_clips)",
            f"{sweep_s * 1000:.1f} ms",
            f"same links; {naive_s / sweep_s:,.0f}x faster",
        ),
    ]
    print(
        f"\nCase linking: {len(spans):,} clips x {len(docs):,} documents, {args.officers:,} officers (SQLite)"
    )
    load = os.getloadavg()
    print(f"{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the end")
    print(
        f"links stored: {after_first['active_links']:,} active; open flags: {after_first['open_flags']:,}\n"
    )
    width = max(len(r[0]) for r in rows)
    print(f"| {'measure':<{width}} | {'time':>10} | notes")
    print(f"| {'-' * width} | {'-' * 10} | -----")
    for name, value, note in rows:
        print(f"| {name:<{width}} | {value:>10} | {note}")
    ok = first.seconds <= TARGET_RELINK_S and p95 <= TARGET_INCREMENTAL_MS
    if args.check and not ok:
        print("TARGET MISSED", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
