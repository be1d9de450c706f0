"""Benchmark: building a certified export package of one large clip against hashing and copying it.

In one run, on the same stored original (random bytes stored as a clip in a fresh local store, SQLite),
every variant is timed the same way, by the method of bench/method.py (``--rounds``, default 5,
alternating rounds with the order rotated each round; median and spread (min-max) of each, the best as
an extra column; targets judged by the median; between runs, not timed, the outputs are deleted and
`os.sync()` called):

* ``hashlib``           hashlib.sha256 of the stored blob alone, 4 MiB reads (the floor for one read)
* ``sha256sum``         coreutils sha256sum of the blob alone
* ``crc32 (zlib)``      zlib's CRC-32 of the blob alone, 4 MiB reads (what zipfile computes)
* ``crc32 (zlib-ng)``   zlib-ng's CRC-32 of the blob alone (what the build computes for the zip)
* ``cp``                cp of the blob to a new file (ends in the page cache)
* ``cp; sha256sum``     the two-pass way: copy, then hash the copy
* ``disk: 1 copy``      `dd oflag=direct conv=fsync` of the blob: the disk's best for the one copy a
                        package directory must write
* ``disk: 2 copies``     two such `dd` at once: the directory's copy and the zip's, the data a
                        directory + zip build must write; neither build can beat its disk floor
* ``disk: 2 copies, 8 deep``  the same two copies, each written by 8 threads at once (O_DIRECT
                        pwrite of 4 MiB, fsynced): whether a deeper write queue than `dd`'s (one write
                        in flight per copy) raises the floor on this disk
* ``copy as the build makes it``  the build's one copy alone: `copy_hashing` of the blob (opened as the
                        export opens it) into a new file with the package writer's O_DIRECT
                        flush-behind writer, fsynced: what a directory build costs beyond its note
                        and manifest
* ``build (dir)``       `build_package(..., make_zip=False)`: the package directory only
* ``build (dir+zip)``   `build_package(...)`: the directory and the .zip, as `evidence export build`

A build reads the original once from the store, hashes it inline, writes it to the directory and (with
the zip) into the zip entry from a writer thread, then writes the note (HTML, PDF), the manifest, the
signature and SHA256SUMS, fsyncs everything and records the request as built. Each build uses its own
approved request (a request is built once). The target is a build within 1.2x of hashing the original
alone (``hashlib``): one read, hash inline, no second pass.

``--cache cold|warm|both`` (default both): **cold** drops the stored original's pages before every run
(fsync, ``posix_fadvise(DONTNEED)``, checked with ``fincore``), as an export of footage stored weeks
ago meets it; **warm** reads it once before the rounds.

Usage: .venv/bin/python bench/bench_export.py [--size-mib 2048] [--rounds 5] [--cache both] [--dir /work]
       [--json] [--check]
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import shutil
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from zlib_ng import zlib_ng

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

sys.path.insert(0, str(REPO / "bench"))

import method  # noqa: E402  (bench/method.py: the method every benchmark shares)
from bench_store_write import hashlib_file, make_random_file  # noqa: E402  (shared with the store benchmark)

from evidence_store.blobs.hashing_copy import copy_hashing, write_all  # noqa: E402

MIB = 1024 * 1024
CHUNK = 4 * MIB
TARGET_VS_HASH = 1.2


def setup_station(work: Path, size: int, builds: int) -> tuple[object, Path, list[int]]:
    """A station with one stored clip of `size` random bytes and `builds` approved export requests."""
    from sqlalchemy import insert

    from evidence_store.bootstrap import initialise
    from evidence_store.db.tables import users
    from evidence_store.domain.model import Clip, MediaType
    from evidence_store.export.workflow import approve_export, request_export
    from evidence_store.originals import store_original
    from evidence_store.settings import load_settings

    env = {
        "EVIDENCE_HOME": str(work / "home"),
        "EVIDENCE_STATION_NAME": "bench",
        "EVIDENCE_UNIT_NAME": "基准测试单位",
        "EVIDENCE_PROCESSING_QUEUE": "none",
    }
    station, _ = initialise(load_settings(env))
    source = work / "source.bin"
    make_random_file(source, size)

    def make(sha256: str, stored_size: int, now: object) -> Clip:
        return Clip(
            sha256=sha256,
            size=stored_size,
            media_type=MediaType.VIDEO,
            original_name="BENCH.MP4",
            ingested_at=now,  # type: ignore[arg-type]
        )

    with station.transaction() as session, source.open("rb") as handle:
        stored = store_original(
            source=handle,
            blobs=station.blobs,
            session=session,
            audit=station.audit,
            clock=station.clock,
            make_clip=make,
            actor="bench",
        )
    source.unlink()
    now = station.clock()
    with station.engine.begin() as connection:
        for name, role in (("inv", "investigator"), ("boss", "approver")):
            connection.execute(
                insert(users).values(
                    username=name, role=role, password_hash="!", active=True, created_at=now, updated_at=now
                )
            )
    requests = []
    for _ in range(builds):
        request = request_export(station, user="inv", items=[{"clip_id": stored.clip_id}], purpose="bench")
        assert request.id is not None
        approve_export(station, request.id, user="boss")
        requests.append(request.id)
    blob = next(p for p in station.settings.effective_store_path.rglob(stored.sha256) if p.is_file())
    return station, blob, requests


Variant = Callable[[Path], object]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=2048)
    parser.add_argument("--dir", type=Path, default=Path("/work"), help="where to work (one filesystem)")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    parser.add_argument(
        "--on-xfs",
        action="store_true",
        help="run everything on a scratch XFS (reflink) in an image under --dir, on a loop device with "
        "direct I/O (root): where the zip shares the original's blocks with the directory",
    )
    method.add_method_options(parser, caches=(method.COLD, method.WARM))
    args = parser.parse_args()
    size = args.size_mib * MIB
    need = size * (3 + 2 * 2) + 512 * MIB
    free = shutil.disk_usage(args.dir).free
    if free < need:
        print(f"not enough space in {args.dir}: {free / MIB:.0f} MiB free, {need / MIB:.0f} MiB needed")
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-export-", dir=args.dir))
    try:
        if not args.on_xfs:
            return _bench(args, work, size)
        from tests.fixtures.filesystems import mounted_xfs

        with mounted_xfs(work / "xfs.img", work / "xfs", need, direct_io=True) as mount:
            return _bench(args, mount / "work", size)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def filesystem_of(path: Path) -> str:
    """The type of the filesystem `path` is on, and its source."""
    from ingest.mount import mount_of

    entry = mount_of(path)
    return f"{entry.fs_type} on {entry.source}" if entry else "?"


def crc_file(path: Path, crc32: Callable[[Any, int], int]) -> int:
    """The CRC-32 of `path` through one reused 4 MiB buffer, as `hashlib_file` hashes it."""
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    crc = 0
    with path.open("rb", buffering=0) as handle:
        while n := handle.readinto(buffer):
            crc = crc32(view[:n], crc)
    return crc


def dd_direct(blob: Path, out: Path, copies: int) -> object:
    """The copies a build must write, at the disk's best: `dd` with O_DIRECT, 4 MiB, fsynced."""
    running = [
        subprocess.Popen(
            ["dd", f"if={blob}", f"of={out / f'copy{n}'}", "bs=4M", "oflag=direct", "conv=fsync"],
            stderr=subprocess.DEVNULL,
        )
        for n in range(copies)
    ]
    return [proc.wait() for proc in running]


def deep_direct(blob: Path, size: int, out: Path, copies: int, depth: int = 8) -> object:
    """The same copies with `depth` O_DIRECT writes in flight per copy: each thread copies every
    depth-th 4 MiB chunk."""

    def copy_every(target: int, first: int) -> None:
        buffer = mmap.mmap(-1, CHUNK)
        with blob.open("rb", buffering=0) as source:
            for offset in range(first * CHUNK, size, depth * CHUNK):
                got = os.preadv(source.fileno(), [buffer], offset)
                os.pwrite(target, memoryview(buffer)[: -(-got // 4096) * 4096], offset)

    targets = [
        os.open(out / f"copy{n}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o600)
        for n in range(copies)
    ]
    try:
        with ThreadPoolExecutor(copies * depth) as pool:
            done = [pool.submit(copy_every, t, k) for t in targets for k in range(depth)]
            [future.result() for future in done]
        for target in targets:
            os.ftruncate(target, size)
            os.fsync(target)
    finally:
        for target in targets:
            os.close(target)
    return targets


def copy_as_built(blob: Path, out: Path) -> str:
    """The build's one copy alone: the blob opened as the export opens it, `copy_hashing` into a new
    file with the package writer's `write_all(flush_behind=True, direct=True)`, fsynced."""
    fd = os.open(out / "copy", os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o444)
    try:
        with blob.open("rb") as source:
            copied = copy_hashing(source, write_all(fd, flush_behind=True, direct=True), reuse_buffers=True)
        os.fsync(fd)
    finally:
        os.close(fd)
    return copied.sha256


def _bench(args: argparse.Namespace, work: Path, size: int) -> int:
    from evidence_store.export.package import build_package

    caches = method.caches_of(args)
    work.mkdir(exist_ok=True)
    print(f"setting up a station with a {size / MIB:.0f} MiB clip in {work} ...", flush=True)
    station, blob, requests = setup_station(work, size, 2 * args.rounds * len(caches))
    pending = list(requests)
    scratch = work / "scratch"

    def v_hashlib(_out: Path) -> object:
        return hashlib_file(blob)

    def v_sha256sum(_out: Path) -> object:
        return subprocess.run(["sha256sum", str(blob)], check=True, capture_output=True).stdout

    def v_cp(out: Path) -> object:
        return subprocess.run(["cp", str(blob), str(out / "copy")], check=True)

    def v_cp_sha256sum(out: Path) -> object:
        subprocess.run(["cp", str(blob), str(out / "copy")], check=True)
        return subprocess.run(["sha256sum", str(out / "copy")], check=True, capture_output=True).stdout

    def make_build(make_zip: bool) -> Variant:
        def v_build(out: Path) -> object:
            result = build_package(station, pending.pop(0), user="inv", out_dir=out, make_zip=make_zip)  # type: ignore[arg-type]
            details[("build (dir+zip)" if make_zip else "build (dir)")].append(result.timings)
            if make_zip:
                shared.append(result.zip_shared_bytes)
            return result

        return v_build

    details: dict[str, list[dict[str, float]]] = {"build (dir)": [], "build (dir+zip)": []}
    shared: list[int] = []  # per dir+zip build: the originals' bytes its zip shares with its directory
    variants: dict[str, Variant] = {
        "hashlib": v_hashlib,
        "sha256sum": v_sha256sum,
        "crc32 (zlib)": lambda _out: crc_file(blob, zlib.crc32),
        "crc32 (zlib-ng)": lambda _out: crc_file(blob, zlib_ng.crc32),
        "cp": v_cp,
        "cp; sha256sum": v_cp_sha256sum,
        "disk: 1 copy": lambda out: dd_direct(blob, out, 1),
        "disk: 2 copies": lambda out: dd_direct(blob, out, 2),
        "disk: 2 copies, 8 deep": lambda out: deep_direct(blob, size, out, 2),
        "copy as the build makes it": lambda out: copy_as_built(blob, out),
        "build (dir)": make_build(False),
        "build (dir+zip)": make_build(True),
    }
    method.header(f"certified export of a {size / MIB:.0f} MiB clip", args.rounds, caches)
    targets: list[method.Target] = []
    for cache in caches:
        if cache == method.WARM:
            hashlib_file(blob)  # warm the page cache
        residency: set[str] = set()

        def before(_name: str, cache: str = cache, residency: set[str] = residency) -> None:
            scratch.mkdir()
            os.sync()
            if cache == method.COLD:
                method.drop_cached(blob)
                residency.add(method.resident_share(blob))

        def after(_name: str, _run: object) -> None:
            shutil.rmtree(scratch)
            os.sync()

        runs = method.run_rounds(
            {name: (lambda v=variant: v(scratch)) for name, variant in variants.items()},
            args.rounds,
            before=before,
            after=after,
            label=f"{cache} ",
            quiet_below=args.quiet_below,
            quiet_max_wait=args.quiet_max_wait,
        )
        times = {name: [r.wall for r in values] for name, values in runs.items()}
        state = (
            f"cold: the original dropped before each run ({', '.join(sorted(residency))} after it)"
            if cache == method.COLD
            else "warm: the original in the page cache"
        )
        targets += _report(
            args, size, times, details, where=filesystem_of(scratch.parent), shared=shared, state=state
        )
        for timings in details.values():
            timings.clear()
        shared.clear()
    method.footer()
    method.print_targets(targets)
    station.close()  # type: ignore[attr-defined]
    return 1 if args.check and not method.targets_ok(targets) else 0


def _report(
    args: argparse.Namespace,
    size: int,
    times: dict[str, list[float]],
    details: dict[str, list[dict[str, float]]],
    *,
    where: str,
    shared: list[int],
    state: str,
) -> list[method.Target]:
    """Print the table and the floors; the targets, judged by the medians."""
    spreads = {name: method.spread(values) for name, values in times.items()}
    median = {name: s.median for name, s in spreads.items()}
    mb = size / 1e6
    print()
    sharing = all(n == size for n in shared) and bool(shared)
    print(
        f"filesystem: {where}; the zip shares the original's blocks with the directory: "
        + ("yes, in every dir+zip build" if sharing else f"no ({sorted(set(shared))} bytes shared per build)")
    )
    print(f"clip: {size / MIB:.0f} MiB random bytes; {args.rounds} alternating rounds; {state}:")
    rows = [
        [
            name,
            *s.cells(digits=2),
            f"{mb / s.median:.0f}",
            f"{s.median / median['hashlib']:.2f}x",
            f"{s.median / median['sha256sum']:.2f}x",
        ]
        for name, s in spreads.items()
    ]
    method.table(
        [
            "variant",
            "median s",
            "min-max s",
            "best s",
            "MB/s (median)",
            "time vs hashlib alone",
            "vs sha256sum alone",
        ],
        rows,
        [False, *[True] * 6],
    )
    for name, timings in details.items():
        middle = sorted(timings, key=lambda timing: sum(timing.values()))[(len(timings) - 1) // 2]
        print(f"{name} phases (median run): " + ", ".join(f"{k} {v:.2f} s" for k, v in middle.items()))
    # no build can beat hashing the original or writing its copies, whichever is slower
    two_copies = min(median["disk: 2 copies"], median["disk: 2 copies, 8 deep"])
    zip_writes = (
        ("disk: 1 copy", median["disk: 1 copy"]) if sharing else ("the faster disk: 2 copies", two_copies)
    )
    for name, disk, written in (
        ("build (dir)", "disk: 1 copy", median["disk: 1 copy"]),
        ("build (dir+zip)", *zip_writes),
    ):
        floor = max(median["hashlib"], written)
        print(
            f"{name}: floor max(hashlib, {disk}) = {floor:.2f} s ({floor / median['hashlib']:.2f}x hashlib); "
            f"the build is {median[name] / floor:.2f}x of its floor (medians)"
        )
    if args.json:
        print(json.dumps({"times": times, "median": median, "details": details}))
    cache = state.split(":", maxsplit=1)[0]
    return [
        method.Target(
            f"{name} <= {TARGET_VS_HASH}x of hashing alone ({cache})",
            median[name] / median["hashlib"],
            TARGET_VS_HASH,
            higher_is_better=False,
            judged=method.judged(args),
        )
        for name in ("build (dir)", "build (dir+zip)")
    ]


if __name__ == "__main__":
    raise SystemExit(main())
