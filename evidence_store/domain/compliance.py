"""Compliance flags, each with the numbers behind it (R1, R5, R6, R7, R8), as pure functions.

Flags are recomputed from the facts whenever they change; `diff_flags` turns the recomputed set into
flags to open and flags to clear, so a flag clears itself when its cause goes away.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any, NamedTuple

from evidence_store.domain.linking import DEFAULT_TOLERANCE


class FlagKind(enum.StrEnum):
    MISSING_VIDEO = "missing_video"  # R6, R7: video required, none linked, no approved exception
    STARTS_LATE = "starts_late"  # R5: footage starts after the document's start
    ENDS_EARLY = "ends_early"  # R5: footage ends before the document's end
    COVERAGE_GAP = "coverage_gap"  # R5: footage stops and starts again inside the document's window
    LATE_HANDOVER = "late_handover"  # R1
    UNASSIGNED_FOOTAGE = "unassigned_footage"  # footage linked to no case
    DOCUMENT_WITHOUT_END = "document_without_end"  # the document records no end time: R5 cannot be checked
    FILING_OVERDUE = "filing_overdue"  # R8: the act's footage not linked and filed within the window


@dataclass(frozen=True)
class Flag:
    kind: FlagKind
    document_id: int | None = None
    clip_id: int | None = None
    case_id: int | None = None
    details: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> tuple[str, int | None, int | None]:
        # `_value_`, not `.value`: the same text without the enum's descriptor (0.05 against 0.14 us a
        # call; a relink of a million clips asks for two keys of each of its 470,000 flags)
        return (self.kind._value_, self.document_id, self.clip_id)


@dataclass(frozen=True)
class DocumentFacts:
    document_id: int
    case_id: int
    kind: str
    requires_video: bool
    start: datetime | None
    end: datetime | None
    has_approved_exception: bool


class Interval(NamedTuple):
    """A stretch of linked footage. A named tuple, not a frozen dataclass: a relink makes one per
    link (700,000 at a million clips), and a named tuple is made in C (as `ClipSpan` in
    `evidence_store.domain.linking`)."""

    start: datetime
    end: datetime


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def merge_intervals(intervals: Iterable[Interval]) -> list[Interval]:
    """The union of intervals, sorted and merged where they touch or overlap."""
    merged: list[Interval] = []
    # by start, then end: the order of tuples, sorted in C
    for interval in sorted(intervals):
        if merged and interval.start <= merged[-1].end:
            if interval.end > merged[-1].end:
                merged[-1] = Interval(merged[-1].start, interval.end)
        else:
            merged.append(interval)
    return merged


def document_flags(
    document: DocumentFacts, footage: Iterable[Interval], tolerance: timedelta = DEFAULT_TOLERANCE
) -> list[Flag]:
    """R5/R6/R7 for one document, given the intervals of the footage linked to it.

    - missing_video: the kind requires video (R7), nothing is linked, and no approved exception (R6).
    - starts_late / ends_early: the footage begins after, or stops before, the document's own start or
      end by more than the tolerance; the uncovered seconds are given.
    - coverage_gap: inside the window, footage stops for longer than the tolerance; each gap is given.
    An approved exception also answers for partial coverage: the written reason covers the act.
    """
    covered = merge_intervals(footage)
    base = {"document_kind": document.kind}
    flags: list[Flag] = []
    if document.start is not None and document.end is None:
        flags.append(
            Flag(
                FlagKind.DOCUMENT_WITHOUT_END,
                document.document_id,
                case_id=document.case_id,
                details={**base, "start": _iso(document.start)},
            )
        )
    if not covered:
        if document.requires_video and not document.has_approved_exception:
            details = {
                **base,
                "reason": "the act requires video (R7) and no approved exception is on file (R6)",
            }
            if document.start is not None:
                details["window_start"] = _iso(document.start)
            if document.end is not None:
                details["window_end"] = _iso(document.end)
            flags.append(
                Flag(FlagKind.MISSING_VIDEO, document.document_id, case_id=document.case_id, details=details)
            )
        return flags
    if document.start is None or document.end is None or document.has_approved_exception:
        return flags
    window_start, window_end = document.start, document.end
    first_start, last_end = covered[0].start, covered[-1].end
    if first_start - window_start > tolerance:
        flags.append(
            Flag(
                FlagKind.STARTS_LATE,
                document.document_id,
                case_id=document.case_id,
                details={
                    **base,
                    "document_start": _iso(window_start),
                    "footage_start": _iso(first_start),
                    "uncovered_seconds": (first_start - window_start).total_seconds(),
                },
            )
        )
    if window_end - last_end > tolerance:
        flags.append(
            Flag(
                FlagKind.ENDS_EARLY,
                document.document_id,
                case_id=document.case_id,
                details={
                    **base,
                    "document_end": _iso(window_end),
                    "footage_end": _iso(last_end),
                    "uncovered_seconds": (window_end - last_end).total_seconds(),
                },
            )
        )
    gaps = [
        {
            "from": _iso(max(a.end, window_start)),
            "to": _iso(min(b.start, window_end)),
            "seconds": (min(b.start, window_end) - max(a.end, window_start)).total_seconds(),
        }
        for a, b in pairwise(covered)
        if min(b.start, window_end) - max(a.end, window_start) > tolerance
    ]
    if gaps:
        flags.append(
            Flag(
                FlagKind.COVERAGE_GAP,
                document.document_id,
                case_id=document.case_id,
                details={
                    **base,
                    "gaps": gaps,
                    "uncovered_seconds": sum(g["seconds"] for g in gaps),
                },
            )
        )
    return flags


def filing_due(document: DocumentFacts, window: timedelta) -> datetime | None:
    """R8: when the document's footage must be filed by: the end of the act (its start when no end is
    recorded) plus the filing window (30 days by default)."""
    act_end = document.end or document.start
    return act_end + window if act_end is not None else None


def filing_flag(document: DocumentFacts, has_footage: bool, now: datetime, window: timedelta) -> Flag | None:
    """R8 for one document as of `now`: an act that needs video (R7), whose footage is not linked to it
    (not filed into the case file) once the filing window after the act has passed, and for which no
    approved exception (R6) says why there is none. Linking footage, or approving an exception, clears it.
    """
    due = filing_due(document, window)
    if not document.requires_video or has_footage or document.has_approved_exception or due is None:
        return None
    if now < due:
        return None
    act_end = document.end or document.start
    assert act_end is not None
    return Flag(
        FlagKind.FILING_OVERDUE,
        document.document_id,
        case_id=document.case_id,
        details={
            "document_kind": document.kind,
            "act_end": _iso(act_end),
            "due": _iso(due),
            "window_days": window.days,
            "reason": "no footage linked and filed within the filing window after the act (R8)",
        },
    )


@dataclass(frozen=True)
class ClipFacts:
    clip_id: int
    is_media: bool
    linked_case_ids: tuple[int, ...]
    late_handover: bool
    recording_end: datetime | None
    handed_over_at: datetime | None


def clip_flags(clip: ClipFacts) -> list[Flag]:
    """R1 and unassigned footage for one clip."""
    flags: list[Flag] = []
    if clip.late_handover:
        details: dict[str, Any] = {}
        if clip.recording_end is not None:
            details["recording_end"] = _iso(clip.recording_end)
        if clip.handed_over_at is not None:
            details["handed_over_at"] = _iso(clip.handed_over_at)
        if clip.recording_end is not None and clip.handed_over_at is not None:
            details["hours_after_recording"] = round(
                (clip.handed_over_at - clip.recording_end).total_seconds() / 3600, 2
            )
        flags.append(Flag(FlagKind.LATE_HANDOVER, clip_id=clip.clip_id, details=details))
    if clip.is_media and not clip.linked_case_ids:
        flags.append(
            Flag(FlagKind.UNASSIGNED_FOOTAGE, clip_id=clip.clip_id, details={"reason": "linked to no case"})
        )
    return flags


@dataclass(frozen=True)
class FlagDiff:
    open: list[Flag]
    update: list[Flag]  # same flag, new numbers
    clear: list[tuple[str, int | None, int | None]]


def diff_flags(
    currently_open: dict[tuple[str, int | None, int | None], dict[str, Any]], computed: Iterable[Flag]
) -> FlagDiff:
    """Flags to open, to update and to clear so that open flags equal the computed ones."""
    wanted = {flag.key: flag for flag in computed}
    return FlagDiff(
        open=[flag for key, flag in wanted.items() if key not in currently_open],
        update=[
            flag
            for key, flag in wanted.items()
            if key in currently_open and currently_open[key] != flag.details
        ],
        clear=[key for key in currently_open if key not in wanted],
    )
