"""The full probe of an original: what is inside, whether it can be played, and what is odd about it.

`probe_media` never raises for a bad file. A zero-length, truncated, corrupt or non-media file gives a
`MediaProbe` with `playable=False` and warnings saying why; the original is kept as evidence whatever it
holds. Only a path that cannot be read at all (missing, no permission) raises `OSError`: that is a fault
of the station, not of the evidence.

The work is bounded: PyAV opens with an I/O timeout, at most `HEAD_PACKETS` packets are decoded from the
start and `TAIL_PACKETS` from near the end (to notice a file whose end is missing), and the ISO BMFF box
walk reads 16 bytes per top-level box.

Warning codes (stored on the clip as `RecordWarning(code, message)`):

========================== ============================================================================
``empty_file``             the file has zero bytes
``unknown_container``      not a media file PyAV/FFmpeg recognises (e.g. a text file)
``open_failed``            a recognised container (MP4, AVI, ...) that FFmpeg refuses to open
``truncated``              the file ends before its content does (an MP4 box runs past the end of the
                           file, or nothing can be decoded near the stated end)
``moov_missing``           an MP4/MOV without its ``moov`` index box (recording cut off before the index
                           was written): nothing in it can be played without repair
``no_media_stream``        the container opened but holds no audio or video stream
``no_video_stream``        audio only, in a container made for video (MP4/MOV other than M4A, AVI, ...)
``decode_error``           a stream's first packets did not decode (or decoded with errors)
``zero_duration``          an audio/video file whose duration is 0 or cannot be determined
``very_short``             shorter than one second (e.g. a single frame)
``creation_time_invalid``  a creation_time tag that is not a date
``creation_time_implausible`` a creation_time before 2000 (recorder clock never set) or in the future
``location_invalid``       a location tag or GPS EXIF block that cannot be read as coordinates
``no_exif``                a JPEG photo without EXIF
``exif_unreadable``        EXIF present but exifread failed on it
``exif_datetime_invalid``  EXIF DateTimeOriginal present but not a date
========================== ============================================================================
"""

from __future__ import annotations

import contextlib
import logging
import re
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO, Literal

import av
import av.container
import av.stream
import exifread

from evidence_store.domain.model import RecordWarning

logging.getLogger("libav").setLevel(logging.CRITICAL)
logging.getLogger("exifread").setLevel(logging.CRITICAL)

Kind = Literal["video", "audio", "photo", "unknown"]

OPEN_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 10.0
HEAD_PACKETS = 400  # packets demuxed from the start to find decodable frames
TAIL_PACKETS = 600  # packets demuxed (the first ones decoded) after seeking near the end
TAIL_SLACK_S = 0.5
VIDEO_FRAMES_WANTED = 2
AUDIO_FRAMES_WANTED = 1
MAX_CANDIDATES = 4  # streams of each type tried
MAX_BOXES = 1_000_000  # top-level ISO BMFF boxes walked (fragmented MP4s have many)
TAIL_MIN_DURATION_S = 2.0
SHORT_CLIP_S = 1.0
EARLIEST_PLAUSIBLE = datetime(2000, 1, 1, tzinfo=UTC)

# Demuxers that read still images (FFmpeg names them "<codec>_pipe", or "image2" by file extension).
IMAGE_FORMATS = {"image2", "image2pipe"}
# Containers made for sound only: an audio stream alone in these is not odd.
AUDIO_FORMATS = {"wav", "w64", "mp3", "flac", "ogg", "aac", "amr", "aiff", "caf", "ape", "wv", "au", "opus"}
AUDIO_BRANDS = {b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "}
ISO_BMFF_TYPES = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"moof", b"styp"}
LOCATION_KEYS = ("com.apple.quicktime.location.ISO6709", "location", "location-eng")
CREATION_KEYS = ("creation_time", "com.apple.quicktime.creationdate", "date")


@dataclass(frozen=True)
class Location:
    lat: float
    lon: float
    alt: float | None = None

    def to_dict(self) -> dict[str, float]:
        found = {"lat": self.lat, "lon": self.lon}
        if self.alt is not None:
            found["alt"] = self.alt
        return found


@dataclass(frozen=True, kw_only=True)
class MediaProbe:
    """What is inside an original. `width`/`height` are the stored frame size; `rotation` the display
    rotation in degrees the container asks for (ffmpeg applies it when transcoding)."""

    kind: Kind
    size_bytes: int
    container: str | None = None  # FFmpeg demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    container_long_name: str | None = None
    duration_s: float | None = None
    bit_rate: int | None = None
    streams: tuple[dict[str, Any], ...] = ()
    video_stream_index: int | None = None  # the video stream a proxy uses (first decodable one)
    audio_stream_index: int | None = None
    video_decodable: bool = False
    audio_decodable: bool = False
    video_codec: str | None = None
    audio_codec: str | None = None
    width: int | None = None
    height: int | None = None
    rotation: int = 0
    frame_rate: float | None = None
    sample_rate: int | None = None
    channels: int | None = None
    creation_time: datetime | None = None  # aware UTC, as the container (or EXIF with an offset) states
    location: Location | None = None
    photo_taken_local: datetime | None = None  # EXIF DateTimeOriginal: naive, the camera's local time
    camera_make: str | None = None
    camera_model: str | None = None
    playable: bool = False
    warnings: tuple[RecordWarning, ...] = ()
    prober: str = field(default_factory=lambda: f"PyAV {av.__version__} (FFmpeg {av.ffmpeg_version_info})")

    @property
    def has_video(self) -> bool:
        return self.video_stream_index is not None and self.video_decodable

    @property
    def has_audio(self) -> bool:
        return self.audio_stream_index is not None and self.audio_decodable

    @property
    def warning_codes(self) -> tuple[str, ...]:
        return tuple(w.code for w in self.warnings)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only (datetimes as ISO 8601 strings)."""
        return {
            "kind": self.kind,
            "size_bytes": self.size_bytes,
            "container": self.container,
            "container_long_name": self.container_long_name,
            "duration_s": self.duration_s,
            "bit_rate": self.bit_rate,
            "streams": [dict(s) for s in self.streams],
            "video_stream_index": self.video_stream_index,
            "audio_stream_index": self.audio_stream_index,
            "video_decodable": self.video_decodable,
            "audio_decodable": self.audio_decodable,
            "video_codec": self.video_codec,
            "audio_codec": self.audio_codec,
            "width": self.width,
            "height": self.height,
            "rotation": self.rotation,
            "frame_rate": self.frame_rate,
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "creation_time": self.creation_time.isoformat() if self.creation_time else None,
            "location": self.location.to_dict() if self.location else None,
            "photo_taken_local": self.photo_taken_local.isoformat() if self.photo_taken_local else None,
            "camera_make": self.camera_make,
            "camera_model": self.camera_model,
            "playable": self.playable,
            "warnings": [{"code": w.code, "message": w.message} for w in self.warnings],
            "warnings_text": [f"{w.code}: {w.message}" for w in self.warnings],
            "prober": self.prober,
        }


class _Findings:
    """Warnings in the order found, one per code (later messages for the same code are appended)."""

    def __init__(self) -> None:
        self._by_code: dict[str, str] = {}

    def add(self, code: str, message: str) -> None:
        if code in self._by_code:
            self._by_code[code] = f"{self._by_code[code]}; {message}"
        else:
            self._by_code[code] = message

    def has(self, code: str) -> bool:
        return code in self._by_code

    def freeze(self) -> tuple[RecordWarning, ...]:
        return tuple(RecordWarning(code, message) for code, message in self._by_code.items())


def probe_media(path: Path) -> MediaProbe:
    """Probe the original at `path` (opened read-only; never modified)."""
    size = path.stat().st_size  # a missing or unreadable path is the station's fault: let it raise
    findings = _Findings()
    if size == 0:
        findings.add("empty_file", "the file has zero bytes")
        return MediaProbe(kind="unknown", size_bytes=0, warnings=findings.freeze())
    with path.open("rb") as handle:
        head = handle.read(512)
        signature = _signature(head)
        brand = head[8:12] if head[4:8] == b"ftyp" else None
        if signature == "iso_bmff":
            _walk_iso_boxes(handle, size, findings)
    try:
        container = av.open(
            str(path), mode="r", timeout=(OPEN_TIMEOUT_S, READ_TIMEOUT_S), metadata_errors="replace"
        )
    except (av.FFmpegError, ValueError, OSError, EOFError, UnicodeDecodeError) as exc:
        if signature is None:
            findings.add("unknown_container", f"not a recognised media file ({_describe(exc)})")
        else:
            findings.add("open_failed", f"{signature} file that FFmpeg cannot open: {_describe(exc)}")
        return MediaProbe(kind="unknown", size_bytes=size, warnings=findings.freeze())
    with container:
        return _probe_container(path, container, size, signature, brand, findings)


def _probe_container(
    path: Path,
    container: av.container.InputContainer,
    size: int,
    signature: str | None,
    brand: bytes | None,
    findings: _Findings,
) -> MediaProbe:
    format_name = container.format.name
    is_image = format_name in IMAGE_FORMATS or format_name.endswith("_pipe")
    videos = [s for s in container.streams.video if not _attached_picture(s)][:MAX_CANDIDATES]
    audios = list(container.streams.audio)[:MAX_CANDIDATES]
    decoded = _decode_head(container, [*videos, *audios], findings)

    video = next((s for s in videos if decoded[s.index].frames), videos[0] if videos else None)
    audio = next((s for s in audios if decoded[s.index].frames), audios[0] if audios else None)
    video_ok = video is not None and decoded[video.index].frames > 0
    audio_ok = audio is not None and decoded[audio.index].frames > 0

    kind: Kind
    if video is not None and is_image and audio is None:
        kind = "photo"
    elif video is not None:
        kind = "video"
    elif audio is not None:
        kind = "audio"
    else:
        kind = "unknown"

    duration = None if kind == "photo" else _duration(container)
    if kind == "unknown":
        findings.add("no_media_stream", f"{format_name} container holds no audio or video stream")
    if kind == "audio" and not _audio_container(format_name, brand):
        findings.add("no_video_stream", f"audio only, in a {format_name} container made for video")
    if kind != "photo":
        if duration is None or duration <= 0:
            findings.add(
                "zero_duration",
                "the duration is 0 s" if duration == 0 else "the duration cannot be determined",
            )
        elif duration < SHORT_CLIP_S and kind != "unknown":
            findings.add("very_short", f"only {duration:.3f} s long")
    primary = video if video_ok else (audio if audio_ok else None)
    if primary is not None and duration is not None and duration >= TAIL_MIN_DURATION_S:
        _check_tail(container, primary, duration, findings)

    metadata = _all_metadata(container)
    creation = _creation_time(metadata, findings)
    location = _location(metadata, findings)
    photo = _photo_fields(path, signature, findings) if kind == "photo" else _PhotoFields()

    streams = tuple(_stream_dict(s, decoded.get(s.index), is_image) for s in container.streams)
    video_info = streams[video.index] if video is not None else {}
    audio_info = streams[audio.index] if audio is not None else {}
    return MediaProbe(
        kind=kind,
        size_bytes=size,
        container=format_name,
        container_long_name=container.format.long_name,
        duration_s=duration,
        bit_rate=container.bit_rate or None,
        streams=streams,
        video_stream_index=video.index if video is not None else None,
        audio_stream_index=audio.index if audio is not None else None,
        video_decodable=video_ok,
        audio_decodable=audio_ok,
        video_codec=video_info.get("codec"),
        audio_codec=audio_info.get("codec"),
        width=video_info.get("width"),
        height=video_info.get("height"),
        rotation=video_info.get("rotation") or 0,
        frame_rate=video_info.get("frame_rate"),
        sample_rate=audio_info.get("sample_rate"),
        channels=audio_info.get("channels"),
        creation_time=photo.creation_time or creation,
        location=photo.location or location,
        photo_taken_local=photo.taken_local,
        camera_make=photo.make,
        camera_model=photo.model,
        playable=video_ok or audio_ok,
        warnings=findings.freeze(),
    )


# -- decoding -------------------------------------------------------------------------------------------


@dataclass
class _Decoded:
    frames: int = 0
    errors: int = 0
    first_error: str = ""
    rotation: int = 0


def _decode_head(
    container: av.container.InputContainer, streams: list[Any], findings: _Findings
) -> dict[int, _Decoded]:
    """Decode the first frames of each candidate stream, reading at most HEAD_PACKETS packets."""
    results = {s.index: _Decoded() for s in streams}
    if not streams:
        return results
    wanted = {s.index: VIDEO_FRAMES_WANTED if s.type == "video" else AUDIO_FRAMES_WANTED for s in streams}
    packets = 0
    demux_error = ""
    try:
        for packet in container.demux(*streams):
            result = results[packet.stream_index]
            try:
                frames = packet.decode()
            except (av.FFmpegError, ValueError, EOFError, OSError) as exc:
                result.errors += 1
                result.first_error = result.first_error or _describe(exc)
                frames = []
            for frame in frames:
                if result.frames == 0 and isinstance(frame, av.VideoFrame):
                    result.rotation = int(frame.rotation or 0)
                result.frames += 1
            packets += 1
            if packets >= HEAD_PACKETS or all(results[i].frames >= n for i, n in wanted.items()):
                break
    except (av.FFmpegError, ValueError, EOFError, OSError) as exc:
        demux_error = _describe(exc)
    for stream in streams:
        result = results[stream.index]
        label = f"{stream.type} stream {stream.index} ({_codec_name(stream) or 'unknown codec'})"
        if result.frames == 0:
            why = result.first_error or demux_error or f"no frame in the first {packets} packets"
            findings.add("decode_error", f"{label}: nothing could be decoded ({why})")
        elif result.errors:
            findings.add(
                "decode_error", f"{label}: {result.errors} packet(s) failed to decode ({result.first_error})"
            )
    return results


def _check_tail(
    container: av.container.InputContainer, stream: Any, duration: float, findings: _Findings
) -> None:
    """Seek near the stated end and read on: a file cut short ends before it gets there.

    Packets are demuxed (cheap) until one is stamped near the end; only the first ones after the seek
    are decoded. When the demuxer cannot seek (no index), it restarts from the top: reading stops at
    TAIL_PACKETS packets and, if the end was not reached by then, nothing is concluded.
    """
    if findings.has("truncated"):
        return
    back = max(1.0, duration * 0.02)
    start = container.start_time / av.time_base if container.start_time is not None else 0.0
    target = start + max(0.0, duration - back)
    try:
        container.seek(int(target * av.time_base), backward=True, any_frame=False)
    except (av.FFmpegError, ValueError, OSError, EOFError):
        return  # not seekable: nothing to conclude
    frames = 0
    packets = 0
    last: float | None = None
    reached = False
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue  # the flush packet at the end of the file
            packets += 1
            if packet.pts is not None and packet.time_base is not None:
                last = float(packet.pts * packet.time_base)
            if frames == 0:
                with contextlib.suppress(av.FFmpegError, ValueError, EOFError, OSError):
                    frames += len(packet.decode())
            if last is not None and last >= target - TAIL_SLACK_S:
                reached = True
            if (reached and frames) or packets >= TAIL_PACKETS:
                return
    except (av.FFmpegError, ValueError, EOFError, OSError) as exc:
        findings.add("decode_error", f"reading near the end failed: {_describe(exc)}")
    if not reached:
        ended = f"{last - start:.1f} s" if last is not None else "before any packet"
        findings.add(
            "truncated", f"the {stream.type} stream ends at {ended} but the container says {duration:.1f} s"
        )
    elif frames == 0:
        near = f"{target - start:.1f} s of {duration:.1f} s"
        findings.add("decode_error", f"nothing decodes near the end ({near})")


# -- containers and streams -----------------------------------------------------------------------------


def _signature(head: bytes) -> str | None:
    """A name for a recognisable media signature in the first bytes, or None."""
    if head[4:8] in ISO_BMFF_TYPES:
        return "iso_bmff"
    if head[:4] == b"RIFF":
        return {b"AVI ": "avi", b"WAVE": "wav"}.get(head[8:12])
    if head[:1] == b"\x47" and head[188:189] in (b"", b"\x47"):
        return "mpegts"
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return None


_MAGIC = (
    (b"\x1a\x45\xdf\xa3", "matroska"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\x00\x00\x01\xba", "mpeg-ps"),
    (b"ID3", "audio"),
    (b"fLaC", "audio"),
    (b"OggS", "audio"),
    (b"#!AMR", "audio"),
)


def _walk_iso_boxes(handle: BinaryIO, size: int, findings: _Findings) -> None:
    """Walk the top-level boxes of an MP4/MOV: one that runs past the end means the file is cut short."""
    offset = 0
    seen: set[bytes] = set()
    for _ in range(MAX_BOXES):
        if offset + 8 > size:
            if offset != size:
                findings.add("truncated", f"{size - offset} stray byte(s) after the last box at {offset}")
            break
        handle.seek(offset)
        header = handle.read(16)
        box_size, box_type = struct.unpack(">I4s", header[:8])
        if box_size == 1:
            if len(header) < 16:
                findings.add("truncated", f"box {_box_name(box_type)} header cut at offset {offset}")
                break
            box_size = struct.unpack(">Q", header[8:16])[0]
        elif box_size == 0:  # runs to the end of the file
            box_size = size - offset
        if box_size < 8:
            name = _box_name(box_type)
            findings.add("truncated", f"box {name} at {offset} has an impossible size {box_size}")
            break
        seen.add(box_type)
        if offset + box_size > size:
            findings.add(
                "truncated",
                f"box {_box_name(box_type)} at offset {offset} claims {box_size} bytes "
                f"but the file ends {offset + box_size - size} bytes early",
            )
            break
        offset += box_size
        if offset == size:
            break
    if b"moov" not in seen and b"moof" not in seen:
        findings.add("moov_missing", "no 'moov' box (the index of the recording) in this MP4/MOV")


def _box_name(box_type: bytes) -> str:
    return repr(box_type.decode("latin-1"))


def _attached_picture(stream: Any) -> bool:
    return bool(stream.disposition & av.stream.Disposition.attached_pic)


def _audio_container(format_name: str, brand: bytes | None) -> bool:
    names = set(format_name.split(","))
    if names & AUDIO_FORMATS:
        return True
    return "mp4" in names and brand in AUDIO_BRANDS


def _codec_name(stream: Any) -> str | None:
    context = getattr(stream, "codec_context", None)
    name = getattr(context, "name", None) if context is not None else None
    return str(name) if name else None


def _duration(container: av.container.InputContainer) -> float | None:
    if container.duration is not None and container.duration >= 0:
        return round(container.duration / av.time_base, 6)
    durations = [
        float(s.duration * s.time_base) for s in container.streams if s.duration and s.time_base is not None
    ]
    return round(max(durations), 6) if durations else None


def _rate(value: Fraction | None) -> float | None:
    if value is None or value <= 0:
        return None
    return round(float(value), 3)


def _stream_dict(stream: Any, decoded: _Decoded | None, is_image: bool) -> dict[str, Any]:
    context = getattr(stream, "codec_context", None)
    kind = str(stream.type)
    duration = (
        round(float(stream.duration * stream.time_base), 6)
        if stream.duration and stream.time_base is not None
        else None
    )
    info: dict[str, Any] = {
        "index": int(stream.index),
        "type": kind,
        "codec": _codec_name(stream),
        "width": None,
        "height": None,
        "frame_rate": None,
        "sample_rate": None,
        "channels": None,
        "duration": duration,
        "frames": int(stream.frames) if stream.frames else None,
        "language": stream.language,
        "decodable": None if decoded is None else decoded.frames > 0,
    }
    if kind == "video" and context is not None:
        info["width"] = int(context.width) or None
        info["height"] = int(context.height) or None
        info["pixel_format"] = context.format.name if context.format is not None else None
        info["attached_picture"] = _attached_picture(stream)
        info["rotation"] = decoded.rotation if decoded is not None else 0
        if not is_image:
            info["frame_rate"] = _rate(stream.average_rate) or _rate(stream.guessed_rate)
    elif kind == "audio" and context is not None:
        info["sample_rate"] = int(context.sample_rate) or None
        info["channels"] = int(context.layout.nb_channels) or None
        info["channel_layout"] = context.layout.name
    return info


def _all_metadata(container: av.container.InputContainer) -> list[dict[str, str]]:
    """Container metadata first, then each stream's."""
    return [dict(container.metadata), *(dict(s.metadata) for s in container.streams)]


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


# -- time and place -------------------------------------------------------------------------------------


def _creation_time(metadata: list[dict[str, str]], findings: _Findings) -> datetime | None:
    """The first plausible creation time in the container's (then the streams') tags, as aware UTC."""
    for tags in metadata:
        for key in CREATION_KEYS:
            value = tags.get(key)
            if not value:
                continue
            moment = parse_timestamp(value)
            if moment is None:
                findings.add("creation_time_invalid", f"{key}={value!r} is not a date")
                continue
            if moment < EARLIEST_PLAUSIBLE or moment > datetime.now(UTC) + timedelta(days=1):
                findings.add("creation_time_implausible", f"{key}={value!r} (recorder clock not set?)")
                continue
            return moment
    return None


def parse_timestamp(value: str) -> datetime | None:
    """An ISO 8601 date-time as aware UTC (naive ones are taken as UTC, FFmpeg's convention)."""
    text = value.strip().replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


_ISO6709 = re.compile(
    r"^\s*(?P<lat>[+-]\d+(?:\.\d+)?)(?P<lon>[+-]\d+(?:\.\d+)?)(?P<alt>[+-]\d+(?:\.\d+)?)?(?:CRS[^/]*)?/?\s*$"
)


def parse_iso6709(value: str) -> Location | None:
    """An ISO 6709 point as decimal degrees: "+39.0000+121.0000/" (degrees), "+3903.5+12100.0+12.5/"
    (degrees and minutes, with altitude), "+390330+1210000/" (degrees, minutes, seconds); else None."""
    found = _ISO6709.match(value)
    if found is None:
        return None
    lat = _iso6709_degrees(found["lat"], 2)
    lon = _iso6709_degrees(found["lon"], 3)
    if lat is None or lon is None or abs(lat) > 90 or abs(lon) > 180:
        return None
    alt = float(found["alt"]) if found["alt"] else None
    return Location(round(lat, 7), round(lon, 7), alt)


def _iso6709_degrees(text: str, degree_digits: int) -> float | None:
    sign = -1.0 if text[0] == "-" else 1.0
    whole, _, fraction = text[1:].partition(".")
    fraction_value = float(f"0.{fraction}") if fraction else 0.0
    if len(whole) == degree_digits:  # DD.DDD
        degrees = int(whole) + fraction_value
    elif len(whole) == degree_digits + 2:  # DDMM.MMM
        minutes = int(whole[degree_digits:]) + fraction_value
        degrees = int(whole[:degree_digits]) + minutes / 60
        if minutes >= 60:
            return None
    elif len(whole) == degree_digits + 4:  # DDMMSS.SSS
        minutes = int(whole[degree_digits : degree_digits + 2])
        seconds = int(whole[degree_digits + 2 :]) + fraction_value
        if minutes >= 60 or seconds >= 60:
            return None
        degrees = int(whole[:degree_digits]) + minutes / 60 + seconds / 3600
    else:
        return None
    return sign * degrees


def _location(metadata: list[dict[str, str]], findings: _Findings) -> Location | None:
    for tags in metadata:
        for key in LOCATION_KEYS:
            value = tags.get(key)
            if not value:
                continue
            location = parse_iso6709(value)
            if location is None:
                findings.add("location_invalid", f"{key}={value!r} is not an ISO 6709 point")
                continue
            return location
    return None


# -- photos ---------------------------------------------------------------------------------------------


@dataclass
class _PhotoFields:
    taken_local: datetime | None = None
    creation_time: datetime | None = None
    location: Location | None = None
    make: str | None = None
    model: str | None = None


def _photo_fields(path: Path, signature: str | None, findings: _Findings) -> _PhotoFields:
    found = _PhotoFields()
    try:
        with path.open("rb") as handle:
            tags = exifread.process_file(handle, details=False, extract_thumbnail=False)
    except Exception as exc:  # exifread raises anything on malformed EXIF: a finding, not a failure
        findings.add("exif_unreadable", _describe(exc))
        return found
    if not tags:
        if signature == "jpeg":
            findings.add("no_exif", "the JPEG has no EXIF (no capture time, camera or GPS position)")
        return found
    found.make = _exif_text(tags.get("Image Make"))
    found.model = _exif_text(tags.get("Image Model"))
    raw = _exif_text(tags.get("EXIF DateTimeOriginal")) or _exif_text(tags.get("EXIF DateTimeDigitized"))
    if raw:
        try:
            taken = datetime.strptime(raw, "%Y:%m:%d %H:%M:%S")
        except ValueError:
            findings.add("exif_datetime_invalid", f"DateTimeOriginal={raw!r} is not a date")
        else:
            subsec = _exif_text(tags.get("EXIF SubSecTimeOriginal"))
            if subsec and subsec.isdigit():
                taken = taken.replace(microsecond=int(subsec[:6].ljust(6, "0")))
            found.taken_local = taken
            found.creation_time = _with_offset(taken, _exif_text(tags.get("EXIF OffsetTimeOriginal")))
    found.location = _exif_gps(tags, findings)
    return found


def _exif_text(tag: Any) -> str | None:
    if tag is None:
        return None
    values = tag.values
    text = values.decode("latin-1") if isinstance(values, bytes) else str(values)
    text = text.replace("\x00", "").strip()
    return text or None


def _with_offset(local: datetime, offset: str | None) -> datetime | None:
    """EXIF 2.31 OffsetTimeOriginal ("+08:00") turns the camera's local time into UTC."""
    if not offset:
        return None
    match = re.fullmatch(r"([+-])(\d{2}):(\d{2})", offset)
    if match is None:
        return None
    delta = timedelta(hours=int(match[2]), minutes=int(match[3]))
    zone = timezone(delta if match[1] == "+" else -delta)
    return local.replace(tzinfo=zone).astimezone(UTC)


def _exif_gps(tags: dict[str, Any], findings: _Findings) -> Location | None:
    if "GPS GPSLatitude" not in tags and "GPS GPSLongitude" not in tags:
        return None
    if (_exif_text(tags.get("GPS GPSStatus")) or "A").upper() == "V":
        return None  # the receiver had no fix: the numbers mean nothing
    try:
        lat = _dms(tags["GPS GPSLatitude"].values)
        lon = _dms(tags["GPS GPSLongitude"].values)
        if (_exif_text(tags.get("GPS GPSLatitudeRef")) or "N").upper().startswith("S"):
            lat = -lat
        if (_exif_text(tags.get("GPS GPSLongitudeRef")) or "E").upper().startswith("W"):
            lon = -lon
        if abs(lat) > 90 or abs(lon) > 180:
            raise ValueError(f"out of range: {lat}, {lon}")
        alt = None
        if "GPS GPSAltitude" in tags:
            alt = _ratio(tags["GPS GPSAltitude"].values[0])
            ref = tags.get("GPS GPSAltitudeRef")
            if ref is not None and list(ref.values)[:1] == [1]:
                alt = -alt
    except (KeyError, IndexError, TypeError, ValueError, ZeroDivisionError) as exc:
        findings.add("location_invalid", f"EXIF GPS position cannot be read: {_describe(exc)}")
        return None
    return Location(round(lat, 7), round(lon, 7), round(alt, 3) if alt is not None else None)


def _dms(values: Any) -> float:
    parts = [_ratio(v) for v in list(values)[:3]]
    while len(parts) < 3:
        parts.append(0.0)
    degrees, minutes, seconds = parts
    return degrees + minutes / 60 + seconds / 3600


def _ratio(value: Any) -> float:
    numerator = getattr(value, "numerator", value)
    denominator = getattr(value, "denominator", 1)
    if not denominator:
        raise ZeroDivisionError(f"EXIF rational {value!r} has a zero denominator")
    return float(numerator) / float(denominator)


__all__ = ["Kind", "Location", "MediaProbe", "parse_iso6709", "parse_timestamp", "probe_media"]
