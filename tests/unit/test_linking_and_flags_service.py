"""Linking a clip to a case's document and opening and clearing compliance flags (R5, R6, R7), the
database services on the fake station: footage in the document's window links, footage outside does
not and is flagged as of no case; a document that needs video is flagged until footage is linked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from evidence_store.cases.linking_service import link_clip, link_documents
from evidence_store.db.tables import clip_links, compliance_flags
from evidence_store.domain.model import ClipStatus, ClockStatus
from tests.factories import add_case, add_clip_row, add_document, add_officer
from tests.fakes import FakeStation, audit_trail, fake_station

T = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def open_flags(station: FakeStation) -> set[tuple[str, int | None, int | None]]:
    with station.engine.connect() as connection:
        rows = connection.execute(
            select(compliance_flags.c.kind, compliance_flags.c.document_id, compliance_flags.c.clip_id).where(
                compliance_flags.c.cleared_at.is_(None)
            )
        ).all()
    return {(row.kind, row.document_id, row.clip_id) for row in rows}


def active_links(station: FakeStation) -> set[tuple[int, int | None, bool]]:
    with station.engine.connect() as connection:
        rows = connection.execute(
            select(clip_links.c.clip_id, clip_links.c.document_id, clip_links.c.uncertain).where(
                clip_links.c.removed_at.is_(None)
            )
        ).all()
    return {(row.clip_id, row.document_id, bool(row.uncertain)) for row in rows}


def footage(
    station: FakeStation, label: str, officer: int, start: datetime, minutes: float, **fields: object
) -> int:
    fields.setdefault("clock_status", ClockStatus.MEASURED)
    return add_clip_row(
        station,
        label,
        officer_id=officer,
        utc_start=start,
        utc_end=start + minutes * MIN,
        status=ClipStatus.READY,
        **fields,
    )


def inspection(station: FakeStation) -> tuple[int, int, int]:
    """An officer, a case, and an on-site inspection by that officer from T for 30 minutes."""
    officer = add_officer(station, "1001")
    case = add_case(station, "卫监-2026-001")
    document = add_document(station, "DOC-1", case, start=T, minutes=30, officer_ids=[officer])
    return officer, case, document


def test_a_document_that_needs_video_is_flagged_until_footage_is_linked() -> None:
    station = fake_station(now=T + timedelta(days=1))  # within R8's filing window: no filing flag yet
    officer, _, document = inspection(station)
    link_documents(station, [document])
    assert open_flags(station) == {("missing_video", document, None)}

    clip = footage(station, "A", officer, T, 30)
    changes = link_clip(station, clip)

    assert (changes.added, changes.removed) == (1, 0)
    assert active_links(station) == {(clip, document, False)}
    assert open_flags(station) == set()  # the cause went away: the flag is cleared, not deleted
    with station.engine.connect() as connection:
        cleared = connection.execute(select(compliance_flags)).one()
    assert cleared.cleared_at == station.clock.now
    [event] = audit_trail(station, "clip.linked")
    assert event.object_id == str(clip) and event.details["documents"] == [document]


def test_linking_again_changes_nothing() -> None:
    station = fake_station()
    officer, _, _ = inspection(station)
    clip = footage(station, "A", officer, T, 30)
    link_clip(station, clip)
    again = link_clip(station, clip)
    assert not again.changed
    assert len(audit_trail(station, "clip.linked")) == 1


def test_footage_outside_the_window_is_not_linked_and_is_flagged_as_of_no_case() -> None:
    station = fake_station()
    officer, _, document = inspection(station)
    early = footage(station, "early", officer, T - timedelta(hours=3), 10)
    link_clip(station, early)
    assert active_links(station) == set()
    assert open_flags(station) == {("unassigned_footage", None, early)}
    assert ("missing_video", document, None) not in open_flags(station)  # the clip touched no document
    link_documents(station, [document])
    assert ("missing_video", document, None) in open_flags(station)


def test_another_officers_footage_does_not_link() -> None:
    station = fake_station()
    _, _, _ = inspection(station)
    stranger = add_officer(station, "2002")
    clip = footage(station, "B", stranger, T, 30)
    link_clip(station, clip)
    assert active_links(station) == set()


def test_footage_of_an_unread_clock_links_as_uncertain() -> None:
    station = fake_station()
    officer, _, document = inspection(station)
    clip = footage(station, "U", officer, T, 30, clock_status=ClockStatus.UNKNOWN)
    changes = link_clip(station, clip)
    assert changes.uncertain_added == 1
    assert active_links(station) == {(clip, document, True)}


def test_partial_footage_is_flagged_with_its_numbers() -> None:
    station = fake_station()
    officer, _, document = inspection(station)
    late = footage(station, "late", officer, T + 12 * MIN, 18)  # starts 12 minutes into the act
    link_clip(station, late)
    assert open_flags(station) == {("starts_late", document, None)}
    with station.engine.connect() as connection:
        details = connection.scalar(select(compliance_flags.c.details))
    assert details is not None
    assert details["document_kind"] == "现场检查笔录"
    assert details["uncovered_seconds"] == 12 * 60


def test_a_clips_flag_carries_the_clips_start_for_the_flag_search() -> None:
    station = fake_station()
    officer, _, _ = inspection(station)
    early = footage(station, "early", officer, T - timedelta(hours=3), 10)
    unknown = add_clip_row(station, "no-start", officer_id=officer, status=ClipStatus.READY)
    for clip in (early, unknown):
        link_clip(station, clip)
    with station.engine.connect() as connection:
        starts = dict(
            connection.execute(
                select(compliance_flags.c.clip_id, compliance_flags.c.clip_start).where(
                    compliance_flags.c.kind == "unassigned_footage"
                )
            ).all()
        )
    assert starts == {early: T - timedelta(hours=3), unknown: None}
