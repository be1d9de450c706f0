"""Issue 17, item 4: R8's filing monitor. A document needing video whose footage is not linked and filed
within the filing window (30 days after the act) is flagged by the nightly run, listed in the compliance
report with its case and on the dashboard; linking its footage, or an approved exception, clears it."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select

from evidence_store.cases.flags_service import flag_overdue_filing, refresh_flags
from evidence_store.cases.views import ReportFilter, compliance_report
from evidence_store.db.tables import compliance_flags
from evidence_store.domain.access import Role, User
from evidence_store.domain.compliance import DocumentFacts, filing_flag
from evidence_store.domain.model import RetentionPeriod
from evidence_store.queries.dashboard import dashboard
from retention.run import run_retention
from tests.factories import add_case, add_clip_row, add_document, add_link
from tests.fakes import FakeStation, fake_station

ACT = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)  # the act starts; it lasts 30 minutes
ACT_END = ACT + timedelta(minutes=30)
DAY = timedelta(days=1)
WINDOW = 30 * DAY


def test_the_rule_counts_30_days_from_the_end_of_the_act() -> None:
    document = DocumentFacts(1, 10, "现场检查笔录", True, ACT, ACT_END, has_approved_exception=False)
    assert filing_flag(document, False, ACT_END + WINDOW - timedelta(seconds=1), WINDOW) is None
    flag = filing_flag(document, False, ACT_END + WINDOW, WINDOW)
    assert flag is not None and flag.details["due"] == (ACT_END + WINDOW).isoformat()
    assert filing_flag(document, True, ACT_END + 90 * DAY, WINDOW) is None  # filed
    excused = DocumentFacts(1, 10, "现场检查笔录", True, ACT, ACT_END, has_approved_exception=True)
    assert filing_flag(excused, False, ACT_END + 90 * DAY, WINDOW) is None
    not_needed = DocumentFacts(1, 10, "送达回证", False, ACT, ACT_END, has_approved_exception=False)
    assert filing_flag(not_needed, False, ACT_END + 90 * DAY, WINDOW) is None
    no_end = DocumentFacts(1, 10, "现场检查笔录", True, ACT, None, has_approved_exception=False)
    assert filing_flag(no_end, False, ACT + WINDOW, WINDOW) is not None  # from its start


def a_case_with_an_unfiled_act() -> tuple[FakeStation, int, int]:
    station = fake_station(now=ACT, retention_max_delete_share=1.0)
    case_id = add_case(station, "C-R8", unit="监督一科", retention_period=RetentionPeriod.YEARS_10)
    document = add_document(station, "DOC-1", case_id, start=ACT, minutes=30)
    with station.transaction() as session:  # as the case import leaves it: missing_video is open
        refresh_flags(session, station, document_ids=[document])
    return station, case_id, document


def filing_flags(station: FakeStation) -> set[int]:
    with station.engine.connect() as connection:
        return set(
            connection.scalars(
                select(compliance_flags.c.document_id).where(
                    compliance_flags.c.kind == "filing_overdue", compliance_flags.c.cleared_at.is_(None)
                )
            )
        )


def test_the_nightly_run_flags_an_unfiled_act_after_30_days_and_linking_clears_it() -> None:
    station, case_id, document = a_case_with_an_unfiled_act()
    run_retention(station, ACT_END + 29 * DAY)
    assert filing_flags(station) == set()
    report = run_retention(station, ACT_END + WINDOW)
    assert filing_flags(station) == {document}
    assert report.filing_flags["flags_opened"] == 1
    clip = add_clip_row(station, "the act", utc_start=ACT, utc_end=ACT_END)
    add_link(station, clip, case_id, document_id=document, is_evidence=True)
    with station.transaction() as session:
        refresh_flags(session, station, document_ids=[document])
    assert filing_flags(station) == set()


def test_the_compliance_report_and_the_dashboard_list_the_overdue_case() -> None:
    station, _case_id, _document = a_case_with_an_unfiled_act()
    add_clip_row(station, "stray", utc_start=ACT, utc_end=ACT)  # footage of no case
    station.clock.now = ACT_END + 31 * DAY
    report = compliance_report(station, ReportFilter(date(2026, 3, 1), date(2026, 3, 31)))
    assert report["counts"]["filing_overdue"] == 1
    assert report["counts"]["unfiled_footage"] == 1
    assert report["filing"]["overdue_cases"] == [
        {"case": "C-R8", "unit": "监督一科", "documents": ["DOC-1"], "due": (ACT_END + WINDOW).isoformat()}
    ]
    assert report["documents"][0]["filing_overdue"] is True
    with station.transaction() as session:
        flag_overdue_filing(session, station, station.clock())
    with station.engine.connect() as connection:
        custodian = User(id=1, username="c", display_name="", role=Role.CUSTODIAN, unit="监督一科")
        shown = dashboard(connection, station.clock(), custodian, filing_window_days=30)
    assert shown["filing"]["overdue_documents"] == 1
    assert shown["filing"]["unfiled_footage"] == 1
    assert [(d["case"], d["document"]) for d in shown["filing"]["recent"]] == [("C-R8", "DOC-1")]
