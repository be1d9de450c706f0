"""Probe, proxy and thumbnails for real (PyAV, exifread, the Debian ffmpeg), on media made here with ffmpeg.

Every original is made read-only and hashed before and after: the tools only ever read it.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from evidence_store.errors import PermanentError, TransientError
from ingest.transcode.probe import Location, MediaProbe, probe_media
from ingest.transcode.proxy import make_proxy, proxy_dimensions
from ingest.transcode.thumbnails import contact_sheet_arguments, make_contact_sheet, make_poster
from ingest.transcode.tools import ToolRun, ffmpeg_version, run_tool
from tests.fixtures.media import sha256_of

pytestmark = pytest.mark.usefixtures("ffmpeg_available")

X264 = ("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p")


# -- making media ---------------------------------------------------------------------------------------


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-y", "-loglevel", "error", *args], check=True, timeout=300)


def clip(
    path: Path,
    *,
    size: str = "640x360",
    seconds: float = 3,
    rate: int = 30,
    audio: bool = True,
    video: tuple[str, ...] = X264,
    extra: tuple[str, ...] = (),
) -> Path:
    """A testsrc2 (+ sine) clip; `extra` goes just before the output name."""
    inputs = ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}"]
    codecs = [*video]
    if audio:
        inputs += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
        codecs += ["-c:a", "aac", "-ac", "2"]
    ffmpeg(*inputs, "-t", str(seconds), *codecs, *extra, str(path))
    return path


def ffprobe(path: Path, *more: str) -> dict[str, Any]:
    done = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
            *more,
            str(path),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    found: dict[str, Any] = json.loads(done.stdout)
    return found


def iso_boxes(path: Path) -> list[str]:
    """The top-level box types of an MP4, in file order."""
    boxes = []
    size = path.stat().st_size
    with path.open("rb") as handle:
        offset = 0
        while offset + 8 <= size:
            handle.seek(offset)
            box_size, box_type = struct.unpack(">I4s", handle.read(8))
            if box_size == 1:
                box_size = struct.unpack(">Q", handle.read(8))[0]
            boxes.append(box_type.decode("latin-1"))
            if box_size == 0:
                break
            offset += box_size
    return boxes


@contextmanager
def original(path: Path) -> Iterator[Path]:
    """The original as the store keeps it (read-only, no file extension), unchanged when the block ends."""
    stored = path.with_name(f"blob-{path.stem}")
    path.rename(stored)
    stored.chmod(0o444)
    before = sha256_of(stored)
    yield stored
    assert sha256_of(stored) == before, "a tool modified the original"


def stream_codecs(path: Path) -> dict[str, str]:
    return {s["codec_type"]: s["codec_name"] for s in ffprobe(path)["streams"]}


def jpeg_size(path: Path) -> tuple[int, int]:
    assert path.read_bytes()[:3] == b"\xff\xd8\xff", "not a JPEG"
    (stream,) = ffprobe(path)["streams"]
    assert stream["codec_name"] == "mjpeg"
    return int(stream["width"]), int(stream["height"])


def has_encoder(name: str) -> bool:
    listing = subprocess.run(
        ["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True, check=True
    ).stdout
    return any(line.split()[1:2] == [name] for line in listing.splitlines() if line.strip())


# -- checking derivatives -------------------------------------------------------------------------------


def check_run(run: ToolRun, source: Path, mime_type: str) -> None:
    assert run.tool == "ffmpeg"
    assert run.tool_version == ffmpeg_version() and run.tool_version.startswith("ffmpeg version")
    assert run.mime_type == mime_type
    assert all(isinstance(a, str) for a in run.arguments) and str(source) in run.arguments
    assert str(run.output) in run.arguments
    assert run.output.stat().st_size > 0


def check_proxy(source: Path, probe: MediaProbe, out: Path) -> dict[str, Any]:
    run = make_proxy(source, out, probe, timeout_s=300)
    check_run(run, source, "video/mp4" if probe.has_video else "audio/mp4")
    info = ffprobe(run.output)
    codecs = {s["codec_type"]: s for s in info["streams"]}
    boxes = iso_boxes(run.output)
    assert boxes.index("moov") < boxes.index("mdat"), f"no faststart: {boxes}"
    if probe.has_video:
        video = codecs["video"]
        assert video["codec_name"] == "h264" and video["pix_fmt"] == "yuv420p"
        assert int(video["height"]) <= 720
        assert int(video["width"]) % 2 == 0 and int(video["height"]) % 2 == 0
        assert probe.width is not None and probe.height is not None
        expected = proxy_dimensions(probe.width, probe.height, probe.rotation)
        assert (int(video["width"]), int(video["height"])) == expected
    else:
        assert "video" not in codecs
    if probe.has_audio:
        assert codecs["audio"]["codec_name"] == "aac"
    else:
        assert "audio" not in codecs
    # no tags of the original travel with the viewing copy
    tags = info["format"].get("tags", {})
    assert "creation_time" not in tags and "location" not in tags
    again = ffprobe(run.output)  # and the proxy's own probe agrees
    assert again["streams"] == info["streams"]
    own = probe_media(run.output)
    assert own.playable and own.duration_s is not None
    expected_codes = (() if probe.has_video else ("no_video_stream",)) + (
        ("very_short",) if own.duration_s < 1 else ()
    )
    assert own.warning_codes == expected_codes  # an audio proxy is an MP4 (isom brand) without video
    assert (own.video_codec, own.audio_codec) == (
        "h264" if probe.has_video else None,
        "aac" if probe.has_audio else None,
    )
    return info


def check_thumbnails(source: Path, probe: MediaProbe, out: Path) -> None:
    poster = make_poster(source, out, probe)
    check_run(poster, source, "image/jpeg")
    width, height = jpeg_size(poster.output)
    assert 0 < width <= 640 and height > 0
    if probe.width is not None and probe.rotation % 180 == 0:
        assert width == min(640, probe.width)
    sheet = make_contact_sheet(source, out, probe)
    check_run(sheet, source, "image/jpeg")
    sheet_width, sheet_height = jpeg_size(sheet.output)
    assert 0 < sheet_width <= 1280 and sheet_height > 0


# -- a normal clip, cross-checked -----------------------------------------------------------------------


def test_probe_of_a_normal_clip_agrees_with_ffprobe(tmp_path: Path) -> None:
    made = clip(
        tmp_path / "normal.mp4",
        extra=("-metadata", "creation_time=2024-05-01T10:20:30Z", "-metadata", "location=+39.0000+121.0000/"),
    )
    with original(made) as source:
        probe = probe_media(source)
        reference = ffprobe(source)
        by_type = {s["codec_type"]: s for s in reference["streams"]}
        video, audio = by_type["video"], by_type["audio"]

        assert probe.kind == "video" and probe.playable and probe.warnings == ()
        assert probe.container == reference["format"]["format_name"]
        assert probe.video_codec == video["codec_name"] == "h264"
        assert probe.audio_codec == audio["codec_name"] == "aac"
        assert (probe.width, probe.height) == (video["width"], video["height"]) == (640, 360)
        assert probe.duration_s is not None
        assert abs(probe.duration_s - float(reference["format"]["duration"])) < 0.1
        assert probe.frame_rate == pytest.approx(float(Fraction(video["avg_frame_rate"])), abs=0.01)
        assert probe.frame_rate == pytest.approx(30.0)
        assert probe.sample_rate == int(audio["sample_rate"]) == 48000
        assert probe.channels == audio["channels"] == 2
        assert probe.creation_time == datetime(2024, 5, 1, 10, 20, 30, tzinfo=UTC)
        assert probe.location == Location(39.0, 121.0)
        assert [s["index"] for s in probe.streams] == [s["index"] for s in reference["streams"]]
        for mine, theirs in zip(probe.streams, reference["streams"], strict=True):
            assert mine["codec"] == theirs["codec_name"] and mine["type"] == theirs["codec_type"]
            assert abs(mine["duration"] - float(theirs["duration"])) < 0.1
            assert mine["decodable"] is True
        json.dumps(probe.to_dict())

        check_proxy(source, probe, tmp_path / "out")
        check_thumbnails(source, probe, tmp_path / "out")


def test_the_same_original_gives_the_same_proxy_bytes(tmp_path: Path) -> None:
    with original(clip(tmp_path / "clip.mp4", seconds=2)) as source:
        probe = probe_media(source)
        first = make_proxy(source, tmp_path / "a", probe)
        second = make_proxy(source, tmp_path / "b", probe)
        assert first.arguments[:-5] == second.arguments[:-5]  # all but the output path and the globals
        assert sha256_of(first.output) == sha256_of(second.output)


@pytest.mark.parametrize(
    ("size", "pixels", "rotate", "expected"),
    [
        ("1920x1080", "yuv420p", None, (1280, 720)),
        ("1080x1920", "yuv420p", None, (406, 720)),
        ("1280x720", "yuv420p", "90", (406, 720)),  # portrait recorded sideways, rotation in the container
        ("640x480", "yuv420p", None, (640, 480)),  # never upscaled
        (
            "321x241",
            "yuv444p",
            None,
            (320, 240),
        ),  # odd sizes: x264 takes them only without chroma subsampling
    ],
)
def test_proxy_size(
    tmp_path: Path, size: str, pixels: str, rotate: str | None, expected: tuple[int, int]
) -> None:
    made = clip(
        tmp_path / "sized.mp4",
        size=size,
        seconds=1,
        video=("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", pixels),
    )
    if rotate is not None:
        rotated = tmp_path / "rotated.mp4"
        ffmpeg("-i", str(made), "-c", "copy", "-metadata:s:v:0", f"rotate={rotate}", str(rotated))
        made.unlink()
        made = rotated
    with original(made) as source:
        probe = probe_media(source)
        assert probe.playable and probe.warnings == ()
        assert probe.rotation == (int(rotate) if rotate else 0)
        assert proxy_dimensions(probe.width or 0, probe.height or 0, probe.rotation) == expected
        info = check_proxy(source, probe, tmp_path / "out")
        video = next(s for s in info["streams"] if s["codec_type"] == "video")
        assert (video["width"], video["height"]) == expected
        check_thumbnails(source, probe, tmp_path / "out")


# -- photos ---------------------------------------------------------------------------------------------


def exif_segment(*, make: str, model: str, taken: str, offset: str | None, gps: dict[str, Any]) -> bytes:
    """A minimal little-endian EXIF APP1 segment: IFD0 (Make, Model) -> Exif IFD (DateTimeOriginal,
    OffsetTimeOriginal) and GPS IFD (latitude, longitude, altitude)."""
    ascii_type, byte_type, long_type, rational_type = 2, 1, 4, 5

    def text(value: str) -> tuple[int, int, bytes]:
        raw = value.encode() + b"\0"
        return ascii_type, len(raw), raw

    def rationals(*pairs: tuple[int, int]) -> tuple[int, int, bytes]:
        return rational_type, len(pairs), b"".join(struct.pack("<II", n, d) for n, d in pairs)

    exif_entries = {0x9003: text(taken)}
    if offset is not None:
        exif_entries[0x9011] = text(offset)
    gps_entries = {
        0x0001: text(gps["lat_ref"]),
        0x0002: rationals(*gps["lat"]),
        0x0003: text(gps["lon_ref"]),
        0x0004: rationals(*gps["lon"]),
        0x0005: (byte_type, 1, bytes([gps["alt_ref"]])),
        0x0006: rationals(gps["alt"]),
    }
    ifd0 = {0x010F: text(make), 0x0110: text(model), 0x8769: (long_type, 1, b""), 0x8825: (long_type, 1, b"")}

    def ifd_length(entries: dict[int, Any]) -> int:
        return 2 + 12 * len(entries) + 4

    ifd0_at = 8
    exif_at = ifd0_at + ifd_length(ifd0)
    gps_at = exif_at + ifd_length(exif_entries)
    data_at = gps_at + ifd_length(gps_entries)
    ifd0[0x8769] = (long_type, 1, struct.pack("<I", exif_at))
    ifd0[0x8825] = (long_type, 1, struct.pack("<I", gps_at))
    data = bytearray()

    def pack(entries: dict[int, tuple[int, int, bytes]]) -> bytes:
        packed = struct.pack("<H", len(entries))
        for tag in sorted(entries):
            kind, count, raw = entries[tag]
            if len(raw) <= 4:
                packed += struct.pack("<HHI", tag, kind, count) + raw.ljust(4, b"\0")
            else:
                packed += struct.pack("<HHII", tag, kind, count, data_at + len(data))
                data.extend(raw + b"\0" * (len(raw) % 2))
        return packed + struct.pack("<I", 0)

    tiff = b"II*\0" + struct.pack("<I", ifd0_at) + pack(ifd0) + pack(exif_entries) + pack(gps_entries)
    payload = b"Exif\0\0" + tiff + bytes(data)
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def jpeg(path: Path, size: str = "1600x1200") -> Path:
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=size={size}", "-frames:v", "1", str(path))
    return path


def test_photo_with_exif(tmp_path: Path) -> None:
    plain = jpeg(tmp_path / "plain.jpg")
    segment = exif_segment(
        make="Hytera",
        model="VM780",
        taken="2024:05:01 18:20:30",
        offset="+08:00",
        gps={
            "lat_ref": "N",
            "lat": [(39, 1), (54, 1), (264, 10)],  # 39°54'26.4"
            "lon_ref": "W",
            "lon": [(116, 1), (23, 1), (276, 10)],  # 116°23'27.6"
            "alt_ref": 0,
            "alt": (445, 10),
        },
    )
    data = plain.read_bytes()
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(data[:2] + segment + data[2:])
    # ffmpeg's own EXIF reader sees the hand-made segment too
    frame_tags = ffprobe(photo, "-show_frames")["frames"][0]["tags"]
    assert frame_tags["Make"] == "Hytera" and frame_tags["Model"] == "VM780"
    assert frame_tags["DateTimeOriginal"] == "2024:05:01 18:20:30"

    with original(photo) as source:
        probe = probe_media(source)
        assert probe.kind == "photo" and probe.playable and probe.warnings == ()
        assert (probe.width, probe.height) == (1600, 1200) and probe.video_codec == "mjpeg"
        assert probe.duration_s is None and probe.frame_rate is None
        assert probe.camera_make == "Hytera" and probe.camera_model == "VM780"
        assert probe.photo_taken_local == datetime(2024, 5, 1, 18, 20, 30)  # naive: the camera's local time
        assert probe.creation_time == datetime(2024, 5, 1, 10, 20, 30, tzinfo=UTC)  # via OffsetTimeOriginal
        assert probe.location == Location(39.9073333, -116.391, 44.5)
        assert json.loads(json.dumps(probe.to_dict()))["photo_taken_local"] == "2024-05-01T18:20:30"

        poster = make_poster(source, tmp_path / "out", probe)
        check_run(poster, source, "image/jpeg")
        assert jpeg_size(poster.output) == (640, 480)
        with pytest.raises(PermanentError):
            make_contact_sheet(source, tmp_path / "out", probe)


def test_photo_without_exif(tmp_path: Path) -> None:
    with original(jpeg(tmp_path / "bare.jpg", size="320x240")) as source:
        probe = probe_media(source)
        assert probe.kind == "photo" and probe.playable
        assert probe.warning_codes == ("no_exif",)
        assert probe.camera_make is None and probe.photo_taken_local is None and probe.location is None
        poster = make_poster(source, tmp_path / "out", probe)
        assert jpeg_size(poster.output) == (320, 240)  # never upscaled


# -- audio ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "codec_args"), [("audio.m4a", ("-c:a", "aac")), ("audio.wav", ())])
def test_audio_only(tmp_path: Path, name: str, codec_args: tuple[str, ...]) -> None:
    made = tmp_path / name
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=300:sample_rate=16000", "-t", "4", *codec_args, str(made))
    with original(made) as source:
        probe = probe_media(source)
        reference = ffprobe(source)
        assert probe.kind == "audio" and probe.playable and probe.warnings == ()
        assert probe.audio_codec == reference["streams"][0]["codec_name"]
        assert probe.sample_rate == 16000 and probe.channels == 1
        assert probe.duration_s == pytest.approx(float(reference["format"]["duration"]), abs=0.1)
        assert probe.video_codec is None and probe.width is None
        info = check_proxy(source, probe, tmp_path / "out")
        assert [s["codec_name"] for s in info["streams"]] == ["aac"]
        with pytest.raises(PermanentError):
            make_poster(source, tmp_path / "out", probe)
        with pytest.raises(PermanentError):
            make_contact_sheet(source, tmp_path / "out", probe)


def test_mp4_without_a_video_stream(tmp_path: Path) -> None:
    made = tmp_path / "novideo.mp4"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=300", "-t", "2", "-c:a", "aac", "-f", "mp4", str(made))
    with original(made) as source:
        probe = probe_media(source)
        assert probe.kind == "audio" and probe.playable
        assert probe.warning_codes == ("no_video_stream",)
        info = check_proxy(source, probe, tmp_path / "out")
        assert [s["codec_type"] for s in info["streams"]] == ["audio"]


# -- bad inputs -----------------------------------------------------------------------------------------


def test_truncated_mp4_is_unplayable(tmp_path: Path) -> None:
    whole = clip(tmp_path / "whole.mp4")  # moov written last, as a recorder does
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 3])
    with original(cut) as source:
        probe = probe_media(source)
        assert not probe.playable and probe.kind == "unknown"
        assert probe.warning_codes == ("truncated", "moov_missing", "open_failed")
        with pytest.raises(PermanentError, match="no decodable"):
            make_proxy(source, tmp_path / "out", probe)
        # and ffmpeg's own verdict, if it is run anyway, is classified permanent with its stderr
        pretend = replace(
            probe_media(whole), size_bytes=probe.size_bytes, warnings=probe.warnings, kind="video"
        )
        with pytest.raises(PermanentError, match="moov atom not found"):
            make_proxy(source, tmp_path / "out", pretend)
        assert not (tmp_path / "out" / "proxy.mp4").exists()
        with pytest.raises(PermanentError):
            make_poster(source, tmp_path / "out", probe)


def test_truncated_mp4_with_its_index_first_is_partly_playable(tmp_path: Path) -> None:
    whole = clip(tmp_path / "whole.mp4", extra=("-movflags", "+faststart"))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 3])
    with original(cut) as source:
        probe = probe_media(source)
        assert probe.playable and probe.kind == "video"
        assert probe.warning_codes == ("truncated",)
        assert probe.duration_s == pytest.approx(3.0, abs=0.1)  # what the index claims
        info = check_proxy(source, probe, tmp_path / "out")
        assert float(info["format"]["duration"]) < 2.0  # what is actually there
        check_thumbnails(source, probe, tmp_path / "out")


def test_a_matroska_file_cut_in_half_is_noticed(tmp_path: Path) -> None:
    whole = clip(tmp_path / "whole.mkv", seconds=6)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with original(cut) as source:
        probe = probe_media(source)
        assert probe.playable and "truncated" in probe.warning_codes


@pytest.mark.parametrize(
    ("name", "content", "codes"),
    [
        ("empty.mp4", b"", ("empty_file",)),
        ("notes.txt", b"sidecar notes, not media\n" * 10, ("unknown_container",)),
        (
            "broken.mp4",
            b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64,  # then a box of size 0: "to the end"
            ("moov_missing", "open_failed"),
        ),
    ],
)
def test_files_that_are_not_media_are_unplayable(
    tmp_path: Path, name: str, content: bytes, codes: tuple[str, ...]
) -> None:
    made = tmp_path / name
    made.write_bytes(content)
    with original(made) as source:
        probe = probe_media(source)
        assert not probe.playable and probe.kind == "unknown"
        assert probe.warning_codes == codes
        assert probe.size_bytes == len(content)
        json.dumps(probe.to_dict())
        with pytest.raises(PermanentError):
            make_proxy(source, tmp_path / "out", probe)
        with pytest.raises(PermanentError):
            make_poster(source, tmp_path / "out", probe)


def test_mp4_with_only_subtitles_is_unplayable(tmp_path: Path) -> None:
    subtitles = tmp_path / "s.srt"
    subtitles.write_text("1\n00:00:00,000 --> 00:00:01,000\nhello\n")
    made = tmp_path / "subs.mp4"
    ffmpeg("-i", str(subtitles), "-c:s", "mov_text", str(made))
    with original(made) as source:
        probe = probe_media(source)
        assert not probe.playable and probe.warning_codes == ("no_media_stream",)
        with pytest.raises(PermanentError):
            make_proxy(source, tmp_path / "out", probe)


def test_h265_mp4_probes_and_becomes_h264(tmp_path: Path) -> None:
    if not has_encoder("libx265"):
        pytest.skip("this ffmpeg has no libx265 encoder")
    made = clip(
        tmp_path / "hevc.mp4",
        size="1280x720",
        seconds=2,
        video=(
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-x265-params",
            "log-level=error",
        ),
    )
    with original(made) as source:
        probe = probe_media(source)
        assert probe.kind == "video" and probe.playable and probe.warnings == ()
        assert probe.video_codec == stream_codecs(source)["video"] == "hevc"
        check_proxy(source, probe, tmp_path / "out")
        check_thumbnails(source, probe, tmp_path / "out")


def test_mjpeg_avi_probes_and_becomes_h264(tmp_path: Path) -> None:
    made = tmp_path / "mjpeg.avi"
    ffmpeg(
        *("-f", "lavfi", "-i", "testsrc2=size=640x480:rate=25", "-f", "lavfi", "-i", "sine"),
        *("-t", "2", "-c:v", "mjpeg", "-q:v", "5", "-c:a", "pcm_s16le", str(made)),
    )
    with original(made) as source:
        probe = probe_media(source)
        assert probe.kind == "video" and probe.playable and probe.warnings == ()
        assert probe.container == "avi"
        assert (probe.video_codec, probe.audio_codec) == ("mjpeg", "pcm_s16le")
        assert stream_codecs(source) == {"video": "mjpeg", "audio": "pcm_s16le"}
        check_proxy(source, probe, tmp_path / "out")
        check_thumbnails(source, probe, tmp_path / "out")


def test_zero_second_clip_has_no_stream(tmp_path: Path) -> None:
    made = tmp_path / "zero.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240", "-t", "0", *X264, str(made))
    with original(made) as source:
        probe = probe_media(source)
        assert not probe.playable
        assert probe.warning_codes == ("no_media_stream", "zero_duration")
        with pytest.raises(PermanentError):
            make_proxy(source, tmp_path / "out", probe)


def test_single_frame_clip_is_playable_but_very_short(tmp_path: Path) -> None:
    made = tmp_path / "one.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-frames:v", "1", *X264, str(made))
    with original(made) as source:
        probe = probe_media(source)
        assert probe.playable and probe.kind == "video"
        assert probe.warning_codes == ("very_short",)
        assert probe.duration_s is not None and 0 < probe.duration_s < 0.1
        info = check_proxy(source, probe, tmp_path / "out")
        assert info["streams"][0]["nb_frames"] == "1"
        check_thumbnails(source, probe, tmp_path / "out")


def test_broken_creation_time_is_a_warning(tmp_path: Path) -> None:
    # The mp4 muxer drops a creation_time it cannot parse; as a free-form (mdta) tag it is kept verbatim,
    # which is how a recorder with a broken clock writes it.
    made = clip(
        tmp_path / "badtime.mp4",
        seconds=1,
        extra=("-movflags", "use_metadata_tags", "-metadata", "creation_time=not-a-date"),
    )
    assert ffprobe(made)["format"]["tags"]["creation_time"] == "not-a-date"
    with original(made) as source:
        probe = probe_media(source)
        assert probe.playable and probe.creation_time is None
        assert probe.warning_codes == ("creation_time_invalid",)
        assert "not-a-date" in probe.warnings[0].message
        check_proxy(source, probe, tmp_path / "out")


def test_long_clip_contact_sheet_reads_keyframes_only(tmp_path: Path) -> None:
    made = clip(
        tmp_path / "long.mp4",
        size="320x180",
        rate=10,
        seconds=130,
        audio=False,
        video=(*X264, "-g", "20"),
    )
    with original(made) as source:
        probe = probe_media(source)
        assert probe.playable and probe.warnings == ()
        arguments = contact_sheet_arguments(source, tmp_path / "x.jpg", probe)
        assert arguments[:2] == ["-skip_frame", "nokey"]
        sheet = make_contact_sheet(source, tmp_path / "out", probe)
        assert sheet.arguments[:2] == ["-skip_frame", "nokey"]
        assert jpeg_size(sheet.output) == (1280, 720)  # 4 x 320 by 4 x 180


# -- failures are classified ----------------------------------------------------------------------------

ENDLESS = ["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30", "-t", "600", "-f", "null", "-"]


def _children() -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        found.update(int(pid) for pid in (task / "children").read_text().split())
    return found


def _run_and_signal(sig: signal.Signals) -> BaseException:
    """Run an endless ffmpeg through run_tool and send `sig` to that very process (by its pid)."""
    before = _children()
    caught: list[BaseException] = []

    def target() -> None:
        try:
            run_tool(ENDLESS, 60)
        except BaseException as exc:
            caught.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    deadline = time.monotonic() + 10
    started: set[int] = set()
    while not started and time.monotonic() < deadline:
        time.sleep(0.1)
        started = _children() - before
    assert len(started) == 1, "ffmpeg did not start"
    time.sleep(0.5)  # let ffmpeg install its signal handlers
    os.kill(started.pop(), sig)
    thread.join(30)
    assert not thread.is_alive() and caught
    return caught[0]


def test_ffmpeg_interrupted_by_sigterm_is_transient() -> None:
    failure = _run_and_signal(signal.SIGTERM)
    assert isinstance(failure, TransientError) and "exited 255" in str(failure)


def test_ffmpeg_killed_is_transient() -> None:
    failure = _run_and_signal(signal.SIGKILL)
    assert isinstance(failure, TransientError) and "SIGKILL" in str(failure)


def test_ffmpeg_timeout_is_transient() -> None:
    started = time.monotonic()
    with pytest.raises(TransientError, match="timed out"):
        run_tool(ENDLESS, 1.0)
    assert time.monotonic() - started < 10


def test_full_disk_is_transient(tmp_path: Path) -> None:
    source = clip(tmp_path / "c.mp4", seconds=1)
    with pytest.raises(TransientError, match="No space left on device"):
        run_tool(
            ["-y", "-loglevel", "error", "-i", str(source), "-c:v", "libx264", "-f", "mp4", "/dev/full"], 60
        )


def test_corrupt_input_is_permanent(tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(4096))
    with pytest.raises(PermanentError, match=r"exit 1\)"):
        run_tool(["-i", str(junk), "-f", "null", "-"], 60)
