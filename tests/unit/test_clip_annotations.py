"""Markers and tags on clips (issue 19 item 3) as pure rules: what a tag or a marker may be, how a
moment of a clip reads, and the markers drawn on the case timeline."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from evidence_store.cases.timeline import TimelineClip, TimelineLane, render_timeline
from evidence_store.domain.access import Permission, Role, roles_with
from evidence_store.domain.annotations import (
    MAX_NOTE_CHARS,
    MAX_TAG_CHARS,
    MarkerOutsideClip,
    check_marker,
    normalise_tag,
    tag_key,
)
from evidence_store.errors import InputError
from web.readable import clip_clock


def test_a_tag_has_one_spelling() -> None:
    assert normalise_tag("  Hot   Kitchen ") == "hot kitchen"
    assert normalise_tag("ＡＢＣ１２") == "abc12"  # full-width letters and digits, as an IME types them
    assert normalise_tag("后厨 卫生") == "后厨 卫生"


@pytest.mark.parametrize("bad", ["", "   ", "a,b", "a，b", "bell\x07x", "c1\x9fx", "x" * (MAX_TAG_CHARS + 1)])
def test_a_tag_that_cannot_be_one_is_refused(bad: str) -> None:
    with pytest.raises(InputError):
        normalise_tag(bad)


def test_a_marker_is_a_moment_inside_the_clip_with_a_note() -> None:
    marker = check_marker(12.34567, "  门口有人阻挠  ", duration_s=60.0)
    assert marker.offset_s == 12.346 and marker.note == "门口有人阻挠"
    assert check_marker(60.3, "at the very end", duration_s=60.0).offset_s == 60.3  # a frame of slack
    assert check_marker(3600, "duration unknown", duration_s=None).offset_s == 3600


@pytest.mark.parametrize(
    ("offset", "note", "duration"),
    [
        (-1.0, "before the start", 60.0),
        (float("nan"), "no moment", 60.0),
        (5.0, "   ", 60.0),
        (5.0, "x" * (MAX_NOTE_CHARS + 1), 60.0),
    ],
)
def test_a_marker_outside_the_clip_or_without_a_note_is_refused(
    offset: float, note: str, duration: float
) -> None:
    with pytest.raises(InputError):
        check_marker(offset, note, duration_s=duration)


def test_a_marker_after_the_end_of_the_clip_conflicts_with_the_clip() -> None:
    with pytest.raises(MarkerOutsideClip, match=r"lasts 60\.0 s"):
        check_marker(61.0, "after the end", duration_s=60.0)


def test_a_search_for_a_tag_spells_it_as_stored_and_never_refuses() -> None:
    assert tag_key("  ＫＩＴＣＨＥＮ\u3000Hygiene ") == "kitchen hygiene"
    assert tag_key("a,b") == "a,b"  # no clip carries it: the search finds nothing


def test_a_moment_of_a_clip_reads_as_a_player_shows_it() -> None:
    assert clip_clock(0) == "0:00"
    assert clip_clock(90) == "1:30"
    assert clip_clock(90.5) == "1:30.5"
    assert clip_clock(3725.04) == "1:02:05"
    assert clip_clock(None) == ""


def test_who_may_annotate() -> None:
    assert roles_with(Permission.CLIP_ANNOTATE) == [Role.CUSTODIAN, Role.INVESTIGATOR, Role.SUPERVISOR]


def test_markers_are_drawn_on_the_case_timeline_at_their_corrected_moment() -> None:
    start = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    clip = TimelineClip(
        clip_id=7, start=start, end=datetime(2026, 3, 2, 1, 10, tzinfo=UTC), markers=((300.0, "拒绝签字"),)
    )
    svg = render_timeline("case", [TimelineLane("1001", clips=(clip,))], UTC, zone_name="UTC")
    assert svg.count('class="marker"') == 1
    assert "拒绝签字" in svg and "+0:05:00" in svg
    bare = render_timeline(
        "case", [TimelineLane("1001", clips=(TimelineClip(clip_id=7, start=start, end=None),))], UTC
    )
    assert 'class="marker"' not in bare
