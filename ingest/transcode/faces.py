"""Face detection on a clip's proxy (R15, issue 20 item 3), with a model that ships inside a registry
package: OpenCV's Haar cascade `haarcascade_frontalface_alt2.xml`, in the opencv-python-headless
4.x wheel (`cv2.data.haarcascades`). Nothing is downloaded at run time.

Why this cascade (measured on the test clip of tests/integration/redaction_media.py and on 720p
frames, README "Redaction"): frontal `default`, `alt` and `alt2` all found the face in 75 of 75 frames
with no false box; `alt2` was the fastest at 720p; the profile cascade found none of a frontal face.
OpenCV 5 dropped the cascades (and its YuNet model file is not in the wheel), hence the `<5` pin.

Frames are decoded with PyAV and shrunk to at most `DETECT_HEIGHT` lines before detection: the
cascade's time grows with the pixel count, and a face of 40 lines on a 720p proxy is still 20 here.
The boxes come back in the proxy's pixels; the caller scales them to the original's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from evidence_store.domain.redaction import Keyframe
from evidence_store.errors import ConfigurationError, PermanentError

CASCADE = "haarcascade_frontalface_alt2.xml"
DETECT_HEIGHT = 360
SCALE_FACTOR = 1.1
MIN_NEIGHBOURS = 4
MIN_FACE = 20  # pixels at DETECT_HEIGHT


@dataclass(frozen=True)
class FrameFaces:
    t: float
    boxes: tuple[Keyframe, ...]


@dataclass(frozen=True)
class Detection:
    width: int  # of the frames the boxes are in (the proxy's)
    height: int
    frames: tuple[FrameFaces, ...]
    detector: str  # model and library version, for the audit log


def opencv_version() -> str:
    import cv2  # lazy: OpenCV loads only in a process that detects

    return f"opencv-python-headless {cv2.__version__}"


def _cascade() -> object:
    import cv2  # lazy: as above

    directory = getattr(getattr(cv2, "data", None), "haarcascades", None)
    if directory is None or not hasattr(cv2, "CascadeClassifier"):
        raise ConfigurationError(
            "this OpenCV has no bundled Haar cascades (OpenCV 5 dropped them): install <5"
        )
    cascade = cv2.CascadeClassifier(str(Path(directory) / CASCADE))
    if cascade.empty():
        raise ConfigurationError(f"OpenCV could not load its bundled {CASCADE}")
    return cascade


def detect_faces(proxy: Path, *, every_nth: int = 1) -> Detection:
    """Faces in every `every_nth` frame of `proxy`, as boxes in the proxy's pixels."""
    import av  # lazy: PyAV loads only in a process that decodes
    import cv2

    cascade = _cascade()
    found: list[FrameFaces] = []
    width = height = 0
    try:
        with av.open(str(proxy)) as container:
            stream = container.streams.video[0]
            for index, frame in enumerate(container.decode(stream)):
                if index % every_nth:
                    continue
                gray = frame.to_ndarray(format="gray")
                height, width = gray.shape[:2]
                scale = min(1.0, DETECT_HEIGHT / height)
                small = (
                    cv2.resize(
                        gray, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA
                    )
                    if scale < 1.0
                    else gray
                )
                boxes = cascade.detectMultiScale(  # type: ignore[attr-defined]
                    small, scaleFactor=SCALE_FACTOR, minNeighbors=MIN_NEIGHBOURS, minSize=(MIN_FACE, MIN_FACE)
                )
                t = float(frame.time) if frame.time is not None else 0.0
                found.append(
                    FrameFaces(
                        t,
                        tuple(
                            Keyframe(
                                t, float(x) / scale, float(y) / scale, float(w) / scale, float(h) / scale
                            )
                            for x, y, w, h in boxes
                        ),
                    )
                )
    except av.error.FFmpegError as exc:
        raise PermanentError(f"cannot decode the proxy {proxy.name} for face detection: {exc}") from exc
    return Detection(width, height, tuple(found), f"{opencv_version()} {CASCADE}")
