"""Processing for real (ffmpeg, PyAV, the station key): every clip probed, made playable, thumbnailed and
time-stamped; bad media kept, visible and never retried forever; jobs idempotent."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import func, select

from evidence_store.bootstrap import Station
from evidence_store.db.tables import derivatives, processing_jobs
from evidence_store.domain.model import Clip, ClipStatus, Derivative, DerivativeKind, StoredTimestamp
from evidence_store.timestamping import TimestampToken, verify_token
from tests.conftest import run_cli
from tests.fixtures.media import make_video, sha256_of
from workers.service import default_toolkit, run_job


def ffprobe(path: Path) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_streams", "-show_format", str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)


@pytest.fixture
def mixed_volume(tmp_path: Path, ffmpeg_available: None) -> Path:
    volume = tmp_path / "volume"
    make_video(volume / "video.mp4", seconds=3, size="320x240")
    subprocess.run(
        [
            "ffmpeg",
            "-y",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=300",
            "-t",
            "2",
            "-c:a",
            "aac",
            str(volume / "audio.m4a"),
        ],
        check=True,
    )
    subprocess.run(
        [
            "ffmpeg",
            "-y",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=640x480",
            "-frames:v",
            "1",
            str(volume / "photo.jpg"),
        ],
        check=True,
    )
    good = make_video(tmp_path / "to-truncate.mp4", seconds=3, tag="truncate-me")
    (volume / "truncated.mp4").write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    (volume / "empty.mp4").write_bytes(b"")
    (volume / "statement.pdf").write_text("a statement, not media")
    return volume


def import_and_process(station_env: dict[str, str], volume: Path) -> dict:
    imported = run_cli(
        ["import", str(volume), "--device", "DSJ7", "--officer", "310777", "--json"], station_env
    )
    assert imported.code == 0, imported.stderr
    processed = run_cli(["process", "--json"], station_env, timeout=600)
    assert processed.code == 0, processed.stderr
    return json.loads(processed.stdout)


def test_every_clip_is_processed_and_bad_media_is_kept_visible(
    station: Station, station_env: dict[str, str], mixed_volume: Path
) -> None:
    originals = {p.name: sha256_of(p) for p in mixed_volume.iterdir()}
    report = import_and_process(station_env, mixed_volume)
    with station.sessions() as session:
        clips = {c.original_name: c for c in session.scalars(select(Clip))}
        derived = session.scalars(select(Derivative)).all()
        stamps = session.scalars(select(StoredTimestamp)).all()

    assert clips["video.mp4"].status is ClipStatus.READY
    assert clips["audio.m4a"].status is ClipStatus.READY
    assert clips["photo.jpg"].status is ClipStatus.READY
    assert clips["statement.pdf"].status is ClipStatus.READY
    assert clips["truncated.mp4"].status is ClipStatus.UNPLAYABLE
    assert clips["empty.mp4"].status is ClipStatus.UNPLAYABLE
    assert clips["truncated.mp4"].warnings and clips["empty.mp4"].warnings

    by_clip: dict[int, dict[DerivativeKind, Derivative]] = {}
    for d in derived:
        by_clip.setdefault(d.clip_id, {})[d.kind] = d
    video = clips["video.mp4"]
    assert set(by_clip[video.id or 0]) == {
        DerivativeKind.PROXY,
        DerivativeKind.POSTER,
        DerivativeKind.CONTACT_SHEET,
    }
    proxy = by_clip[video.id or 0][DerivativeKind.PROXY]
    assert proxy.derived_from_sha256 == video.sha256
    assert proxy.tool == "ffmpeg"
    assert proxy.tool_version.startswith("ffmpeg version")
    assert "libx264" in proxy.arguments and "+faststart" in proxy.arguments
    with (
        station.blobs.open(proxy.sha256) as handle,
        (Path(station.settings.home) / "proxy.mp4").open("wb") as out,
    ):
        out.write(handle.read())
    info = ffprobe(Path(station.settings.home) / "proxy.mp4")
    codecs = {s["codec_type"]: s["codec_name"] for s in info["streams"]}
    assert codecs == {"video": "h264", "audio": "aac"}
    assert set(by_clip[clips["audio.m4a"].id or 0]) == {DerivativeKind.PROXY}
    assert set(by_clip[clips["photo.jpg"].id or 0]) == {DerivativeKind.POSTER}
    assert clips["truncated.mp4"].id not in by_clip

    # every original is time-stamped, and the stamps verify against the station key
    assert {s.clip_id for s in stamps} == {c.id for c in clips.values()}
    for stamp in stamps:
        token = TimestampToken.from_stored(stamp)
        assert verify_token(token, stamp.sha256, station_public_key=station.key.public()).ok
        assert not verify_token(token, "0" * 64, station_public_key=station.key.public()).ok

    # the failures are visible, and a second run retries nothing
    failed = json.loads(run_cli(["jobs", "--failed", "--json"], station_env).stdout)["failed_jobs"]
    failed_clips = {j["original_name"] for j in failed}
    assert failed_clips == {"truncated.mp4", "empty.mp4"}
    assert all(j["permanent"] for j in failed)
    assert report["failed_jobs"] == failed
    again = json.loads(run_cli(["process", "--json"], station_env).stdout)
    assert again["jobs_run"] == 0

    # originals are untouched, and the audit chain holds
    for clip in clips.values():
        assert station.blobs.rehash(clip.sha256) == clip.sha256 == originals[clip.original_name]
    assert run_cli(["audit", "verify"], station_env).code == 0


def test_a_redelivered_job_does_nothing(
    station: Station, station_env: dict[str, str], tmp_path: Path
) -> None:
    volume = tmp_path / "volume"
    make_video(volume / "one.mp4", seconds=2)
    import_and_process(station_env, volume)
    with station.engine.connect() as connection:
        job_ids = connection.scalars(select(processing_jobs.c.id)).all()
        before = connection.scalar(select(func.count()).select_from(derivatives))
    toolkit = default_toolkit(station)
    for job_id in job_ids:
        outcome = run_job(station, job_id, toolkit)
        assert outcome.detail == "already claimed or finished"
    with station.engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(derivatives)) == before


def test_a_failed_job_can_be_retried_by_id(
    station: Station, station_env: dict[str, str], tmp_path: Path
) -> None:
    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
    import_and_process(station_env, volume)
    failed = json.loads(run_cli(["jobs", "--failed", "--json"], station_env).stdout)["failed_jobs"]
    assert failed
    job_id = failed[0]["job_id"]
    retried = run_cli(["jobs", "retry", str(job_id)], station_env)
    assert retried.code == 0, retried.stderr
    still_failed = json.loads(run_cli(["jobs", "--failed", "--json"], station_env).stdout)["failed_jobs"]
    assert job_id not in {j["job_id"] for j in still_failed}
    again = json.loads(run_cli(["process", "--json"], station_env).stdout)
    assert again["jobs_run"] == 1  # the retried job ran once more, and failed again for good
    assert {j["job_id"] for j in again["failed_jobs"]} == {j["job_id"] for j in failed}
