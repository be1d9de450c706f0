"""A tiny test clip with a real face in it (issue 20): scikit-image's astronaut photo (Eileen
Collins, public domain, shipped inside the scikit-image wheel), her head cut out and moved across a
320x240 frame for a few seconds, with a 440 Hz tone as its sound so a muted range is measurable.

The frames are numpy arrays piped to ffmpeg; the true face box of every frame is known, so detection
and rendering can be measured against it."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

WIDTH, HEIGHT, FPS = 320, 240, 25
# the head in data.astronaut() (512x512): OpenCV's cascades put the face at x 177, y 66, 95x95
HEAD = (140, 20, 310, 200)  # left, top, right, bottom of the cut-out, with hair and collar
FACE_IN_HEAD = (177 - 140, 66 - 20, 95, 95)
SCALE = 0.6


@dataclass(frozen=True)
class FaceClip:
    path: Path
    width: int
    height: int
    fps: int
    frames: int
    faces: list[tuple[int, int, int, int]]  # the true face box (x, y, w, h) of each frame


def _head() -> np.ndarray:
    import cv2
    from skimage import data

    left, top, right, bottom = HEAD
    head = data.astronaut()[top:bottom, left:right]
    size = (round((right - left) * SCALE), round((bottom - top) * SCALE))
    return np.asarray(cv2.resize(head, size, interpolation=cv2.INTER_AREA))


def _background() -> np.ndarray:
    # a soft gradient with some texture: not a flat colour (too easy for an encoder), no faces
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    base = np.stack([60 + xs * 0.3, 90 + ys * 0.3, 120 + (xs + ys) * 0.1], axis=-1)
    rng = np.random.default_rng(20)
    noise = rng.integers(0, 12, size=(HEIGHT, WIDTH, 1))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def head_position(index: int, frames: int, head_w: int, head_h: int) -> tuple[int, int]:
    """Where the head's top left corner is in frame `index`: left to right, a little down."""
    t = index / max(frames - 1, 1)
    x = round(8 + t * (WIDTH - head_w - 16))
    y = round(10 + t * (HEIGHT - head_h - 20))
    return x, y


def make_face_clip(target: Path, *, seconds: float = 3.0, audio: bool = True) -> FaceClip:
    """Write the clip (H.264 + AAC in MP4) to `target`."""
    head = _head()
    head_h, head_w = head.shape[:2]
    background = _background()
    frames = round(seconds * FPS)
    fx, fy, fw, fh = (round(v * SCALE) for v in FACE_IN_HEAD)
    argv = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y"]
    argv += ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{WIDTH}x{HEIGHT}", "-r", str(FPS), "-i", "-"]
    if audio:
        argv += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"]
    argv += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", "-threads", "1"]
    if audio:
        argv += ["-c:a", "aac", "-b:a", "128k", "-shortest"]
    argv.append(str(target))
    faces = []
    process = subprocess.Popen(argv, stdin=subprocess.PIPE)
    assert process.stdin is not None
    for index in range(frames):
        frame = background.copy()
        x, y = head_position(index, frames, head_w, head_h)
        frame[y : y + head_h, x : x + head_w] = head
        faces.append((x + fx, y + fy, fw, fh))
        process.stdin.write(frame.tobytes())
    process.stdin.close()
    if process.wait(timeout=120) != 0:
        raise RuntimeError("ffmpeg could not make the face clip")
    return FaceClip(target, WIDTH, HEIGHT, FPS, frames, faces)


def decoded_frames(path: Path, *, displayed: bool = False) -> list[np.ndarray]:
    """Every video frame of `path` as RGB (int16, so differences do not wrap). `displayed`: as a player
    shows it, after the container's rotation (ffmpeg applies it; PyAV's decoder does not)."""
    if not displayed:
        import av

        with av.open(str(path)) as container:
            return [f.to_ndarray(format="rgb24").astype(np.int16) for f in container.decode(video=0)]
    probe = subprocess.run(
        [
            *("ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height"),
            *("-show_entries", "stream_side_data=rotation", "-of", "json", str(path)),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    import json

    stream = json.loads(probe.stdout)["streams"][0]
    rotation = next((int(s.get("rotation", 0)) for s in stream.get("side_data_list", [])), 0)
    width, height = stream["width"], stream["height"]
    if rotation % 180:
        width, height = height, width
    raw = subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-i",
            str(path),
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ],
        capture_output=True,
        check=True,
    ).stdout
    frames = np.frombuffer(raw, dtype=np.uint8).reshape(-1, height, width, 3)
    return [f.astype(np.int16) for f in frames]


def box_and_rest(
    before: np.ndarray, after: np.ndarray, box: tuple[int, int, int, int], margin: int = 4
) -> tuple[float, float]:
    """The mean absolute difference inside the box (x, y, w, h) and outside it (a margin left out: the
    encoder's blocks at the edge), between two frames of the same size."""
    x, y, w, h = box
    inside = float(np.abs(before[y : y + h, x : x + w] - after[y : y + h, x : x + w]).mean())
    rest = np.ones(before.shape[:2], dtype=bool)
    rest[max(0, y - margin) : y + h + margin, max(0, x - margin) : x + w + margin] = False
    return inside, float(np.abs(before - after)[rest].mean())


def rotated_copy(source: Path, target: Path, degrees: int) -> Path:
    """`source` with its streams copied and a display rotation of `degrees` asked by the container
    (as a phone or a body camera mounted sideways writes it); the pixels are unchanged."""
    subprocess.run(
        [
            *("ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(source), "-c", "copy"),
            *("-metadata:s:v:0", f"rotate={degrees}", str(target)),
        ],
        check=True,
    )
    return target
