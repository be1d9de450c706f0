"""Benchmark: two years of an office's footage under the nightly retention run (issue 17, R8, R9).

An office of `--recorders` body-worn recorders (default 40) records `--clips-per-day` clips each (8)
on every working day of the Chinese calendar (weekends and the State Council's public holidays off,
the weekend days worked in their place on; 2025 and 2026 are listed below), hands them over the same
evening (3 % late, three days on: R1), and files `--evidence-share` of them (5 %) as evidence of a case
archived 60 days after the act with a 10-year case-file period; the rest is linked to no case
(`unassigned_footage`), as in a real office where most footage shows nothing to file. Compliance flags
are refreshed after each day's intake, as the processing pipeline does. Every night at 02:00
Asia/Shanghai `run_retention` runs for real on the station (SQLite, the local blob store) with a fixed
clock: decisions, floors, purges and tombstones, audited.

Each clip's bytes are tiny (a unique 32-byte blob, so purges are real), while its recorded size is
that of a 5-10 minute 1080p clip (60-400 MB): the store's size below is the sum of the recorded sizes
of the clips not deleted.

The baseline (the issue's finding on `main` before issue 17) is the same footage under the old rule
that an open compliance flag holds a clip: every unassigned or late clip is kept for ever. It is
computed with the pure policy (`retention.policy.decide`) given the old facts (the open flag as a
hold) at each month's end, side by side with the real run.

Printed: one row per month (store size, clips, deleted; the baseline's size), the seconds per simulated
night (median, p10, p90 over the month's nights, each night a full run), and the check that the store
levels off at about 6 months of ordinary footage plus the evidence. The curve is written as an SVG.

Method (bench/method.py): a simulation, not alternating rounds: each night is one sample of a state
that grows, so the nights are summarised (median, p10, p90, min-max) month by month and over the run.
``--cache warm`` (the default) leaves the database in the page cache between nights; ``--cache cold``
drops the database file and its WAL (fsync, ``posix_fadvise(DONTNEED)``) before every night's run, as a
station whose page cache went to the day's footage meets it. One cache state per run.

Usage: .venv/bin/python bench/bench_retention_office.py [--recorders 40] [--clips-per-day 8]
        [--days 730] [--start 2025-01-01] [--svg bench/retention_office.svg] [--dir /tmp] [--seed 17]
        [--cache warm]
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update

from evidence_store.bootstrap import Station, initialise
from evidence_store.cases.flags_service import refresh_flags
from evidence_store.db.tables import cases, clips
from evidence_store.domain.model import (
    Case,
    CaseCategory,
    Clip,
    ClipLink,
    ClipStatus,
    MediaType,
    RetentionAction,
    RetentionPeriod,
)
from evidence_store.settings import load_settings
from retention.policy import CaseFacts, ClipFacts, LinkFacts, RetentionSettings, add_months, decide
from retention.run import ConfirmationNeeded, run_retention

sys.path.insert(0, str(Path(__file__).resolve().parent))

import method  # bench/method.py: the method every benchmark shares

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = timedelta(days=1)
GB = 10**9
LATE_SHARE = 0.03
ARCHIVED_AFTER = 60 * DAY

# The State Council's holiday notices (国务院办公厅关于2025年、2026年部分节假日安排的通知): days off, and
# the weekend days worked in their place. Written out by hand: no calendar library is in the environment.
HOLIDAYS: frozenset[date] = frozenset(
    date.fromisoformat(d)
    for d in (
        # 2025: 元旦; 春节 1-28..2-4; 清明 4-4..4-6; 劳动节 5-1..5-5; 端午 5-31..6-2; 国庆/中秋 10-1..10-8
        "2025-01-01",
        *(f"2025-01-{d}" for d in range(28, 32)),
        *(f"2025-02-0{d}" for d in range(1, 5)),
        *(f"2025-04-0{d}" for d in range(4, 7)),
        *(f"2025-05-0{d}" for d in range(1, 6)),
        "2025-05-31",
        "2025-06-01",
        "2025-06-02",
        *(f"2025-10-0{d}" for d in range(1, 9)),
        # 2026: 元旦 1-1..1-3; 春节 2-15..2-23; 清明 4-4..4-6; 劳动节 5-1..5-5; 端午 6-19..6-21;
        # 中秋 9-25..9-27; 国庆 10-1..10-7
        *(f"2026-01-0{d}" for d in range(1, 4)),
        *(f"2026-02-{d}" for d in range(15, 24)),
        *(f"2026-04-0{d}" for d in range(4, 7)),
        *(f"2026-05-0{d}" for d in range(1, 6)),
        *(f"2026-06-{d}" for d in range(19, 22)),
        *(f"2026-09-{d}" for d in range(25, 28)),
        *(f"2026-10-0{d}" for d in range(1, 8)),
    )
)
WORKED_WEEKEND_DAYS: frozenset[date] = frozenset(
    date.fromisoformat(d)
    for d in (
        "2025-01-26",
        "2025-02-08",
        "2025-04-27",
        "2025-09-28",
        "2025-10-11",
        "2026-01-04",
        "2026-02-14",
        "2026-02-28",
        "2026-05-09",
        "2026-09-20",
        "2026-10-10",
    )
)


def working_day(day: date) -> bool:
    if day in WORKED_WEEKEND_DAYS:
        return True
    return day not in HOLIDAYS and day.weekday() < 5


class Clock:
    """The station's clock, moved by the simulation (the run never reads the real time)."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Recorded:
    """What the baseline needs of each clip: its end, size, and whether it was evidence or flagged."""

    clip_id: int
    end: datetime
    size: int
    evidence_case: int | None
    late: bool


@dataclass
class Month:
    label: str
    live_clips: int = 0
    live_bytes: int = 0
    evidence_bytes: int = 0
    deleted: int = 0
    baseline_bytes: int = 0
    recorded_bytes: int = 0
    ordinary_last_6_months: int = 0
    night_seconds: list[float] = field(default_factory=list)


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


class Office:
    def __init__(self, station: Station, clock: Clock, args: argparse.Namespace) -> None:
        self.station = station
        self.clock = clock
        self.args = args
        self.rng = random.Random(args.seed)
        self.recorded: list[Recorded] = []
        self.late_queue: dict[date, list[Clip]] = {}
        self.to_archive: list[tuple[date, int]] = []
        self.case_archived: dict[int, datetime] = {}
        self.case_of_late: dict[int, int] = {}  # a late evidence clip's case, linked when it arrives
        self.serial = 0

    def day_of_work(self, day: date) -> None:
        """The day's acts are recorded; on time clips handed over at 18:00, late ones three days on."""
        on_time: list[Clip] = []
        evidence: dict[int, list[Clip]] = {}
        for recorder in range(self.args.recorders):
            for n in range(self.args.clips_per_day):
                start = local(day, 9) + timedelta(minutes=n * 55 + self.rng.randrange(0, 20))
                end = start + timedelta(minutes=self.rng.randrange(5, 11))
                late = self.rng.random() < LATE_SHARE
                handover = day + (3 * DAY if late else timedelta(0))
                self.serial += 1
                blob = self.station.blobs.put(
                    io.BytesIO(f"{self.serial}:{os.urandom(16).hex()}".encode()), durable=False
                )
                clip = Clip(
                    sha256=blob.sha256,
                    size=self.rng.randrange(60, 400) * 10**6,
                    media_type=MediaType.VIDEO,
                    original_name=f"REC{recorder:02d}_{day:%Y%m%d}_{n:04d}.MP4",
                    utc_start=start,
                    utc_end=end,
                    status=ClipStatus.READY,
                    ingested_at=local(handover, 18),
                    late_handover=late,
                )
                if late:
                    self.late_queue.setdefault(handover, []).append(clip)
                else:
                    on_time.append(clip)
                if self.rng.random() < self.args.evidence_share:
                    evidence.setdefault(recorder, []).append(clip)
        self.station.blobs.sync()
        self.hand_over(day, on_time, evidence)

    def hand_over(self, day: date, handed: list[Clip], evidence: dict[int, list[Clip]]) -> None:
        handed = handed + self.late_queue.pop(day, [])
        if not handed:
            return
        self.clock.now = local(day, 18)
        with self.station.transaction() as session:
            session.add_all(handed)
            session.flush()
            case_of: dict[int, int] = {}
            for recorder, group in evidence.items():
                case = Case(
                    number=f"金普卫监罚〔{day.year}〕{day:%m%d}{recorder:02d}号",
                    category=CaseCategory.PUNISHMENT,
                    opened_at=self.clock.now,
                    retention_period=RetentionPeriod.YEARS_10,
                )
                session.add(case)
                session.flush()
                assert case.id is not None
                self.to_archive.append((day + ARCHIVED_AFTER, case.id))
                for clip in group:
                    if clip.id is None:  # late: linked when it arrives
                        self.case_of_late[id(clip)] = case.id
                    else:
                        case_of[id(clip)] = case.id
            for clip in handed:
                case_id = case_of.get(id(clip)) or self.case_of_late.pop(id(clip), None)
                assert clip.id is not None and clip.utc_end is not None
                if case_id is not None:
                    session.add(
                        ClipLink(
                            clip_id=clip.id,
                            case_id=case_id,
                            is_evidence=True,
                            reason="bench",
                            created_by="bench",
                            created_at=self.clock.now,
                        )
                    )
                self.recorded.append(Recorded(clip.id, clip.utc_end, clip.size, case_id, clip.late_handover))
            session.flush()
            refresh_flags(session, self.station, clip_ids=[c.id for c in handed if c.id is not None])

    def archive_due(self, day: date) -> None:
        due = [case_id for when, case_id in self.to_archive if when <= day]
        if not due:
            return
        self.to_archive = [(w, c) for w, c in self.to_archive if w > day]
        archived_at = local(day, 10)
        with self.station.engine.begin() as connection:
            connection.execute(update(cases).where(cases.c.id.in_(due)).values(archived_at=archived_at))
        for case_id in due:
            self.case_archived[case_id] = archived_at

    def night(self, night: datetime) -> tuple[float, int]:
        self.clock.now = night
        started = time.perf_counter()
        try:
            report = run_retention(self.station, night, actor="bench")
        except ConfirmationNeeded as exc:  # a share above the guard: the custodian confirms
            report = run_retention(self.station, night, confirm_run_id=exc.report.run_id, actor="bench")
        return time.perf_counter() - started, report.deleted

    def store(self) -> tuple[int, int, int]:
        """(live clips, live bytes, live evidence bytes) as recorded in the database."""
        with self.station.engine.connect() as connection:
            count, size = connection.execute(
                select(func.count(), func.coalesce(func.sum(clips.c.size), 0)).where(
                    clips.c.status != ClipStatus.DELETED
                )
            ).one()
        evidence_ids = {r.clip_id for r in self.recorded if r.evidence_case is not None}
        with self.station.engine.connect() as connection:
            live_evidence = (
                connection.scalar(
                    select(func.coalesce(func.sum(clips.c.size), 0)).where(
                        clips.c.status != ClipStatus.DELETED, clips.c.id.in_(evidence_ids)
                    )
                )
                if evidence_ids
                else 0
            )
        return int(count), int(size), int(live_evidence or 0)

    def baseline_bytes(self, now: datetime) -> int:
        """The store under `main` before issue 17: an open flag (every unassigned or late clip) held."""
        facts = [
            ClipFacts(r.clip_id, r.end, flag_under_review=r.evidence_case is None or r.late)
            for r in self.recorded
        ]
        links = [LinkFacts(r.clip_id, r.evidence_case, True) for r in self.recorded if r.evidence_case]
        case_facts = {
            case_id: CaseFacts(
                case_id,
                CaseCategory.PUNISHMENT.value,
                self.case_archived.get(case_id),
                RetentionPeriod.YEARS_10,
            )
            for case_id in {r.evidence_case for r in self.recorded if r.evidence_case}
        }
        sizes = {r.clip_id: r.size for r in self.recorded}
        return sum(
            sizes[d.clip_id]
            for d in decide(facts, links, case_facts, RetentionSettings(), now)
            if d.action is RetentionAction.KEEP
        )

    def ordinary_recorded_since(self, since: datetime) -> int:
        return sum(r.size for r in self.recorded if r.evidence_case is None and r.end > since)


def simulate(args: argparse.Namespace) -> list[Month]:
    home = Path(tempfile.mkdtemp(prefix="bench-office-", dir=args.dir))
    os.environ["EVIDENCE_HOME"] = str(home)
    os.environ["EVIDENCE_STATION_NAME"] = "bench-office"
    clock = Clock(local(args.start, 0))
    station, _ = initialise(load_settings(), clock=clock)
    office = Office(station, clock, args)
    months: dict[str, Month] = {}
    try:
        for offset in range(args.days):
            day = args.start + offset * DAY
            month = months.setdefault(f"{day:%Y-%m}", Month(f"{day:%Y-%m}"))
            if working_day(day):
                office.day_of_work(day)
            else:
                office.hand_over(day, [], {})  # late clips still arrive on their day
            office.archive_due(day)
            if args.cache == method.COLD:
                for path in (home / "evidence.db", home / "evidence.db-wal"):
                    if path.exists():
                        method.drop_cached(path)
            seconds, deleted = office.night(local(day + DAY, 2))
            month.night_seconds.append(seconds)
            month.deleted += deleted
            last_of_month = (day + DAY).month != day.month or offset == args.days - 1
            if last_of_month:
                now = local(day + DAY, 2)
                month.live_clips, month.live_bytes, month.evidence_bytes = office.store()
                month.baseline_bytes = office.baseline_bytes(now)
                month.recorded_bytes = sum(r.size for r in office.recorded)
                month.ordinary_last_6_months = office.ordinary_recorded_since(add_months(now, -6))
                print(row(month), flush=True)
                done = [m for m in months.values() if m.night_seconds and m.live_clips]
                args.svg.write_text(
                    svg(done, args.recorders), encoding="utf-8"
                )  # the curve so far, month by month
    finally:
        station.close()
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    return list(months.values())


HEADER = (
    "| month | clips live | store GB | of which evidence GB | ordinary GB | ordinary recorded in the last 6 "
    "months GB | deleted in month | baseline (main) GB | s/night median | p10 | p90 |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def row(m: Month) -> str:
    times = sorted(m.night_seconds)
    p10 = times[int(0.1 * (len(times) - 1))]
    p90 = times[int(0.9 * (len(times) - 1))]
    return (
        f"| {m.label} | {m.live_clips:,} | {m.live_bytes / GB:,.0f} | {m.evidence_bytes / GB:,.0f} | "
        f"{(m.live_bytes - m.evidence_bytes) / GB:,.0f} | {m.ordinary_last_6_months / GB:,.0f} | "
        f"{m.deleted:,} | "
        f"{m.baseline_bytes / GB:,.0f} | {statistics.median(times):.2f} | {p10:.2f} | {p90:.2f} |"
    )


def svg(months: list[Month], recorders: int) -> str:
    """The store's size by month, this branch against the baseline, with the evidence under it."""
    width, height, left, bottom, top, right = 760, 360, 70, 50, 30, 20
    top_value = max(*(m.baseline_bytes for m in months), 1) / GB
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(i: int) -> float:
        return left + plot_w * i / max(len(months) - 1, 1)

    def y(value: float) -> float:
        return top + plot_h * (1 - value / top_value)

    def line(values: list[float], colour: str, dash: str = "") -> str:
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
        extra = f' stroke-dasharray="{dash}"' if dash else ""
        return f'<polyline fill="none" stroke="{colour}" stroke-width="2"{extra} points="{points}"/>'

    live = [m.live_bytes / GB for m in months]
    evidence = [m.evidence_bytes / GB for m in months]
    baseline = [m.baseline_bytes / GB for m in months]
    expected = [(m.ordinary_last_6_months + m.evidence_bytes) / GB for m in months]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="18" font-size="13">Store size by month: office of {recorders} recorders, '
        "nightly retention (issue 17)</text>",
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#444"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#444"/>',
    ]
    for k in range(5):
        value = top_value * k / 4
        parts.append(
            f'<text x="{left - 6}" y="{y(value) + 4:.1f}" text-anchor="end">{value:,.0f} GB</text>'
            f'<line x1="{left}" y1="{y(value):.1f}" x2="{left + plot_w}" y2="{y(value):.1f}" stroke="#eee"/>'
        )
    for i, m in enumerate(months):
        if i % 3 == 0:
            parts.append(
                f'<text x="{x(i):.1f}" y="{top + plot_h + 16}" text-anchor="middle">{m.label}</text>'
            )
    parts += [
        line(baseline, "#c0392b", "6 4"),
        line(expected, "#999999", "2 3"),
        line(live, "#1f6fb2"),
        line(evidence, "#27ae60"),
    ]
    legend = [
        ("#c0392b", "baseline: main before issue 17 (flags hold for ever)"),
        ("#1f6fb2", "this branch: store size (recorded sizes of live clips)"),
        ("#999999", "6 months of ordinary footage + evidence"),
        ("#27ae60", "evidence (10-year case files)"),
    ]
    for k, (colour, text) in enumerate(legend):
        ly = top + 12 + 15 * k
        parts.append(
            f'<line x1="{left + 12}" y1="{ly}" x2="{left + 34}" y2="{ly}" stroke="{colour}" '
            'stroke-width="2"/>'
            f'<text x="{left + 40}" y="{ly + 4}">{text}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recorders", type=int, default=40)
    parser.add_argument("--clips-per-day", type=int, default=8)
    parser.add_argument("--evidence-share", type=float, default=0.05)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--start", type=date.fromisoformat, default=date(2025, 1, 1))
    parser.add_argument("--svg", type=Path, default=Path(__file__).with_name("retention_office.svg"))
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--seed", type=int, default=17)
    method.add_method_options(
        parser, caches=(method.COLD, method.WARM), default_cache=method.WARM, rounds=False
    )
    args = parser.parse_args()
    if args.cache == "both":
        raise SystemExit("--cache: one state per simulation (cold or warm); run it twice for both")
    method.header(
        f"two years of an office under the nightly retention run ({args.cache})", args.days, [args.cache]
    )
    state = (
        "cold: the database dropped from the page cache before every night"
        if args.cache == method.COLD
        else "warm: the database in the page cache"
    )
    print(
        f"office: {args.recorders} recorders x {args.clips_per_day} clips per working day, "
        f"{args.evidence_share:.0%} evidence (10-year case files, archived 60 days on), "
        f"{LATE_SHARE:.0%} late; "
        f"{args.days} nights from {args.start}; SQLite, local store; one full retention run per night "
        f"({state})\n"
    )
    print(HEADER, flush=True)
    started = time.perf_counter()
    months = simulate(args)
    total = time.perf_counter() - started
    nights = [s for m in months for s in m.night_seconds]
    last = months[-1]
    ordinary = last.live_bytes - last.evidence_bytes
    ratio = ordinary / last.ordinary_last_6_months if last.ordinary_last_6_months else 0.0
    half = len(months) // 2
    growth_second_year = (last.live_bytes - months[half - 1].live_bytes) / GB
    evidence_growth = (last.evidence_bytes - months[half - 1].evidence_bytes) / GB
    print(
        f"\nnights: {len(nights)}; seconds per night: median {statistics.median(nights):.2f}, "
        f"p10 {sorted(nights)[len(nights) // 10]:.2f}, p90 {sorted(nights)[9 * len(nights) // 10]:.2f}, "
        f"min-max {min(nights):.2f}-{max(nights):.2f}; whole simulation {total:.0f} s"
    )
    method.footer()
    print(
        f"at the end: ordinary footage kept {ordinary / GB:,.0f} GB = {ratio:.2f} x the ordinary footage "
        f"recorded in the last 6 months; evidence {last.evidence_bytes / GB:,.0f} GB; "
        f"store grew {growth_second_year:,.0f} GB over the last {len(months) - half} months, "
        f"{evidence_growth:,.0f} GB of it evidence; baseline (main) {last.baseline_bytes / GB:,.0f} GB "
        f"of {last.recorded_bytes / GB:,.0f} GB ever recorded"
    )
    args.svg.write_text(svg(months, args.recorders), encoding="utf-8")
    print(f"wrote {args.svg}")
    levelled = 0.9 <= ratio <= 1.1
    print("levels off at about 6 months of ordinary footage plus the evidence:", "yes" if levelled else "NO")
    return 0 if levelled else 1


if __name__ == "__main__":
    sys.exit(main())
