"""Device clock correction (R4, R5) and handover deadlines (R1), over plain values."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from evidence_store.domain.device_clock import ClockReading, measure_offset, place_in_time
from evidence_store.domain.handover import (
    DeadlineMode,
    HandoverRule,
    handover_deadline,
    is_late,
    parse_calendar,
)
from evidence_store.domain.model import ClockStatus

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_offset_is_device_minus_station() -> None:
    station = datetime(2026, 11, 24, 8, 0, 0, tzinfo=UTC)  # 16:00 in Shanghai
    assert measure_offset(datetime(2026, 11, 24, 16, 1, 30), station, SHANGHAI) == 90.0
    assert measure_offset(datetime(2026, 11, 24, 15, 59, 0), station, SHANGHAI) == -60.0


def test_a_fast_clock_is_corrected_and_device_times_are_kept() -> None:
    start, end = datetime(2026, 11, 24, 9, 30, 0), datetime(2026, 11, 24, 9, 45, 0)
    placed = place_in_time(start, end, ClockReading(90.0), SHANGHAI)
    assert placed.utc_start == datetime(2026, 11, 24, 1, 28, 30, tzinfo=UTC)
    assert placed.utc_end == datetime(2026, 11, 24, 1, 43, 30, tzinfo=UTC)
    assert placed.clock_status is ClockStatus.MEASURED
    assert placed.warnings == ()


def test_an_unknown_clock_is_a_warning_not_a_guess() -> None:
    placed = place_in_time(datetime(2026, 11, 24, 9, 30), None, ClockReading(None), SHANGHAI)
    assert placed.clock_status is ClockStatus.UNKNOWN
    assert placed.utc_start == datetime(2026, 11, 24, 1, 30, tzinfo=UTC)
    assert placed.utc_end is None
    assert [w.code for w in placed.warnings] == ["clock_unknown"]


def test_a_drifting_clock_is_flagged_with_both_offsets() -> None:
    placed = place_in_time(
        datetime(2026, 11, 24, 9, 30), None, ClockReading(200.0, previous_offset_s=20.0), SHANGHAI
    )
    assert placed.clock_status is ClockStatus.DRIFTING
    drift = [w for w in placed.warnings if w.code == "clock_drifting"]
    assert drift
    assert "+180 s" in drift[0].message


def test_drift_within_tolerance_is_measured() -> None:
    placed = place_in_time(
        datetime(2026, 11, 24, 9, 30), None, ClockReading(50.0, previous_offset_s=20.0), SHANGHAI
    )
    assert placed.clock_status is ClockStatus.MEASURED


def test_a_large_offset_is_reported() -> None:
    placed = place_in_time(datetime(2026, 11, 24, 9, 30), None, ClockReading(-3600.0), SHANGHAI)
    assert [w.code for w in placed.warnings] == ["clock_offset_large"]


def test_hours_mode_deadline() -> None:
    ended = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
    rule = HandoverRule()
    assert handover_deadline(ended, rule, SHANGHAI) == datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
    assert not is_late(ended, datetime(2026, 11, 25, 1, 59, tzinfo=UTC), rule, SHANGHAI)
    assert is_late(ended, datetime(2026, 11, 25, 2, 1, tzinfo=UTC), rule, SHANGHAI)


def test_two_working_days_skip_weekends() -> None:
    # Friday 2026-11-27 at 15:00 Shanghai: due by the end of Tuesday 2026-12-01
    ended = datetime(2026, 11, 27, 7, 0, tzinfo=UTC)
    rule = HandoverRule(mode=DeadlineMode.WORKING_DAYS)
    assert handover_deadline(ended, rule, SHANGHAI) == datetime(2026, 12, 2, 0, 0, tzinfo=SHANGHAI)


def test_two_working_days_skip_holidays_and_count_make_up_days() -> None:
    calendar = parse_calendar(
        {
            "holidays": ["2026-10-01", "2026-10-02", "2026-10-05", "2026-10-06", "2026-10-07"],
            "working_days": ["2026-10-10"],
        }
    )
    rule = HandoverRule(mode=DeadlineMode.WORKING_DAYS, calendar=calendar)
    # Wednesday 30 September: 1 Oct-7 Oct off (3-4 are a weekend), 8 Oct Thursday is the first working day,
    # 9 Oct Friday the second.
    ended = datetime(2026, 9, 30, 10, 0, tzinfo=SHANGHAI)
    assert handover_deadline(ended, rule, SHANGHAI) == datetime(2026, 10, 10, 0, 0, tzinfo=SHANGHAI)
    assert calendar.is_working_day(date(2026, 10, 10))  # a Saturday made a working day (调休)


def test_unknown_end_is_never_called_late() -> None:
    assert not is_late(None, datetime(2030, 1, 1, tzinfo=UTC), HandoverRule(), SHANGHAI)


def test_calendar_rejects_unknown_keys() -> None:
    with pytest.raises(ValueError, match="unknown keys"):
        parse_calendar({"holiday": ["2026-10-01"]})
