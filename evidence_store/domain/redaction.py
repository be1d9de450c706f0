"""A clip's redaction specification (R15, issue 20): what a copy for a party must hide, as plain data.

A specification is per clip and versioned; a stored version is never changed (a change is a new
version), and its canonical JSON's sha256 names it in the audit log and in the rendered copy's C2PA
manifest. It holds, all in the ORIGINAL's pixel coordinates and in seconds from the clip's start:

* face tracks found by detection (a box at each frame time where the face was seen), each accepted or
  rejected by a reviewer; only accepted tracks are hidden;
* boxes drawn by hand, with keyframes (t, x, y, w, h) linearly interpolated between them;
* whole-frame ranges, blurred or blacked out;
* audio ranges, muted or bleeped.

Everything here is pure: validation raises `InputError` with a message a person can act on.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from evidence_store.errors import InputError

SPEC_FORMAT = 1
BOX_EFFECTS = ("blur", "black")
FRAME_EFFECTS = ("blur", "black")
AUDIO_EFFECTS = ("mute", "bleep")
# a little slack for times: the probed duration and the last frame's time differ by up to a frame
TIME_SLACK_S = 0.05


@dataclass(frozen=True)
class Keyframe:
    """A box at a moment: top left corner (x, y) and size (w, h), original pixels, `t` seconds."""

    t: float
    x: float
    y: float
    w: float
    h: float


@dataclass(frozen=True)
class FaceTrack:
    """One face followed over frames by detection; `accepted` is the reviewer's word (default: hide)."""

    id: int
    boxes: tuple[Keyframe, ...]
    accepted: bool = True


@dataclass(frozen=True)
class DrawnBox:
    """A box drawn by hand, moved by keyframes; hidden from its first keyframe to its last."""

    id: int
    keyframes: tuple[Keyframe, ...]
    label: str = ""


@dataclass(frozen=True)
class TimeRange:
    start_s: float
    end_s: float
    effect: str


@dataclass(frozen=True)
class RedactionSpec:
    """What to hide in one clip of `width` x `height` pixels lasting `duration_s` seconds."""

    width: int
    height: int
    duration_s: float
    box_effect: str = "blur"
    tracks: tuple[FaceTrack, ...] = ()
    boxes: tuple[DrawnBox, ...] = ()
    frames: tuple[TimeRange, ...] = ()
    audio: tuple[TimeRange, ...] = ()
    notes: str = ""


# ------------------------------------------------------------------ reading and checking


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError(f"{what} must be a number, not {value!r}")
    return float(value)


def _keyframe(raw: Any, what: str) -> Keyframe:
    if not isinstance(raw, dict):
        raise InputError(f"{what} must be an object with t, x, y, w, h")
    missing = [k for k in ("t", "x", "y", "w", "h") if k not in raw]
    if missing:
        raise InputError(f"{what} lacks {', '.join(missing)}")
    return Keyframe(*(_number(raw[k], f"{what}.{k}") for k in ("t", "x", "y", "w", "h")))


def _check_keyframes(frames: Sequence[Keyframe], spec: RedactionSpec, what: str) -> None:
    if not frames:
        raise InputError(f"{what} has no keyframes")
    for index, frame in enumerate(frames):
        at = f"{what} keyframe {index} (t={frame.t:g}s)"
        if frame.w <= 0 or frame.h <= 0:
            raise InputError(f"{at}: width and height must be positive")
        if frame.x < 0 or frame.y < 0 or frame.x + frame.w > spec.width or frame.y + frame.h > spec.height:
            raise InputError(
                f"{at}: the box {frame.x:g},{frame.y:g} {frame.w:g}x{frame.h:g} is not inside the "
                f"{spec.width}x{spec.height} frame"
            )
        if frame.t < 0 or frame.t > spec.duration_s + TIME_SLACK_S:
            raise InputError(f"{at}: outside the clip (0 to {spec.duration_s:g}s)")
        if index and frame.t <= frames[index - 1].t:
            raise InputError(f"{at}: keyframes must be in increasing time order")


def _range(raw: Any, what: str, effects: tuple[str, ...], spec: RedactionSpec) -> TimeRange:
    if not isinstance(raw, dict):
        raise InputError(f"{what} must be an object with start_s, end_s, effect")
    start = _number(raw.get("start_s"), f"{what}.start_s")
    end = _number(raw.get("end_s"), f"{what}.end_s")
    effect = raw.get("effect", effects[0])
    if effect not in effects:
        raise InputError(f"{what}.effect must be one of {', '.join(effects)}, not {effect!r}")
    if start < 0 or end > spec.duration_s + TIME_SLACK_S:
        raise InputError(f"{what}: {start:g}s to {end:g}s is outside the clip (0 to {spec.duration_s:g}s)")
    if end <= start:
        raise InputError(f"{what}: its end ({end:g}s) must come after its start ({start:g}s)")
    return TimeRange(start, end, str(effect))


def _list(raw: dict[str, Any], key: str) -> list[Any]:
    value = raw.get(key, [])
    if not isinstance(value, list):
        raise InputError(f"{key} must be a list")
    return value


def spec_from_dict(raw: Any) -> RedactionSpec:
    """Read and check a specification (R15): boxes inside the frame, times inside the clip, keyframes
    in order, known effects. `InputError` names the first thing wrong."""
    if not isinstance(raw, dict):
        raise InputError("a redaction specification must be a JSON object")
    width, height = raw.get("width"), raw.get("height")
    if not isinstance(width, int) or not isinstance(height, int) or width <= 0 or height <= 0:
        raise InputError("width and height (the original's frame size in pixels) must be positive integers")
    duration = _number(raw.get("duration_s"), "duration_s")
    if duration <= 0:
        raise InputError("duration_s must be positive")
    box_effect = raw.get("box_effect", "blur")
    if box_effect not in BOX_EFFECTS:
        raise InputError(f"box_effect must be one of {', '.join(BOX_EFFECTS)}, not {box_effect!r}")
    notes = raw.get("notes", "")
    if not isinstance(notes, str):
        raise InputError("notes must be text")
    spec = RedactionSpec(width, height, duration, str(box_effect), notes=notes)
    tracks = []
    for index, item in enumerate(_list(raw, "tracks")):
        what = f"track {index}"
        if not isinstance(item, dict):
            raise InputError(f"{what} must be an object")
        boxes = tuple(_keyframe(b, f"{what} box {i}") for i, b in enumerate(_list(item, "boxes")))
        _check_keyframes(boxes, spec, what)
        accepted = item.get("accepted", True)
        if not isinstance(accepted, bool):
            raise InputError(f"{what}.accepted must be true or false")
        tracks.append(FaceTrack(int(_number(item.get("id", index + 1), f"{what}.id")), boxes, accepted))
    drawn = []
    for index, item in enumerate(_list(raw, "boxes")):
        what = f"box {index}"
        if not isinstance(item, dict):
            raise InputError(f"{what} must be an object")
        keyframes = tuple(
            _keyframe(k, f"{what} keyframe {i}") for i, k in enumerate(_list(item, "keyframes"))
        )
        _check_keyframes(keyframes, spec, what)
        drawn.append(
            DrawnBox(
                int(_number(item.get("id", index + 1), f"{what}.id")), keyframes, str(item.get("label", ""))
            )
        )
    frames = tuple(
        _range(r, f"frame range {i}", FRAME_EFFECTS, spec) for i, r in enumerate(_list(raw, "frames"))
    )
    audio = tuple(
        _range(r, f"audio range {i}", AUDIO_EFFECTS, spec) for i, r in enumerate(_list(raw, "audio"))
    )
    return RedactionSpec(
        width, height, duration, str(box_effect), tuple(tracks), tuple(drawn), frames, audio, notes
    )


def _keyframe_dict(frame: Keyframe) -> dict[str, float]:
    return {"t": frame.t, "x": frame.x, "y": frame.y, "w": frame.w, "h": frame.h}


def spec_to_dict(spec: RedactionSpec) -> dict[str, Any]:
    """The specification as plain JSON data (what `spec_from_dict` reads back to an equal spec)."""
    return {
        "format": SPEC_FORMAT,
        "width": spec.width,
        "height": spec.height,
        "duration_s": spec.duration_s,
        "box_effect": spec.box_effect,
        "notes": spec.notes,
        "tracks": [
            {"id": t.id, "accepted": t.accepted, "boxes": [_keyframe_dict(b) for b in t.boxes]}
            for t in spec.tracks
        ],
        "boxes": [
            {"id": b.id, "label": b.label, "keyframes": [_keyframe_dict(k) for k in b.keyframes]}
            for b in spec.boxes
        ],
        "frames": [{"start_s": r.start_s, "end_s": r.end_s, "effect": r.effect} for r in spec.frames],
        "audio": [{"start_s": r.start_s, "end_s": r.end_s, "effect": r.effect} for r in spec.audio],
    }


def canonical_json(spec: RedactionSpec) -> str:
    """One text for one specification: sorted keys, no spaces, numbers as floats, so equal specs hash
    equal whatever order or spacing the editor sent (R15: the hash names the version in the audit)."""
    return json.dumps(spec_to_dict(spec), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def spec_sha256(spec: RedactionSpec) -> str:
    return hashlib.sha256(canonical_json(spec).encode("utf-8")).hexdigest()


# ------------------------------------------------------------------ geometry


def interpolate(keyframes: Sequence[Keyframe], t: float) -> Keyframe | None:
    """The box at time `t`: linear between the keyframes around it, None before the first or after
    the last (a hand-drawn box hides only over the span its keyframes cover)."""
    if not keyframes or t < keyframes[0].t or t > keyframes[-1].t:
        return None
    for before, after in pairwise(keyframes):
        if before.t <= t <= after.t:
            share = (t - before.t) / (after.t - before.t)
            return Keyframe(
                t,
                before.x + (after.x - before.x) * share,
                before.y + (after.y - before.y) * share,
                before.w + (after.w - before.w) * share,
                before.h + (after.h - before.h) * share,
            )
    return keyframes[-1] if len(keyframes) == 1 else None


def scale_box(box: Keyframe, source: tuple[int, int], target: tuple[int, int]) -> Keyframe:
    """A box found on a `source` (w, h) frame, e.g. the proxy, in `target` (w, h) pixels, e.g. the
    original's (issue 20: detection runs on the proxy, the specification speaks the original's pixels)."""
    sx, sy = target[0] / source[0], target[1] / source[1]
    # rounded first, then the size cut to the frame: a rounded size must not push a box over the edge
    x, y = round(max(0.0, box.x * sx), 2), round(max(0.0, box.y * sy), 2)
    w, h = min(round(box.w * sx, 2), target[0] - x), min(round(box.h * sy, 2), target[1] - y)
    return Keyframe(box.t, x, y, w, h)


def iou(a: Keyframe, b: Keyframe) -> float:
    """Intersection over union of two boxes (0 when apart, 1 when equal)."""
    width = min(a.x + a.w, b.x + b.w) - max(a.x, b.x)
    height = min(a.y + a.h, b.y + b.h) - max(a.y, b.y)
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    return inter / (a.w * a.h + b.w * b.h - inter)


def link_tracks(
    detections: Iterable[tuple[float, Sequence[Keyframe]]], *, min_iou: float = 0.2, max_gap_s: float = 0.5
) -> tuple[FaceTrack, ...]:
    """Link per-frame detections into tracks: each box joins the open track whose last box overlaps it
    most (at least `min_iou`), greedily by overlap; a track not seen for `max_gap_s` is closed. A
    specification then holds faces a reviewer can accept or reject as one, not loose boxes (issue 20)."""
    open_tracks: list[list[Keyframe]] = []
    closed: list[list[Keyframe]] = []
    for t, boxes in sorted(detections, key=lambda item: item[0]):
        still_open: list[list[Keyframe]] = []
        for track in open_tracks:
            (still_open if t - track[-1].t <= max_gap_s else closed).append(track)
        open_tracks = still_open
        pairs = sorted(
            (
                (iou(track[-1], box), ti, bi)
                for ti, track in enumerate(open_tracks)
                for bi, box in enumerate(boxes)
            ),
            reverse=True,
        )
        used_tracks: set[int] = set()
        used_boxes: set[int] = set()
        for overlap, ti, bi in pairs:
            if overlap < min_iou:
                break
            if ti in used_tracks or bi in used_boxes:
                continue
            used_tracks.add(ti)
            used_boxes.add(bi)
            open_tracks[ti].append(Keyframe(t, boxes[bi].x, boxes[bi].y, boxes[bi].w, boxes[bi].h))
        for bi, box in enumerate(boxes):
            if bi not in used_boxes:
                open_tracks.append([Keyframe(t, box.x, box.y, box.w, box.h)])
    every = sorted(closed + open_tracks, key=lambda track: (track[0].t, track[0].x))
    return tuple(FaceTrack(index, tuple(track)) for index, track in enumerate(every, start=1))


@dataclass(frozen=True)
class Piece:
    """One span of one hidden area as the renderer draws it: from `start_s` to `end_s` a box of fixed
    size `w` x `h` whose corner moves linearly from (x0, y0) to (x1, y1)."""

    start_s: float
    end_s: float
    x0: float
    y0: float
    x1: float
    y1: float
    w: float
    h: float


def _clamp_piece(piece: Piece, width: int, height: int) -> Piece:
    w, h = min(piece.w, width), min(piece.h, height)
    return Piece(
        piece.start_s,
        piece.end_s,
        min(max(piece.x0, 0.0), width - w),
        min(max(piece.y0, 0.0), height - h),
        min(max(piece.x1, 0.0), width - w),
        min(max(piece.y1, 0.0), height - h),
        w,
        h,
    )


def keyframe_pieces(keyframes: Sequence[Keyframe], width: int, height: int) -> list[Piece]:
    """A hand-drawn box as pieces, one per pair of keyframes: the larger of the two sizes over the
    whole span, centred on the interpolated centre, so a box that grows or shrinks never uncovers what
    either keyframe covered (redaction errs on hiding more)."""
    if len(keyframes) == 1:
        k = keyframes[0]
        return [_clamp_piece(Piece(k.t, k.t, k.x, k.y, k.x, k.y, k.w, k.h), width, height)]
    pieces = []
    for a, b in pairwise(keyframes):
        w, h = max(a.w, b.w), max(a.h, b.h)
        pieces.append(
            _clamp_piece(
                Piece(
                    a.t,
                    b.t,
                    a.x + a.w / 2 - w / 2,
                    a.y + a.h / 2 - h / 2,
                    b.x + b.w / 2 - w / 2,
                    b.y + b.h / 2 - h / 2,
                    w,
                    h,
                ),
                width,
                height,
            )
        )
    return pieces


def track_pieces(
    track: FaceTrack,
    width: int,
    height: int,
    *,
    window_s: float = 0.5,
    margin: float = 0.15,
    frame_s: float = 0.04,
) -> list[Piece]:
    """A face track as still pieces of about `window_s` each: the union of its boxes in the window,
    grown by `margin` of the size on every side (a detector's box is tight around the eyes and mouth;
    hair and chin identify too), held from the window's first box to one frame after its last. A
    track has a box per frame; one filter per frame would make the filtergraph grow with the clip."""
    pieces: list[Piece] = []
    boxes = track.boxes
    start = 0
    while start < len(boxes):
        end = start
        while end + 1 < len(boxes) and boxes[end + 1].t - boxes[start].t < window_s:
            end += 1
        group = boxes[start : end + 1]
        left = min(b.x for b in group)
        top = min(b.y for b in group)
        right = max(b.x + b.w for b in group)
        bottom = max(b.y + b.h for b in group)
        grow_x, grow_y = (right - left) * margin, (bottom - top) * margin
        left, top = max(0.0, left - grow_x), max(0.0, top - grow_y)
        right, bottom = min(float(width), right + grow_x), min(float(height), bottom + grow_y)
        # the gap to the next window's first box is covered too: detection may miss a frame
        until = boxes[end + 1].t if end + 1 < len(boxes) else group[-1].t + frame_s
        pieces.append(
            _clamp_piece(
                Piece(group[0].t, until, left, top, left, top, right - left, bottom - top), width, height
            )
        )
        start = end + 1
    return pieces


def hidden_areas(spec: RedactionSpec, *, frame_s: float = 0.04) -> list[list[Piece]]:
    """Every area the rendered copy hides, each as its pieces in time order: the accepted tracks, then
    all hand-drawn boxes (R15). Rejected tracks hide nothing."""
    areas = [track_pieces(t, spec.width, spec.height, frame_s=frame_s) for t in spec.tracks if t.accepted]
    areas.extend(keyframe_pieces(box.keyframes, spec.width, spec.height) for box in spec.boxes)
    return [area for area in areas if area]


def hidden_pieces(spec: RedactionSpec, *, frame_s: float = 0.04) -> list[Piece]:
    """All pieces of all hidden areas."""
    return [piece for area in hidden_areas(spec, frame_s=frame_s) for piece in area]


@dataclass(frozen=True)
class Segment:
    """The part of the clip a rendered copy covers, seconds from the clip's start (a party's copy may be
    one segment of the clip, as an export item may)."""

    start_s: float
    end_s: float


def segment_of(spec: RedactionSpec, start_s: float | None, end_s: float | None) -> Segment | None:
    """The segment asked for, checked against the clip (R15): None for the whole clip; `InputError` for a
    segment that does not lie inside the clip or ends before it starts."""
    if start_s is None and end_s is None:
        return None
    start = 0.0 if start_s is None else _number(start_s, "the segment's start")
    end = spec.duration_s if end_s is None else _number(end_s, "the segment's end")
    if start < 0 or end > spec.duration_s + TIME_SLACK_S:
        raise InputError(
            f"the segment {start:g}s to {end:g}s must lie inside the clip (0s to {spec.duration_s:g}s)"
        )
    if end <= start:
        raise InputError(f"the segment's end ({end:g}s) must come after its start ({start:g}s)")
    if start == 0 and end >= spec.duration_s:
        return None  # the whole clip
    return Segment(start, min(end, spec.duration_s))
