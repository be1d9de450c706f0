"""Synchronised playback of a case (issue 19 item 2): the clips of every officer on one corrected
timeline, so that one seek puts each recording at the same moment of the real world.

The corrected times are the recorder's times minus the clock offset measured at docking (R2, R3);
a clip whose recorder clock was not read has no trustworthy place on that line, so it is shown apart
and never guessed into it. Pure: plain data in, plain data out; the page's script does the playing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from evidence_store.domain.model import ClockStatus


@dataclass(frozen=True)
class PlaybackClip:
    clip_id: int
    officer: str
    name: str
    start: datetime | None  # corrected (UTC)
    end: datetime | None
    clock_status: str
    playable: bool  # a browser proxy exists


@dataclass(frozen=True)
class PlacedClip:
    clip: PlaybackClip
    offset_s: float  # where the clip starts, in seconds from the plan's start
    duration_s: float


@dataclass(frozen=True)
class Jump:
    document: str  # the document's external id
    edge: str  # "start" or "end"
    at_s: float  # seconds from the plan's start


@dataclass(frozen=True)
class PlaybackPlan:
    start: datetime | None  # the earliest placed clip's corrected start; None when nothing is placed
    length_s: float
    placed: tuple[PlacedClip, ...]
    apart: tuple[PlaybackClip, ...]  # playable, but with no trustworthy place on the timeline
    jumps: tuple[Jump, ...]  # documents' starts (and ends) within the span


def placeable(clip: PlaybackClip) -> bool:
    """Whether a clip has a trustworthy place on the case's corrected timeline (R2, R3): a measured
    clock and both corrected ends."""
    return (
        clip.clock_status == ClockStatus.MEASURED
        and clip.start is not None
        and clip.end is not None
        and clip.end >= clip.start
    )


def playback_plan(
    clips: Sequence[PlaybackClip], documents: Sequence[tuple[str, datetime | None, datetime | None]]
) -> PlaybackPlan:
    """The case player's plan (R2, R5): each playable clip with a measured clock placed at its
    corrected start relative to the earliest one; playable clips without a measured clock apart; each
    document's start and end that fall within the span as points to jump to."""
    playable = [clip for clip in clips if clip.playable]
    on_line = sorted((c for c in playable if placeable(c)), key=lambda c: (c.start, c.clip_id))
    apart = tuple(c for c in playable if not placeable(c))
    if not on_line:
        return PlaybackPlan(None, 0.0, (), apart, ())
    start = min(c.start for c in on_line if c.start is not None)
    end = max(c.end for c in on_line if c.end is not None)
    placed = tuple(
        PlacedClip(c, (c.start - start).total_seconds(), (c.end - c.start).total_seconds())
        for c in on_line
        if c.start is not None and c.end is not None
    )
    length = (end - start).total_seconds()
    jumps: list[Jump] = []
    for label, doc_start, doc_end in documents:
        for suffix, moment in (("start", doc_start), ("end", doc_end)):
            if moment is not None and start <= moment <= end:
                jumps.append(Jump(label, suffix, (moment - start).total_seconds()))
    return PlaybackPlan(start, length, placed, apart, tuple(sorted(jumps, key=lambda j: j.at_s)))
