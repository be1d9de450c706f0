"""When footage must be off the recorder (R1): 24 hours by local rule, or 2 working days nationally."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo


class DeadlineMode(enum.StrEnum):
    HOURS = "hours"  # a fixed number of hours after the recording ended (金普 第二十八条: 24)
    WORKING_DAYS = "working_days"  # by the end of the Nth working day after (national 第十五条: 2)


@dataclass(frozen=True)
class WorkCalendar:
    """Weekends are rest days except listed make-up working days (调休); listed holidays are rest days."""

    holidays: frozenset[date] = field(default_factory=frozenset)
    extra_working_days: frozenset[date] = field(default_factory=frozenset)

    def is_working_day(self, day: date) -> bool:
        if day in self.extra_working_days:
            return True
        if day in self.holidays:
            return False
        return day.weekday() < 5


@dataclass(frozen=True)
class HandoverRule:
    mode: DeadlineMode = DeadlineMode.HOURS
    hours: int = 24
    working_days: int = 2
    calendar: WorkCalendar = field(default_factory=WorkCalendar)


def handover_deadline(recording_ended: datetime, rule: HandoverRule, zone: tzinfo) -> datetime:
    """R1: the latest moment the footage may reach the store.

    In hours mode, `hours` after the recording ended. In working-days mode, the end of the
    `working_days`-th working day after the day the recording ended (local time in `zone`), so a
    recording on Friday evening before a holiday week is due at the end of the second working day after.
    """
    if rule.mode is DeadlineMode.HOURS:
        return recording_ended + timedelta(hours=rule.hours)
    day = recording_ended.astimezone(zone).date()
    remaining = rule.working_days
    while remaining:
        day += timedelta(days=1)
        if rule.calendar.is_working_day(day):
            remaining -= 1
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)


def is_late(
    recording_ended: datetime | None, handed_over: datetime, rule: HandoverRule, zone: tzinfo
) -> bool:
    """R1: handed over after the deadline. Unknown end times are not called late (nothing to measure)."""
    if recording_ended is None:
        return False
    return handed_over > handover_deadline(recording_ended, rule, zone)


def parse_calendar(data: dict[str, list[str]]) -> WorkCalendar:
    """A holiday calendar from plain data: {"holidays": ["2026-10-01", ...], "working_days": [...]}."""
    unknown = set(data) - {"holidays", "working_days"}
    if unknown:
        raise ValueError(f"unknown keys in holiday calendar: {', '.join(sorted(unknown))}")
    return WorkCalendar(
        holidays=frozenset(date.fromisoformat(d) for d in data.get("holidays", [])),
        extra_working_days=frozenset(date.fromisoformat(d) for d in data.get("working_days", [])),
    )
