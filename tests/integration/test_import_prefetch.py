"""`evidence import` reads the volume's first files into the page cache while it starts (issue 21):
in the pull's own order, without following a link or blocking on a FIFO, within its budget. (That
the import still records every file and leaves the volume as it was is what
tests/integration/test_pull_folder.py checks; it runs the command, prefetch included.)"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from evidence_store.domain.model import TransferOutcome
from ingest.mount import parse_mountinfo
from ingest.prefetch import StartupPrefetch
from ingest.pull_report import TransferSummary
from ingest.volume import walk_volume


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
