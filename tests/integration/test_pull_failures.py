"""Pulls that go wrong: a full station disk, a file changing during the copy, 100,000 files."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from evidence_store.bootstrap import Station, initialise
from evidence_store.db.tables import clips
from evidence_store.domain.model import Clip, TransferSource
from evidence_store.settings import load_settings
from ingest.pull import PullRequest, TransferSummary, pull
from ingest.service import choose_profile
from tests.conftest import run_cli
from tests.fixtures.media import sha256_of
from tests.fixtures.services import require


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MiB tmpfs for the station's store: a disk that fills up."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount_point)], check=False)
    require(result.returncode == 0, "cannot mount a tmpfs here (needs root)")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_a_full_station_disk_fails_the_transfer_and_loses_nothing(
    station_env: dict[str, str], tmp_path: Path, small_disk: Path
) -> None:
    env = {**station_env, "EVIDENCE_LOCAL_STORE_PATH": str(small_disk / "blobs")}
    assert run_cli(["init"], env).code == 0
    volume = tmp_path / "volume"
    volume.mkdir()
    for i in range(6):  # 6 x 1 MiB: about half fits
        (volume / f"clip{i}.mp4").write_bytes(os.urandom(1024 * 1024))
    result = run_cli(["import", str(volume), "--device", "DSJ9", "--officer", "3101", "--json"], env)
    summary = json.loads(result.stdout)
    assert result.code != 0
    assert summary["outcome"] == "failed"
    assert any("station store failed" in p and "No space left" in p for p in summary["problems"])
    ingested = [f for f in summary["files"] if f["status"] == "ingested"]
    assert 0 < len(ingested) < 6
    # every clip on record has its bytes, identical to the source; nothing partial was left
    station = initialise(load_settings(env))[0]
    with station.sessions() as session:
        recorded = session.scalars(select(Clip)).all()
    assert len(recorded) == len(ingested)
    for clip in recorded:
        assert station.blobs.rehash(clip.sha256) == clip.sha256 == sha256_of(volume / clip.device_path)
    assert not list((small_disk / "blobs" / "incoming").iterdir())
    station.close()
    # with room again, the next docking takes only what is missing
    subprocess.run(["mount", "-o", "remount,size=20m", str(small_disk)], check=True)
    again = json.loads(run_cli(["import", str(volume), "--device", "DSJ9", "--json"], env).stdout)
    assert again["outcome"] == "complete"
    assert again["files_ingested"] == 6 - len(ingested)
    assert again["files_duplicate"] == len(ingested)


def test_a_file_that_keeps_changing_is_kept_with_a_warning(
    station_env: dict[str, str], tmp_path: Path
) -> None:
    station = initialise(load_settings(station_env))[0]
    volume = tmp_path / "volume"
    volume.mkdir()
    growing = volume / "growing.mp4"
    growing.write_bytes(os.urandom(32 * 1024 * 1024))
    (volume / "steady.mp4").write_bytes(os.urandom(1000))
    stop = threading.Event()

    def keep_writing() -> None:
        with growing.open("ab") as handle:
            while not stop.is_set():
                handle.write(os.urandom(4096))
                handle.flush()
                time.sleep(0.001)

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        profile, facts = choose_profile(station, volume, "generic")
        summary = pull(
            station,
            PullRequest(
                root=volume, profile=profile, source=TransferSource.IMPORT, volume=facts, device_serial="D1"
            ),
        )
    finally:
        stop.set()
        writer.join()
    files = {f.path: f for f in summary.files}
    assert files["growing.mp4"].status == "ingested"
    assert any("changed on the recorder" in w for w in files["growing.mp4"].warnings)
    assert files["steady.mp4"].status == "ingested"
    with station.sessions() as session:
        clip = session.scalars(select(Clip).where(clips.c.device_path == "growing.mp4")).one()
    assert "changed_during_copy" in {w.code for w in clip.warnings}
    assert station.blobs.rehash(clip.sha256) == clip.sha256  # what was kept is self-consistent
    station.close()


@pytest.mark.slow
def test_one_hundred_thousand_files(tmp_path: Path) -> None:
    """Many small files: every one is on record, once, in reasonable time and memory (SQLite)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
    env["EVIDENCE_HOME"] = str(tmp_path / "home")
    env["EVIDENCE_PROCESSING_QUEUE"] = "none"
    volume = tmp_path / "volume"
    for d in range(100):
        folder = volume / "DCIM" / f"{d:03d}"
        folder.mkdir(parents=True)
        for i in range(1000):
            (folder / f"IMG{i:04d}.JPG").write_bytes(f"photo {d} {i}".encode())
    assert run_cli(["init"], env).code == 0
    result = run_cli(
        ["import", str(volume), "--device", "CAM1", "--officer", "3102", "--json"], env, timeout=900
    )
    assert result.code == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout)
    assert summary["outcome"] == "complete"
    assert summary["files_seen"] == summary["files_ingested"] == 100_000
    station = initialise(load_settings(env))[0]
    with station.engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(clips)) == 100_000
    station.close()
    assert run_cli(["audit", "verify"], env).code == 0


def test_a_failed_flush_records_nothing_of_its_batch_and_the_next_docking_finishes(
    station_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch's flush runs while the next batch is copied; when it fails (EIO on the station's
    disk), none of that batch's files become clips, the transfer fails, and re-docking takes them."""
    import ingest.batches

    monkeypatch.setattr(ingest.batches, "BATCH_FILES", 1)  # one file per batch: several flushes
    station = initialise(load_settings(station_env))[0]
    volume = tmp_path / "volume"
    volume.mkdir()
    for i in range(4):
        (volume / f"clip{i}.mp4").write_bytes(os.urandom(64 * 1024 + i))
    real_sync = station.blobs.sync
    flushes: list[str] = []

    def second_flush_fails() -> None:
        flushes.append(threading.current_thread().name)
        if len(flushes) == 2:
            raise OSError(5, "Input/output error")
        real_sync()

    monkeypatch.setattr(station.blobs, "sync", second_flush_fails)
    profile, facts = choose_profile(station, volume, "generic")

    def dock() -> TransferSummary:
        request = PullRequest(
            root=volume, profile=profile, source=TransferSource.IMPORT, volume=facts, device_serial="D7"
        )
        return pull(station, request)

    summary = dock()
    assert summary.outcome.value == "failed"
    assert any("flushing the store to disk failed" in p for p in summary.problems)
    assert flushes[:2] == ["store-sync", "store-sync"]  # the flushes ran beside the copying
    with station.sessions() as session:
        recorded = session.scalars(select(Clip)).all()
    on_record = {clip.device_path for clip in recorded}
    # clip1's batch was the one whose flush failed: not on record; clip0's flush had succeeded. clip2
    # was written while the failing flush ran, so a second flush could not vouch for it: not on record
    assert "clip1.mp4" not in on_record
    assert "clip0.mp4" in on_record
    assert "clip2.mp4" not in on_record
    assert "clip3.mp4" not in on_record  # the transfer stopped at the failure
    again = dock()
    assert again.outcome.value == "complete"
    assert again.files_ingested == 4 - len(on_record)
    assert again.files_duplicate == len(on_record)
    with station.sessions() as session:
        for clip in session.scalars(select(Clip)).all():
            assert station.blobs.rehash(clip.sha256) == clip.sha256 == sha256_of(volume / clip.device_path)
    station.close()


def test_a_file_time_fusefat_gets_wrong_is_never_kept_silently_after_a_change(
    station: Station, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through fusefat a file's time comes from its FAT directory entry (ingest.fat). A file that
    changed between listing and copying no longer matches the entry read before: its time is then
    the mount's, which through fusefat is one month late, and the clip says so."""
    import ingest.copying
    from evidence_store.ports import BlobStore

    volume = tmp_path / "volume"
    volume.mkdir()
    clip_file = volume / "CLIP.MP4"
    clip_file.write_bytes(os.urandom(1000))
    image = tmp_path / "fat.img"
    subprocess.run(["mkfs.vfat", "-C", str(image), "1024"], check=True, capture_output=True)
    subprocess.run(["mcopy", "-m", "-i", str(image), str(clip_file), "::/CLIP.MP4"], check=True)
    real_copy = ingest.copying.copy_once
    grown: list[bool] = []

    def grows_once_before_the_copy(
        blobs: BlobStore,
        dirfd: int,
        raw_name: bytes,
        before: os.stat_result,
        on_bytes: Callable[[int], None] | None = None,
    ) -> object:
        if not grown:  # the recorder writes a little more after the listing, then stays still
            grown.append(True)
            with clip_file.open("ab") as handle:
                handle.write(b"more")
            later = before.st_mtime + 60
            os.utime(clip_file, (later, later))
        return real_copy(blobs, dirfd, raw_name, before, on_bytes)

    monkeypatch.setattr(ingest.copying, "copy_once", grows_once_before_the_copy)
    profile, facts = choose_profile(station, volume, "generic")
    summary = pull(
        station,
        PullRequest(
            root=volume,
            profile=profile,
            source=TransferSource.IMPORT,
            volume=facts,
            device_serial="D8",
            fat_device=str(image),
            fusefat=True,
        ),
    )
    assert grown
    assert not summary.problems, summary.problems  # the FAT image was read
    (result,) = summary.files
    assert result.status == "ingested" and result.size == 1004
    with station.sessions() as session:
        clip = session.scalars(select(Clip).where(clips.c.device_path == "CLIP.MP4")).one()
    assert clip.device_mtime == datetime.fromtimestamp(clip_file.stat().st_mtime, UTC)  # as last seen
    assert [w.code for w in clip.warnings].count("mtime_uncorrected") == 1
