"""Pulling a recorder's files from a folder (`evidence import`, the same code path as docking)."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select

from evidence_store.bootstrap import Station
from evidence_store.db.tables import attachments, clips
from evidence_store.domain.model import Clip, ClockStatus, Device, MediaType, Officer, Transfer
from tests.conftest import run_cli
from tests.fixtures.media import make_video, sha256_of

SERIAL, OFFICER = "DSJ0001", "310123"


def recorder_folder(
    root: Path, *, clock: str | None = "2026-11-24 16:01:30", clips: int = 2
) -> dict[str, str]:
    """A recorder volume as a folder: DeviceInfo.txt and clips under DCIM; returns path -> sha256."""
    lines = [f"Serial={SERIAL}", f"Officer={OFFICER}", "Unit=金普新区卫生健康监督所", "Model=DSJ-X1"]
    if clock:
        lines.append(f"Time={clock}")
    (root / "DCIM" / "100MEDIA").mkdir(parents=True)
    (root / "DeviceInfo.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    hashes = {"DeviceInfo.txt": sha256_of(root / "DeviceInfo.txt")}
    for i in range(clips):
        rel = f"DCIM/100MEDIA/{SERIAL}_{OFFICER}_2026112409{i:02d}00_{i + 1:04d}.MP4"
        make_video(root / rel, seconds=2)
        hashes[rel] = sha256_of(root / rel)
    return hashes


def import_json(station_env: dict[str, str], path: Path, *extra: str) -> tuple[int, dict]:
    result = run_cli(["import", str(path), "--json", *extra], station_env, timeout=600)
    assert result.stdout, result.stderr
    return result.code, json.loads(result.stdout)


def snapshot(root: Path) -> dict[str, tuple[int, int, str]]:
    """Every entry's mode, size and content hash, to prove the volume was not changed."""
    state = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        digest = sha256_of(path) if stat.S_ISREG(st.st_mode) else ""
        state[str(path.relative_to(root))] = (st.st_mode, st.st_size, digest)
    return state


def test_import_stores_every_file_with_provenance(
    station: Station, station_env: dict[str, str], tmp_path: Path
) -> None:
    volume = tmp_path / "volume"
    hashes = recorder_folder(volume)
    before = snapshot(volume)
    code, summary = import_json(station_env, volume)
    assert code == 0, summary
    assert summary["outcome"] == "complete"
    assert (summary["device_serial"], summary["officer"], summary["profile"]) == (
        SERIAL,
        OFFICER,
        "cn-standard",
    )
    # the recorder's DeviceInfo.txt is an attachment of the transfer, not a clip (issue 17)
    assert (summary["files_seen"], summary["files_ingested"], summary["files_attached"]) == (3, 2, 1)
    assert {f["path"]: f["sha256"] for f in summary["files"]} == hashes
    assert snapshot(volume) == before  # nothing on the recorder changed

    with station.sessions() as session:
        clips = {c.device_path: c for c in session.scalars(select(Clip))}
        transfer = session.scalars(select(Transfer)).one()
        device = session.scalars(select(Device)).one()
        officer = session.scalars(select(Officer)).one()
    assert set(clips) == set(hashes) - {"DeviceInfo.txt"}
    for path, clip in clips.items():
        assert clip.sha256 == hashes[path]
        with station.blobs.open(clip.sha256) as handle:
            assert handle.read() == (volume / path).read_bytes()
        assert clip.transfer_id == transfer.id
    assert (device.serial, officer.badge_number, device.assigned_officer_id) == (SERIAL, OFFICER, officer.id)
    assert transfer.outcome == "complete"
    assert (transfer.files_seen, transfer.files_ingested, transfer.bytes_copied) == (
        3,
        2,
        summary["bytes_copied"],
    )
    assert transfer.officer_id == officer.id
    assert transfer.finished_at is not None

    video = clips[f"DCIM/100MEDIA/{SERIAL}_{OFFICER}_20261124090000_0001.MP4"]
    assert video.media_type is MediaType.VIDEO
    assert video.device_start == datetime(2026, 11, 24, 9, 0, 0)  # as the recorder's clock said
    assert video.duration_s is not None and abs(video.duration_s - 2.0) < 0.2
    # the recorder's clock read 16:01:30 Shanghai at docking; the offset is against the station's clock
    assert video.clock_status is ClockStatus.MEASURED
    assert video.clock_offset_s == transfer.device_clock_offset_s
    assert video.utc_start is not None
    expected = datetime(2026, 11, 24, 1, 0, tzinfo=UTC).timestamp() - transfer.device_clock_offset_s
    assert abs(video.utc_start.timestamp() - expected) < 1e-3
    assert video.media_info["time_source"] == "file name"
    with station.engine.connect() as connection:
        info = connection.execute(select(attachments)).one()
    assert (info.device_path, info.sha256, info.transfer_id, info.kind) == (
        "DeviceInfo.txt",
        hashes["DeviceInfo.txt"],
        transfer.id,
        "device_info",
    )


def test_redocking_ingests_only_what_is_new(
    station: Station, station_env: dict[str, str], tmp_path: Path
) -> None:
    volume = tmp_path / "volume"
    recorder_folder(volume, clips=1)
    assert import_json(station_env, volume)[1]["files_ingested"] == 1  # DeviceInfo.txt is attached
    make_video(volume / "DCIM/100MEDIA" / f"{SERIAL}_{OFFICER}_20261124101500_0002.MP4")
    code, summary = import_json(station_env, volume)
    assert code == 0
    assert (summary["files_ingested"], summary["files_duplicate"]) == (1, 2)
    with station.sessions() as session:
        assert len(session.scalars(select(Clip)).all()) == 2
        assert len(session.scalars(select(Transfer)).all()) == 2
    assert run_cli(["audit", "verify"], station_env).code == 0


def test_the_same_bytes_from_another_path_are_one_clip(
    station: Station, station_env: dict[str, str], tmp_path: Path
) -> None:
    volume = tmp_path / "volume"
    recorder_folder(volume, clips=1)
    (volume / "copy.MP4").write_bytes(
        (volume / f"DCIM/100MEDIA/{SERIAL}_{OFFICER}_20261124090000_0001.MP4").read_bytes()
    )
    code, summary = import_json(station_env, volume)
    assert code == 0
    statuses = {f["path"]: f["status"] for f in summary["files"]}
    assert sorted(statuses.values()) == ["attached", "duplicate", "ingested"]


def test_bad_input_is_kept_or_skipped_with_a_clear_reason(
    station: Station, station_env: dict[str, str], tmp_path: Path
) -> None:
    volume = tmp_path / "volume"
    recorder_folder(volume, clips=1)
    dcim = volume / "DCIM"
    good = make_video(tmp_path / "good.MP4", seconds=3, tag="truncated-source")
    (dcim / f"{SERIAL}_{OFFICER}_20261124110000_0009.MP4").write_bytes(
        good.read_bytes()[: good.stat().st_size // 3]
    )
    (dcim / f"{SERIAL}_{OFFICER}_20261124111000_0010.MP4").write_bytes(b"")
    (dcim / "readme.bin").write_bytes(b"\x00\x01 not media")
    outside = tmp_path / "outside-secret.txt"
    outside.write_text("station secret that must never be read")
    (dcim / "escape.MP4").symlink_to(outside)
    (dcim / "escape-dir").symlink_to(tmp_path)
    os.mkfifo(dcim / "pipe.MP4")
    os.mknod(dcim / "null.MP4", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    (dcim / "现场检查.MP4".encode("gbk").decode("utf-8", "surrogateescape")).write_bytes(b"gbk named")
    (dcim / b"\xff\xfebad.MP4".decode("utf-8", "surrogateescape")).write_bytes(b"invalid utf-8 named")

    code, summary = import_json(station_env, volume)
    files = {f["path"]: f for f in summary["files"]}
    assert summary["outcome"] == "complete"
    assert code == 0
    assert files["DCIM/escape.MP4"]["status"] == "skipped"
    assert "symlink" in files["DCIM/escape.MP4"]["warnings"][0]
    assert files["DCIM/escape-dir"]["status"] == "skipped"
    assert files["DCIM/pipe.MP4"]["status"] == "skipped"
    assert "FIFO" in files["DCIM/pipe.MP4"]["warnings"][0]
    assert files["DCIM/null.MP4"]["status"] == "skipped"
    assert "device node" in files["DCIM/null.MP4"]["warnings"][0]
    truncated = files[f"DCIM/{SERIAL}_{OFFICER}_20261124110000_0009.MP4"]
    assert truncated["status"] == "ingested"
    assert any("could not be read" in w for w in truncated["warnings"])
    empty = files[f"DCIM/{SERIAL}_{OFFICER}_20261124111000_0010.MP4"]
    assert empty["status"] == "ingested"
    assert any("empty" in w for w in empty["warnings"])
    assert files["DCIM/readme.bin"]["status"] == "ingested"
    assert any("not a recognised media file" in w for w in files["DCIM/readme.bin"]["warnings"])
    assert files["DCIM/现场检查.MP4"]["status"] == "ingested"
    assert any("not UTF-8" in w for w in files["DCIM/现场检查.MP4"]["warnings"])
    assert files["DCIM/\\xff\\xfebad.MP4"]["status"] == "ingested"

    # nothing outside the volume was read into the store
    secret = sha256_of(outside)
    assert not station.blobs.exists(secret)
    assert secret not in json.dumps(summary)
    # what was stored is exactly what was on the volume, truncated file included
    with station.sessions() as session:
        stored = {c.device_path: c for c in session.scalars(select(Clip))}
    assert stored[f"DCIM/{SERIAL}_{OFFICER}_20261124110000_0009.MP4"].sha256 == sha256_of(
        dcim / f"{SERIAL}_{OFFICER}_20261124110000_0009.MP4"
    )
    assert {w.code for w in stored["DCIM/现场检查.MP4"].warnings} >= {"name_not_utf8"}
    assert "name_bytes" not in stored["DCIM/现场检查.MP4"].media_info


def test_unknown_clock_and_generic_profile(
    station: Station, station_env: dict[str, str], tmp_path: Path
) -> None:
    volume = tmp_path / "stick"
    make_video(volume / "clip.mp4", seconds=2)
    mtime = datetime(2026, 11, 20, 10, 0, 2, tzinfo=UTC).timestamp()
    os.utime(volume / "clip.mp4", (mtime, mtime))
    code, summary = import_json(station_env, volume, "--device", "USB-STICK-1", "--officer", "310555")
    assert code == 0
    assert summary["profile"] == "generic"
    assert summary["clock_offset_s"] is None
    with station.sessions() as session:
        clip = session.scalars(select(Clip)).one()
    assert clip.clock_status is ClockStatus.UNKNOWN
    assert {w.code for w in clip.warnings} >= {"clock_unknown", "time_from_mtime"}
    assert clip.media_info["time_source"] == "file modification time"
    assert clip.utc_end is not None
    assert abs(clip.utc_end.timestamp() - mtime) < 1.0


def test_late_handover_is_flagged(station: Station, station_env: dict[str, str], tmp_path: Path) -> None:
    volume = tmp_path / "volume"
    recorder_folder(volume, clips=0)
    # recorded 25 hours before the docking, by the recorder's (Shanghai) clock; the default deadline is 24 h
    recorded = datetime.now(ZoneInfo("Asia/Shanghai")).replace(tzinfo=None) - timedelta(hours=25)
    old = f"{SERIAL}_{OFFICER}_{recorded:%Y%m%d%H%M%S}_0001.MP4"
    fresh = f"{SERIAL}_{OFFICER}_{recorded + timedelta(hours=2):%Y%m%d%H%M%S}_0002.MP4"
    make_video(volume / "DCIM" / old)
    make_video(volume / "DCIM" / fresh)
    (volume / "DeviceInfo.txt").unlink()
    code, _ = import_json(
        station_env, volume, "--profile", "cn-standard", "--device", SERIAL, "--officer", OFFICER
    )
    assert code == 0
    with station.sessions() as session:
        clip = session.scalars(select(Clip).where(clips.c.original_name == old)).one()
        on_time = session.scalars(select(Clip).where(clips.c.original_name == fresh)).one()
    assert clip.late_handover
    assert any(w.code == "late_handover" and "R1" in w.message for w in clip.warnings)
    assert not on_time.late_handover
