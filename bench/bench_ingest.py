"""Benchmark: dock ingestion from real exFAT recorder images mounted read-only through FUSE (issue 3).

Part 1 (``--part single``): one recorder image of ``--size-mib`` (default 2048) MiB of clips. The image
is a real exFAT volume (``mkfs.exfat``) in the cn-standard layout: ``DeviceInfo.txt`` (serial, officer,
unit, model, the recorder's clock) and ``--files`` clips named
``DCIM/100MEDIA/<serial>_<officer>_<YYYYMMDDhhmmss>_<seq>.MP4`` (sizes from 0.75x to 1.25x of the
mean, not multiples of a block), file times at the end of each recording. Each clip is a real 2 s MP4
made once with ffmpeg, laid out as recorders write it (ftyp, mdat, moov at the end), with its mdat
grown by random bytes to the clip's size: the ingest's quick probe reads it as it reads a real clip
(a few ms). ``--random-clips`` makes them random bytes instead, which the probe cannot parse (it then
reads and tries several MB of each file: about 60-150 ms per clip here). It is attached read-only on a loop
device and, before every run, mounted read-only exactly as the dock mounts it (``ingest.mount.
ReadOnlyMount``: no exFAT driver in this kernel, so ``mount.exfat-fuse -o ro,nosuid,nodev,noexec``) and
unmounted after it, so each run starts with FUSE's cache empty, as at a docking. In one run, by the
method of bench/method.py (``--rounds``, default 5, alternating rounds with the order rotated each
round; median and spread (min-max) of each variant, the best as an extra column; targets judged by the
median), every variant reads the whole volume:

* ``hashlib``            hashlib.sha256 of every file, 4 MiB ``readinto`` (hashing alone: the target's
  reference)
* ``openssl dgst``       ``openssl dgst -sha256`` of every file (the fastest hasher a user can script)
* ``cp -r``              ``cp -r`` of the volume to a new folder (ends in the page cache)
* ``cp -r + sync``       the same, then ``sync -f`` (syncfs: the copy made durable, as the store does)
* ``cp -r; sha256sum``   the coreutils two-pass way: copy, then ``sha256sum`` of the copies
* ``cp -r; sync; openssl`` the fast durable two-pass (issue 21): ``cp -r --reflink=never``, ``sync -f``,
  then ``openssl dgst -sha256`` of the copies
* ``ingest``             the real pull, as ``evidence import MOUNTPOINT`` runs it (``choose_profile``,
  ``PullRequest(source=import)``, ``ingest.pull.pull``) into a fresh station (SQLite, local store)
  made before the run: every file read once, hashed inline, written to the store, checked unchanged,
  probed, committed in batches (syncfs, one transaction with its audit events per batch)
* ``evidence import``    the same as a whole process, as a user runs it: ``python -m entrypoints import
  ROOT --json`` on a fresh station made before the run (start-up, imports and all): what issue 21's
  "a whole ``evidence import`` >= 1.3x faster than the durable two-pass with openssl" is judged on

The same variants then run on the same files in a plain folder on the station's ext4 disk, so the
table shows what FUSE costs. Every digest is checked against the one computed when the file was made.
``--cache cold|warm|both`` (default both; a docked recorder is always cold): **cold** drops the image's
pages (fsync, ``posix_fadvise DONTNEED``, checked with ``fincore``) and the loop device's buffers
(``BLKFLSBUF``) before each run, so the bytes come off the virtio disk as well (the plain folder's files
are dropped the same way); **warm** leaves the image in the page cache, so FUSE and the CPU are the
whole cost, as with an infinitely fast recorder.

Peak memory of the ingest is VmHWM of a fresh child process that initialises a station and pulls
the mounted volume (after imports and station set-up, and after the pull).

Part 2 (``--part concurrent``): ``--recorders`` (default 4) images of ``--recorder-mib`` (default 512)
MiB each. ``dock`` is the dock's own concurrency path, in a child process with a fresh station:
``ingest.dock.Dock(accept_loop=True).handle_event(...)`` for each recorder's loop device (the block
``add`` event properties, ID_FS_* from blkid, as the kernel-only fallback builds them), which starts
one worker thread per recorder that mounts the volume read-only with FUSE, pulls it and unmounts it;
timed from the first event until ``wait_idle()``. The same for one recorder alone. As ceilings, with
the volumes already mounted: ``cp -r`` of each volume in parallel (one process each; the disk/FUSE
ceiling), the same plus ``sync -f``, and ``hashlib`` of each volume in parallel (one thread each; the
CPU ceiling for hashing). ``machine CPU busy`` is the share of both cores in use during the run
(/proc/stat, every process, FUSE daemons included).

Throughput is in MB/s (10^6 bytes per second) of clip bytes. The load average and CPU pressure (PSI)
are printed before and after timing, and the CPU pressure of each median run with it;
``--quiet-below`` waits before each run until the CPU pressure over the last 10 s is below that.

Needs root, /dev/fuse, loop devices, mkfs.exfat and mount.exfat-fuse (exfatprogs, exfat-fuse), and
about 5x ``--size-mib`` of free disk (staged files, image, copies, store).

Usage: .venv/bin/python bench/bench_ingest.py [--part both] [--size-mib 2048] [--rounds 5] [--cache both]
       [--check]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import method  # noqa: E402  (bench/method.py: the method every benchmark shares)
from bench_store_write import (  # noqa: E402  (the shared helpers of the store benchmark)
    free_bytes,
    hashlib_file,
    openssl_sha256,
    vm_hwm_kib,
)
from method import cpu_pressure, cpu_seconds, wait_until_quiet  # noqa: E402

from ingest.mount import wait_released  # noqa: E402

MIB = 1024 * 1024
CHUNK = 4 * MIB
ZONE = ZoneInfo("Asia/Shanghai")  # the station's default time zone
BLKFLSBUF = 0x1261
TARGET_VS_HASH = 0.85  # issue 21 (issue 3 had 0.8 against a warm source)
TARGET_VS_TWO_PASS_FAST = 1.3  # issue 21: faster than `cp; sync; openssl dgst -sha256` by this factor
TARGET_PEAK_MIB = 150.0
TARGET_CONCURRENT = 1.5
STATION_ENV = {
    "EVIDENCE_STATION_NAME": "bench",
    "EVIDENCE_UNIT_NAME": "基准测试单位",
    "EVIDENCE_PROCESSING_QUEUE": "none",
}

HASH_ONLY = "hashlib"
CP = "cp -r"
CP_SYNC = "cp -r + sync"
TWO_PASS = "cp -r; sha256sum"
OPENSSL = "openssl dgst"
TWO_PASS_FAST = "cp -r; sync; openssl"
INGEST = "ingest"
IMPORT = "evidence import"
IMPORT_AGAINST = "evidence import (against)"
DOCK = "dock"


# --- small helpers ----------------------------------------------------------------------------------


def sh(*argv: str, check: bool = True) -> str:
    """Run a tool; its output goes to a file, not a pipe (a FUSE helper's daemon may hold a pipe open)."""
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as output:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=output, stderr=output, check=False)
        output.seek(0)
        text = output.read()
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {text.strip()}")
    return text


def machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs since boot (/proc/stat; busy excludes idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return sum(fields) - fields[3] - fields[4], sum(fields)


def rmtree(path: Path) -> None:
    if not path.exists():
        return
    for root, dirs, _files in os.walk(path):
        for d in dirs:
            with contextlib.suppress(OSError):
                os.chmod(Path(root) / d, 0o700)
    shutil.rmtree(path)


def files_under(root: Path) -> list[Path]:
    found: list[Path] = []
    for dirpath, dirs, names in os.walk(root):
        dirs.sort()
        found.extend(Path(dirpath) / n for n in sorted(names))
    return found


def hash_tree(root: Path) -> dict[str, str]:
    buffer = bytearray(CHUNK)
    return {str(p.relative_to(root)): hashlib_file(p, buffer) for p in files_under(root)}


def flush_block_device(devnode: str) -> None:
    """Drop a block device's buffer cache (BLKFLSBUF, as `blockdev --flushbufs`)."""
    fd = os.open(devnode, os.O_RDONLY)
    try:
        fcntl.ioctl(fd, BLKFLSBUF, 0)
    finally:
        os.close(fd)


# --- recorder images --------------------------------------------------------------------------------


@dataclass
class Recorder:
    serial: str
    officer: str
    folder: Path  # the recorder's files as a plain folder on the station's disk
    files: dict[str, str] = field(default_factory=dict)  # path on the volume -> sha256
    clip_bytes: int = 0  # bytes of all files
    image: Path | None = None
    devnode: str = ""  # the image attached read-only

    @property
    def label(self) -> str:
        return f"DSJ{self.serial[-8:]}"[:11]  # cn-standard matches DSJ* labels


def clip_sizes(total: int, count: int) -> list[int]:
    """`count` sizes adding up to about `total`, from 0.75x to 1.25x of the mean, none block-aligned."""
    mean = total / count
    sizes = [int(mean * (0.75 + 0.5 * i / max(1, count - 1))) for i in range(count)]
    sizes = [s - s % 4096 + 1000 + 7 * i for i, s in enumerate(sizes)]
    sizes[-1] += total - sum(sizes)
    return sizes


def mp4_template() -> bytes | None:
    """A real 2-second MP4 (H.264 + AAC) as a recorder writes it: ftyp, mdat, then moov at the end
    (not fast-start). None without ffmpeg."""
    if shutil.which("ffmpeg") is None:
        return None
    with tempfile.TemporaryDirectory(prefix="bench-mp4-") as tmp:
        out = Path(tmp) / "clip.mp4"
        sh(
            "ffmpeg", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", "testsrc=duration=2:size=640x360:rate=25",
            "-f", "lavfi", "-i", "sine=duration=2",
            "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-shortest", str(out),
        )  # fmt: skip
        data = out.read_bytes()
    boxes = [box for box, _pos, _size in mp4_boxes(data)]
    if b"mdat" not in boxes or b"moov" not in boxes or boxes.index(b"mdat") > boxes.index(b"moov"):
        return None
    return data


def mp4_boxes(data: bytes) -> list[tuple[bytes, int, int]]:
    """The top-level boxes of an MP4: (type, offset, size)."""
    boxes, pos = [], 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if size < 8:
            break
        boxes.append((kind, pos, size))
        pos += size
    return boxes


def clip_chunks(size: int, template: bytes | None) -> Iterator[bytes]:
    """The bytes of one clip of `size` bytes. With a template: the template's ftyp and mdat, the mdat
    grown with random bytes after its real samples (their offsets do not move), then its moov: a
    valid MP4 that a probe reads as quickly as a recorder's. Without: random bytes."""
    pad = size
    if template is not None:
        _kind, mdat, mdat_size = next(b for b in mp4_boxes(template) if b[0] == b"mdat")
        pad = size - len(template)
        if pad < 0 or mdat_size + pad >= 2**32:
            raise SystemExit(f"a clip of {size} bytes does not fit the MP4 template")
        yield template[:mdat] + struct.pack(">I4s", mdat_size + pad, b"mdat")
        yield template[mdat + 8 : mdat + mdat_size]
    while pad:
        block = os.urandom(min(8 * MIB, pad))
        pad -= len(block)
        yield block
    if template is not None:
        yield template[mdat + mdat_size :]


def write_recorder_files(rec: Recorder, total: int, count: int, template: bytes | None) -> None:
    """DeviceInfo.txt and `count` clips under DCIM/100MEDIA, hashed as they are written."""
    now = datetime.now(ZONE).replace(tzinfo=None, microsecond=0)
    media = rec.folder / "DCIM" / "100MEDIA"
    media.mkdir(parents=True)
    info = rec.folder / "DeviceInfo.txt"
    info.write_text(
        f"Serial={rec.serial}\nOfficer={rec.officer}\nUnit=基准测试单位\nModel=DSJ-T9\n"
        f"Time={now:%Y-%m-%d %H:%M:%S}\n",
        encoding="utf-8",
    )
    rec.files["DeviceInfo.txt"] = hashlib.sha256(info.read_bytes()).hexdigest()
    for seq, size in enumerate(clip_sizes(total, count), start=1):
        start = now - timedelta(minutes=15 * (count - seq + 1))
        name = f"{rec.serial}_{rec.officer}_{start:%Y%m%d%H%M%S}_{seq:04d}.MP4"
        digest = hashlib.sha256()
        with (media / name).open("wb") as handle:
            for block in clip_chunks(size, template):
                digest.update(block)
                handle.write(block)
        end = (start + timedelta(minutes=14)).replace(tzinfo=ZONE).timestamp()
        os.utime(media / name, (end, end))
        rec.files[f"DCIM/100MEDIA/{name}"] = digest.hexdigest()
        rec.clip_bytes += size
    rec.clip_bytes += info.stat().st_size


def build_exfat_image(rec: Recorder, image: Path, build_mount: Path) -> None:
    """An exFAT volume (no partition table, like most recorders) holding the recorder's files: made
    with mkfs.exfat, filled through a read-write exfat-fuse mount of a loop device, then released."""
    size_mib = int(rec.clip_bytes * 1.03 / MIB) + 64
    with image.open("wb") as handle:
        handle.truncate(size_mib * MIB)
    sh("mkfs.exfat", "-L", rec.label, str(image))
    devnode = sh("losetup", "--show", "-f", str(image)).strip()
    try:
        build_mount.mkdir(parents=True, exist_ok=True)
        sh("mount.exfat-fuse", devnode, str(build_mount))
        try:
            for rel in rec.files:
                dest = build_mount / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(rec.folder / rel, dest)  # keeps the file times
        finally:
            sh("fusermount", "-u", str(build_mount))
        wait_released(devnode, timeout=20.0)
    finally:
        sh("losetup", "-d", devnode, check=False)
    build_mount.rmdir()
    rec.image = image


def attach_read_only(rec: Recorder) -> None:
    assert rec.image is not None
    rec.devnode = sh("losetup", "-r", "--show", "-f", str(rec.image)).strip()


def detach(rec: Recorder) -> None:
    if rec.devnode:
        sh("losetup", "-d", rec.devnode, check=False)
        rec.devnode = ""


def make_recorders(
    work: Path, count: int, size: int, files: int, template: bytes | None, *, keep_folders: bool
) -> list[Recorder]:
    recorders = []
    for i in range(count):
        rec = Recorder(
            serial=f"DSJ2024{i + 1:05d}", officer=f"0{310200 + i}", folder=work / f"folder-{i + 1}"
        )
        print(f"writing recorder {i + 1}/{count}: {files} clips, {size / MIB:.0f} MiB ...", file=sys.stderr)
        write_recorder_files(rec, size, files, template)
        print("building its exFAT image ...", file=sys.stderr)
        build_exfat_image(rec, work / f"recorder-{i + 1}.exfat.img", work / f"build-mnt-{i + 1}")
        if not keep_folders:
            rmtree(rec.folder)
        attach_read_only(rec)
        recorders.append(rec)
    return recorders


class Mounted:
    """A recorder volume mounted read-only the way the dock mounts it (ReadOnlyMount)."""

    def __init__(self, rec: Recorder, mount_dir: Path) -> None:
        from ingest.mount import ReadOnlyMount

        self.mount = ReadOnlyMount(rec.devnode, "exfat", mount_dir)

    def __enter__(self) -> Path:
        root = self.mount.mount()
        assert self.mount.method.startswith("fuse:"), self.mount.method
        return root

    def __exit__(self, *_exc: object) -> None:
        self.mount.unmount()


# --- timing -----------------------------------------------------------------------------------------


class Run(NamedTuple):
    wall: float  # seconds
    cpu: float  # CPU seconds of the benchmark (or the dock child) and its children
    busy: float  # share of all CPUs in use on the machine during the run, %
    pressure: float | None  # % of the run during which some task waited for a CPU (PSI), if known
    hwm_mib: float | None = None  # VmHWM of the dock child


class Meter:
    """Measures one run: wall time, own CPU time, machine CPU busy, CPU pressure."""

    def __enter__(self) -> Meter:
        self.pressure0 = cpu_pressure()
        self.cpu0 = cpu_seconds()
        self.ticks0 = machine_ticks()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.wall = time.perf_counter() - self.t0
        ticks = machine_ticks()
        self.cpu = cpu_seconds() - self.cpu0
        total = ticks[1] - self.ticks0[1]
        self.busy = 100.0 * (ticks[0] - self.ticks0[0]) / total if total else 0.0
        pressure = cpu_pressure()
        self.pressure = None
        if self.pressure0 is not None and pressure is not None and self.wall > 0:
            self.pressure = (pressure[1] - self.pressure0[1]) / 1e4 / self.wall

    def run(self, hwm_mib: float | None = None) -> Run:
        return Run(self.wall, self.cpu, self.busy, self.pressure, hwm_mib)


def new_station(home: Path) -> Any:
    from evidence_store.bootstrap import initialise
    from evidence_store.settings import load_settings

    station, _ = initialise(load_settings({"EVIDENCE_HOME": str(home), **STATION_ENV}))
    return station


def run_import(station: Any, root: Path) -> dict[str, str]:
    """What `evidence import ROOT` does (without its terminal output); path -> sha256 of every file."""
    from evidence_store.domain.model import TransferOutcome, TransferSource
    from evidence_store.ports import NoProcessingQueue
    from ingest.pull import PullRequest, pull
    from ingest.service import choose_profile

    profile, facts = choose_profile(station, root, None)
    request = PullRequest(
        root=root,
        profile=profile,
        source=TransferSource.IMPORT,
        volume=facts,
        actor="bench",
        dock_station=station.settings.station_name,
    )
    summary = pull(station, request, NoProcessingQueue())
    if summary.outcome is not TransferOutcome.COMPLETE or summary.files_failed:
        raise SystemExit(f"the ingest ended {summary.outcome}: {summary.problems}")
    if profile.name != "cn-standard":
        raise SystemExit(f"the volume was read with profile {profile.name}, not cn-standard")
    return {f.path: f.sha256 or "" for f in summary.files}


class Variant(NamedTuple):
    prepare: Callable[[Path], Any] | None  # (scratch) -> state, not timed
    run: Callable[[Path, Path, Any], dict[str, str] | None]  # (root, scratch, state) -> digests
    finish: Callable[[Any], None] | None = None  # (state), not timed


def v_hashlib(root: Path, _scratch: Path, _state: Any) -> dict[str, str]:
    return hash_tree(root)


def v_cp(root: Path, scratch: Path, _state: Any) -> None:
    sh("cp", "-r", str(root), str(scratch / "copy"))


def v_cp_sync(root: Path, scratch: Path, _state: Any) -> None:
    sh("cp", "-r", str(root), str(scratch / "copy"))
    sh("sync", "-f", str(scratch / "copy"))  # syncfs, as the store's sync


def v_cp_sha256sum(root: Path, scratch: Path, _state: Any) -> dict[str, str]:
    copy = scratch / "copy"
    sh("cp", "-r", str(root), str(copy))
    paths = [str(p.relative_to(copy)) for p in files_under(copy)]
    out = subprocess.run(["sha256sum", "--", *paths], cwd=copy, capture_output=True, text=True, check=True)
    return {line[66:]: line[:64] for line in out.stdout.splitlines()}


def v_openssl(root: Path, _scratch: Path, _state: Any) -> dict[str, str]:
    paths = files_under(root)
    digests = openssl_sha256(*paths)
    return {str(p.relative_to(root)): digests[str(p)] for p in paths}


def v_cp_sync_openssl(root: Path, scratch: Path, _state: Any) -> dict[str, str]:
    copy = scratch / "copy"
    sh("cp", "-r", "--reflink=never", str(root), str(copy))
    sh("sync", "-f", str(copy))
    paths = files_under(copy)
    digests = openssl_sha256(*paths)
    return {str(p.relative_to(copy)): digests[str(p)] for p in paths}


def v_ingest(root: Path, _scratch: Path, station: Any) -> dict[str, str]:
    return run_import(station, root)


def init_home(home: Path) -> Path:
    new_station(home).close()
    return home


def child_env(tree: Path, home: Path) -> dict[str, str]:
    """The environment of an `evidence` process of `tree`: as installed, with its bytecode compiled
    (`BYTECODE` below), so neither tree pays for compiling its sources on every start."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(STATION_ENV)
    env.update({"EVIDENCE_HOME": str(home), "PYTHONPATH": str(tree), "PYTHONPYCACHEPREFIX": str(BYTECODE[0])})
    return env


# where the children's bytecode is kept (set in `_bench`: a folder of the work dir); an installed
# station has its .pyc files (pip compiles them), a checkout run with PYTHONDONTWRITEBYTECODE=1 has none
BYTECODE: list[Path] = []


def init_home_of(tree: Path) -> Callable[[Path], Path]:
    """A fresh station made by `tree`'s own `evidence init` (another checkout may have another schema)."""

    def prepare(scratch: Path) -> Path:
        home = scratch / "home"
        subprocess.run(
            [sys.executable, "-m", "entrypoints", "init"],
            env=child_env(tree, home),
            cwd=tree,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=True,
        )
        return home

    return prepare


def import_process_of(tree: Path) -> Callable[[Path, Path, Path], dict[str, str]]:
    def run(root: Path, scratch: Path, home: Path) -> dict[str, str]:
        return v_import_process(root, scratch, home, tree)

    return run


def v_import_process(root: Path, _scratch: Path, home: Path, tree: Path = REPO) -> dict[str, str]:
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8") as output:
        done = subprocess.run(
            [sys.executable, "-m", "entrypoints", "import", str(root), "--json"],
            env=child_env(tree, home),
            cwd=tree,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        output.seek(0)
        text = output.read()
    if done.returncode != 0:
        raise SystemExit(f"evidence import ({tree}) exited {done.returncode}: {text[-400:]}")
    summary = json.loads(text)
    if str(summary["outcome"]).lower() != "complete" or summary["files_failed"]:
        raise SystemExit(f"evidence import ended {summary['outcome']}: {summary['problems']}")
    return {f["path"]: f["sha256"] or "" for f in summary["files"]}


PART1_VARIANTS: dict[str, Variant] = {
    HASH_ONLY: Variant(None, v_hashlib),
    OPENSSL: Variant(None, v_openssl),
    CP: Variant(None, v_cp),
    CP_SYNC: Variant(None, v_cp_sync),
    TWO_PASS: Variant(None, v_cp_sha256sum),
    TWO_PASS_FAST: Variant(None, v_cp_sync_openssl),
    INGEST: Variant(lambda scratch: new_station(scratch / "home"), v_ingest, lambda station: station.close()),
    IMPORT: Variant(lambda scratch: init_home(scratch / "home"), v_import_process),
}


def import_against(tree: Path) -> None:
    """`--against DIR`: the whole `evidence import` of another checkout (e.g. main) in the same rounds."""
    PART1_VARIANTS[IMPORT_AGAINST] = Variant(init_home_of(tree), import_process_of(tree))


class Source(NamedTuple):
    name: str
    enter: Callable[[], contextlib.AbstractContextManager[Path]]
    drop: Callable[[], str]  # drop what this source has in the page cache (cold); says what is left


def drop_image(rec: Recorder) -> str:
    assert rec.image is not None
    method.drop_cached(rec.image)
    flush_block_device(rec.devnode)
    return f"image {method.resident_share(rec.image)}"


def fuse_source(rec: Recorder, mount_dir: Path) -> Source:
    return Source(
        "exFAT image, exfat-fuse (read-only mount per run)",
        lambda: Mounted(rec, mount_dir),
        lambda: drop_image(rec),
    )


def folder_source(rec: Recorder) -> Source:
    def drop() -> str:
        method.drop_cached(rec.folder)
        return f"files {method.resident_share(rec.folder)}"

    return Source("plain folder (ext4)", lambda: contextlib.nullcontext(rec.folder), drop)


def time_part1(
    source: Source, rec: Recorder, work: Path, args: argparse.Namespace, cache: str, residency: set[str]
) -> dict[str, list[Run]]:
    names = list(PART1_VARIANTS)
    runs: dict[str, list[Run]] = {name: [] for name in names}
    for round_ in range(args.rounds):
        for name in method.round_order(names, round_):  # no variant always gets the good slot
            variant = PART1_VARIANTS[name]
            scratch = work / f"scratch-{round_}"
            scratch.mkdir()
            state = variant.prepare(scratch) if variant.prepare else None
            try:
                os.sync()  # no dirty pages from the previous run are written back on this run's clock
                if cache == method.COLD:
                    residency.add(source.drop())
                if args.quiet_below:
                    wait_until_quiet(args.quiet_below, args.quiet_max_wait)
                with source.enter() as root, Meter() as meter:
                    digests = variant.run(root, scratch, state)
            finally:
                if variant.finish:
                    variant.finish(state)
            if digests is not None and digests != rec.files:
                wrong = sorted(set(digests.items()) ^ set(rec.files.items()))[:4]
                raise SystemExit(f"{name} on {source.name}: digests differ from the files made: {wrong}")
            runs[name].append(meter.run())
            print(
                f"  {cache} round {round_ + 1}/{args.rounds} {name:<20} {meter.wall:7.3f} s", file=sys.stderr
            )
            rmtree(scratch)
            os.sync()
    return runs


# --- peak memory of one ingest, in a child process --------------------------------------------------


def child_ingest(root: Path, home: Path) -> None:
    """Runs in the child: a fresh station, then one pull of `root`; VmHWM before and after."""
    station = new_station(home)
    from ingest.pull import pull  # noqa: F401  (imported before the first reading)

    before = vm_hwm_kib()
    started = time.perf_counter()
    digests = run_import(station, root)
    elapsed = time.perf_counter() - started
    station.close()
    print(
        json.dumps(
            {"hwm_before_kib": before, "hwm_after_kib": vm_hwm_kib(), "seconds": elapsed, "files": digests}
        )
    )


def measure_ingest_peak(rec: Recorder, work: Path, mount_dir: Path) -> dict[str, float]:
    home = work / "mem-home"
    with Mounted(rec, mount_dir) as root:
        # VmHWM, not ru_maxrss: Linux carries the forking parent's high-water mark into the child's.
        child = subprocess.run(
            [sys.executable, __file__, "--child-ingest", str(root), "--child-home", str(home)],
            stdout=subprocess.PIPE,
            check=True,
        )
    report = json.loads(child.stdout)
    rmtree(home)
    if report["files"] != rec.files:
        raise SystemExit("the memory run's ingest digests differ from the files made")
    return {
        "seconds": report["seconds"],
        "hwm_before_mib": report["hwm_before_kib"] / 1024,
        "hwm_after_mib": report["hwm_after_kib"] / 1024,
    }


# --- part 2: several recorders at once --------------------------------------------------------------


def event_properties(devnode: str) -> dict[str, str]:
    """The block `add` event of a loop device as the kernel-only fallback completes it (blkid)."""
    from ingest.devices.monitor import blkid_properties

    name = devnode.rsplit("/", 1)[-1]
    props = {
        "ACTION": "add",
        "SUBSYSTEM": "block",
        "DEVTYPE": "disk",
        "DEVNAME": devnode,
        "DEVPATH": f"/devices/virtual/block/{name}",
        "EVIDENCE_EVENT_SOURCE": "bench",
        "EVIDENCE_HAS_PARTITIONS": "0",
    }
    props.update(blkid_properties(devnode))
    if props.get("ID_FS_TYPE") != "exfat":
        raise SystemExit(f"blkid does not see exFAT on {devnode}: {props}")
    return props


def child_dock(spec_path: Path) -> None:
    """Runs in the child: a fresh station and a Dock; every recorder's add event at once, timed until
    the dock is idle. Prints the run's figures and each docking's result."""
    from evidence_store.ports import NoProcessingQueue
    from ingest.dock import Dock, DockResult

    spec = json.loads(spec_path.read_text())
    station = new_station(Path(spec["home"]))
    results: list[DockResult] = []
    dock = Dock(station, queue=NoProcessingQueue(), accept_loop=True, on_result=results.append)
    before = vm_hwm_kib()
    with Meter() as meter:
        for props in spec["events"]:
            if dock.handle_event(props) is None:
                raise SystemExit(f"the dock did not take {props['DEVNAME']}")
        dock.wait_idle()
    out = []
    for result in results:
        summary = result.summary
        out.append(
            {
                "key": result.key,
                "ok": result.ok,
                "error": result.error,
                "mount_method": result.mount_method,
                "read_only": result.mount_read_only,
                "bytes": summary.bytes_copied if summary else 0,
                "files": {f.path: f.sha256 for f in summary.files} if summary else {},
            }
        )
    dock.close()
    station.close()
    print(
        json.dumps(
            {
                "run": [meter.wall, meter.cpu, meter.busy, meter.pressure],
                "hwm_before_kib": before,
                "hwm_after_kib": vm_hwm_kib(),
                "results": out,
            }
        )
    )


def run_dock_child(recorders: list[Recorder], scratch: Path) -> Run:
    spec = scratch / "dock.json"
    events = [event_properties(r.devnode) for r in recorders]
    spec.write_text(json.dumps({"home": str(scratch / "home"), "events": events}))
    child = subprocess.run(
        [sys.executable, __file__, "--child-dock", str(spec)], stdout=subprocess.PIPE, check=True
    )
    report = json.loads(child.stdout)
    by_device = {r["key"]: r for r in report["results"]}
    for rec in recorders:
        result = by_device.get(rec.devnode)
        if result is None or not result["ok"]:
            raise SystemExit(f"the dock did not pull {rec.devnode} completely: {result}")
        if not str(result["mount_method"]).startswith("fuse:") or not result["read_only"]:
            raise SystemExit(f"{rec.devnode} was not mounted read-only through FUSE: {result}")
        if result["files"] != rec.files:
            raise SystemExit(f"the dock's digests for {rec.devnode} differ from the files made")
    wall, cpu, busy, pressure = report["run"]
    return Run(wall, cpu, busy, pressure, report["hwm_after_kib"] / 1024)


def parallel_cp(roots: list[Path], scratch: Path, sync: bool) -> None:
    procs = [
        subprocess.Popen(["cp", "-r", str(root), str(scratch / f"copy-{i}")], stdin=subprocess.DEVNULL)
        for i, root in enumerate(roots)
    ]
    codes = [p.wait() for p in procs]
    if any(codes):
        raise RuntimeError(f"cp exited {codes}")
    if sync:
        sh("sync", "-f", str(scratch))


def parallel_hash(roots: list[Path]) -> list[dict[str, str]]:
    results: list[dict[str, str]] = [{} for _ in roots]
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            results[i] = hash_tree(roots[i])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(roots))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def time_part2(
    recorders: list[Recorder], work: Path, args: argparse.Namespace, cache: str, residency: set[str]
) -> dict[tuple[str, int], list[Run]]:
    mount_dir = work / "mnt"
    groups = [recorders[:1], recorders]
    keys = [(name, len(group)) for group in groups for name in (HASH_ONLY, CP, CP_SYNC, DOCK)]
    runs: dict[tuple[str, int], list[Run]] = {key: [] for key in keys}
    for round_ in range(args.rounds):
        for name, count in method.round_order(keys, round_):
            group = recorders[:count]
            scratch = work / f"scratch-{round_}"
            scratch.mkdir()
            os.sync()
            if cache == method.COLD:
                for rec in group:
                    residency.add(drop_image(rec))
            if args.quiet_below:
                wait_until_quiet(args.quiet_below, args.quiet_max_wait)
            if name == DOCK:
                run = run_dock_child(group, scratch)
            else:
                with contextlib.ExitStack() as stack:
                    roots = [stack.enter_context(Mounted(rec, mount_dir)) for rec in group]
                    with Meter() as meter:
                        if name == HASH_ONLY:
                            digests = parallel_hash(roots)
                        else:
                            parallel_cp(roots, scratch, sync=name == CP_SYNC)
                    if name == HASH_ONLY and digests != [rec.files for rec in group]:
                        raise SystemExit("parallel hashing gave digests that differ from the files made")
                run = meter.run()
            runs[(name, count)].append(run)
            print(
                f"  {cache} round {round_ + 1}/{args.rounds} {name:<14} x{count} {run.wall:7.3f} s",
                file=sys.stderr,
            )
            rmtree(scratch)
            os.sync()
    return runs


# --- reporting --------------------------------------------------------------------------------------


def pressure_text(run: Run) -> str:
    return "n/a" if run.pressure is None else f"{run.pressure:.0f}%"


def print_part1(
    source: Source, runs: dict[str, list[Run]], size: int, args: argparse.Namespace, state: str
) -> dict[str, float]:
    spreads = {name: method.spread(r.wall for r in values) for name, values in runs.items()}
    median = {name: s.median for name, s in spreads.items()}
    print()
    print(f"{source.name}, {args.rounds} alternating rounds, {state}:")
    rows = []
    for name, s in spreads.items():
        run = method.median_run(runs[name])
        rows.append(
            [
                f"**{name}**" if name in {INGEST, IMPORT, IMPORT_AGAINST} else name,
                *s.cells(),
                f"{size / s.median / 1e6:.0f}",
                f"{median[HASH_ONLY] / s.median:.2f}x",
                f"{median[TWO_PASS_FAST] / s.median:.2f}x",
                f"{median[TWO_PASS] / s.median:.2f}x",
                f"{run.cpu:.2f}",
                f"{run.busy:.0f}%",
                pressure_text(run),
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
            "vs cp -r; sync; openssl",
            "vs cp -r; sha256sum",
            "CPU s",
            "machine CPU busy",
            "CPU pressure",
        ],
        rows,
        [False, *[True] * 10],
    )
    return median


def print_fuse_cost(fuse: dict[str, float], plain: dict[str, float], size: int, cache: str) -> None:
    print()
    print(f"What FUSE costs ({cache}; medians; same files, same variant):")
    rows = [
        [
            name,
            f"{size / seconds / 1e6:.0f}",
            f"{size / plain[name] / 1e6:.0f}",
            f"{plain[name] / seconds:.2f}x",
        ]
        for name, seconds in fuse.items()
    ]
    method.table(["variant", "exFAT via FUSE MB/s", "plain folder MB/s", "FUSE / plain"], rows, [0, 1, 1, 1])


def print_part2(
    runs: dict[tuple[str, int], list[Run]], recorders: list[Recorder], args: argparse.Namespace, state: str
) -> dict[tuple[str, int], float]:
    count = len(recorders)
    sizes = {1: recorders[0].clip_bytes, count: sum(r.clip_bytes for r in recorders)}
    rates: dict[tuple[str, int], float] = {}
    print()
    print(
        f"{count} recorders of {args.recorder_mib} MiB docked at once against one alone, "
        f"{args.rounds} alternating rounds, {state}:"
    )
    for name in (HASH_ONLY, CP, CP_SYNC, DOCK):
        for n in (1, count):
            rates[(name, n)] = sizes[n] / method.spread(r.wall for r in runs[(name, n)]).median / 1e6
    rows = []
    for name in (HASH_ONLY, CP, CP_SYNC, DOCK):
        for n in (1, count):
            values = runs[(name, n)]
            run = method.median_run(values)
            hwm = "" if run.hwm_mib is None else f"{run.hwm_mib:.0f} MiB"
            rows.append(
                [
                    f"**{name}**" if name == DOCK else name,
                    str(n),
                    *method.spread(r.wall for r in values).cells(),
                    f"{rates[(name, n)]:.0f}",
                    f"{rates[(name, n)] / rates[(name, 1)]:.2f}x",
                    f"{run.cpu:.2f}",
                    f"{run.busy:.0f}%",
                    pressure_text(run),
                    hwm,
                ]
            )
    method.table(
        [
            "variant",
            "recorders",
            "median s",
            "min-max s",
            "best s",
            "aggregate MB/s (median)",
            "vs one recorder",
            "CPU s",
            "machine CPU busy",
            "CPU pressure",
            "VmHWM",
        ],
        rows,
        [False, *[True] * 10],
    )
    return rates


# --- main -------------------------------------------------------------------------------------------


def main() -> int:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--part", choices=["single", "concurrent", "both"], default="both")
    parser.add_argument("--size-mib", type=int, default=2048, help="part 1: clips on the recorder (2048)")
    parser.add_argument("--files", type=int, default=24, help="part 1: number of clips (24)")
    parser.add_argument("--recorders", type=int, default=4, help="part 2: recorders docked at once (4)")
    parser.add_argument("--recorder-mib", type=int, default=512, help="part 2: MiB of clips each (512)")
    parser.add_argument("--recorder-files", type=int, default=6, help="part 2: clips each (6)")
    parser.add_argument("--dir", type=Path, default=Path("/work"), help="temp dir goes here (/work)")
    parser.add_argument(
        "--random-clips", action="store_true", help="clips of random bytes only, not MP4 (see the notes)"
    )
    parser.add_argument(
        "--sources",
        choices=["both", "fuse", "plain"],
        default="both",
        help="part 1: the exFAT image through FUSE, the plain folder, or both (both)",
    )
    parser.add_argument(
        "--against",
        type=Path,
        default=None,
        help="part 1: another checkout (e.g. `git archive main`); its whole `evidence import` runs "
        "in the same rounds as a variant of its own",
    )
    method.add_method_options(parser, caches=(method.COLD, method.WARM))
    parser.add_argument("--child-ingest", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-home", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-dock", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child_ingest is not None:
        child_ingest(args.child_ingest, args.child_home)
        return 0
    if args.child_dock is not None:
        child_dock(args.child_dock)
        return 0

    missing = [
        t
        for t in ("mkfs.exfat", "mount.exfat-fuse", "fusermount", "losetup", "blkid", "openssl")
        if not shutil.which(t)
    ]
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse") or missing:
        raise SystemExit(f"needs root, /dev/fuse and {', '.join(missing) or 'the image tools'}")
    from ingest.devices.monitor import udevd_running

    if udevd_running():
        print(
            "warning: a udevd runs here; a dock under test with the loop-device test rule would see "
            "this benchmark's recorder images too",
            file=sys.stderr,
        )
    need = 0
    if args.part in {"single", "both"}:
        need = max(need, 5 * args.size_mib * MIB)
    if args.part in {"concurrent", "both"}:
        need = max(need, 4 * args.recorders * args.recorder_mib * MIB)
    if free_bytes(args.dir) < need + 512 * MIB:
        raise SystemExit(f"not enough free space in {args.dir}: about {need / 1e9:.1f} GB needed")
    work = Path(tempfile.mkdtemp(prefix="evidence-bench-ingest-", dir=args.dir))
    recorders: list[Recorder] = []
    try:
        return _bench(args, work, recorders)
    finally:
        for rec in recorders:
            detach(rec)
        for mountpoint in (work / "mnt").glob("*") if (work / "mnt").exists() else []:
            sh("fusermount", "-u", str(mountpoint), check=False)
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            rmtree(work)


def _bench(args: argparse.Namespace, work: Path, recorders: list[Recorder]) -> int:
    from evidence_store.blobs import hashing_copy

    method.header("dock ingestion from exFAT recorder images", args.rounds, method.caches_of(args))
    print(f"work dir: {work} (free {free_bytes(work) / 1e9:.1f} GB)")
    print(
        f"store pipeline: chunk {hashing_copy.CHUNK_SIZE // MIB} MiB, queue depth {hashing_copy.QUEUE_DEPTH}"
    )
    args.template = None if args.random_clips else mp4_template()
    BYTECODE.append(work / "bytecode")
    trees = [REPO] + ([args.against.resolve()] if args.against else [])
    if args.against:
        import_against(args.against.resolve())
    for i, tree in enumerate(trees):  # one import of an empty folder writes the bytecode it needs
        warm_up = work / f"warm-up-{i}"
        (warm_up / "empty").mkdir(parents=True)
        v_import_process(warm_up / "empty", warm_up, init_home_of(tree)(warm_up), tree)
        rmtree(warm_up)
    print(
        f"`evidence import` processes: {', '.join(map(str, trees))}; their bytecode written once before "
        "timing (PYTHONPYCACHEPREFIX in the work dir), as an installed station has it"
    )
    content = (
        "a real 2 s MP4 (moov at the end) with its mdat padded with random bytes"
        if args.template is not None
        else "random bytes (no container)"
    )
    print(f"clips: {content}")
    targets: list[method.Target] = []
    if args.part in {"single", "both"}:
        targets += _part1(args, work, recorders)
    if args.part in {"concurrent", "both"}:
        for rec in recorders:
            detach(rec)
        recorders.clear()
        targets += _part2(args, work, recorders)
    method.footer()
    method.print_targets(targets)
    if args.check and not method.targets_ok(targets):
        return 1
    return 0


def _state(cache: str, residency: set[str]) -> str:
    if cache == method.COLD:
        return f"cold: source dropped before each run ({', '.join(sorted(residency))} after it)"
    return "warm: source in the page cache"


def _part1(args: argparse.Namespace, work: Path, recorders: list[Recorder]) -> list[method.Target]:
    part = work / "single"
    part.mkdir()
    recorders.extend(
        make_recorders(part, 1, args.size_mib * MIB, args.files, args.template, keep_folders=True)
    )
    rec = recorders[0]
    assert rec.image is not None
    size = rec.clip_bytes
    print()
    print(
        f"## Part 1: one recorder, {len(rec.files) - 1} clips + DeviceInfo.txt, {size} bytes "
        f"({size / MIB:.0f} MiB), exFAT image {rec.image.stat().st_size / MIB:.0f} MiB on {rec.devnode} "
        "(read-only)"
    )
    mount_dir = part / "mnt"
    chosen = [
        (where, source)
        for key, where, source in (
            ("fuse", "exFAT via FUSE", fuse_source(rec, mount_dir)),
            ("plain", "plain folder", folder_source(rec)),
        )
        if args.sources in {"both", key}
    ]
    sources = [source for _where, source in chosen]
    wheres = {source.name: where for where, source in chosen}
    judged = method.judged(args)
    targets: list[method.Target] = []
    for cache in method.caches_of(args):
        medians: dict[str, dict[str, float]] = {}
        for source in sources:
            print(f"timing on {source.name}, {cache} ...", file=sys.stderr)
            if cache == method.WARM:
                hash_tree(rec.folder)
                with source.enter() as root:
                    hash_tree(root)  # the image's blocks into the page cache
            residency: set[str] = set()
            runs = time_part1(source, rec, part, args, cache, residency)
            medians[source.name] = print_part1(source, runs, size, args, _state(cache, residency))
        if len(sources) == 2:
            print_fuse_cost(*(medians[s.name] for s in sources), size, cache)
        for name, median in medians.items():
            where = wheres[name]
            if IMPORT_AGAINST in median:
                this, against, two_pass = median[IMPORT], median[IMPORT_AGAINST], median[TWO_PASS_FAST]
                print(
                    f"\nwhole `evidence import` ({where}, {cache}): this checkout {this:.3f} s, "
                    f"against {against:.3f} s (medians): {against / this:.2f}x; vs cp -r; sync; "
                    f"openssl: {two_pass / this:.2f}x (against: {two_pass / against:.2f}x)"
                )
            targets += [
                method.Target(
                    f"ingest >= {TARGET_VS_HASH}x hashlib alone ({where}, {cache})",
                    median[HASH_ONLY] / median[INGEST],
                    TARGET_VS_HASH,
                    judged=judged,
                ),
                method.Target(
                    f"whole `evidence import` >= {TARGET_VS_TWO_PASS_FAST}x faster than cp -r; sync; openssl "
                    f"({where}, {cache})",
                    median[TWO_PASS_FAST] / median[IMPORT],
                    TARGET_VS_TWO_PASS_FAST,
                    judged=judged,
                ),
            ]
    print("\nmeasuring the ingest's peak memory in a child process ...", file=sys.stderr)
    peak = measure_ingest_peak(rec, part, mount_dir)
    print()
    print("Peak memory (VmHWM) of one ingest of the exFAT volume, in a fresh child process:")
    method.table(
        ["volume", "ingest seconds", "VmHWM after imports and station set-up", "VmHWM after the pull (peak)"],
        [
            [
                f"{size / MIB:.0f} MiB, {len(rec.files)} files",
                f"{peak['seconds']:.2f}",
                f"{peak['hwm_before_mib']:.1f} MiB",
                f"{peak['hwm_after_mib']:.1f} MiB",
            ]
        ],
        [0, 1, 1, 1],
    )
    targets.append(
        method.Target(
            f"peak memory of an ingest < {TARGET_PEAK_MIB:.0f} MiB",
            peak["hwm_after_mib"],
            TARGET_PEAK_MIB,
            higher_is_better=False,
            unit=" MiB",
            strict=True,
        )
    )
    return targets


def _part2(args: argparse.Namespace, work: Path, recorders: list[Recorder]) -> list[method.Target]:
    part = work / "concurrent"
    part.mkdir()
    recorders.extend(
        make_recorders(
            part,
            args.recorders,
            args.recorder_mib * MIB,
            args.recorder_files,
            args.template,
            keep_folders=False,
        )
    )
    print()
    print(
        f"## Part 2: {args.recorders} recorders, each {recorders[0].clip_bytes} bytes in "
        f"{len(recorders[0].files)} files on its own exFAT image "
        f"({', '.join(r.devnode for r in recorders)}, read-only)"
    )
    n = args.recorders
    judged = method.judged(args)
    targets = []
    for cache in method.caches_of(args):
        residency: set[str] = set()
        runs = time_part2(recorders, part, args, cache, residency)
        rates = print_part2(runs, recorders, args, _state(cache, residency))
        ratio = rates[(DOCK, n)] / rates[(DOCK, 1)]
        of_disk = rates[(DOCK, n)] / rates[(CP_SYNC, n)]
        of_hash = rates[(DOCK, n)] / rates[(HASH_ONLY, n)]
        busy = method.median_run(runs[(DOCK, n)]).busy
        print(
            f"dock x{n} ({cache}, medians): {ratio:.2f}x one recorder; {of_disk:.2f}x of cp -r + sync x{n} "
            f"(disk/FUSE ceiling), {of_hash:.2f}x of hashlib x{n} (hashing ceiling); machine CPU busy "
            f"{busy:.0f}% during it"
        )
        if of_disk >= 0.9:  # the target's limit clause: the dock writes as fast as cp -r + sync
            label = f"{n} recorders at once at the disk's limit ({cache}; {ratio:.2f}x one recorder)"
            targets.append(method.Target(label + f": x of cp -r + sync x{n}", of_disk, 0.9, judged=judged))
        else:
            limit = f"{of_disk:.2f}x of cp -r + sync x{n}"
            label = f"{n} recorders at once >= {TARGET_CONCURRENT}x one ({cache}; {limit})"
            targets.append(method.Target(label, ratio, TARGET_CONCURRENT, judged=judged))
    return targets


if __name__ == "__main__":
    sys.exit(main())
