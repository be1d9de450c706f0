"""Cutting a time segment out of an original, and burning a disclosure overlay into a copy.

Both make a *derivative*: a new file, never the original (which is only read). The argv builders are
pure (``segment_arguments``, ``disclosure_arguments``, ``drawtext_filter``) so tests check them without
ffmpeg; `cut_segment` runs them through the shared `run_tool` and returns the `ToolRun` that the
export records as the derivative's lineage. As elsewhere, the argv is kept WITHOUT the binary name.

Two ways to cut, chosen per request and named in the provenance note:

``exact`` (re-encode)
    ``-ss START`` before ``-i`` (fast input seeking; with decoding, ffmpeg discards the frames before
    START, so the cut is frame-accurate) and ``-t DURATION``; video re-encoded with libx264
    (``-crf 18``, near-transparent), audio as AAC. The pixels are a new encoding of the original's.
``keyframe`` (stream copy, ``-c copy``)
    The original's compressed packets, untouched, from the keyframe at or before START (so the segment
    may begin up to one GOP early) for DURATION. No re-encoding: the frames are bit-identical to the
    original's, only the container is new.

The disclosure copy (``disclosure_arguments``) always re-encodes: the overlay (case number, extractor,
extraction time) is drawn with ``drawtext`` from a text file (``textfile=``, ``expansion=none``: no
escaping problems with Chinese text, ``%`` or quotes) in a CJK font from Debian's fonts-noto-cjk.

Metadata tags of the original are not copied (``-map_metadata -1``): the derivative's facts are in the
package's manifest, which points at the original's sha256.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Literal

from evidence_store.domain.segment import Segment, seconds_text
from evidence_store.errors import ConfigurationError
from ingest.transcode.tools import (
    FFMPEG,
    ToolRun,
    check_output,
    ffmpeg_version,
    refuse_to_overwrite,
    remove_quietly,
    run_tool,
)

CutMode = Literal["exact", "keyframe"]
CUT_MODES: tuple[CutMode, ...] = ("exact", "keyframe")
GLOBAL_ARGS = ("-nostdin", "-y", "-loglevel", "error")
VIDEO_ENCODE = (
    "-c:v",
    "libx264",
    "-preset",
    "veryfast",
    "-crf",
    "18",
    "-pix_fmt",
    "yuv420p",
    "-threads",
    "2",
)
AUDIO_ENCODE = ("-c:a", "aac", "-b:a", "128k")
MUXING_QUEUE = 4096
# Debian fonts-noto-cjk, then fonts-wqy-zenhei: both cover simplified Chinese.
CJK_FONT_CANDIDATES = (
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
    Path("/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc"),
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
)
CUT_TIMEOUT_S = 3600.0


def _range_args(segment: Segment) -> tuple[list[str], list[str]]:
    """(before -i, after -i): fast input seek to the start, then the duration."""
    before = ["-ss", seconds_text(segment.start_s)] if segment.start_s > 0 else []
    duration = segment.duration_s
    after = ["-t", seconds_text(duration)] if duration is not None else []
    return before, after


def segment_arguments(
    source: Path, target: Path, segment: Segment, mode: CutMode, *, has_video: bool = True
) -> list[str]:
    """The ffmpeg argv (without the binary) that cuts `segment` of `source` into `target` (MP4/M4A)."""
    if mode not in CUT_MODES:
        raise ValueError(f"unknown cut mode {mode!r} (known: {', '.join(CUT_MODES)})")
    before, after = _range_args(segment)
    args = [*GLOBAL_ARGS, *before, "-i", str(source), *after]
    args += ["-map", "0:v:0?", "-map", "0:a:0?"] if has_video else ["-vn", "-map", "0:a:0?"]
    if mode == "keyframe":
        args += ["-c", "copy", "-avoid_negative_ts", "make_zero"]
    else:
        args += [*VIDEO_ENCODE] if has_video else []
        args += [*AUDIO_ENCODE]
    args += [
        "-map_metadata",
        "-1",
        "-map_chapters",
        "-1",
        "-max_muxing_queue_size",
        str(MUXING_QUEUE),
        "-movflags",
        "+faststart",
        "-f",
        "mp4",
        str(target),
    ]
    return args


def filter_escape(value: str) -> str:
    """Escape a value for a filtergraph option (``\\``, ``'``, ``:`` and filtergraph separators)."""
    out = value
    for char in ("\\", "'", ":", ",", ";", "[", "]", "="):
        out = out.replace(char, "\\" + char)
    return out


def drawtext_filter(font_file: Path, text_file: Path, *, font_size: int) -> str:
    """The drawtext filter that burns the lines of `text_file` into the top-left corner on a dark box."""
    if font_size < 4:
        raise ValueError("the overlay font size must be at least 4 pixels")
    border = max(2, font_size // 3)
    options = [
        f"fontfile={filter_escape(str(font_file))}",
        f"textfile={filter_escape(str(text_file))}",
        "expansion=none",
        f"fontsize={font_size}",
        "fontcolor=white",
        "box=1",
        "boxcolor=black@0.6",
        f"boxborderw={border}",
        f"line_spacing={max(1, font_size // 4)}",
        f"x={border}",
        f"y={border}",
    ]
    return "drawtext=" + ":".join(options)


def overlay_font_size(height: int | None) -> int:
    """About 1/24 of the picture height, at least 10 px (unknown height: 24 px)."""
    if not height or height <= 0:
        return 24
    return max(10, height // 24)


def disclosure_arguments(
    source: Path,
    target: Path,
    segment: Segment,
    *,
    font_file: Path,
    text_file: Path,
    font_size: int,
) -> list[str]:
    """The argv for a disclosure copy: `segment` of `source` re-encoded with the overlay burnt in."""
    before, after = _range_args(segment)
    return [
        *GLOBAL_ARGS,
        *before,
        "-i",
        str(source),
        *after,
        "-map",
        "0:v:0",
        "-map",
        "0:a:0?",
        "-vf",
        drawtext_filter(font_file, text_file, font_size=font_size),
        *VIDEO_ENCODE,
        *AUDIO_ENCODE,
        "-map_metadata",
        "-1",
        "-map_chapters",
        "-1",
        "-max_muxing_queue_size",
        str(MUXING_QUEUE),
        "-movflags",
        "+faststart",
        "-f",
        "mp4",
        str(target),
    ]


def find_cjk_font(candidates: tuple[Path, ...] = CJK_FONT_CANDIDATES) -> Path:
    """A font file with Chinese glyphs: a known Debian path, else what fontconfig offers for zh."""
    for path in candidates:
        if path.is_file():
            return path
    if shutil.which("fc-match"):
        done = subprocess.run(
            ["fc-match", "-f", "%{file}", ":lang=zh-cn"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        found = Path(done.stdout.strip()) if done.returncode == 0 and done.stdout.strip() else None
        if found is not None and found.is_file():
            return found
    raise ConfigurationError("no CJK font found for the disclosure overlay: install Debian's fonts-noto-cjk")


def cut_segment(
    source: Path,
    target: Path,
    segment: Segment,
    mode: CutMode,
    *,
    has_video: bool = True,
    timeout_s: float | None = CUT_TIMEOUT_S,
) -> ToolRun:
    """Cut `segment` of `source` into `target`; `source` is only read."""
    refuse_to_overwrite(source, target)
    args = segment_arguments(source, target, segment, mode, has_video=has_video)
    return _run(args, target, "video/mp4" if has_video else "audio/mp4", timeout_s)


def make_disclosure_copy(
    source: Path,
    target: Path,
    segment: Segment,
    *,
    text: str,
    font_file: Path,
    font_size: int,
    timeout_s: float | None = CUT_TIMEOUT_S,
) -> ToolRun:
    """A re-encoded copy of `segment` of `source` with `text` (lines) burnt in at the top left."""
    refuse_to_overwrite(source, target)
    text_file = target.with_name(target.name + ".overlay.txt")
    text_file.write_text(text, encoding="utf-8")
    try:
        args = disclosure_arguments(
            source, target, segment, font_file=font_file, text_file=text_file, font_size=font_size
        )
        return _run(args, target, "video/mp4", timeout_s)
    finally:
        remove_quietly(text_file)


def _run(args: list[str], target: Path, mime_type: str, timeout_s: float | None) -> ToolRun:
    version = ffmpeg_version()
    try:
        run_tool(args, timeout_s)
        check_output(target)
    except BaseException:
        remove_quietly(target)
        raise
    return ToolRun(output=target, tool=FFMPEG, tool_version=version, arguments=args, mime_type=mime_type)


class FfmpegCutter:
    """The `DerivativeCutter` port (evidence_store.ports) on ffmpeg: an export's segments and
    disclosure copies, cut from the package's own verified copy of the original."""

    def cut(self, source: Path, target: Path, segment: Segment, mode: CutMode, *, has_video: bool) -> ToolRun:
        return cut_segment(source, target, segment, mode, has_video=has_video)

    def disclosure_copy(
        self, source: Path, target: Path, segment: Segment, *, text: str, height: int | None
    ) -> ToolRun:
        return make_disclosure_copy(
            source,
            target,
            segment,
            text=text,
            font_file=find_cjk_font(),
            font_size=overlay_font_size(height),
        )
