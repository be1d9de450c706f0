"""The dock daemon with real block-device events: udevd with our rules, and the kernel-only fallback.

Recorders are image files attached on new loop nodes (the kernel announces `add`), mounted read-only
through FUSE (this kernel has no vfat/exfat driver), pulled, unmounted, and detached (`remove`).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from evidence_store.bootstrap import Station
from evidence_store.db.tables import attachments, devices
from evidence_store.domain.model import Clip, Device, DockStation, Transfer, TransferOutcome, TransferSource
from ingest.mount import read_mountinfo
from ingest.pull import TransferSummary
from tests.fixtures.recorders import (  # noqa: F401  (fixtures)
    DockThread,
    LoopDevice,
    RecorderImage,
    RecorderSpec,
    build_recorder_image,
    dock_tools,
    fuse_connection_abort,
    no_udevd,
    udevd,
)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("dock_tools")]


def clips_by_path(station: Station, serial: str) -> dict[str, list[Clip]]:
    """The clips from one recorder, by their path on its volume."""
    found: dict[str, list[Clip]] = {}
    with station.sessions() as session:
        device = session.scalars(select(Device).where(Device.serial == serial)).one()  # type: ignore[arg-type]
        for clip in session.scalars(select(Clip).where(Clip.device_id == device.id)):  # type: ignore[arg-type]
            found.setdefault(clip.device_path, []).append(clip)
    return found


def transfers(station: Station) -> list[Transfer]:
    with station.sessions() as session:
        return list(session.scalars(select(Transfer).order_by(Transfer.id)))  # type: ignore[arg-type]


# the recorder's sidecar: stored as an attachment of its transfer, never as a clip (issue 17)
SIDECARS = frozenset({"DeviceInfo.txt"})


def footage(image: RecorderImage) -> set[str]:
    """The recorder's files that are footage (clips), not sidecars."""
    return set(image.files) - SIDECARS


def assert_stored(station: Station, image: RecorderImage, clips: dict[str, list[Clip]]) -> None:
    """Every footage file of the recorder is a clip, every sidecar an attachment, whose stored bytes
    hash to the source file's sha256."""
    with station.connect() as connection:
        attached = dict(
            connection.execute(
                select(attachments.c.device_path, attachments.c.sha256)
                .join(devices, devices.c.id == attachments.c.device_id)
                .where(devices.c.serial == image.spec.serial)
            ).all()
        )
    for path, sha256 in image.files.items():
        if path in SIDECARS:
            assert attached.get(path) == sha256, f"{path} of {image.spec.serial} is not attached"
        else:
            assert path in clips, f"{path} of {image.spec.serial} is not in the store"
            (clip,) = clips[path]
            assert clip.sha256 == sha256, path
            assert clip.size == image.sizes[path]
        assert station.blobs.rehash(sha256) == sha256


def label_entries(image: RecorderImage, summary: TransferSummary) -> set[str]:
    """fusefat lists the FAT volume label as an empty file in the root: the pull skips it, naming it
    (see ingest/fat.py)."""
    skipped = {f.path for f in summary.files if f.status == "skipped"}
    for path in skipped:
        assert image.fs_type == "vfat" and path == image.label, f"unexpected skipped file {path}"
    return skipped


def our_mounts(station: Station) -> list[str]:
    mount_dir = station.settings.effective_mount_dir
    return [str(e.mountpoint) for e in read_mountinfo() if mount_dir in e.mountpoint.parents]


@pytest.mark.usefixtures("udevd")
def test_udev_events_dock_fat32_and_exfat_read_only(station: Station, tmp_path: Path) -> None:
    fat = build_recorder_image(tmp_path, RecorderSpec("DSJ0001", "310001", "vfat", label="DSJ0001"))
    exfat = build_recorder_image(tmp_path, RecorderSpec("DSJ0002", "310002", "exfat", label="ZFJLY02"))
    before = {image.path: image.sha256() for image in (fat, exfat)}

    with DockThread(station) as daemon:
        assert daemon.dock.events is not None
        with LoopDevice(fat.path) as fat_dev, LoopDevice(exfat.path) as exfat_dev:
            results = {r.key: r for r in daemon.results(2)}
            events = list(daemon.dock.events)
        time.sleep(0.3)  # let the removals arrive
    assert set(results) == {fat_dev, exfat_dev}

    # real udev events, with what udev's blkid and our rules added
    for devnode, image in ((fat_dev, fat), (exfat_dev, exfat)):
        seen = [e for e in events if e["DEVNAME"] == devnode]
        assert seen, f"no event for {devnode}"
        event = seen[0]
        assert event["EVIDENCE_EVENT_SOURCE"] == "udev" and "USEC_INITIALIZED" in event
        assert event["ID_FS_TYPE"] == image.fs_type
        assert event["ID_FS_UUID"] == image.uuid
        assert event["ID_FS_LABEL"] == image.label
        assert event["EVIDENCE_RECORDER"] == "1" and event["UDISKS_IGNORE"] == "1"
        assert f"evidence-dock@{devnode.removeprefix('/dev/')}.service" in event["SYSTEMD_WANTS"]

    # mounted read-only through FUSE; every transfer complete
    assert results[fat_dev].mount_method == "fuse:fusefat"
    assert results[exfat_dev].mount_method == "fuse:mount.exfat-fuse"
    for devnode, image in ((fat_dev, fat), (exfat_dev, exfat)):
        result = results[devnode]
        assert result.mount_read_only is True
        assert result.error is None and not result.problems, result.as_dict()["dock"]
        assert result.volume.uuid == image.uuid and result.volume.tagged_recorder
        summary = result.summary
        assert summary.outcome is TransferOutcome.COMPLETE, summary.as_dict()
        assert summary.device_serial == image.spec.serial
        assert summary.officer_badge == image.spec.officer
        assert summary.profile == "cn-standard"

    # every file is in the store, with the bytes that were on the recorder
    for devnode, image, labels in ((fat_dev, fat, {fat.label}), (exfat_dev, exfat, set())):
        clips = clips_by_path(station, image.spec.serial)
        assert_stored(station, image, clips)
        assert set(clips) == footage(image)  # the label entry is no clip
        assert label_entries(image, results[devnode].summary) == labels

    # one transfer per docking, source dock, at this dock station, complete
    rows = transfers(station)
    assert len(rows) == 2
    with station.sessions() as session:
        dock_station = session.scalars(select(DockStation)).one()
    assert dock_station.name == "test-station"
    for row in rows:
        assert row.source is TransferSource.DOCK
        assert row.outcome is TransferOutcome.COMPLETE
        assert row.dock_station_id == dock_station.id
        assert row.finished_at is not None
    assert {row.volume_uuid for row in rows} == {fat.uuid, exfat.uuid}

    # the recorders were not written to, and nothing stays mounted
    assert {image.path: image.sha256() for image in (fat, exfat)} == before
    assert our_mounts(station) == []
    assert not any(station.settings.effective_mount_dir.iterdir())


@pytest.mark.usefixtures("no_udevd")
def test_kernel_events_and_blkid_without_udevd(station: Station, tmp_path: Path) -> None:
    image = build_recorder_image(tmp_path, RecorderSpec("DSJ0003", "310003", "exfat", label="DSJ0003"))
    before = image.sha256()
    # accept_loop takes any loop device with FAT/exFAT: only this test's (a benchmark may run beside)
    with DockThread(station, accept_loop=True, images_under=tmp_path) as daemon:
        with LoopDevice(image.path) as devnode:
            (result,) = daemon.results(1)
            events = [e for e in daemon.dock.events if e["DEVNAME"] == devnode]
        time.sleep(0.3)
    assert daemon.used_source == "kernel"
    assert events, "no event reached the dock"
    event = events[0]
    # the kernel's event carries no ID_*; the filesystem came from blkid
    assert event["EVIDENCE_EVENT_SOURCE"] == "kernel" and "USEC_INITIALIZED" not in event
    assert event["EVIDENCE_FS_FROM"] == "blkid"
    assert (event["ID_FS_TYPE"], event["ID_FS_UUID"], event["ID_FS_LABEL"]) == (
        "exfat",
        image.uuid,
        image.label,
    )
    assert "EVIDENCE_RECORDER" not in event
    assert result.mount_method == "fuse:mount.exfat-fuse" and result.mount_read_only
    assert result.summary.outcome is TransferOutcome.COMPLETE, result.as_dict()
    clips = clips_by_path(station, image.spec.serial)
    assert_stored(station, image, clips)
    assert set(clips) == footage(image)
    (row,) = transfers(station)
    assert (row.source, row.outcome) == (TransferSource.DOCK, TransferOutcome.COMPLETE)
    assert image.sha256() == before
    assert our_mounts(station) == []


@pytest.mark.usefixtures("udevd")
@pytest.mark.parametrize(
    ("fs_type", "how"),
    [
        # the USB disk vanishes: the kernel sets its capacity to 0 and reads return end-of-file;
        # fusefat then fails reads with EPERM, exfat-fuse returns stale bytes without an error
        ("vfat", "unplugged"),
        ("exfat", "unplugged"),
        # the FUSE daemon dies (its connection aborted): every access fails with ENOTCONN
        ("vfat", "fuse-died"),
    ],
)
def test_recorder_pulled_out_mid_copy_then_docked_again(
    fs_type: str, how: str, station: Station, tmp_path: Path
) -> None:
    image = build_recorder_image(
        tmp_path, RecorderSpec("DSJ0004", "310004", fs_type, clips=3, big_file_mb=150)
    )
    big = next(path for path, size in image.sizes.items() if size >= 150 << 20)
    labels = {image.label} if fs_type == "vfat" else set()  # fusefat's label entry, skipped
    before = image.sha256()
    incoming = station.settings.effective_store_path / "incoming"

    with DockThread(station) as daemon:
        loop = LoopDevice(image.path)
        devnode = loop.attach()
        try:
            # wait until the big clip is being copied, then pull the recorder out
            deadline = time.monotonic() + 60
            while not _largest_part(incoming) > 20 << 20:
                assert time.monotonic() < deadline, "the big clip's copy never started"
                assert daemon.queue.empty(), "the pull ended before the recorder was pulled out"
                time.sleep(0.005)
            if how == "unplugged":
                loop.unplug()
            else:
                loop.detach()  # still held by the FUSE daemon: detaches when it lets go
                fuse_connection_abort(station.settings.effective_mount_dir / devnode.removeprefix("/dev/"))
            (first,) = daemon.results(1)
        finally:
            loop.close()
        time.sleep(0.3)
        assert our_mounts(station) == [], "the mount of the vanished recorder was not cleaned up"

        summary = first.summary
        assert summary is not None, first.as_dict()
        assert summary.outcome is TransferOutcome.INTERRUPTED, summary.as_dict()
        assert any("interrupted" in p for p in summary.problems), summary.problems
        assert summary.files_failed == 0, summary.as_dict()  # a vanished recorder is not a failed file
        first_ingested = {f.path for f in summary.files if f.status == "ingested"}
        assert big not in first_ingested
        # nothing partial became a clip: every clip's blob hashes to its sha256, which is the source's
        clips = clips_by_path(station, image.spec.serial)
        assert big not in clips
        for path, (clip,) in clips.items():
            assert station.blobs.rehash(clip.sha256) == clip.sha256
            assert clip.sha256 == image.files[path], f"{path} was stored wrong"
        assert set(clips) == first_ingested
        assert not list(_parts(incoming)), "a partial copy was left in the store"

        # docked again: only what is missing is copied, and the transfer completes
        with LoopDevice(image.path):
            (second,) = daemon.results(1)
        time.sleep(0.3)
    summary = second.summary
    assert summary is not None and summary.outcome is TransferOutcome.COMPLETE, second.as_dict()
    second_ingested = {f.path for f in summary.files if f.status == "ingested"}
    assert big in second_ingested
    assert second_ingested == footage(image) - first_ingested
    assert {f.path for f in summary.files if f.status == "duplicate"} == first_ingested
    clips = clips_by_path(station, image.spec.serial)
    assert_stored(station, image, clips)
    assert set(clips) == footage(image)
    assert label_entries(image, summary) == labels
    rows = transfers(station)
    assert [(r.source, r.outcome) for r in rows] == [
        (TransferSource.DOCK, TransferOutcome.INTERRUPTED),
        (TransferSource.DOCK, TransferOutcome.COMPLETE),
    ]
    assert image.sha256() == before
    assert our_mounts(station) == []


def _largest_part(incoming: Path) -> int:
    """The size of the biggest copy in progress in the store (0 if none)."""
    sizes = [0]
    for path in _parts(incoming):
        with contextlib.suppress(FileNotFoundError):  # a finished copy leaves incoming/
            sizes.append(path.stat().st_size)
    return max(sizes)


def _parts(incoming: Path) -> list[Path]:
    try:
        return [incoming / name for name in os.listdir(incoming) if name.endswith(".part")]
    except FileNotFoundError:
        return []


@pytest.mark.usefixtures("udevd")
def test_recorders_docked_and_mounted_before_the_dock_started(station: Station, tmp_path: Path) -> None:
    """At start the dock takes the recorders already docked; one someone mounted read-only is pulled
    where it is, one mounted read-write through a read-only bind mount; neither mount is undone."""
    ro_image = build_recorder_image(tmp_path, RecorderSpec("DSJ0005", "310005", "vfat"))
    rw_image = build_recorder_image(tmp_path, RecorderSpec("DSJ0006", "310006", "exfat"))
    ro_mnt, rw_mnt = tmp_path / "mounted-ro", tmp_path / "mounted-rw"
    ro_mnt.mkdir()
    rw_mnt.mkdir()
    with LoopDevice(ro_image.path) as ro_dev, LoopDevice(rw_image.path) as rw_dev:
        subprocess.run(
            ["fusefat", "-o", f"ro,fsname={ro_dev}", ro_dev, str(ro_mnt)], check=True, capture_output=True
        )
        try:
            subprocess.run(["mount.exfat-fuse", rw_dev, str(rw_mnt)], check=True, capture_output=True)
            try:
                with DockThread(station) as daemon:
                    results = {r.key: r for r in daemon.results(2)}
                mounted = {str(e.mountpoint): e for e in read_mountinfo()}
                assert str(ro_mnt) in mounted and str(rw_mnt) in mounted, "the dock undid a mount not its own"
                assert not mounted[str(rw_mnt)].read_only
                assert os.listdir(ro_mnt) and os.listdir(rw_mnt)
            finally:
                subprocess.run(["fusermount", "-u", str(rw_mnt)], check=False)
        finally:
            subprocess.run(["fusermount", "-u", str(ro_mnt)], check=False)

    assert (results[ro_dev].mount_method, results[rw_dev].mount_method) == ("existing", "bind")
    for devnode, image in ((ro_dev, ro_image), (rw_dev, rw_image)):
        result = results[devnode]
        assert result.mount_read_only is True and result.error is None and not result.problems
        assert result.summary.outcome is TransferOutcome.COMPLETE, result.as_dict()
        assert_stored(station, image, clips_by_path(station, image.spec.serial))
    assert our_mounts(station) == []
