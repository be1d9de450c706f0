"""`evidence import` reads the volume's first files into the page cache while it starts (issue 21):
in the pull's own order, without following a link or blocking on a FIFO, within its budget; a
recorder pulled out while it reads ends it quietly, and the import then records what it could not
read. (That the import still records every file and leaves the volume as it was is what
tests/integration/test_pull_folder.py checks; it runs the command, prefetch included.)"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from evidence_store.bootstrap import Station
from evidence_store.domain.model import TransferOutcome
from ingest.mount import kernel_supports, parse_mountinfo
from ingest.prefetch import StartupPrefetch
from ingest.pull_report import TransferSummary
from ingest.volume import walk_volume
from tests.conftest import run_cli
from tests.fixtures.recorders import LoopDevice, require_tools
from tests.fixtures.services import require


def volume_with_traps(root: Path, outside: Path) -> None:
    (root / "DCIM" / "101MEDIA").mkdir(parents=True)
    (root / "DCIM" / "100MEDIA").mkdir(parents=True)
    (root / "System Volume Information").mkdir()
    (root / "System Volume Information" / "IndexerVolumeGuid").write_bytes(b"x" * 10)
    (root / "DeviceInfo.txt").write_text("Serial=DSJ0001\n", encoding="utf-8")
    (root / "DCIM" / "100MEDIA" / "B.MP4").write_bytes(b"b" * 300_000)
    (root / "DCIM" / "100MEDIA" / "A.MP4").write_bytes(b"a" * 200_000)
    (root / "DCIM" / "101MEDIA" / "C.MP4").write_bytes(b"c" * 100)
    (root / "DCIM" / "100MEDIA" / "名字.MP4").write_bytes(b"n" * 5)
    outside.mkdir()
    (outside / "secret.bin").write_bytes(b"s" * 1_000_000)
    (root / "DCIM" / "link.MP4").symlink_to(outside / "secret.bin")
    (root / "DCIM" / "linked_dir").symlink_to(outside, target_is_directory=True)
    os.mkfifo(root / "DCIM" / "100MEDIA" / "pipe.MP4")


def pull_order(root: Path) -> list[bytes]:
    now = datetime.now(UTC)
    summary = TransferSummary(0, TransferOutcome.RUNNING, "", None, "", now, now)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return [b"/".join((*raw_dir, name)) for _dirfd, raw_dir, _rel, name in walk_volume(fd, summary)]
    finally:
        os.close(fd)


def test_it_reads_the_regular_files_in_the_pulls_order_and_nothing_outside(tmp_path: Path) -> None:
    root = tmp_path / "volume"
    volume_with_traps(root, tmp_path / "outside")

    prefetch = StartupPrefetch(root).start()
    assert prefetch.done.wait(30)
    assert prefetch.stop() == 15 + 300_000 + 200_000 + 100 + 5

    regular = [b"DeviceInfo.txt", b"DCIM/100MEDIA/A.MP4", b"DCIM/100MEDIA/B.MP4"]
    regular += ["DCIM/100MEDIA/名字.MP4".encode(), b"DCIM/101MEDIA/C.MP4"]
    assert prefetch.files_read == [path for path in pull_order(root) if path in regular]
    assert prefetch.files_read == regular


def test_it_stops_at_its_budget_and_when_told(tmp_path: Path) -> None:
    root = tmp_path / "volume"
    volume_with_traps(root, tmp_path / "outside")

    small = StartupPrefetch(root, budget=100_000).start()
    assert small.done.wait(30)
    assert small.stop() < 100_000 + 4 * 1024 * 1024
    assert b"DCIM/101MEDIA/C.MP4" not in small.files_read

    stopped = StartupPrefetch(root)
    stopped.stop()  # never started: nothing to wait for
    assert stopped.bytes_read == 0


def test_a_missing_or_unreadable_root_ends_it_quietly(tmp_path: Path) -> None:
    prefetch = StartupPrefetch(tmp_path / "gone").start()
    assert prefetch.done.wait(30)
    assert prefetch.stop() == 0


def test_a_volume_read_through_fuse_is_not_prefetched(tmp_path: Path) -> None:
    root = tmp_path / "volume"
    volume_with_traps(root, tmp_path / "outside")
    fuse = parse_mountinfo(
        f"22 1 0:50 / {tmp_path} ro,nosuid,nodev,noexec - fuse.exfat-fuse /dev/loop0 ro,user_id=0\n"
    )
    plain = parse_mountinfo(f"22 1 0:50 / {tmp_path} rw,relatime - ext4 /dev/vda rw\n")

    skipped = StartupPrefetch(root).start(fuse)
    assert skipped.done.is_set()
    assert skipped.stop() == 0

    read = StartupPrefetch(root).start(plain)
    assert read.done.wait(30)
    assert read.stop() > 0


CLIP_BYTES = 8 * 1024 * 1024


@pytest.fixture
def recorder_on_a_block_device(tmp_path: Path) -> Iterator[tuple[Path, LoopDevice]]:
    """Three 8 MiB clips on an ext4 volume on a loop device, mounted read-only by the kernel (not
    FUSE, so the prefetch reads it), the loop device reading its image with O_DIRECT, so every read
    of the volume reaches the device."""
    require(os.geteuid() == 0, "mounting a volume needs root")
    require_tools("mkfs.ext4", "mount", "umount", "losetup")
    require(kernel_supports("ext4"), "this kernel has no ext4 driver")
    content = tmp_path / "content" / "DCIM" / "100MEDIA"
    content.mkdir(parents=True)
    for n in range(3):
        (content / f"CLIP{n}.MP4").write_bytes(os.urandom(CLIP_BYTES))
    image = tmp_path / "recorder.img"
    with image.open("wb") as handle:
        handle.truncate(64 * 1024 * 1024)
    subprocess.run(["mkfs.ext4", "-q", "-d", str(tmp_path / "content"), str(image)], check=True, timeout=120)
    mount_point = tmp_path / "mnt"
    mount_point.mkdir()
    loop = LoopDevice(image, read_only=True, direct_io=True)
    with loop as devnode:
        subprocess.run(["mount", "-t", "ext4", "-o", "ro", devnode, str(mount_point)], check=True, timeout=60)
        try:
            yield mount_point, loop
        finally:
            if subprocess.run(["umount", str(mount_point)], check=False, timeout=60).returncode:
                subprocess.run(["umount", "-l", str(mount_point)], check=False, timeout=60)


@pytest.mark.slow
def test_a_recorder_pulled_out_while_it_reads_ends_it_quietly_and_the_import_records_it(
    recorder_on_a_block_device: tuple[Path, LoopDevice],
    station: Station,
    station_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mount_point, loop = recorder_on_a_block_device
    real_readv = os.readv
    first_reads: list[int] = []

    def read_then_pull_out(fd: int, buffers: list[bytearray]) -> int:
        n = real_readv(fd, buffers)
        if not first_reads:  # the recorder goes after the prefetch's first chunk
            first_reads.append(n)
            loop.unplug()
        return n

    monkeypatch.setattr(os, "readv", read_then_pull_out)
    prefetch = StartupPrefetch(mount_point).start()
    assert prefetch.done.wait(30), "the prefetch hung on a device that is gone"
    read = prefetch.stop()
    monkeypatch.undo()
    assert first_reads and first_reads[0] > 0
    assert first_reads[0] <= read < 3 * CLIP_BYTES  # it stopped reading what was not there
    assert not prefetch._thread.is_alive()

    # the import then meets the same volume: nothing ingested as if it were whole, and it says why (it
    # crashed with a traceback here before: `os.fwalk` raises a listing that fails part-way)
    result = run_cli(["import", str(mount_point), "--json"], station_env, timeout=300)
    assert result.stdout, (result.code, result.stderr)
    summary = json.loads(result.stdout)
    assert result.code != 0, result.stdout
    assert summary["outcome"] != "complete"
    assert summary["files_ingested"] < 3
    assert any("Input/output error" in problem for problem in summary["problems"]), summary["problems"]
