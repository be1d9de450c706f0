"""The ffmpeg argument lists for proxies and thumbnails, built from a probe (pure: no file, no ffmpeg)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from evidence_store.domain.model import RecordWarning
from evidence_store.errors import PermanentError
from ingest.transcode.probe import Location, MediaProbe, parse_iso6709, parse_timestamp
from ingest.transcode.proxy import proxy_arguments, proxy_dimensions
from ingest.transcode.thumbnails import contact_sheet_arguments, poster_arguments

SOURCE = Path("/store/ab/cd/abcd1234")
TARGET = Path("/tmp/out/proxy.mp4")
SCALE = "[0:0]scale=h=min(720\\,trunc(ih/2)*2):w=-2[s0]"


def video_probe(
    width: int = 1920,
    height: int = 1080,
    *,
    audio: bool = True,
    channels: int = 1,
    rotation: int = 0,
    duration: float | None = 60.0,
) -> MediaProbe:
    streams: list[dict[str, object]] = [{"index": 0, "type": "video", "codec": "h264"}]
    if audio:
        streams.append({"index": 1, "type": "audio", "codec": "aac"})
    return MediaProbe(
        kind="video",
        size_bytes=1000,
        container="mov,mp4,m4a,3gp,3g2,mj2",
        duration_s=duration,
        streams=tuple(streams),
        video_stream_index=0,
        audio_stream_index=1 if audio else None,
        video_decodable=True,
        audio_decodable=audio,
        video_codec="h264",
        audio_codec="aac" if audio else None,
        width=width,
        height=height,
        rotation=rotation,
        frame_rate=30.0,
        sample_rate=48000 if audio else None,
        channels=channels if audio else None,
        playable=True,
    )


def audio_probe() -> MediaProbe:
    return MediaProbe(
        kind="audio",
        size_bytes=1000,
        container="mov,mp4,m4a,3gp,3g2,mj2",
        duration_s=12.0,
        streams=({"index": 0, "type": "audio", "codec": "aac"},),
        audio_stream_index=0,
        audio_decodable=True,
        audio_codec="aac",
        sample_rate=44100,
        channels=1,
        playable=True,
    )


def test_1080p_h264_aac_proxy_is_the_exact_argv() -> None:
    assert proxy_arguments(SOURCE, TARGET, video_probe()) == [
        "-i", str(SOURCE),
        "-filter_complex", SCALE,
        "-map", "[s0]",
        "-map", "0:1",
        "-f", "mp4",
        "-b:a", "128k",
        "-c:a", "aac",
        "-c:v", "libx264",
        "-crf", "23",
        "-map_chapters", "-1",
        "-map_metadata", "-1",
        "-max_muxing_queue_size", "4096",
        "-movflags", "+faststart",
        "-pix_fmt", "yuv420p",
        "-preset", "veryfast",
        "-threads", "2",
        str(TARGET),
        "-nostdin", "-loglevel", "error", "-y",
    ]  # fmt: skip
    assert proxy_dimensions(1920, 1080) == (1280, 720)


def flags(argv: list[str]) -> dict[str, str]:
    """Option -> value for the options that take one (the flags without a value map to "")."""
    found: dict[str, str] = {}
    for position, item in enumerate(argv):
        if item.startswith("-") and item not in ("-1",):
            following = argv[position + 1] if position + 1 < len(argv) else ""
            takes_value = following and (not following.startswith("-") or following == "-1")
            found[item] = following if takes_value else ""
    return found


@pytest.mark.parametrize(
    ("width", "height", "rotation", "expected"),
    [
        (1920, 1080, 0, (1280, 720)),  # 1080p landscape
        (1080, 1920, 0, (406, 720)),  # portrait: 720 lines high, width even (405 -> 406)
        (1920, 1080, 90, (406, 720)),  # portrait stored sideways: ffmpeg rotates before scaling
        (640, 480, 0, (640, 480)),  # smaller than 720 lines: never upscaled
        (1280, 720, 0, (1280, 720)),  # exactly 720: unchanged
        (321, 241, 0, (320, 240)),  # odd dimensions: both even, height rounded down
        (1919, 1079, 0, (1280, 720)),
        (720, 576, 180, (720, 576)),
    ],
)
def test_video_proxy_scales_to_at_most_720_lines_with_even_sizes(
    width: int, height: int, rotation: int, expected: tuple[int, int]
) -> None:
    argv = proxy_arguments(SOURCE, TARGET, video_probe(width, height, rotation=rotation))
    options = flags(argv)
    assert options["-filter_complex"] == SCALE  # one expression: ffmpeg evaluates it on the real frame
    assert options["-c:v"] == "libx264"
    assert options["-pix_fmt"] == "yuv420p"
    assert options["-movflags"] == "+faststart"
    assert options["-c:a"] == "aac"
    assert "-an" not in argv and "-vn" not in argv
    out_w, out_h = proxy_dimensions(width, height, rotation)
    assert (out_w, out_h) == expected
    assert out_h <= 720 and out_w % 2 == 0 and out_h % 2 == 0
    display_h = width if rotation % 180 == 90 else height
    assert out_h <= display_h  # never upscaled


def test_video_without_audio_has_no_audio_track() -> None:
    argv = proxy_arguments(SOURCE, TARGET, video_probe(audio=False))
    options = flags(argv)
    assert "-an" in argv
    assert "-c:a" not in options and "aac" not in argv and "-b:a" not in options
    assert argv.count("-map") == 1 and options["-map"] == "[s0]"
    assert options["-c:v"] == "libx264"


def test_audio_only_source_makes_an_aac_only_mp4() -> None:
    argv = proxy_arguments(SOURCE, TARGET, audio_probe())
    options = flags(argv)
    assert "-vn" in argv and "-an" not in argv
    assert options["-map"] == "0:0"
    assert options["-c:a"] == "aac" and options["-b:a"] == "128k"
    assert "libx264" not in argv and "-filter_complex" not in options and "-pix_fmt" not in options
    assert options["-f"] == "mp4" and options["-movflags"] == "+faststart"


def test_undecodable_audio_is_left_out_and_more_than_two_channels_are_downmixed() -> None:
    broken_audio = replace(video_probe(), audio_decodable=False)
    assert "-an" in proxy_arguments(SOURCE, TARGET, broken_audio)
    surround = flags(proxy_arguments(SOURCE, TARGET, video_probe(channels=6)))
    assert surround["-ac"] == "2"
    assert "-ac" not in flags(proxy_arguments(SOURCE, TARGET, video_probe(channels=2)))


def test_undecodable_video_with_good_audio_gives_an_audio_proxy() -> None:
    argv = proxy_arguments(SOURCE, TARGET, replace(video_probe(), video_decodable=False))
    assert "-vn" in argv and "libx264" not in argv and flags(argv)["-map"] == "0:1"


def test_a_probe_with_nothing_decodable_is_a_permanent_failure() -> None:
    unplayable = MediaProbe(
        kind="unknown", size_bytes=0, warnings=(RecordWarning("empty_file", "the file has zero bytes"),)
    )
    with pytest.raises(PermanentError, match="empty_file"):
        proxy_arguments(SOURCE, TARGET, unplayable)
    with pytest.raises(PermanentError):
        poster_arguments(SOURCE, TARGET, unplayable)


def test_common_flags_metadata_policy_and_paths() -> None:
    argv = proxy_arguments(SOURCE, TARGET, video_probe(), preset="medium", crf=20)
    options = flags(argv)
    assert argv[:2] == ["-i", str(SOURCE)]  # the binary name is not part of the arguments
    assert argv[-5:] == [str(TARGET), "-nostdin", "-loglevel", "error", "-y"]
    assert options["-map_metadata"] == "-1" and options["-map_chapters"] == "-1"
    assert options["-preset"] == "medium" and options["-crf"] == "20"
    assert options["-threads"] == "2"
    assert all(isinstance(a, str) for a in argv)


def test_the_stream_indexes_of_the_probe_are_mapped() -> None:
    probe = replace(video_probe(), video_stream_index=2, audio_stream_index=0)
    argv = proxy_arguments(SOURCE, TARGET, probe)
    assert flags(argv)["-filter_complex"].startswith("[0:2]scale=")
    assert argv[argv.index("-map", argv.index("-map") + 1) + 1] == "0:0"


def test_poster_is_taken_ten_percent_in_and_at_most_640_wide() -> None:
    argv = poster_arguments(SOURCE, Path("/tmp/out/poster.jpg"), video_probe(duration=60.0))
    assert argv[:4] == ["-ss", "6.000", "-i", str(SOURCE)]  # input seek: fast and frame-exact
    options = flags(argv)
    assert options["-filter_complex"] == "[0:0]scale=h=-2:w=min(640\\,iw)[s0]"
    assert options["-frames:v"] == "1" and options["-f"] == "image2" and options["-update"] == "1"
    assert argv[-5] == "/tmp/out/poster.jpg"


def test_photo_poster_is_a_downscaled_copy_without_seeking() -> None:
    photo = replace(video_probe(4000, 3000, audio=False, duration=None), kind="photo", container="jpeg_pipe")
    argv = poster_arguments(SOURCE, Path("/tmp/out/poster.jpg"), photo)
    assert "-ss" not in argv and argv[:2] == ["-i", str(SOURCE)]
    assert "min(640\\,iw)" in flags(argv)["-filter_complex"]


def test_no_thumbnails_for_audio() -> None:
    with pytest.raises(PermanentError):
        poster_arguments(SOURCE, Path("/tmp/p.jpg"), audio_probe())
    with pytest.raises(PermanentError):
        contact_sheet_arguments(SOURCE, Path("/tmp/c.jpg"), audio_probe())


def test_contact_sheet_of_a_short_clip_decodes_every_frame_and_picks_one_per_slot() -> None:
    argv = contact_sheet_arguments(SOURCE, Path("/tmp/out/sheet.jpg"), video_probe(duration=32.0))
    assert "-skip_frame" not in argv
    graph = flags(argv)["-filter_complex"]
    assert graph == (
        "[0:0]select=(isnan(prev_selected_t)+gt(floor(t/2.000000)\\,floor(prev_selected_t/2.000000)))[s0];"
        "[s0]scale=h=-2:w=min(320\\,iw)[s1];[s1]tile=4x4[s2]"
    )
    assert flags(argv)["-frames:v"] == "1"


def test_contact_sheet_of_a_long_clip_reads_keyframes_only() -> None:
    argv = contact_sheet_arguments(SOURCE, Path("/tmp/out/sheet.jpg"), video_probe(duration=3600.0))
    assert argv[:4] == ["-skip_frame", "nokey", "-i", str(SOURCE)]
    graph = flags(argv)["-filter_complex"]
    assert graph.startswith("[0:0]select=eq(pict_type\\,I)*(isnan(prev_selected_t)+gt(floor(t/225.000000)")
    assert graph.endswith("[s0]scale=h=-2:w=min(320\\,iw)[s1];[s1]tile=4x4[s2]")
    forced = contact_sheet_arguments(
        SOURCE, Path("/tmp/out/sheet.jpg"), video_probe(duration=3600.0), keyframes_only=False
    )
    assert "-skip_frame" not in forced and "pict_type" not in flags(forced)["-filter_complex"]


def test_contact_sheet_of_unknown_duration_takes_the_first_keyframes() -> None:
    argv = contact_sheet_arguments(SOURCE, Path("/tmp/out/sheet.jpg"), video_probe(duration=None))
    assert flags(argv)["-filter_complex"] == (
        "[0:0]select=eq(pict_type\\,I)[s0];[s0]scale=h=-2:w=min(320\\,iw)[s1];[s1]tile=4x4[s2]"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+39.0000+121.0000/", Location(39.0, 121.0)),
        ("-33.8688+151.2093+058.000/", Location(-33.8688, 151.2093, 58.0)),
        ("+3954.44-07500.5/", Location(39.9073333, -75.0083333)),
        ("+395426.4+1162327.6/", Location(39.9073333, 116.391)),
        ("+39.9+116.4CRSWGS_84/", Location(39.9, 116.4)),
    ],
)
def test_iso6709_points(text: str, expected: Location) -> None:
    assert parse_iso6709(text) == expected


@pytest.mark.parametrize("text", ["", "39.0,121.0", "+95.0+121.0/", "+39.0+190.0/", "+3975.0+12100.0/"])
def test_iso6709_rejects_what_is_not_a_point(text: str) -> None:
    assert parse_iso6709(text) is None


def test_timestamps_are_aware_utc() -> None:
    assert parse_timestamp("2024-05-01T10:20:30.000000Z") == datetime(2024, 5, 1, 10, 20, 30, tzinfo=UTC)
    assert parse_timestamp("2024-05-01T18:20:30+0800") == datetime(2024, 5, 1, 10, 20, 30, tzinfo=UTC)
    assert parse_timestamp("2024-05-01 10:20:30") == datetime(2024, 5, 1, 10, 20, 30, tzinfo=UTC)
    assert parse_timestamp("not-a-date") is None


def test_probe_to_dict_is_json() -> None:
    probe = replace(
        video_probe(),
        creation_time=datetime(2024, 5, 1, 10, 20, 30, tzinfo=UTC),
        location=Location(39.0, 121.0, 12.5),
        photo_taken_local=datetime(2024, 5, 1, 18, 20, 30),
        warnings=(RecordWarning("very_short", "only 0.5 s long"),),
    )
    found = json.loads(json.dumps(probe.to_dict()))
    assert found["creation_time"] == "2024-05-01T10:20:30+00:00"
    assert found["photo_taken_local"] == "2024-05-01T18:20:30"
    assert found["location"] == {"lat": 39.0, "lon": 121.0, "alt": 12.5}
    assert found["warnings"] == [{"code": "very_short", "message": "only 0.5 s long"}]
    assert found["warnings_text"] == ["very_short: only 0.5 s long"]
    assert found["playable"] is True and found["streams"][1]["codec"] == "aac"
