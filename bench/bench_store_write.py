"""Benchmark: writing one large file into the local blob store with inline SHA-256.

In one run, on the same source file and the same filesystem, every variant is timed the same way, by
the method of bench/method.py: ``--rounds`` (default 5) alternating rounds with the order rotated every
round, the median and the spread (min-max) of each variant reported, the best as an extra column only,
targets judged by the median. Between runs, not timed, the output is deleted and ``os.sync()`` called.

* ``hashlib``            hashlib.sha256 alone, reading the file in 4 MiB chunks (the physical floor)
* ``openssl dgst``       ``openssl dgst -sha256`` alone (the fastest hasher a user can script)
* ``sha256sum``          coreutils sha256sum alone (for reference: no SHA-NI in coreutils 9.1)
* ``cp``                 cp to a new file (ends in the page cache, nothing forced to disk)
* ``cp + sync``          cp, then ``sync FILE`` (fsync of the copy: the fair comparison with the store)
* ``cp; sha256sum``      the coreutils two-pass baseline: cp, then sha256sum of the copy
* ``cp; sync; sha256sum`` the coreutils two-pass baseline made durable
* ``cp; sync; openssl``  the fast durable two-pass baseline: ``cp --reflink=never SRC DST; sync DST;
  openssl dgst -sha256 DST`` (issue 21)
* ``disk: copy (dd direct)`` ``dd iflag=direct oflag=direct conv=fsync bs=4M``: a plain durable copy a
  user could script, no hashing, each block read and then written (no overlap; not a floor: on
  2026-12-05 `store.put` was faster)
* ``store.put``          LocalBlobStore.put into a fresh store as a station makes it (creates the blob;
  fsyncs the file and the directories, links, makes it read-only); the source read in the hashing
  thread through the page cache (the default)
* ``store.put, O_DIRECT read-ahead`` the same with ``EVIDENCE_STORE_DIRECT_READS=true``
  (``LocalBlobStore(read_ahead=True)``): a cold source read with O_DIRECT by a thread ahead of the
  hashing (issue 21), side by side

Cache (``--cache cold|warm|both``, default both): **cold** drops the source's pages before every run
(fsync, ``posix_fadvise(DONTNEED)``; ``fincore`` shows how much stayed resident), as a file just
written by a recorder's transfer or read off another disk is; **warm** reads it once before the rounds
so it stays in the page cache. Throughput is in MB/s (10^6 bytes per second).

Peak memory of a store write is measured in a separate child process per size: VmHWM from
/proc/self/status in the child, after imports and after the put (the whole process, interpreter
included).

Usage: .venv/bin/python bench/bench_store_write.py [--size-mib 1024] [--rounds 5] [--cache both]
       [--dir /work] [--check]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import method  # bench/method.py: the method every benchmark shares

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


def run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def sha256sum(path: Path) -> str:
    return run("sha256sum", str(path)).split()[0]


def openssl_sha256(*paths: Path) -> dict[str, str]:
    """`openssl dgst -sha256 FILE...`: {path: hex digest}."""
    digests = {}
    for line in run("openssl", "dgst", "-sha256", *map(str, paths)).splitlines():
        name, _, digest = line.rpartition("= ")
        digests[name[name.index("(") + 1 : -1]] = digest.strip()
    return digests


def free_bytes(path: Path) -> int:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


# --- variants ---------------------------------------------------------------------------------------

Variant = Callable[[Path, Path], str | None]  # (source, scratch dir) -> sha256 or None


def v_hashlib(src: Path, scratch: Path) -> str:
    return hashlib_file(src)


def v_openssl(src: Path, scratch: Path) -> str:
    return openssl_sha256(src)[str(src)]


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


def v_cp_sync_openssl(src: Path, scratch: Path) -> str:
    copy = scratch / "copy"
    run("cp", "--reflink=never", str(src), str(copy))
    run("sync", str(copy))
    return openssl_sha256(copy)[str(copy)]


def v_dd_direct(src: Path, scratch: Path) -> None:
    run("dd", f"if={src}", f"of={scratch / 'copy'}", "bs=4M", "iflag=direct", "oflag=direct", "conv=fsync")


def make_store_put(*, read_ahead: bool = False) -> Variant:
    """`LocalBlobStore.put` as a station makes it; `read_ahead=True`: as with
    `EVIDENCE_STORE_DIRECT_READS=true` (a cold source read with O_DIRECT ahead of the hashing), for the
    side-by-side comparison."""
    from evidence_store.blobs.local import LocalBlobStore

    def v_store_put(src: Path, scratch: Path) -> str:
        # a fresh store: the write creates the blob
        store = LocalBlobStore(scratch / "store", read_ahead=read_ahead)
        with src.open("rb", buffering=0) as handle:  # as the ingest opens a clip (ingest/copying.py)
            stored = store.put(handle)
        assert stored.created
        return stored.sha256

    return v_store_put


TWO_PASS = "cp; sha256sum"
TWO_PASS_FAST = "cp; sync; openssl"
HASH_ONLY = "hashlib"
STORE = "store.put"
STORE_DIRECT = "store.put, O_DIRECT read-ahead"
DISK_COPY = "disk: copy (dd direct)"


def time_variants(
    src: Path, work: Path, args: argparse.Namespace, expected: str, cache: str
) -> tuple[dict[str, list[method.Run[str | None]]], list[str]]:
    """Every run of every variant, and the source's residency measured just before each cold run."""
    variants: dict[str, Variant] = {
        HASH_ONLY: v_hashlib,
        "openssl dgst": v_openssl,
        "sha256sum": v_sha256sum,
        "cp": v_cp,
        "cp + sync": v_cp_sync,
        TWO_PASS: v_cp_sha256sum,
        "cp; sync; sha256sum": v_cp_sync_sha256sum,
        TWO_PASS_FAST: v_cp_sync_openssl,
        DISK_COPY: v_dd_direct,
        STORE: make_store_put(),
        STORE_DIRECT: make_store_put(read_ahead=True),
    }
    scratch = work / "scratch"
    residency: list[str] = []

    def before(_name: str) -> None:
        scratch.mkdir()
        os.sync()  # no dirty pages from the previous run are written back on this run's clock
        if cache == method.COLD:
            method.drop_cached(src)
            residency.append(method.resident_share(src))

    def after(name: str, done: method.Run[str | None]) -> None:
        if done.result is not None and done.result != expected:
            raise SystemExit(f"{name} produced sha256 {done.result}, expected {expected}")
        _rmtree(scratch)

    calls = {name: (lambda v=variant: v(src, scratch)) for name, variant in variants.items()}
    runs = method.run_rounds(
        calls,
        args.rounds,
        before=before,
        after=after,
        label=f"{cache} ",
        quiet_below=args.quiet_below,
        quiet_max_wait=args.quiet_max_wait,
    )
    return runs, residency


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
    parser.add_argument("--dir", type=Path, default=Path("/work"), help="temp dir goes here (default /work)")
    parser.add_argument(
        "--memory-sizes-mib",
        default="",
        help="comma-separated sizes for the peak-memory child (default: SIZE and 4*SIZE if disk allows)",
    )
    method.add_method_options(parser, caches=(method.COLD, method.WARM))
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

    caches = method.caches_of(args)
    method.header(f"store write: {args.size_mib} MiB into the local store", args.rounds, caches)
    print(f"work dir: {work} (free {free_bytes(work) / 1e9:.1f} GB)")
    print(
        f"store pipeline: chunk {hashing_copy.CHUNK_SIZE // MIB} MiB, queue depth {hashing_copy.QUEUE_DEPTH}"
    )

    src = work / "source.bin"
    print(f"making {args.size_mib} MiB of random data ...", file=sys.stderr)
    make_random_file(src, size)
    expected = hashlib_file(src)
    print(f"source: {size} bytes, sha256 {expected}")

    medians: dict[str, dict[str, float]] = {}
    for cache in caches:
        if cache == method.WARM:
            hashlib_file(src)  # read once: in the page cache for every run
        runs, residency = time_variants(src, work, args, expected, cache)
        if cache == method.COLD:
            state = f"cold: source dropped before each run ({', '.join(sorted(set(residency)))} after it)"
        else:
            state = f"warm: source in the page cache ({method.resident_share(src)} after timing)"
        medians[cache] = print_times(runs, size, args, state)
    method.footer()

    if args.memory_sizes_mib:
        sizes = [int(s) for s in args.memory_sizes_mib.split(",") if s]
    else:
        sizes = [args.size_mib, 4 * args.size_mib]
    peak_max = print_peaks(measure_peaks(sizes, src, work, args.size_mib))

    judged = method.judged(args)
    targets = []
    for cache, median in medians.items():
        targets += [
            method.Target(
                f"store.put >= {TARGET_VS_HASH}x hashlib alone, {cache} source",
                median[HASH_ONLY] / median[STORE],
                TARGET_VS_HASH,
                judged=judged,
            ),
            method.Target(
                f"store.put >= {TARGET_VS_TWO_PASS}x faster than cp; sha256sum, {cache} source",
                median[TWO_PASS] / median[STORE],
                TARGET_VS_TWO_PASS,
                judged=judged,
            ),
        ]
    targets.append(
        method.Target(
            f"peak memory of a store write < {TARGET_PEAK_MIB:.0f} MiB",
            peak_max,
            TARGET_PEAK_MIB,
            higher_is_better=False,
            unit=" MiB",
            strict=True,
        )
    )
    method.print_targets(targets)
    for cache, median in medians.items():
        print(
            f"for reference ({cache}): store.put is {median[TWO_PASS_FAST] / median[STORE]:.2f}x faster "
            "than the durable two-pass with openssl (`cp --reflink=never; sync; openssl dgst -sha256`), "
            "by medians"
        )
        print(
            f"for reference ({cache}): store.put is {median[DISK_COPY] / median[STORE]:.2f}x the speed of "
            "dd's direct copy (no hashing), by medians"
        )
    if args.check and not method.targets_ok(targets):
        return 1
    return 0


def print_times(
    runs: dict[str, list[method.Run[str | None]]], size: int, args: argparse.Namespace, state: str
) -> dict[str, float]:
    spreads = method.spreads(runs)
    median = {name: s.median for name, s in spreads.items()}
    print()
    print(f"{args.size_mib} MiB file, {args.rounds} alternating rounds, {state}:")
    rows = []
    for name, s in spreads.items():
        mid = method.median_run(runs[name])
        pressure = "n/a" if mid.pressure is None else f"{mid.pressure:.0f}%"
        rows.append(
            [
                name,
                *s.cells(),
                f"{size / s.median / 1e6:.0f}",
                f"{median[HASH_ONLY] / s.median:.2f}x",
                f"{median[TWO_PASS_FAST] / s.median:.2f}x",
                f"{median[TWO_PASS] / s.median:.2f}x",
                f"{mid.cpu:.2f}",
                pressure,
            ]
        )
    method.table(
        [
            "variant",
            "median s",
            "min-max s",
            "best s",
            "MB/s (median)",
            "vs hashlib alone",
            "vs cp; sync; openssl",
            "vs cp; sha256sum",
            "CPU s",
            "CPU pressure",
        ],
        rows,
        [False, *[True] * 9],
    )
    print(
        "Ratios are of medians (higher is faster). CPU s and CPU pressure are those of the median run: "
        "CPU time of the benchmark and its children, and the share of the run during which some task on "
        "the machine waited for a CPU (PSI)."
    )
    return median


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
