"""Export request items as the CLI and the service accept them (pure)."""

from __future__ import annotations

import pytest

from evidence_store.errors import InputError
from evidence_store.export.workflow import has_segment, normalise_item, parse_clip_spec, parse_time


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("90.5", 90.5), ("1:30", 90.0), ("00:01:30.25", 90.25), ("2:00:00", 7200.0)],
)
def test_times(text: str, seconds: float) -> None:
    assert parse_time(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "1:2:3:4", "-5", "1,5"])
def test_bad_times(text: str) -> None:
    with pytest.raises(InputError):
        parse_time(text)


def test_clip_specs() -> None:
    assert parse_clip_spec("12") == {"clip_id": 12}
    assert parse_clip_spec("12@65-90") == {"clip_id": 12, "start_s": 65.0, "end_s": 90.0, "cut": "exact"}
    assert parse_clip_spec("12@00:01:05-00:01:30", cut="keyframe") == {
        "clip_id": 12,
        "start_s": 65.0,
        "end_s": 90.0,
        "cut": "keyframe",
    }
    assert parse_clip_spec("3@10-", disclosure=True) == {
        "clip_id": 3,
        "start_s": 10.0,
        "cut": "exact",
        "disclosure": True,
    }
    assert parse_clip_spec("3", disclosure=True) == {"clip_id": 3, "disclosure": True}
    assert has_segment(parse_clip_spec("3@-20")) and not has_segment(parse_clip_spec("3"))


@pytest.mark.parametrize("text", ["x", "12@", "12@5", "12@30-10", "@1-2", "0"])
def test_bad_clip_specs(text: str) -> None:
    with pytest.raises(InputError):
        parse_clip_spec(text)


def test_items_are_checked() -> None:
    with pytest.raises(InputError, match="unknown item fields"):
        normalise_item({"clip_id": 1, "foo": 2})
    with pytest.raises(InputError, match="positive integer"):
        normalise_item({"clip_id": True})
    with pytest.raises(InputError, match="cut must be"):
        normalise_item({"clip_id": 1, "start_s": 1, "cut": "fast"})
    with pytest.raises(InputError, match=">= 0"):
        normalise_item({"clip_id": 1, "start_s": -1})
    # no segment: no cut mode is kept
    assert normalise_item({"clip_id": 4, "cut": "keyframe"}) == {"clip_id": 4}
