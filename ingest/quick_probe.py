"""A quick look inside a media file at ingest: duration and embedded creation time (PyAV).

Only what placing the recording in time needs; the full probe is the processing worker's job. Any
failure is a finding, never an exception: the file is stored whatever its container says.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import BinaryIO

import av

logging.getLogger("libav").setLevel(logging.CRITICAL)


@dataclass(frozen=True)
class QuickProbe:
    duration_s: float | None
    creation_time: datetime | None  # aware UTC as the container states it
    problem: str | None


def quick_probe(source: BinaryIO) -> QuickProbe:
    try:
        with av.open(source, mode="r", timeout=10) as container:
            duration = container.duration / 1_000_000 if container.duration is not None else None
            if duration is None:
                streams = [s for s in container.streams if s.duration is not None and s.time_base is not None]
                if streams:
                    duration = max(float(s.duration * s.time_base) for s in streams)  # type: ignore[operator]
            created = _creation_time(container.metadata.get("creation_time"))
            return QuickProbe(duration, created, None)
    except (av.FFmpegError, ValueError, OSError, EOFError) as exc:
        return QuickProbe(None, None, f"{type(exc).__name__}: {exc}")


def _creation_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.year < 2000:  # 1904/1970 epochs written by recorders with no clock set
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
