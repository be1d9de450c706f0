"""Still images of an original: a poster frame and a contact sheet (JPEG), made with ffmpeg.

As in `proxy`, the `*_arguments` functions are pure and return the ffmpeg argv without the binary name;
the `make_*` functions run it and return the `ToolRun` the worker records.

* Poster: one frame from about 10% into a video (`-ss` before `-i`: ffmpeg seeks to the keyframe
  before and decodes up to that exact time), at most 640 px wide, never upscaled. A photo gets a
  downscaled JPEG of itself. If seeking lands past the last frame (a duration that lies), the poster is
  taken from the first frame instead.
* Contact sheet: a 4x4 grid (`tile`) of frames spread evenly over the clip, each cell at most 320 px
  wide (so the sheet is at most 1280 px wide). The clip is cut into 16 equal slots and `select` keeps
  the first frame of each slot. Clips of TWO minutes or more are read keyframes-only
  (`-skip_frame nokey` on the decoder and `eq(pict_type,I)` in the select), which is many times faster
  on hour-long recordings; shorter clips decode every frame so that a clip with a single keyframe still
  fills the grid. When a keyframes-only run yields nothing, it is run again decoding every frame. A clip
  with fewer frames than cells gives a partly filled sheet (`tile` flushes at the end); a clip of
  unknown duration gets its first 16 keyframes.
* Audio-only originals have no thumbnails (`PermanentError` if asked).
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

POSTER_NAME = "poster.jpg"
CONTACT_SHEET_NAME = "contact-sheet.jpg"
POSTER_MAX_WIDTH = 640
POSTER_AT = 0.10
CELL_MAX_WIDTH = 320
GRID = (4, 4)
KEYFRAMES_ONLY_FROM_S = 120.0
JPEG_QUALITY = 3  # mjpeg -q:v, 2 (best) .. 31
GLOBAL_ARGS = ("-nostdin", "-loglevel", "error")
POSTER_TIMEOUT_S = 600.0
CONTACT_SHEET_TIMEOUT_S = 3600.0


def poster_arguments(
    source: Path,
    target: Path,
    probe: MediaProbe,
    *,
    at_s: float | None = None,
    max_width: int = POSTER_MAX_WIDTH,
) -> list[str]:
    """One JPEG frame: from `at_s` (default 10% into a video; 0 for a photo), at most `max_width` wide."""
    index = _video_index(probe, "a poster")
    if at_s is None:
        at_s = _poster_time(probe)
    input_options: dict[str, object] = {}
    if at_s > 0:
        input_options["ss"] = f"{at_s:.3f}"
    stream = ffmpeg.input(str(source), **input_options)
    frame = stream[str(index)].filter("scale", w=f"min({max_width},iw)", h=-2)
    return _jpeg_args(frame, target)


def contact_sheet_arguments(
    source: Path,
    target: Path,
    probe: MediaProbe,
    *,
    grid: tuple[int, int] = GRID,
    cell_width: int = CELL_MAX_WIDTH,
    keyframes_only: bool | None = None,
) -> list[str]:
    """A `grid` (columns, rows) of frames spread over the clip, each at most `cell_width` wide."""
    if probe.kind != "video":
        raise PermanentError(f"a contact sheet needs a video, not a {probe.kind}")
    index = _video_index(probe, "a contact sheet")
    columns, rows = grid
    cells = columns * rows
    duration = probe.duration_s if probe.duration_s and probe.duration_s > 0 else None
    if keyframes_only is None:
        keyframes_only = duration is None or duration >= KEYFRAMES_ONLY_FROM_S
    input_options: dict[str, object] = {"skip_frame": "nokey"} if keyframes_only else {}
    stream = ffmpeg.input(str(source), **input_options)
    conditions = []
    if keyframes_only:
        conditions.append("eq(pict_type,I)")
    if duration is not None:
        interval = duration / cells
        slot = f"floor(t/{interval:.6f})"
        previous_slot = f"floor(prev_selected_t/{interval:.6f})"
        conditions.append(f"(isnan(prev_selected_t)+gt({slot},{previous_slot}))")
    picked = stream[str(index)]
    if conditions:
        picked = picked.filter("select", "*".join(conditions))
    sheet = picked.filter("scale", w=f"min({cell_width},iw)", h=-2).filter("tile", f"{columns}x{rows}")
    return _jpeg_args(sheet, target)


def make_poster(
    source: Path, target_dir: Path, probe: MediaProbe, *, timeout_s: float | None = POSTER_TIMEOUT_S
) -> ToolRun:
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / POSTER_NAME
    refuse_to_overwrite(source, target)
    arguments = poster_arguments(source, target, probe)
    try:
        _run(arguments, target, timeout_s)
    except PermanentError:
        if "-ss" not in arguments:
            raise
        arguments = poster_arguments(source, target, probe, at_s=0)  # the seek went past the last frame
        _run(arguments, target, timeout_s)
    return ToolRun(target, FFMPEG, ffmpeg_version(), arguments, "image/jpeg")


def make_contact_sheet(
    source: Path, target_dir: Path, probe: MediaProbe, *, timeout_s: float | None = CONTACT_SHEET_TIMEOUT_S
) -> ToolRun:
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / CONTACT_SHEET_NAME
    refuse_to_overwrite(source, target)
    arguments = contact_sheet_arguments(source, target, probe)
    try:
        _run(arguments, target, timeout_s)
    except PermanentError:
        if "-skip_frame" not in arguments:
            raise
        arguments = contact_sheet_arguments(source, target, probe, keyframes_only=False)
        _run(arguments, target, timeout_s)
    return ToolRun(target, FFMPEG, ffmpeg_version(), arguments, "image/jpeg")


def _video_index(probe: MediaProbe, what: str) -> int:
    if not probe.has_video or probe.video_stream_index is None:
        raise PermanentError(f"no decodable picture to make {what} from ({probe.kind})")
    return probe.video_stream_index


def _poster_time(probe: MediaProbe) -> float:
    if probe.kind != "video" or not probe.duration_s or probe.duration_s <= 0:
        return 0.0
    return probe.duration_s * POSTER_AT


def _jpeg_args(stream: object, target: Path) -> list[str]:
    node = (
        ffmpeg.output(stream, str(target), f="image2", update=1, **{"frames:v": 1, "q:v": JPEG_QUALITY})
        .global_args(*GLOBAL_ARGS)
        .overwrite_output()
    )
    return [str(a) for a in node.get_args()]


def _run(arguments: list[str], target: Path, timeout_s: float | None) -> None:
    try:
        run_tool(arguments, timeout_s)
        check_output(target)
    except BaseException:
        remove_quietly(target)
        raise
