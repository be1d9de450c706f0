"""R9/R10 retention decisions with a fixed `now`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evidence_store.domain.model import RetentionAction, RetentionPeriod
from retention.policy import (
    CaseFacts,
    ClipFacts,
    LinkFacts,
    PolicyError,
    RetentionSettings,
    Rule,
    add_months,
    decide,
    decide_one,
)

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
DAY = timedelta(days=1)
SETTINGS = RetentionSettings()


def months_before(months: int, now: datetime = NOW) -> datetime:
    return add_months(now, -months)


def keep(decision) -> bool:
    return decision.action is RetentionAction.KEEP


def test_calendar_months_clamp_to_the_end_of_the_month() -> None:
    assert add_months(datetime(2026, 8, 31, 10, tzinfo=UTC), 6) == datetime(2027, 2, 28, 10, tzinfo=UTC)
    assert add_months(datetime(2027, 8, 31, tzinfo=UTC), 6) == datetime(2028, 2, 29, tzinfo=UTC)
    assert add_months(datetime(2026, 11, 24, tzinfo=UTC), -6) == datetime(2026, 5, 24, tzinfo=UTC)
    assert add_months(datetime(2016, 2, 29, tzinfo=UTC), 120) == datetime(2026, 2, 28, tzinfo=UTC)


def test_non_evidence_six_months_minus_a_day_is_kept_plus_a_day_is_deleted() -> None:
    younger = decide_one(ClipFacts(1, months_before(6) + DAY), [], {}, SETTINGS, NOW)
    older = decide_one(ClipFacts(2, months_before(6) - DAY), [], {}, SETTINGS, NOW)
    exactly = decide_one(ClipFacts(3, months_before(6)), [], {}, SETTINGS, NOW)
    assert keep(younger) and younger.rule is Rule.NON_EVIDENCE
    assert younger.earliest_delete_at == NOW + DAY
    assert not keep(older) and older.rule is Rule.NON_EVIDENCE
    assert not keep(exactly)  # from the instant six calendar months have passed


def evidence_case(archived: datetime | None, period: RetentionPeriod, hold: bool = False) -> CaseFacts:
    return CaseFacts(10, "行政处罚", archived, period, legal_hold=hold)


def test_evidence_lives_as_long_as_its_case_file() -> None:
    old_clip = ClipFacts(1, months_before(150))
    link = [LinkFacts(1, 10, is_evidence=True)]
    nine_years = decide_one(
        old_clip, link, {10: evidence_case(months_before(108), RetentionPeriod.YEARS_10)}, SETTINGS, NOW
    )
    assert keep(nine_years) and nine_years.rule is Rule.EVIDENCE_CASE_FILE
    ten_and_a_day = decide_one(
        old_clip, link, {10: evidence_case(months_before(120) - DAY, RetentionPeriod.YEARS_10)}, SETTINGS, NOW
    )
    assert not keep(ten_and_a_day) and ten_and_a_day.rule is Rule.EVIDENCE_CASE_FILE
    thirty = decide_one(
        old_clip, link, {10: evidence_case(months_before(121), RetentionPeriod.YEARS_30)}, SETTINGS, NOW
    )
    assert keep(thirty)
    permanent = decide_one(
        old_clip, link, {10: evidence_case(months_before(900), RetentionPeriod.PERMANENT)}, SETTINGS, NOW
    )
    assert (
        keep(permanent) and permanent.rule is Rule.EVIDENCE_PERMANENT and permanent.earliest_delete_at is None
    )
    open_case = decide_one(old_clip, link, {10: evidence_case(None, RetentionPeriod.YEARS_10)}, SETTINGS, NOW)
    assert keep(open_case) and open_case.rule is Rule.EVIDENCE_OPEN_CASE


def test_a_link_that_is_not_evidence_does_not_extend() -> None:
    decision = decide_one(
        ClipFacts(1, months_before(7)),
        [LinkFacts(1, 10, is_evidence=False)],
        {10: evidence_case(None, RetentionPeriod.PERMANENT)},
        SETTINGS,
        NOW,
    )
    assert not keep(decision)


@pytest.mark.parametrize(
    ("facts", "rule"),
    [
        (ClipFacts(1, months_before(100), legal_hold=True), Rule.HOLD_LEGAL_CLIP),
        (ClipFacts(1, months_before(100), export_pending=True), Rule.HOLD_EXPORT),
        (ClipFacts(1, months_before(100), processing_failed=True), Rule.HOLD_PROCESSING),
        (ClipFacts(1, months_before(100), open_flag=True), Rule.HOLD_FLAG),
        (ClipFacts(1, months_before(100), under_review=True), Rule.HOLD_REVIEW),
    ],
)
def test_holds_win_whatever_the_age(facts: ClipFacts, rule: Rule) -> None:
    decision = decide_one(facts, [], {}, SETTINGS, NOW)
    assert keep(decision) and decision.rule is rule and decision.earliest_delete_at is None


def test_a_hold_on_a_linked_case_wins() -> None:
    decision = decide_one(
        ClipFacts(1, months_before(100)),
        [LinkFacts(1, 10, is_evidence=False)],
        {10: evidence_case(months_before(200), RetentionPeriod.YEARS_10, hold=True)},
        SETTINGS,
        NOW,
    )
    assert keep(decision) and decision.rule is Rule.HOLD_LEGAL_CASE


def test_the_longest_period_wins_and_categories_can_only_raise_it() -> None:
    settings = RetentionSettings(months_by_category={"行政处罚": 24})
    linked = decide_one(
        ClipFacts(1, months_before(12)),
        [LinkFacts(1, 10, is_evidence=False)],
        {10: evidence_case(None, RetentionPeriod.YEARS_10)},
        settings,
        NOW,
    )
    assert keep(linked) and linked.earliest_delete_at == add_months(months_before(12), 24)
    unlinked = decide_one(ClipFacts(2, months_before(12)), [], {}, settings, NOW)
    assert not keep(unlinked)


@pytest.mark.parametrize("months", [0, 3, 5])
def test_a_period_below_six_months_is_refused(months: int) -> None:
    with pytest.raises(PolicyError, match="below the legal minimum of 6 months"):
        RetentionSettings(non_evidence_months=months)
    with pytest.raises(PolicyError, match="category"):
        RetentionSettings(months_by_category={"行政检查": months})


def test_a_recorded_floor_is_never_shortened() -> None:
    floor = NOW + 365 * DAY
    decision = decide_one(ClipFacts(1, months_before(12), floor=floor), [], {}, SETTINGS, NOW)
    assert keep(decision) and decision.rule is Rule.FLOOR and decision.earliest_delete_at == floor
    later = decide_one(ClipFacts(1, months_before(12), floor=floor), [], {}, SETTINGS, floor)
    assert not keep(later)


def test_unknown_recording_time_is_kept() -> None:
    assert keep(decide_one(ClipFacts(1, None), [], {}, SETTINGS, NOW))


def test_policy_version_names_the_settings() -> None:
    assert SETTINGS.version == RetentionSettings().version
    assert SETTINGS.version != RetentionSettings(non_evidence_months=7).version


@given(
    age_days=st.integers(0, 20_000),
    evidence=st.booleans(),
    archived_days_ago=st.one_of(st.none(), st.integers(0, 20_000)),
    period=st.sampled_from(list(RetentionPeriod)),
    hold=st.booleans(),
)
def test_never_deleted_before_six_months_or_while_evidence_of_a_live_case_file(
    age_days: int, evidence: bool, archived_days_ago: int | None, period: RetentionPeriod, hold: bool
) -> None:
    ended = NOW - age_days * DAY
    archived = NOW - archived_days_ago * DAY if archived_days_ago is not None else None
    [decision] = decide(
        [ClipFacts(1, ended, legal_hold=hold)],
        [LinkFacts(1, 10, evidence)],
        {10: CaseFacts(10, "行政检查", archived, period)},
        SETTINGS,
        NOW,
    )
    if decision.action is RetentionAction.DELETE:
        assert not hold
        assert add_months(ended, 6) <= NOW
        if evidence:
            assert archived is not None and period is not RetentionPeriod.PERMANENT
            assert add_months(archived, 120 if period is RetentionPeriod.YEARS_10 else 360) <= NOW
