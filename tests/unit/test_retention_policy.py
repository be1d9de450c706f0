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
    Shortening,
    ShorteningAuthorisation,
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
        (ClipFacts(1, months_before(100), disclosure_pending=True), Rule.HOLD_DISCLOSURE),
        (ClipFacts(1, months_before(100), processing_failed=True), Rule.HOLD_PROCESSING),
        (ClipFacts(1, months_before(100), flag_under_review=True), Rule.HOLD_FLAG),
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


def test_unknown_recording_time_counts_from_the_handover() -> None:
    handed_over = months_before(6)
    kept = decide_one(ClipFacts(1, None, handed_over_at=handed_over + DAY), [], {}, SETTINGS, NOW)
    assert keep(kept) and kept.rule is Rule.NON_EVIDENCE
    assert kept.earliest_delete_at == add_months(handed_over + DAY, 6)
    assert "handover" in kept.reasons[0]
    gone = decide_one(ClipFacts(1, None, handed_over_at=handed_over), [], {}, SETTINGS, NOW)
    assert not keep(gone)


def test_an_open_flag_about_the_past_is_no_hold() -> None:
    """Issue 17: a late handover (R1) is reported in the reasons, and the clip goes at 6 months."""
    decision = decide_one(ClipFacts(1, months_before(6), late_handover=True), [], {}, SETTINGS, NOW)
    assert not keep(decision) and decision.rule is Rule.NON_EVIDENCE
    assert any("R1" in reason for reason in decision.reasons)


@pytest.mark.parametrize(
    ("window_days", "kept_until"),
    [(30, add_months(NOW, 6)), (240, NOW + 240 * DAY)],
)
def test_unassigned_footage_is_kept_to_the_later_of_the_filing_window_and_six_months(
    window_days: int, kept_until: datetime
) -> None:
    settings = RetentionSettings(filing_window_days=window_days)
    decision = decide_one(ClipFacts(1, NOW, unassigned=True), [], {}, settings, NOW + 29 * DAY)
    assert keep(decision) and decision.earliest_delete_at == kept_until
    assert any("R8" in reason for reason in decision.reasons)
    assert not keep(decide_one(ClipFacts(1, NOW, unassigned=True), [], {}, settings, kept_until))


def test_a_filing_window_must_be_a_window() -> None:
    with pytest.raises(PolicyError, match="filing window"):
        RetentionSettings(filing_window_days=0)
    assert RetentionSettings(filing_window_days=60).version != SETTINGS.version


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


# -- audited shortening (R9, R10): a decided date is only lowered under a recorded authorisation ----------


def shorten(
    clip_id: int = 1, *, clip: int | None = None, case: int | None = None, rule: str | None = None
) -> ShorteningAuthorisation:
    return ShorteningAuthorisation(clip_id * 100, "case file reviewed", clip_id=clip, case_id=case, rule=rule)


def test_a_lowered_category_period_keeps_the_earlier_date_until_authorised() -> None:
    ended = months_before(8)
    twelve = add_months(ended, 12)  # decided while the category had 12 months; now 6 apply
    clip = ClipFacts(1, ended, floor=twelve, floor_rule=Rule.NON_EVIDENCE.value)
    unapproved = decide_one(clip, [], {}, SETTINGS, NOW)
    assert keep(unapproved) and unapproved.rule is Rule.FLOOR and unapproved.earliest_delete_at == twelve
    assert unapproved.shortening == Shortening(twelve, add_months(ended, 6), None)
    approved = decide_one(clip, [], {}, SETTINGS, NOW, [shorten(clip=1)])
    assert not keep(approved) and approved.rule is Rule.NON_EVIDENCE
    assert approved.earliest_delete_at == add_months(ended, 6)
    assert approved.shortening == Shortening(twelve, add_months(ended, 6), 100)
    assert any("under authorisation 100: case file reviewed" in r for r in approved.reasons)


def test_a_case_period_changed_from_30_to_10_years_needs_that_case_authorised() -> None:
    archived = months_before(132)  # 11 years ago: 10 years have passed, 30 have not
    thirty = add_months(archived, 360)
    clip = ClipFacts(
        1, months_before(150), floor=thirty, floor_rule=Rule.EVIDENCE_CASE_FILE.value, floor_case_id=10
    )
    link = [LinkFacts(1, 10, is_evidence=True)]
    now_ten = {10: evidence_case(archived, RetentionPeriod.YEARS_10)}
    kept = decide_one(clip, link, now_ten, SETTINGS, NOW)
    assert keep(kept) and kept.rule is Rule.FLOOR and kept.earliest_delete_at == thirty
    assert kept.case_id == 10 and kept.shortening is not None and kept.shortening.authorisation_id is None
    other_case = decide_one(clip, link, now_ten, SETTINGS, NOW, [shorten(case=11)])
    assert keep(other_case) and other_case.earliest_delete_at == thirty
    by_rule_of_another_kind = decide_one(
        clip, link, now_ten, SETTINGS, NOW, [shorten(rule=Rule.NON_EVIDENCE.value)]
    )
    assert keep(by_rule_of_another_kind)
    this_case = decide_one(clip, link, now_ten, SETTINGS, NOW, [shorten(case=10)])
    assert not keep(this_case) and this_case.rule is Rule.EVIDENCE_CASE_FILE
    assert this_case.earliest_delete_at == add_months(archived, 120) and this_case.case_id == 10
    by_rule = decide_one(clip, link, now_ten, SETTINGS, NOW, [shorten(rule=Rule.EVIDENCE_CASE_FILE.value)])
    assert not keep(by_rule)


def test_a_permanent_case_file_changed_to_10_years_needs_that_case_authorised() -> None:
    archived = months_before(132)  # 11 years ago: a 10-year period has passed
    link = [LinkFacts(1, 10, is_evidence=True)]
    permanent = decide_one(
        ClipFacts(1, months_before(150)),
        link,
        {10: evidence_case(archived, RetentionPeriod.PERMANENT)},
        SETTINGS,
        NOW,
    )
    # the permanent keep names its rule and case: the run records them as the clip's floor
    assert keep(permanent) and permanent.rule is Rule.EVIDENCE_PERMANENT and permanent.case_id == 10
    assert permanent.earliest_delete_at is None
    clip = ClipFacts(1, months_before(150), floor_rule=Rule.EVIDENCE_PERMANENT.value, floor_case_id=10)
    now_ten = {10: evidence_case(archived, RetentionPeriod.YEARS_10)}
    kept = decide_one(clip, link, now_ten, SETTINGS, NOW)
    assert keep(kept) and kept.rule is Rule.FLOOR and kept.earliest_delete_at is None
    assert kept.shortening == Shortening(None, add_months(archived, 120), None)
    assert any("kept it permanently; shortening needs approval" in r for r in kept.reasons)
    # years later, still kept without an authorisation
    assert keep(decide_one(clip, link, now_ten, SETTINGS, add_months(NOW, 600)))
    assert keep(decide_one(clip, link, now_ten, SETTINGS, NOW, [shorten(case=11)]))
    authorised = decide_one(clip, link, now_ten, SETTINGS, NOW, [shorten(case=10)])
    assert not keep(authorised) and authorised.rule is Rule.EVIDENCE_CASE_FILE
    assert authorised.earliest_delete_at == add_months(archived, 120)
    assert authorised.shortening == Shortening(None, add_months(archived, 120), 100)
    # the evidence mark taken away: the clip falls to the 6-month rule, still a shortening
    unmarked = decide_one(clip, [LinkFacts(1, 10, is_evidence=False)], now_ten, SETTINGS, NOW)
    assert keep(unmarked) and unmarked.rule is Rule.FLOOR


def test_an_authorised_shortening_still_takes_the_longest_current_period() -> None:
    archived = months_before(132)
    clip = ClipFacts(
        1,
        months_before(150),
        floor=add_months(archived, 360),
        floor_rule=Rule.EVIDENCE_CASE_FILE.value,
        floor_case_id=10,
    )
    links = [LinkFacts(1, 10, is_evidence=True), LinkFacts(1, 11, is_evidence=True)]
    later = months_before(60)
    both = {
        10: evidence_case(archived, RetentionPeriod.YEARS_10),
        11: CaseFacts(11, "行政检查", later, RetentionPeriod.YEARS_10),
    }
    decision = decide_one(clip, links, both, SETTINGS, NOW, [shorten(case=10)])
    assert keep(decision) and decision.earliest_delete_at == add_months(later, 120) and decision.case_id == 11


def test_the_six_month_minimum_is_never_undercut_even_when_authorised() -> None:
    ended = months_before(4)
    clip = ClipFacts(1, ended, floor=add_months(ended, 24), floor_rule=Rule.NON_EVIDENCE.value)
    decision = decide_one(clip, [], {}, SETTINGS, NOW, [shorten(clip=1)])
    assert keep(decision) and decision.earliest_delete_at == add_months(ended, 6)
    assert not keep(decide_one(clip, [], {}, SETTINGS, add_months(ended, 6), [shorten(clip=1)]))
    assert keep(decide_one(clip, [], {}, SETTINGS, add_months(ended, 6) - DAY, [shorten(clip=1)]))


def test_an_authorisation_never_beats_a_hold_nor_lengthens_a_date() -> None:
    ended = months_before(30)
    held = ClipFacts(1, ended, legal_hold=True, floor=add_months(ended, 24), floor_rule="non_evidence")
    decision = decide_one(held, [], {}, SETTINGS, NOW, [shorten(clip=1)])
    assert keep(decision) and decision.rule is Rule.HOLD_LEGAL_CLIP and decision.shortening is None
    # a floor at or before the policy's own date is no shortening: the policy's date and rule stand
    short_floor = ClipFacts(2, months_before(2), floor=NOW - DAY, floor_rule=Rule.NON_EVIDENCE.value)
    plain = decide_one(short_floor, [], {}, SETTINGS, NOW, [shorten(2, clip=2)])
    assert keep(plain) and plain.rule is Rule.NON_EVIDENCE and plain.shortening is None
    assert plain.earliest_delete_at == add_months(months_before(2), 6)


@pytest.mark.parametrize(
    "scopes",
    [{}, {"clip_id": 1, "case_id": 2}, {"case_id": 2, "rule": "non_evidence:minimum_period"}],
)
def test_an_authorisation_names_exactly_one_scope(scopes: dict) -> None:
    with pytest.raises(PolicyError, match="exactly one"):
        ShorteningAuthorisation(1, "reason", **scopes)


def test_an_authorisation_needs_a_reason() -> None:
    with pytest.raises(PolicyError, match="reason"):
        ShorteningAuthorisation(1, "  ", clip_id=1)


@given(
    age_days=st.integers(0, 2_000),
    floor_days=st.integers(-1_000, 20_000),
    category_months=st.integers(6, 60),
    authorised=st.booleans(),
    now_days=st.integers(0, 3_000),
)
def test_never_deleted_before_six_months_nor_before_an_unauthorised_floor(
    age_days: int, floor_days: int, category_months: int, authorised: bool, now_days: int
) -> None:
    ended = NOW - age_days * DAY
    floor = ended + floor_days * DAY
    settings = RetentionSettings(months_by_category={"行政检查": category_months})
    clip = ClipFacts(1, ended, floor=floor, floor_rule=Rule.NON_EVIDENCE.value)
    links = [LinkFacts(1, 10, is_evidence=False)]
    cases = {10: CaseFacts(10, "行政检查", None, RetentionPeriod.YEARS_10)}
    at = NOW + now_days * DAY
    decision = decide_one(clip, links, cases, settings, at, [shorten(clip=1)] if authorised else [])
    assert decision.earliest_delete_at is not None
    assert decision.earliest_delete_at >= add_months(ended, 6)
    assert decision.earliest_delete_at >= add_months(ended, category_months)
    if not authorised:
        assert decision.earliest_delete_at >= floor
    if decision.action is RetentionAction.DELETE:
        assert at >= add_months(ended, 6) and at >= add_months(ended, category_months)
        assert authorised or at >= floor


def test_a_floor_whose_own_date_has_passed_is_no_shortening() -> None:
    ended = months_before(30)
    two_years = add_months(ended, 24)  # decided while the category had 24 months; now 6 apply
    clip = ClipFacts(1, ended, floor=two_years, floor_rule=Rule.NON_EVIDENCE.value)
    decision = decide_one(clip, [], {}, SETTINGS, NOW)
    # the earlier, longer date has come as well: the clip goes, and no approval is asked for
    assert not keep(decision) and decision.rule is Rule.FLOOR and decision.earliest_delete_at == two_years
    assert decision.shortening is None
    # nor is an authorisation that covers it spent on it (no shortening to audit)
    authorised = decide_one(clip, [], {}, SETTINGS, NOW, [shorten(clip=1)])
    assert not keep(authorised) and authorised.shortening is None
    assert authorised.earliest_delete_at == two_years
    # the day before the floor's date it is still a shortening that needs approval
    before = decide_one(clip, [], {}, SETTINGS, two_years - DAY)
    assert keep(before) and before.shortening == Shortening(two_years, add_months(ended, 6), None)
