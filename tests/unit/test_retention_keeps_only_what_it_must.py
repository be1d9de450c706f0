"""Issue 17: retention frees ordinary footage (R8, R9), on the fake station with a fixed `now`.

A compliance flag holds a clip only while it can be acted on: unassigned footage during the filing
window (R8), then the ordinary 6 months (R9); a late handover (R1) is a fact about the past, reported,
never a reason to keep; a clip under an open review is kept until the review closes. A recording
without a usable time is retained from its handover, never for ever by default.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select, update

from evidence_store.cases.flags_service import refresh_flags
from evidence_store.db.tables import clips, compliance_flags, supervision_draws, supervision_items
from evidence_store.domain.model import ClipStatus, RetentionPeriod
from evidence_store.errors import ConflictError, NotPermittedError
from evidence_store.flag_reviews import close_flag_review, open_flag_review
from retention.policy import add_months
from retention.run import run_retention
from tests.factories import add_case, add_link, add_user, store_clip
from tests.fakes import FakeStation, audit_trail, fake_station

ACT = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)  # the recording ended (the enforcement act)
DAY = timedelta(days=1)
SIX_MONTHS = add_months(ACT, 6)


def a_station() -> FakeStation:
    return fake_station(now=ACT + DAY, retention_max_delete_share=1.0)


def recorded(station: FakeStation, label: str, *, ended: datetime | None = ACT, **fields: object) -> int:
    stored = store_clip(
        station, label.encode() * 100, utc_start=ended, utc_end=ended, status=ClipStatus.READY, **fields
    )
    return stored.clip_id


def flags_refreshed(station: FakeStation, *clip_ids: int) -> set[tuple[str, int]]:
    with station.transaction() as session:
        refresh_flags(session, station, clip_ids=clip_ids)
    with station.engine.connect() as connection:
        return {
            (row.kind, row.clip_id)
            for row in connection.execute(
                select(compliance_flags.c.kind, compliance_flags.c.clip_id).where(
                    compliance_flags.c.cleared_at.is_(None)
                )
            )
        }


def would_go(station: FakeStation, now: datetime) -> set[int]:
    report = run_retention(station, now, dry_run=True)
    return {item["clip_id"] for item in report.would_delete}


def status_of(station: FakeStation, clip_id: int) -> str:
    with station.engine.connect() as connection:
        return str(connection.scalar(select(clips.c.status).where(clips.c.id == clip_id)))


def test_unassigned_footage_is_held_for_filing_then_goes_at_six_months() -> None:
    station = a_station()
    unassigned = recorded(station, "unassigned")
    assert ("unassigned_footage", unassigned) in flags_refreshed(station, unassigned)
    assert unassigned not in would_go(station, ACT + 29 * DAY)
    assert unassigned not in would_go(station, SIX_MONTHS - DAY)
    report = run_retention(station, SIX_MONTHS)
    assert report.deleted == 1
    assert status_of(station, unassigned) == "deleted"


def test_during_the_filing_window_the_dry_run_says_which_rule_holds_and_until_when() -> None:
    station = a_station()
    unassigned = recorded(station, "unassigned")
    flags_refreshed(station, unassigned)
    report = run_retention(station, ACT + 29 * DAY, dry_run=True).as_dict()
    held = {item["clip_id"]: item for item in report["held"]}
    assert held[unassigned]["rule"] == "non_evidence:minimum_period"
    assert held[unassigned]["until"] == SIX_MONTHS.isoformat()
    assert any("R8" in reason for reason in held[unassigned]["reasons"])


def test_a_filing_window_longer_than_six_months_holds_unassigned_footage_to_its_end() -> None:
    station = fake_station(now=ACT, retention_max_delete_share=1.0, retention_filing_window_days=240)
    unassigned = recorded(station, "unassigned")
    flags_refreshed(station, unassigned)
    assert unassigned not in would_go(station, SIX_MONTHS)
    assert unassigned in would_go(station, ACT + 240 * DAY)


def test_a_late_handed_over_clip_that_is_not_evidence_goes_at_six_months() -> None:
    station = a_station()
    case_id = add_case(station, "C-1", archived_at=None, retention_period=RetentionPeriod.YEARS_10)
    late = recorded(station, "late", late_handover=True)
    add_link(station, late, case_id, is_evidence=False)
    assert ("late_handover", late) in flags_refreshed(station, late)
    assert late not in would_go(station, SIX_MONTHS - DAY)
    report = run_retention(station, SIX_MONTHS)
    assert report.deleted == 1
    assert status_of(station, late) == "deleted"


def test_late_handover_of_unassigned_footage_is_no_reason_to_keep_it() -> None:
    station = a_station()
    late = recorded(station, "late and unassigned", late_handover=True)
    flags_refreshed(station, late)
    assert late in would_go(station, SIX_MONTHS)


def open_review(station: FakeStation, clip_id: int) -> int:
    with station.engine.begin() as connection:
        draw = connection.execute(
            insert(supervision_draws).values(
                kind="clip",
                seed=7,
                params={},
                population=1,
                population_sha256="0" * 64,
                sample_size=1,
                drawn_by="supervisor",
                drawn_at=ACT,
            )
        ).inserted_primary_key[0]
        item = connection.execute(
            insert(supervision_items).values(
                draw_id=draw, clip_id=clip_id, status="open", notes="", created_at=ACT
            )
        ).inserted_primary_key[0]
    return int(item)


def test_a_clip_under_an_open_review_is_kept_until_the_review_closes() -> None:
    station = a_station()
    reviewed = recorded(station, "reviewed")
    item = open_review(station, reviewed)
    flags_refreshed(station, reviewed)
    a_year_on = add_months(ACT, 12)
    report = run_retention(station, a_year_on, dry_run=True).as_dict()
    assert reviewed not in {item["clip_id"] for item in report["would_delete"]}
    assert report["kept_by_rule"] == {"hold:supervisory_review": 1}
    held = {entry["clip_id"]: entry for entry in report["held"]}
    assert held[reviewed]["until"] is None  # until the review closes: no date
    with station.engine.begin() as connection:
        connection.execute(
            update(supervision_items).where(supervision_items.c.id == item).values(status="done")
        )
    assert reviewed in would_go(station, a_year_on)


def test_a_recording_without_a_usable_time_is_retained_from_its_handover() -> None:
    station = a_station()  # the clock, and so the handover, is a day after ACT
    undated = recorded(station, "undated", ended=None)
    flags_refreshed(station, undated)
    handed_over = ACT + DAY
    assert undated not in would_go(station, add_months(handed_over, 6) - DAY)
    report = run_retention(station, add_months(handed_over, 6))
    assert report.deleted == 1
    assert status_of(station, undated) == "deleted"


def test_a_flag_under_a_supervisors_review_holds_its_clip_until_the_review_closes() -> None:
    station = a_station()
    add_user(station, "sup", "supervisor")
    add_user(station, "clerk", "custodian")
    late = recorded(station, "late, under review", late_handover=True)
    flags_refreshed(station, late)
    with station.engine.connect() as connection:
        flag_id = connection.scalar(
            select(compliance_flags.c.id).where(
                compliance_flags.c.clip_id == late, compliance_flags.c.kind == "late_handover"
            )
        )
    with pytest.raises(NotPermittedError):
        open_flag_review(station, flag_id, reason="why so late?", user="clerk")
    review = open_flag_review(station, flag_id, reason="why so late?", user="sup")
    with pytest.raises(ConflictError):
        open_flag_review(station, flag_id, reason="again", user="sup")
    a_year_on = add_months(ACT, 12)
    report = run_retention(station, a_year_on, dry_run=True).as_dict()
    assert report["kept_by_rule"] == {"hold:flag_under_review": 1}
    assert report["kept_until"] == {"hold:flag_under_review": {"next": None, "last": None}}
    close_flag_review(station, review, outcome="officer on leave; approved", user="sup")
    assert late in would_go(station, a_year_on)
    assert [e.action for e in audit_trail(station) if e.action.startswith("flag_review")] == [
        "flag_review.opened",
        "flag_review.closed",
    ]
