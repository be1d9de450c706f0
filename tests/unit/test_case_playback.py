"""Synchronised playback of a case (issue 19 item 2) as a pure plan: clips placed by corrected time,
unknown clocks apart, documents' edges as jump points."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from evidence_store.domain.case_playback import PlaybackClip, placeable, playback_plan

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


def clip(
    clip_id: int, start_s: float | None, length_s: float = 60, clock: str = "measured", playable: bool = True
) -> PlaybackClip:
    start = T0 + timedelta(seconds=start_s) if start_s is not None else None
    end = start + timedelta(seconds=length_s) if start is not None else None
    return PlaybackClip(clip_id, "1001", f"c{clip_id}.mp4", start, end, clock, playable)


def test_clips_are_placed_by_corrected_start_and_unknown_clocks_are_apart() -> None:
    plan = playback_plan(
        [
            clip(2, 30),
            clip(1, 0, 45),
            clip(3, 10, clock="unknown"),
            clip(4, 5, playable=False),
            clip(5, 20, clock="drifting"),
        ],
        [("DOC-1", T0 + timedelta(seconds=40), T0 + timedelta(seconds=200))],
    )
    assert plan.start == T0 and plan.length_s == 90
    assert [(p.clip.clip_id, p.offset_s, p.duration_s) for p in plan.placed] == [(1, 0, 45), (2, 30, 60)]
    assert [c.clip_id for c in plan.apart] == [3, 5]  # never guessed onto the line; 4 has no proxy
    # the document's start is within the span, its end (200 s) is not
    assert [(j.document, j.edge, j.at_s) for j in plan.jumps] == [("DOC-1", "start", 40)]


def test_nothing_placed_without_a_measured_clock() -> None:
    plan = playback_plan([clip(1, 0, clock="unknown")], [("D", T0, T0)])
    assert plan.start is None and plan.placed == () and [c.clip_id for c in plan.apart] == [1]
    assert plan.jumps == ()


def test_a_clip_needs_both_corrected_ends_to_be_placed() -> None:
    assert placeable(clip(1, 0))
    assert not placeable(PlaybackClip(1, "x", "x", T0, None, "measured", True))
    assert not placeable(PlaybackClip(1, "x", "x", T0, T0 - timedelta(seconds=1), "measured", True))
