"""Benchmark: writing one large file into the local blob store with inline SHA-256.

In one run, on the same source file and the same filesystem, every variant is timed the same way
(round-robin with the order rotated each round, best of N; between runs, not timed, the output is
deleted and `os.sync()` called):

* ``hashlib``            hashlib.sha256 alone, reading the file in 4 MiB chunks (the physical floor)
* ``sha256sum``          coreutils sha256sum alone (for reference)
* ``cp``                 cp to a new file (ends in the page cache, nothing forced to disk)
* ``cp + sync``          cp, then ``sync FILE`` (fsync of the copy: the fair comparison with the store)
* ``cp; sha256sum``      the two-pass baseline: cp, then sha256sum of the copy
* ``cp; sync; sha256sum`` the two-pass baseline made durable
* ``store.put``          LocalBlobStore.put into a fresh store (creates the blob; fsyncs the file and
  the directories, links, makes it read-only)

The page cache cannot be dropped here, so the source is read once before timing and is warm in the
page cache for every variant (`fincore` reports how much of it is resident). Throughput is in MB/s
(10^6 bytes per second).

Peak memory of a store write is measured in a separate child process per size: VmHWM from
/proc/self/status in the child, after imports and after the put (the whole process, interpreter
included).

Usage: .venv/bin/python bench/bench_store_write.py [--size-mib 1024] [--repeat 3] [--dir /work] [--check]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

MIB = 1024 * 1024
HASH_CHUNK = 4 * MIB
TARGET_VS_HASH = 0.85
TARGET_VS_TWO_PASS = 2.0
TARGET_PEAK_MIB = 100.0


# --- helpers ---------------------------------------------------------------------------------------


def make_random_file(path: Path, size: int) -> None:
    chunk = 16 * MIB
    with path.open("wb") as handle:
        remaining = size
        while remaining:
            n = min(chunk, remaining)
            handle.write(os.urandom(n))
            remaining -= n
        handle.flush()
        os.fsync(handle.fileno())


def hashlib_file(path: Path, buffer: bytearray | None = None) -> str:
    """Hashing alone, the reference every benchmark compares with: SHA-256 of `path` through one
    reused 4 MiB buffer (pass `buffer` to reuse it across files too)."""
    if buffer is None:
        buffer = bytearray(HASH_CHUNK)
    view = memoryview(buffer)
    digest = hashlib.sha256()
    with path.open("rb", buffering=0) as handle:
        while n := handle.readinto(buffer):
            digest.update(view[:n])
    return digest.hexdigest()


def resident_bytes(path: Path) -> int | None:
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


def run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def sha256sum(path: Path) -> str:
    return run("sha256sum", str(path)).split()[0]


def free_bytes(path: Path) -> int:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


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


# --- variants ---------------------------------------------------------------------------------------

Variant = Callable[[Path, Path], str | None]  # (source, scratch dir) -> sha256 or None


def v_hashlib(src: Path, scratch: Path) -> str:
    return hashlib_file(src)


def v_sha256sum(src: Path, scratch: Path) -> str:
    return sha256sum(src)


def v_cp(src: Path, scratch: Path) -> None:
    run("cp", str(src), str(scratch / "copy"))


def v_cp_sync(src: Path, scratch: Path) -> None:
    run("cp", str(src), str(scratch / "copy"))
    run("sync", str(scratch / "copy"))  # coreutils sync FILE = fsync(FILE)


def v_cp_sha256sum(src: Path, scratch: Path) -> str:
    run("cp", str(src), str(scratch / "copy"))
    return sha256sum(scratch / "copy")


def v_cp_sync_sha256sum(src: Path, scratch: Path) -> str:
    run("cp", str(src), str(scratch / "copy"))
    run("sync", str(scratch / "copy"))
    return sha256sum(scratch / "copy")


def make_store_put() -> Variant:
    from evidence_store.blobs.local import LocalBlobStore

    def v_store_put(src: Path, scratch: Path) -> str:
        store = LocalBlobStore(scratch / "store")  # fresh store: the write creates the blob
        with src.open("rb") as handle:
            stored = store.put(handle)
        assert stored.created
        return stored.sha256

    return v_store_put


TWO_PASS = "cp; sha256sum"
HASH_ONLY = "hashlib"
STORE = "store.put"


def cpu_seconds() -> float:
    """CPU time (user + system) of this process (all threads) and of its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


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


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """The options every file benchmark shares: waiting for a quiet machine, --check, --keep."""
    parser.add_argument(
        "--quiet-below",
        type=float,
        default=0,
        help="before each run, wait until CPU pressure (PSI avg10) is below this %% (default: do not wait)",
    )
    parser.add_argument("--quiet-max-wait", type=float, default=120, help="longest wait per run, s")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")


class Run(NamedTuple):
    wall: float  # seconds
    cpu: float  # CPU seconds of this process and its children
    pressure: float | None  # % of the run during which some task waited for a CPU (PSI), if known


def time_variants(src: Path, work: Path, args: argparse.Namespace, expected: str) -> dict[str, list[Run]]:
    """Every run of every variant."""
    repeat = args.repeat
    variants: dict[str, Variant] = {
        HASH_ONLY: v_hashlib,
        "sha256sum": v_sha256sum,
        "cp": v_cp,
        "cp + sync": v_cp_sync,
        TWO_PASS: v_cp_sha256sum,
        "cp; sync; sha256sum": v_cp_sync_sha256sum,
        STORE: make_store_put(),
    }
    runs: dict[str, list[Run]] = {name: [] for name in variants}
    names = list(variants)
    for round_ in range(repeat):
        # Rotate the order every round: on this VM a run's speed depends on its place in the sequence
        # (how recently the previous run freed its page cache), so no variant always gets the good slot.
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            variant = variants[name]
            scratch = work / f"scratch-{round_}"
            scratch.mkdir()
            os.sync()  # no dirty pages from the previous run are written back on this run's clock
            if args.quiet_below:
                wait_until_quiet(args.quiet_below, args.quiet_max_wait)
            pressure_started = cpu_pressure()
            cpu_started = cpu_seconds()
            started = time.perf_counter()
            digest = variant(src, scratch)
            elapsed = time.perf_counter() - started
            cpu = cpu_seconds() - cpu_started
            pressure_ended = cpu_pressure()
            pressure = None
            if pressure_started is not None and pressure_ended is not None:
                pressure = (pressure_ended[1] - pressure_started[1]) / 1e4 / elapsed
            if digest is not None and digest != expected:
                raise SystemExit(f"{name} produced sha256 {digest}, expected {expected}")
            runs[name].append(Run(elapsed, cpu, pressure))
            print(f"  round {round_ + 1}/{repeat} {name:<22} {elapsed:7.3f} s", file=sys.stderr)
            _rmtree(scratch)
    return runs


def _rmtree(path: Path) -> None:
    for root, dirs, _files in os.walk(path):
        for d in dirs:
            os.chmod(Path(root) / d, 0o700)
    shutil.rmtree(path)
    os.sync()


# --- peak memory in a child process ------------------------------------------------------------------


def child_put(src: Path, store_dir: Path) -> None:
    """Runs in the child: report VmHWM before and after one store write."""
    from evidence_store.blobs.local import LocalBlobStore

    store = LocalBlobStore(store_dir)
    before = vm_hwm_kib()
    started = time.perf_counter()
    with src.open("rb") as handle:
        stored = store.put(handle)
    elapsed = time.perf_counter() - started
    print(
        json.dumps(
            {
                "hwm_before_kib": before,
                "hwm_after_kib": vm_hwm_kib(),
                "seconds": elapsed,
                "size": stored.size,
                "sha256": stored.sha256,
            }
        )
    )


def vm_hwm_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def measure_peak(src: Path, work: Path) -> dict[str, float]:
    store_dir = work / "mem-store"
    # VmHWM, not ru_maxrss: Linux carries the forking parent's high-water mark into the child's
    # ru_maxrss across fork+exec (a /bin/true started by a 300 MiB process reports ~300 MiB).
    child = subprocess.run(
        [sys.executable, __file__, "--child-put", str(src), "--child-store", str(store_dir)],
        stdout=subprocess.PIPE,
        check=True,
    )
    report = json.loads(child.stdout)
    _rmtree(store_dir)
    return {
        "size": report["size"],
        "seconds": report["seconds"],
        "hwm_before_mib": report["hwm_before_kib"] / 1024,
        "hwm_after_mib": report["hwm_after_kib"] / 1024,
    }


# --- main --------------------------------------------------------------------------------------------


def main() -> int:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--size-mib", type=int, default=1024, help="source file size (default 1024)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per variant, best kept (default 3)")
    parser.add_argument("--dir", type=Path, default=Path("/work"), help="temp dir goes here (default /work)")
    parser.add_argument(
        "--memory-sizes-mib",
        default="",
        help="comma-separated sizes for the peak-memory child (default: SIZE and 4*SIZE if disk allows)",
    )
    add_run_options(parser)
    parser.add_argument("--child-put", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-store", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child_put is not None:
        child_put(args.child_put, args.child_store)
        return 0

    size = args.size_mib * MIB
    if free_bytes(args.dir) < 2 * size + 512 * MIB:
        raise SystemExit(f"not enough free space in {args.dir} for a {args.size_mib} MiB source and its copy")
    work = Path(tempfile.mkdtemp(prefix="evidence-bench-", dir=args.dir))
    try:
        return _bench(args, work, size)
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            _rmtree(work)


def _bench(args: argparse.Namespace, work: Path, size: int) -> int:
    from evidence_store.blobs import hashing_copy

    info = machine()
    print(f"machine: {info['cpus']} CPUs, {info['cpu']}, sha_ni={info['sha_ni']}, Python {info['python']}")
    print(f"work dir: {work} (free {free_bytes(work) / 1e9:.1f} GB)")
    print(
        f"store pipeline: chunk {hashing_copy.CHUNK_SIZE // MIB} MiB, queue depth {hashing_copy.QUEUE_DEPTH}"
    )

    src = work / "source.bin"
    print(f"making {args.size_mib} MiB of random data ...", file=sys.stderr)
    make_random_file(src, size)
    expected = hashlib_file(src)  # also warms the page cache
    resident = resident_bytes(src)
    warm = "unknown" if resident is None else f"{100 * resident / size:.0f}% resident"
    print(f"source: {size} bytes, sha256 {expected}; page cache before timing: {warm} (warm)")

    load_before = load_average()
    runs = time_variants(src, work, args, expected)
    print(f"load average (1, 5, 15 min) before timing: {load_before}; after: {load_average()}")
    resident = resident_bytes(src)
    if resident is not None:
        print(f"source page cache after timing: {100 * resident / size:.0f}% resident")
    best = print_times(runs, size, args)

    if args.memory_sizes_mib:
        sizes = [int(s) for s in args.memory_sizes_mib.split(",") if s]
    else:
        sizes = [args.size_mib, 4 * args.size_mib]
    peak_max = print_peaks(measure_peaks(sizes, src, work, args.size_mib))

    vs_hash = best[HASH_ONLY] / best[STORE]
    vs_two_pass = best[TWO_PASS] / best[STORE]
    checks = [
        (f"store.put >= {TARGET_VS_HASH}x hashlib alone", vs_hash >= TARGET_VS_HASH, f"{vs_hash:.2f}x"),
        (
            f"store.put >= {TARGET_VS_TWO_PASS}x faster than cp; sha256sum",
            vs_two_pass >= TARGET_VS_TWO_PASS,
            f"{vs_two_pass:.2f}x",
        ),
        (
            f"peak memory of a store write < {TARGET_PEAK_MIB:.0f} MiB",
            peak_max < TARGET_PEAK_MIB,
            f"{peak_max:.1f} MiB",
        ),
    ]
    print()
    print("| target | measured | met |")
    print("|---|---:|---|")
    for label, met, measured in checks:
        print(f"| {label} | {measured} | {'yes' if met else 'NO'} |")
    if args.check and not all(met for _label, met, _measured in checks):
        return 1
    return 0


def print_times(runs: dict[str, list[Run]], size: int, args: argparse.Namespace) -> dict[str, float]:
    best_runs = {name: min(values) for name, values in runs.items()}
    best = {name: run.wall for name, run in best_runs.items()}
    print()
    print(f"Best of {args.repeat}, {args.size_mib} MiB file, source warm in page cache:")
    print()
    print(
        "| variant | seconds (best) | all runs | MB/s | vs hashlib alone | speed-up vs cp; sha256sum "
        "| CPU s | CPU pressure |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for name, run in best_runs.items():
        every = " ".join(f"{r.wall:.2f}" for r in runs[name])
        pressure = "n/a" if run.pressure is None else f"{run.pressure:.0f}%"
        print(
            f"| {name} | {run.wall:.3f} | {every} | {size / run.wall / 1e6:.0f} | "
            f"{best[HASH_ONLY] / run.wall:.2f}x | {best[TWO_PASS] / run.wall:.2f}x | {run.cpu:.2f} "
            f"| {pressure} |"
        )
    print()
    print(
        "CPU s and CPU pressure are those of the best run: CPU time of the benchmark and its children, "
        "and the share of the run during which some task on the machine waited for a CPU (PSI)."
    )
    return best


def measure_peaks(
    sizes: list[int], src: Path, work: Path, src_mib: int
) -> list[tuple[int, dict[str, float] | None]]:
    peaks: list[tuple[int, dict[str, float] | None]] = []
    for mib in sizes:
        if mib == src_mib:
            peaks.append((mib, measure_peak(src, work)))
            continue
        if free_bytes(work) < 2 * mib * MIB + 512 * MIB:
            print(f"skipping the {mib} MiB memory run: not enough free space", file=sys.stderr)
            peaks.append((mib, None))
            continue
        big = work / f"source-{mib}.bin"
        print(f"making {mib} MiB of random data for the memory run ...", file=sys.stderr)
        make_random_file(big, mib * MIB)
        peaks.append((mib, measure_peak(big, work)))
        big.unlink()
    return peaks


def print_peaks(peaks: list[tuple[int, dict[str, float] | None]]) -> float:
    print()
    print("Peak memory (VmHWM) of one store.put, each in a fresh child process:")
    print()
    print("| file | put seconds | VmHWM after imports | VmHWM after put (peak) | growth during put |")
    print("|---|---:|---:|---:|---:|")
    peak_max = 0.0
    for mib, peak in peaks:
        if peak is None:
            print(f"| {mib} MiB | skipped (disk space) | | | |")
            continue
        peak_max = max(peak_max, peak["hwm_after_mib"])
        print(
            f"| {mib} MiB | {peak['seconds']:.2f} | {peak['hwm_before_mib']:.1f} MiB | "
            f"{peak['hwm_after_mib']:.1f} MiB | {peak['hwm_after_mib'] - peak['hwm_before_mib']:.1f} MiB |"
        )
    return peak_max


if __name__ == "__main__":
    sys.exit(main())
