"""What a docked recorder's files really are, on real FAT32 and exFAT images (loop devices, FUSE):

- fusefat's volume-label entry is not a clip, a genuine empty file is (R10);
- file times are the recorder's, not fusefat's one-month-late ones (R4, R5);
- an unreadable sector (EIO from the block layer) fails that file only, and the next docking takes it;
- files are deleted from the recorder only when the profile asks, only once their copies are verified,
  and every deletion is audited (R1, R3, R10).

Docking goes through the dock daemon with kernel events (no udevd: `no_udevd`), accepting loop devices.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from evidence_store.bootstrap import Station, initialise, open_spool
from evidence_store.domain.model import Clip, Device, Transfer, TransferOutcome, TransferSource
from evidence_store.settings import load_settings
from ingest.deletion import copied_file, delete_verified, plan_deletions, protected_paths
from ingest.devices.catalog import PROFILES_DIR
from ingest.fat import FatVolume
from ingest.mount import MountError, ReadOnlyMount, ReadWriteMount
from ingest.pull import PullRequest, pull
from ingest.service import choose_profile
from tests.conftest import run_cli
from tests.fixtures.faulty_fuse import FaultyImage, find_file_offset
from tests.fixtures.recorders import (  # noqa: F401  (fixtures)
    DockThread,
    LoopDevice,
    RecorderImage,
    RecorderSpec,
    build_recorder_image,
    dock_tools,
    no_udevd,
)
from tests.integration.ingest_helpers import deletion_events

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("dock_tools", "no_udevd")]

ZONE = ZoneInfo("Asia/Shanghai")  # the station's zone in the tests, and the recorders' wall clock
JAN31 = datetime(2025, 1, 31, 12, 0, 0)  # fusefat shows it as 3 March
DEC31 = datetime(2025, 12, 31, 23, 59, 58)  # fusefat shows it as 31 January of the next year


@pytest.fixture
def profiles_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "profiles"
    directory.mkdir()
    return directory


@pytest.fixture
def env(station_env: dict[str, str], profiles_dir: Path) -> dict[str, str]:
    return {**station_env, "EVIDENCE_PROFILES_DIR": str(profiles_dir)}


@pytest.fixture
def station(env: dict[str, str]) -> Iterator[Station]:  # with the extra profiles directory
    running, _ = initialise(load_settings(env))
    yield running
    running.close()


def enable_deletion(profiles_dir: Path) -> None:
    """The shipped cn-standard profile, overridden by name with `delete_after_verify = true`."""
    text = (PROFILES_DIR / "cn-standard.toml").read_text(encoding="utf-8")
    assert "delete_after_verify = false" in text
    (profiles_dir / "cn-standard.toml").write_text(
        text.replace("delete_after_verify = false", "delete_after_verify = true"), encoding="utf-8"
    )


def dock_once(station: Station, image_path: Path) -> object:
    """Dock one recorder (its image on a new loop node) and return the dock's result."""
    with (
        DockThread(station, accept_loop=True, images_under=image_path.parent) as daemon,
        LoopDevice(image_path),
    ):
        (result,) = daemon.results(1)
    return result


def clips_of(station: Station, serial: str) -> dict[str, Clip]:
    with station.sessions() as session:
        device = session.scalars(select(Device).where(Device.serial == serial)).one()  # type: ignore[arg-type]
        found = session.scalars(select(Clip).where(Clip.device_id == device.id)).all()  # type: ignore[arg-type]
    return {c.device_path.lower(): c for c in found}


def transfer_rows(station: Station) -> list[Transfer]:
    with station.sessions() as session:
        return list(session.scalars(select(Transfer).order_by(Transfer.id)))  # type: ignore[arg-type]


def volume_files(image: RecorderImage) -> set[str]:
    """The files on a recorder image now (lower-cased paths), read through a read-only FUSE mount;
    fusefat's label entry left out."""
    found: set[str] = set()
    with LoopDevice(image.path, read_only=True) as devnode, tempfile.TemporaryDirectory() as mnt:
        tool = ["fusefat", "-o", "ro"] if image.fs_type == "vfat" else ["mount.exfat-fuse", "-o", "ro"]
        subprocess.run([*tool, devnode, mnt], check=True, capture_output=True, timeout=60)
        try:
            for dirpath, _dirs, names in os.walk(mnt):
                for name in names:
                    found.add(os.path.relpath(os.path.join(dirpath, name), mnt).lower())
        finally:
            subprocess.run(["fusermount", "-u", mnt], check=True, timeout=60)
    if image.fs_type == "vfat":
        with FatVolume(image.path) as fat:
            found = {p for p in found if not fat.is_label((), p.upper().encode())}
    return found


def assert_filesystem_clean(image: RecorderImage) -> None:
    tool = "fsck.vfat" if image.fs_type == "vfat" else "fsck.exfat"
    done = subprocess.run(
        [tool, "-n", str(image.path)], check=False, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


def utc(wall: datetime) -> datetime:
    return wall.replace(tzinfo=ZONE).astimezone(UTC)


# -- the label entry and the file times --------------------------------------------------------------


@pytest.mark.parametrize("fs_type", ["vfat", "exfat"])
def test_label_is_no_clip_empty_file_is_and_times_are_the_recorders(
    fs_type: str, station: Station, tmp_path: Path
) -> None:
    extra = {
        "EMPTY.MP4": (b"", JAN31),  # a genuine empty media file in the root, beside the label
        "DCIM/100MEDIA/jan31.mp4": (os.urandom(4096), JAN31),
        "DCIM/100MEDIA/跨年录像.mp4": (os.urandom(4096), DEC31),
    }
    image = build_recorder_image(
        tmp_path, RecorderSpec("DSJ0201", "310201", fs_type, label="ZFJLY02ABCD", clips=1, extra_files=extra)
    )
    before = image.sha256()
    result = dock_once(station, image.path)
    summary = result.summary  # type: ignore[attr-defined]
    assert summary is not None and summary.outcome is TransferOutcome.COMPLETE, result.as_dict()  # type: ignore[attr-defined]
    assert not summary.problems, summary.problems

    clips = clips_of(station, "DSJ0201")
    # every file, and nothing else; the recorder's DeviceInfo.txt is an attachment, not a clip
    assert set(clips) == {p.lower() for p in image.files} - {"deviceinfo.txt"}
    skipped = {f.path: f.warnings for f in summary.files if f.status == "skipped"}
    if fs_type == "vfat":  # fusefat lists the 11-character label split 8.3
        assert list(skipped) == ["ZFJLY02A.BCD"]
        assert "volume label" in skipped["ZFJLY02A.BCD"][0]
    else:
        assert skipped == {}

    empty = clips["empty.mp4"]
    assert empty.size == 0 and "empty_file" in {w.code for w in empty.warnings}
    for path, wall in (
        ("empty.mp4", JAN31),
        ("dcim/100media/jan31.mp4", JAN31),
        ("dcim/100media/跨年录像.mp4", DEC31),
    ):
        clip = clips[path]
        assert clip.device_mtime == utc(wall), (path, clip.device_mtime)
        assert "mtime_uncorrected" not in {w.code for w in clip.warnings}
    jan31 = clips["dcim/100media/jan31.mp4"]
    assert jan31.media_info["time_source"] == "file modification time"
    assert jan31.device_start == JAN31  # no duration could be read: the start is the file's time
    assert image.sha256() == before


def test_fusefat_itself_reports_times_one_month_late(tmp_path: Path) -> None:
    """Why the pull reads FAT directory entries: fusefat passes FAT's month 1-12 as struct tm's 0-11
    and mktime normalises the overflow. Should fusefat be fixed, this fails and the correction in
    ingest.fat can go."""
    extra = {
        "jan31.mp4": (b"x", JAN31),
        "dec31.mp4": (b"y", DEC31),
        "jun15.mp4": (b"z", datetime(2025, 6, 15, 8)),
    }
    image = build_recorder_image(
        tmp_path, RecorderSpec("DSJ0202", "310202", "vfat", clips=0, extra_files=extra)
    )
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(
        ["fusefat", "-o", "ro", str(image.path), str(mnt)], check=True, capture_output=True, timeout=60
    )
    try:
        shown = {name: os.stat(mnt / name.upper()).st_mtime for name in extra}
    finally:
        subprocess.run(["fusermount", "-u", str(mnt)], check=True, timeout=60)
    # fusefat's mktime runs in its own zone (TZ of this process); the FAT entry holds station wall time
    local = {name: datetime.fromtimestamp(t).replace(microsecond=0) for name, t in shown.items()}
    assert local == {
        "jan31.mp4": datetime(2025, 3, 3, 12, 0, 0),
        "dec31.mp4": datetime(2026, 1, 31, 23, 59, 58),
        "jun15.mp4": datetime(2025, 7, 15, 8, 0, 0),
    }
    with FatVolume(image.path) as fat:
        assert {n: fat.entry((), n.upper().encode()).modified for n in extra} == {  # type: ignore[union-attr]
            n: wall for n, (_, wall) in extra.items()
        }


# -- an unreadable sector ---------------------------------------------------------------------------


def recorder_with_bad_sector(
    tmp_path: Path, serial: str, fs_type: str
) -> tuple[RecorderImage, str, tuple[int, int]]:
    """A recorder image with three clips; the third's bytes have a 4 KiB unreadable stretch."""
    bad_clip = f"DCIM/100MEDIA/{serial}_310301_20261124080000_0009.MP4"
    content = os.urandom(512 * 1024)
    image = build_recorder_image(
        tmp_path, RecorderSpec(serial, "310301", fs_type, clips=2, extra_files={bad_clip: (content, None)})
    )
    start = find_file_offset(image.path, content) + 200_000
    return image, bad_clip, (start, start + 4096)


@pytest.mark.parametrize("fs_type", ["vfat", "exfat"])
def test_an_unreadable_sector_fails_that_file_only_and_the_next_docking_takes_it(
    fs_type: str, station: Station, tmp_path: Path
) -> None:
    image, bad_clip, bad = recorder_with_bad_sector(tmp_path, "DSJ0301", fs_type)
    before = image.sha256()
    incoming = station.settings.effective_store_path / "incoming"
    faulty = FaultyImage(image.path, tmp_path, bad=[bad])
    with faulty as served:
        first = dock_once(station, served)
        summary = first.summary  # type: ignore[attr-defined]
        assert summary is not None, first.as_dict()  # type: ignore[attr-defined]
        # the file failed with a clear warning; the transfer says it is partial
        assert summary.outcome is TransferOutcome.PARTIAL, summary.as_dict()
        assert not first.ok  # type: ignore[attr-defined]
        failed = [f for f in summary.files if f.status == "failed"]
        assert [f.path for f in failed] == [bad_clip]
        assert "errno 5" in failed[0].error or "errno 1" in failed[0].error  # fusefat says EPERM
        assert any("I/O error" in w and "next docking" in w for w in failed[0].warnings), failed[0].warnings
        # every other file is stored, with the recorder's bytes; nothing partial became a clip
        # (the recorder's DeviceInfo.txt as an attachment of the transfer, not a clip)
        clips = clips_of(station, "DSJ0301")
        assert set(clips) == {p.lower() for p in image.files if p not in (bad_clip, "DeviceInfo.txt")}
        for path, sha256 in image.files.items():
            if path != bad_clip:
                if path != "DeviceInfo.txt":
                    assert clips[path.lower()].sha256 == sha256
                assert station.blobs.rehash(sha256) == sha256
        assert not station.blobs.exists(image.files[bad_clip])
        assert not list(incoming.glob("*.part")), "a partial copy was left in the store"
        rows = transfer_rows(station)
        (row,) = rows
        assert row.outcome is TransferOutcome.PARTIAL and row.files_failed == 1
        assert any(p.code == "file_failed" and bad_clip in p.message for p in row.problems)

        # the sector reads again: the next docking takes the file, and only it
        faulty.heal()
        second = dock_once(station, served)
    summary = second.summary  # type: ignore[attr-defined]
    assert summary is not None and summary.outcome is TransferOutcome.COMPLETE, second.as_dict()  # type: ignore[attr-defined]
    assert [f.path for f in summary.files if f.status == "ingested"] == [bad_clip]
    assert clips_of(station, "DSJ0301")[bad_clip.lower()].sha256 == image.files[bad_clip]
    assert station.blobs.rehash(image.files[bad_clip]) == image.files[bad_clip]
    assert [r.outcome for r in transfer_rows(station)] == [TransferOutcome.PARTIAL, TransferOutcome.COMPLETE]
    assert image.sha256() == before  # nothing on the recorder changed


# -- deleting from the recorder ---------------------------------------------------------------------


@pytest.mark.parametrize("fs_type", ["vfat", "exfat"])
def test_files_are_deleted_only_when_the_profile_asks_and_only_verified_ones(
    fs_type: str, station: Station, env: dict[str, str], profiles_dir: Path, tmp_path: Path
) -> None:
    image, bad_clip, bad = recorder_with_bad_sector(tmp_path, "DSJ0401", fs_type)
    clips = sorted(p for p in image.files if p.endswith(".MP4") and p != bad_clip)
    assert len(clips) == 2
    before = image.sha256()
    faulty = FaultyImage(image.path, tmp_path, bad=[bad])
    with faulty as served:
        # deletion is off by default: everything stays on the recorder
        first = dock_once(station, served).summary  # type: ignore[attr-defined]
        assert first.outcome is TransferOutcome.PARTIAL and first.files_deleted == 0
        assert not any(f.deleted for f in first.files)
        assert deletion_events(station) == []
        assert image.sha256() == before

        # on: the verified copies go (read and hashed again: duplicates of what is on record), the
        # file that failed and the recorder's own DeviceInfo.txt stay
        enable_deletion(profiles_dir)
        second = dock_once(station, served).summary  # type: ignore[attr-defined]
        assert second.outcome is TransferOutcome.PARTIAL, second.as_dict()
        statuses = {f.path: (f.status, f.deleted) for f in second.files}
        label = {image.label: ("skipped", False)} if fs_type == "vfat" else {}  # fusefat's label entry
        assert statuses == {
            "DeviceInfo.txt": ("attached", False),  # a sidecar: an attachment, never deleted
            clips[0]: ("duplicate", True),
            clips[1]: ("duplicate", True),
            bad_clip: ("failed", False),
            **label,
        }
        assert second.files_deleted == 2
        events = deletion_events(station)
        assert [(action, d["path"], d["sha256"]) for action, d in events] == [
            ("device_file.deleting", clips[0], image.files[clips[0]]),
            ("device_file.deleting", clips[1], image.files[clips[1]]),
            ("device_file.deleted", clips[0], image.files[clips[0]]),
            ("device_file.deleted", clips[1], image.files[clips[1]]),
        ]
        assert {d["transfer_id"] for _, d in events} == {second.transfer_id}
        assert {d["device"] for _, d in events} == {"DSJ0401"}

        # healed: the last clip comes in and goes too
        faulty.heal()
        third = dock_once(station, served).summary  # type: ignore[attr-defined]
        assert third.outcome is TransferOutcome.COMPLETE, third.as_dict()
        assert {f.path for f in third.files if f.deleted} == {bad_clip}
        assert {f.path: f.status for f in third.files}[bad_clip] == "ingested"
    assert [r.files_deleted for r in transfer_rows(station)] == [0, 2, 1]
    assert volume_files(image) == {"deviceinfo.txt"}
    assert_filesystem_clean(image)
    # everything deleted is in the store, verified
    stored = clips_of(station, "DSJ0401")
    for path in (*clips, bad_clip):
        assert station.blobs.rehash(stored[path.lower()].sha256) == image.files[path]
    assert run_cli(["audit", "verify"], env).code == 0


@pytest.mark.parametrize("fs_type", ["vfat", "exfat"])
def test_a_copy_that_no_longer_verifies_or_a_file_changed_since_is_not_deleted(
    fs_type: str, station: Station, tmp_path: Path
) -> None:
    image = build_recorder_image(tmp_path, RecorderSpec("DSJ0501", "310501", fs_type, clips=3))
    clips = sorted(p for p in image.files if p.endswith(".MP4"))
    rotten, changed, good = clips
    mount_dir = station.settings.effective_mount_dir
    with LoopDevice(image.path) as devnode:
        with ReadOnlyMount(devnode, fs_type, mount_dir) as root:
            profile, facts = choose_profile(station, root, None)
            summary = pull(
                station,
                PullRequest(
                    root=root, profile=profile, source=TransferSource.DOCK, volume=facts, hash_every_file=True
                ),
            )
        assert summary.outcome is TransferOutcome.COMPLETE
        # the stored copy of one clip rots; another clip is changed on the recorder afterwards
        blob = station.blobs.path_for(image.files[rotten])  # type: ignore[attr-defined]
        blob.chmod(0o600)
        with blob.open("r+b") as handle:
            handle.seek(100)
            handle.write(b"\xff\x00\xff")
        decisions = plan_deletions(
            [copied_file(f) for f in summary.files],
            outcome=summary.outcome,
            protected=protected_paths(profile),
        )
        assert {d.file.path for d in decisions if d.delete} == set(clips)  # as far as the pull knew
        with ReadWriteMount(devnode, fs_type, mount_dir) as rw:
            stamp = os.stat(rw / changed).st_mtime + 60
            os.utime(rw / changed, (stamp, stamp))
            report = delete_verified(
                station, rw, decisions, transfer_id=summary.transfer_id, device_serial="DSJ0501", actor="test"
            )
    assert [f.path for f in report.deleted] == [good]
    kept = dict(report.kept)
    assert kept == {
        rotten: "the stored copy no longer hashes to its sha256",
        changed: "changed on the recorder since it was copied",
    }
    assert [(a, d["path"]) for a, d in deletion_events(station)] == [
        ("device_file.deleting", good),
        ("device_file.deleted", good),
    ]
    assert transfer_rows(station)[0].files_deleted == 1
    assert volume_files(image) == {p.lower() for p in image.files} - {good.lower()}
    assert_filesystem_clean(image)


def test_a_recorder_someone_else_has_mounted_is_never_mounted_read_write(
    station: Station, tmp_path: Path
) -> None:
    """Deleting needs the volume read-write; while another mount (a custodian's file manager, a
    second dock) has it, that would be two writers on one FAT: refused, and nothing changes."""
    image = build_recorder_image(tmp_path, RecorderSpec("DSJ0601", "310601", "exfat", clips=1))
    mount_dir = station.settings.effective_mount_dir
    elsewhere = tmp_path / "elsewhere"
    with LoopDevice(image.path) as devnode, ReadOnlyMount(devnode, "exfat", elsewhere) as other:
        assert any(other.rglob("*.MP4"))
        with pytest.raises(MountError, match="by someone else: not mounting it read-write"):
            ReadWriteMount(devnode, "exfat", mount_dir).mount()
        assert not (mount_dir / devnode.rsplit("/", 1)[-1]).is_mount()
    assert volume_files(image) == {p.lower() for p in image.files}
    assert_filesystem_clean(image)


# -- store-and-forward: a spool over its high-water mark (issue 18) ---------------------------------


def test_a_spool_over_its_high_water_mark_pulls_a_docked_recorder_but_clears_nothing(
    station: Station, env: dict[str, str], profiles_dir: Path, tmp_path: Path
) -> None:
    """The dock docking into the station's spool (the backend unreachable) with the profile asking for
    deletion: over the high-water mark every file is pulled and kept, none is deleted from the recorder
    (R1, R10); below it the spool clears the recorder as the backend would."""
    image = build_recorder_image(tmp_path, RecorderSpec("DSJ0501", "310501", "vfat", clips=2))
    enable_deletion(profiles_dir)
    before = volume_files(image)
    full = open_spool(load_settings({**env, "EVIDENCE_SPOOL_HIGH_WATER_BYTES": "1"}))
    try:
        result = dock_once(full, image.path)
        summary = result.summary  # type: ignore[attr-defined]
        assert summary.outcome is TransferOutcome.COMPLETE, summary.as_dict()
        assert summary.files_ingested == 2 and summary.files_deleted == 0
        problems = result.problems  # type: ignore[attr-defined]
        assert any("nothing deleted from the recorder" in p and "high-water" in p for p in problems), problems
        assert all(full.blobs.exists(sha256) for sha256 in image.files.values())
    finally:
        full.close()
    assert volume_files(image) == before

    roomy = open_spool(load_settings(env))
    try:
        second = dock_once(roomy, image.path).summary  # type: ignore[attr-defined]
        assert second.files_deleted == 2, second.as_dict()
    finally:
        roomy.close()
    assert volume_files(image) == {"deviceinfo.txt"}
