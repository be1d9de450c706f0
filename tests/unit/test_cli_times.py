"""Issue 17, item 5: every time given on the command line without a zone is read in the station's zone
(settings.timezone), as the README says; `Z` and offsets are taken as written."""

from __future__ import annotations

from datetime import UTC, datetime

import click
import pytest

from entrypoints.cli.support import parse_time


@pytest.mark.parametrize(
    ("text", "zone", "utc"),
    [
        ("2026-09-03T12:00", "Asia/Shanghai", datetime(2026, 9, 3, 4, 0, tzinfo=UTC)),
        ("2026-09-03T12:00:30", "Asia/Shanghai", datetime(2026, 9, 3, 4, 0, 30, tzinfo=UTC)),
        ("2026-09-03", "Asia/Shanghai", datetime(2026, 9, 2, 16, 0, tzinfo=UTC)),
        ("2026-09-03T12:00", "Europe/Berlin", datetime(2026, 9, 3, 10, 0, tzinfo=UTC)),
        ("2026-09-03T12:00Z", "Asia/Shanghai", datetime(2026, 9, 3, 12, 0, tzinfo=UTC)),
        ("2026-09-03T12:00+02:00", "Asia/Shanghai", datetime(2026, 9, 3, 10, 0, tzinfo=UTC)),
    ],
)
def test_a_time_without_a_zone_is_in_the_stations_zone(text: str, zone: str, utc: datetime) -> None:
    moment = parse_time(text, zone, option="--now")
    assert moment == utc and moment.tzinfo is UTC


def test_nothing_given_is_no_time() -> None:
    assert parse_time(None, "Asia/Shanghai", option="--now") is None


def test_a_bad_time_is_a_clear_usage_error() -> None:
    with pytest.raises(click.BadParameter, match=r"not an ISO 8601 time.*Asia/Shanghai"):
        parse_time("3 Sept", "Asia/Shanghai", option="--now")
