"""A time range of an original that an export cuts (R12: a copy of the part used as evidence)."""

from __future__ import annotations

from dataclasses import dataclass

from evidence_store.errors import InputError


@dataclass(frozen=True)
class Segment:
    """A time range of an original, in seconds from its start; `end_s` None means to the end."""

    start_s: float = 0.0
    end_s: float | None = None

    def __post_init__(self) -> None:
        if self.start_s < 0:
            raise InputError(f"a segment cannot start before 0 s (start {self.start_s})")
        if self.end_s is not None and self.end_s <= self.start_s:
            raise InputError(f"a segment must end after it starts ({self.start_s} s to {self.end_s} s)")

    @property
    def duration_s(self) -> float | None:
        return None if self.end_s is None else self.end_s - self.start_s


def seconds_text(value: float) -> str:
    """A time as plain seconds with millisecond precision and no exponent: ffmpeg's argv and the
    names of an export's derivatives (R14: the label says which part of the original it is)."""
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return text or "0"
