"""The browser proxy of an original: H.264/AAC in MP4 with the index first, at most 720 lines high.

`proxy_arguments` is pure: it builds the ffmpeg argv (WITHOUT the leading binary name, as
ffmpeg-python's `get_args()` returns it; `ToolRun.tool` names the binary) from the probe, so tests can
check it without running ffmpeg. `make_proxy` runs it and returns the `ToolRun` the worker records.

Choices, all visible in the recorded arguments:

* Video: the probe's decodable video stream only (`-map 0:<index>`, never an attached cover picture),
  libx264 at `preset`/`crf`, `-pix_fmt yuv420p` (what every browser decodes), two encoder threads (the
  station has two cores; a fixed count also keeps the proxy byte-reproducible from the same ffmpeg).
* Size: ``scale=w=-2:h=min(720,trunc(ih/2)*2)``: at most 720 lines high, never upscaled, the width
  following the aspect ratio rounded to an even number, the height rounded down to an even number. The
  expression is evaluated by ffmpeg after it has applied the container's rotation, so a portrait clip
  stored sideways comes out portrait (1080x1920 -> 406x720). `proxy_dimensions` predicts the result.
* Audio: the probe's decodable audio stream as AAC 128 kb/s (down-mixed to stereo only when it has more
  than two channels); `-an` when there is no decodable audio. An audio-only original gives an MP4 with
  the AAC track only (`-vn`, MIME type audio/mp4).
* `-movflags +faststart`: the `moov` index before the media data, so a browser can start at once.
* `-map_metadata -1 -map_chapters -1`: no tags are copied, creation_time included. The proxy is a
  viewing copy that travels further than the original (disclosure); embedded GPS positions, device
  names and times stay in the original and in its probe record, and the derivative record points at the
  original's sha256. Nothing in the proxy can then be mistaken for the evidence's own metadata.
* `-nostdin -y -loglevel error`: never waits on a terminal, overwrites its own target, reports errors
  only (their tail goes into the failure message).
"""

from __future__ import annotations

from pathlib import Path

import ffmpeg

from evidence_store.errors import PermanentError
from ingest.transcode.probe import MediaProbe
from ingest.transcode.tools import (
    FFMPEG,
    ToolRun,
    check_output,
    ffmpeg_version,
    refuse_to_overwrite,
    remove_quietly,
    run_tool,
)

MAX_HEIGHT = 720
AUDIO_BITRATE = "128k"
ENCODER_THREADS = 2
PROXY_NAME = "proxy.mp4"
SCALE_HEIGHT = f"min({MAX_HEIGHT},trunc(ih/2)*2)"
GLOBAL_ARGS = ("-nostdin", "-loglevel", "error")
# Bursty or sparse streams (a recorder's audio starting late) must not abort the mux.
MUXING_QUEUE = 4096


def proxy_arguments(
    source: Path,
    target: Path,
    probe: MediaProbe,
    *,
    preset: str = "veryfast",
    crf: int = 23,
    threads: int = ENCODER_THREADS,
) -> list[str]:
    """The ffmpeg argv (without the binary name) that makes the proxy of `source` at `target`."""
    if not probe.has_video and not probe.has_audio:
        raise PermanentError(f"no decodable video or audio stream to make a proxy from ({_why(probe)})")
    stream = ffmpeg.input(str(source))
    outputs = []
    options: dict[str, object] = {
        "f": "mp4",
        "movflags": "+faststart",
        "map_metadata": "-1",
        "map_chapters": "-1",
        "max_muxing_queue_size": MUXING_QUEUE,
    }
    if probe.has_video:
        video = stream[str(probe.video_stream_index)].filter("scale", w=-2, h=SCALE_HEIGHT)
        outputs.append(video)
        options.update(
            {"c:v": "libx264", "preset": preset, "crf": crf, "pix_fmt": "yuv420p", "threads": threads}
        )
    else:
        options["vn"] = None
    if probe.has_audio:
        outputs.append(stream[str(probe.audio_stream_index)])
        options.update({"c:a": "aac", "b:a": AUDIO_BITRATE})
        if probe.channels is not None and probe.channels > 2:
            options["ac"] = 2
    else:
        options["an"] = None
    node = ffmpeg.output(*outputs, str(target), **options).global_args(*GLOBAL_ARGS).overwrite_output()
    return [str(a) for a in node.get_args()]


def proxy_dimensions(width: int, height: int, rotation: int = 0) -> tuple[int, int]:
    """What ffmpeg's scale expression above makes of a `width`x`height` frame (after rotation)."""
    if rotation % 180 == 90:
        width, height = height, width
    out_h = min(MAX_HEIGHT, height // 2 * 2)
    # scale's w=-2: av_rescale(out_h, iw, ih * 2) * 2, rounding half away from zero
    out_w = (2 * out_h * width + 2 * height) // (4 * height) * 2
    return out_w, out_h


def make_proxy(
    source: Path,
    target_dir: Path,
    probe: MediaProbe,
    *,
    timeout_s: float | None = None,
    preset: str = "veryfast",
    crf: int = 23,
) -> ToolRun:
    """Make the proxy in `target_dir`; `PermanentError` for a source that cannot be transcoded,
    `TransientError` for a run killed by the timeout or a signal."""
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / PROXY_NAME
    refuse_to_overwrite(source, target)
    arguments = proxy_arguments(source, target, probe, preset=preset, crf=crf)
    version = ffmpeg_version()
    try:
        run_tool(arguments, timeout_s)
        check_output(target)
    except BaseException:
        remove_quietly(target)
        raise
    return ToolRun(
        output=target,
        tool=FFMPEG,
        tool_version=version,
        arguments=arguments,
        mime_type="video/mp4" if probe.has_video else "audio/mp4",
    )


def _why(probe: MediaProbe) -> str:
    return "; ".join(f"{w.code}: {w.message}" for w in probe.warnings) or "the probe found none"
