"""The method every benchmark in bench/ shares (issue 21): rounds, alternation, median and spread, cold
caches, the header and the tables.

* **Rounds.** Every variant runs once per round, ``--rounds`` (default 5, at least 5 for a figure that
  is judged) rounds; the order is rotated every round (``round_order``), so a busy moment of the machine
  or a slot that is better placed does not always fall on the same variant.
* **Median and spread.** A variant is reported by the median of its rounds and their spread (min-max);
  the best run is an extra column only. Targets are judged by the median (``Target``); with fewer than
  ``MIN_ROUNDS`` rounds nothing is judged (the figures are printed, marked "not judged").
* **Warm or cold.** Every table says which. ``drop_cached`` makes a file (or every file under a
  directory) cold: fsync, then ``posix_fadvise(POSIX_FADV_DONTNEED)``; ``resident_bytes`` asks
  util-linux ``fincore`` how much of it is still in the page cache, so a table can show it was cold.
* **Header.** ``header`` prints the machine, the load average and the CPU pressure (PSI) before timing,
  ``footer`` the same after.

Pure parts (``round_order``, ``spread``, ``Target``) are unit-tested in tests/unit/test_bench_method.py.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Protocol, TypeVar

MIN_ROUNDS = 5
WARM = "warm"
COLD = "cold"

T = TypeVar("T")


# --- pure parts --------------------------------------------------------------------------------------


def round_order(names: Sequence[T], round_: int) -> list[T]:
    """The order of the variants in round `round_` (0-based): rotated by one place each round, so over
    len(names) rounds every variant takes every place once."""
    if not names:
        return []
    shift = round_ % len(names)
    return list(names[shift:]) + list(names[:shift])


@dataclass(frozen=True)
class Spread:
    """Median and spread of a variant's rounds (seconds, or whatever unit was measured)."""

    median: float
    low: float
    high: float
    rounds: int

    @property
    def best(self) -> float:
        """The lowest value (the best run, for times): an extra column, never what is judged."""
        return self.low

    def cells(self, digits: int = 3, scale: float = 1.0) -> list[str]:
        """median | min-max | best, formatted."""
        return [
            f"{self.median * scale:.{digits}f}",
            f"{self.low * scale:.{digits}f}-{self.high * scale:.{digits}f}",
            f"{self.best * scale:.{digits}f}",
        ]


def spread(values: Iterable[float]) -> Spread:
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    return Spread(statistics.median(ordered), ordered[0], ordered[-1], len(ordered))


@dataclass(frozen=True)
class Target:
    """A target judged by a median. `higher_is_better`: a ratio or a rate (>= goal); otherwise a time or
    a size (<= goal, or < goal when `strict`)."""

    label: str
    measured: float
    goal: float
    higher_is_better: bool = True
    unit: str = "x"
    judged: bool = True
    strict: bool = False

    @property
    def met(self) -> bool:
        if self.higher_is_better:
            return self.measured > self.goal if self.strict else self.measured >= self.goal
        return self.measured < self.goal if self.strict else self.measured <= self.goal

    @property
    def verdict(self) -> str:
        if not self.judged:
            return "not judged"
        return "met" if self.met else "NOT met"


def targets_ok(targets: Iterable[Target]) -> bool:
    """What `--check` asks: every target judged and met."""
    return all(t.judged and t.met for t in targets)


# --- running rounds ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run(Generic[T]):
    wall: float  # seconds
    cpu: float  # CPU seconds of this process (all threads) and its finished children
    pressure: float | None  # % of the run during which some task waited for a CPU (PSI), if known
    result: T


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(call: Callable[[], T]) -> Run[T]:
    pressure_started = cpu_pressure()
    cpu_started = cpu_seconds()
    started = time.perf_counter()
    result = call()
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds() - cpu_started
    pressure_ended = cpu_pressure()
    pressure = None
    if pressure_started is not None and pressure_ended is not None and elapsed > 0:
        pressure = (pressure_ended[1] - pressure_started[1]) / 1e4 / elapsed
    return Run(elapsed, cpu, pressure, result)


def run_rounds(
    variants: Mapping[str, Callable[[], T]],
    rounds: int,
    *,
    before: Callable[[str], None] | None = None,
    after: Callable[[str, Run[T]], None] | None = None,
    label: str = "",
    quiet_below: float = 0,
    quiet_max_wait: float = 120,
) -> dict[str, list[Run[T]]]:
    """Every variant once per round, the order rotated every round (`round_order`). `before(name)` runs
    untimed before each run (a scratch directory, dropping caches, `os.sync()`), `after(name, run)`
    untimed after it (checking the result, cleaning up). `quiet_below`: wait before each run until the
    CPU pressure is below it (see `wait_until_quiet`)."""
    names = list(variants)
    runs: dict[str, list[Run[T]]] = {name: [] for name in names}
    for round_ in range(rounds):
        for name in round_order(names, round_):
            if before is not None:
                before(name)
            if quiet_below:
                wait_until_quiet(quiet_below, quiet_max_wait)
            run = timed(variants[name])
            runs[name].append(run)
            if after is not None:
                after(name, run)
            print(f"  {label}round {round_ + 1}/{rounds} {name:<40} {run.wall:8.3f} s", file=sys.stderr)
    return runs


def spreads(runs: Mapping[str, Sequence[Run[T]]]) -> dict[str, Spread]:
    return {name: spread(r.wall for r in values) for name, values in runs.items()}


class HasWall(Protocol):
    @property
    def wall(self) -> float: ...


R = TypeVar("R", bound=HasWall)


def median_run(values: Sequence[R]) -> R:
    """The run at the median (the lower middle one for an even count): its CPU and pressure columns."""
    ordered = sorted(values, key=lambda r: r.wall)
    return ordered[(len(ordered) - 1) // 2]


# --- caches --------------------------------------------------------------------------------------------


def files_of(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    return [path]


def drop_cached(path: Path) -> None:
    """Make `path` (a file, or every file under a directory) cold: fsync, then POSIX_FADV_DONTNEED."""
    for file in files_of(path):
        try:
            fd = os.open(file, os.O_RDONLY)
        except FileNotFoundError:  # a file of a live database may go (PostgreSQL's temporary files)
            continue
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def resident_bytes(path: Path) -> int | None:
    """How much of `path` (a file, or every file under a directory) is in the page cache (util-linux
    fincore), or None if unknown."""
    if shutil.which("fincore") is None:
        return None
    files = files_of(path)
    if not files:
        return 0
    out = subprocess.run(
        ["fincore", "--bytes", "--noheadings", "--output", "RES", *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        return sum(int(line) for line in out.stdout.split())
    except ValueError:
        return None


def resident_share(path: Path) -> str:
    """ "N% resident" of `path` (fincore), for the table's cache column."""
    total = 0
    for file in files_of(path):
        with contextlib.suppress(FileNotFoundError):
            total += file.stat().st_size
    resident = resident_bytes(path)
    if resident is None or total == 0:
        return "resident unknown"
    return f"{min(100.0, 100 * resident / total):.0f}% resident"  # fincore counts whole pages


# --- the machine ----------------------------------------------------------------------------------------


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def cpu_pressure() -> tuple[float, int] | None:
    """/proc/pressure/cpu "some": (avg10 in %, total stall in microseconds), or None without PSI."""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    fields = dict(item.split("=") for item in line.split()[1:])
    return float(fields["avg10"]), int(fields["total"])


def wait_until_quiet(limit: float, max_wait: float) -> None:
    """Wait (up to `max_wait` s) until CPU pressure over the last 10 s is below `limit` %."""
    deadline = time.monotonic() + max_wait
    while (pressure := cpu_pressure()) is not None and pressure[0] >= limit and time.monotonic() < deadline:
        time.sleep(1)


def machine() -> dict[str, str]:
    model = ""
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and not model:
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return {
        "cpus": str(os.cpu_count()),
        "cpu": model,
        "sha_ni": "yes" if "sha_ni" in flags else "no",
        "python": sys.version.split()[0],
    }


def _pressure_text() -> str:
    pressure = cpu_pressure()
    return "n/a" if pressure is None else f"{pressure[0]:.0f}%"


def header(title: str, rounds: int, caches: Sequence[str]) -> None:
    """The lines every benchmark prints before its tables: what, the machine, the method, the load."""
    info = machine()
    print(f"# {title}")
    print(
        f"machine: {info['cpus']} CPUs, {info['cpu']}, sha_ni={info['sha_ni']}, Python {info['python']}; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    judged = "" if rounds >= MIN_ROUNDS else f" (fewer than {MIN_ROUNDS}: nothing is judged)"
    print(
        f"method: {rounds} alternating rounds{judged}, order rotated each round; median and spread "
        f"(min-max), best as an extra column; cache: {', '.join(caches)}"
    )
    print(f"before timing: load average {load_average()}, CPU pressure (PSI avg10) {_pressure_text()}")


def footer() -> None:
    print(f"after timing: load average {load_average()}, CPU pressure (PSI avg10) {_pressure_text()}")


# --- printing ------------------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], right: Sequence[bool] | None = None) -> None:
    """A markdown table; `right[i]` right-aligns column i (numbers)."""
    print()
    print("| " + " | ".join(headers) + " |")
    aligns = right if right is not None else [False] * len(headers)
    print("|" + "|".join("---:" if r else "---" for r in aligns) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"


def print_targets(targets: Sequence[Target], by: str = "the median") -> None:
    """Targets, judged by the median (or what `by` says): | target | measured | goal | met |."""
    rows = []
    for t in targets:
        sign = (">" if t.strict else ">=") if t.higher_is_better else ("<" if t.strict else "<=")
        rows.append(
            [t.label, f"{_number(t.measured)}{t.unit}", f"{sign} {_number(t.goal)}{t.unit}", t.verdict]
        )
    table([f"target (judged by {by})", f"measured ({by})", "goal", "met"], rows, [False, True, True, False])


# --- options ---------------------------------------------------------------------------------------------


def add_method_options(
    parser: argparse.ArgumentParser,
    *,
    caches: Sequence[str] = (WARM,),
    default_cache: str | None = None,
    rounds: bool = True,
) -> None:
    """--rounds (alias --repeat; not when the benchmark counts its samples otherwise), --cache when a
    benchmark can run cold, --quiet-below, --check and --keep."""
    if rounds:
        parser.add_argument(
            "--rounds",
            "--repeat",
            dest="rounds",
            type=int,
            default=MIN_ROUNDS,
            help=f"alternating rounds, median judged (default {MIN_ROUNDS}; fewer: nothing is judged)",
        )
    if len(caches) > 1:
        choices = [*caches, "both"]
        parser.add_argument(
            "--cache",
            choices=choices,
            default=default_cache or "both",
            help=f"page cache state of the source before each run (default {default_cache or 'both'})",
        )
    parser.add_argument(
        "--quiet-below",
        type=float,
        default=0,
        help="before each run, wait until CPU pressure (PSI avg10) is below this %% (default: do not wait)",
    )
    parser.add_argument("--quiet-max-wait", type=float, default=120, help="longest wait per run, s")
    parser.add_argument("--check", action="store_true", help="exit 1 unless every target is judged and met")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")


def caches_of(args: argparse.Namespace) -> list[str]:
    chosen = getattr(args, "cache", WARM)
    return [COLD, WARM] if chosen == "both" else [chosen]


def judged(args: argparse.Namespace) -> bool:
    return bool(args.rounds >= MIN_ROUNDS)
