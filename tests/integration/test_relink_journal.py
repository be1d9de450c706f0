"""The relink journal on both databases (issue 21 item 4; evidence_store/db/relink_journal.py): every
write of a fact a link or a flag depends on - by the product or straight in the database - names its
clip, document or officer in `relink_journal`; a relink reads only what it names, repairs it, and
leaves the journal empty (its own writes are not journaled); a relink under another tolerance, filing
window or version of the rules reads everything; a filing window (R8) that ends between two relinks
opens its flag with nothing written. That both ways end in the same links and flags on random data is
tests/integration/test_relink_agreement.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, insert, select, update

from evidence_store.bootstrap import Station, initialise
from evidence_store.cases import linking_service
from evidence_store.cases.linking_service import link_clip, relink_all
from evidence_store.db.tables import (
    clip_links,
    clips,
    compliance_flags,
    document_officers,
    documents,
    recording_exceptions,
    relink_journal,
    relink_state,
    transfers,
)
from evidence_store.settings import load_settings
from tests.conftest import run_cli
from tests.integration.test_linking_and_flags import (
    active_links,
    add_clip,
    at,
    case,
    doc,
    import_json,
    open_flags,
    table_count,
)

pytestmark = pytest.mark.slow


def journal(station: Station) -> set[tuple[int | None, int | None, int | None]]:
    with station.engine.connect() as connection:
        return {
            tuple(row)  # type: ignore[misc]
            for row in connection.execute(
                select(relink_journal.c.clip_id, relink_journal.c.document_id, relink_journal.c.officer_id)
            )
        }


def document_id(station: Station, external_id: str) -> int:
    with station.engine.connect() as connection:
        return int(connection.scalar(select(documents.c.id).where(documents.c.external_id == external_id)))


@pytest.fixture
def clocked(station_env: dict[str, str]) -> Iterator[tuple[Station, list[datetime]]]:
    """A station whose clock the test moves."""
    clock = [at(60)]
    running, _ = initialise(load_settings(station_env), clock=lambda: clock[0])
    yield running, clock
    running.close()


def test_a_relinks_own_writes_are_not_journaled_and_an_edit_in_the_database_is_repaired(
    station: Station, tmp_path: Path
) -> None:
    import_json(station, tmp_path, "j.json", [case("CASE-J", [doc("J-1", ["j1"], 0, 30)])])
    inside = add_clip(station, "j-inside", "j1", 5, 10)
    stray = add_clip(station, "j-stray", "j1", 300, 5)
    assert journal(station)  # the import and the clips wrote it

    first = relink_all(station)
    assert first.full and first.added == 1  # no relink before: everything
    assert journal(station) == set()  # its own links and flags are not journaled
    again = relink_all(station)
    assert not again.full and not again.changed and not any(again.flag_counts.values())
    assert active_links(station) == {("j-inside", "J-1", False)}
    assert ("unassigned_footage", "j-stray") in open_flags(station)

    # someone with the database open drops the link and a flag, and edits another flag's numbers
    with station.engine.begin() as connection:
        connection.execute(delete(clip_links).where(clip_links.c.clip_id == inside))
        connection.execute(delete(compliance_flags).where(compliance_flags.c.clip_id == stray))
    assert {(inside, document_id(station, "J-1"), None), (stray, None, None)} <= journal(station)
    repaired = relink_all(station)
    assert not repaired.full
    assert repaired.added == 1 and repaired.flag_counts["flags_opened"] >= 1
    assert active_links(station) == {("j-inside", "J-1", False)}
    assert ("unassigned_footage", "j-stray") in open_flags(station)
    assert journal(station) == set()
    assert not relink_all(station, full=True).changed  # the full relink agrees: nothing left to do


def test_a_document_moved_in_the_database_relinks_its_officers_clips(
    station: Station, tmp_path: Path
) -> None:
    import_json(station, tmp_path, "m.json", [case("CASE-M", [doc("M-1", ["m1"], 0, 30)])])
    add_clip(station, "m-later", "m1", 60, 10)  # half an hour after the act: no link
    relink_all(station)
    assert active_links(station) == set()
    with station.engine.begin() as connection:  # the act was written down half an hour early
        connection.execute(update(documents).values(start=at(45), end=at(75)))
    moved = relink_all(station)
    assert not moved.full and moved.added == 1
    assert active_links(station) == {("m-later", "M-1", False)}
    assert not relink_all(station, full=True).changed


def test_a_linked_clip_cut_short_in_the_database_flags_its_documents_coverage(
    station: Station, tmp_path: Path
) -> None:
    import_json(station, tmp_path, "e.json", [case("CASE-E", [doc("E-1", ["e1"], 0, 30)])])
    clip = add_clip(station, "e-whole", "e1", 0, 30)
    relink_all(station)
    assert active_links(station) == {("e-whole", "E-1", False)}
    assert ("ends_early", "E-1") not in open_flags(station)
    with station.engine.begin() as connection:  # the clip's end, 15 minutes earlier
        connection.execute(update(clips).where(clips.c.id == clip).values(utc_end=at(15)))
    cut = relink_all(station)
    assert not cut.full and not cut.changed  # the link stays; the document's flags change
    assert open_flags(station)[("ends_early", "E-1")]["uncovered_seconds"] == 15 * 60
    refreshed = relink_all(station, full=True)
    assert not refreshed.changed and not any(refreshed.flag_counts.values())


def test_every_table_of_facts_writes_the_journal_and_other_columns_do_not(
    station: Station, tmp_path: Path
) -> None:
    import_json(station, tmp_path, "t.json", [case("CASE-T", [doc("T-1", ["t1"], 0, 30)])])
    clip = add_clip(station, "t-clip", "t1", 5, 10, handed_over_min=20)
    relink_all(station)
    document = document_id(station, "T-1")
    with station.engine.connect() as connection:
        officer = connection.scalar(select(clips.c.officer_id).where(clips.c.id == clip))
        transfer = connection.scalar(select(clips.c.transfer_id).where(clips.c.id == clip))
        case_id = connection.scalar(select(documents.c.case_id).where(documents.c.id == document))
    assert transfer is not None

    def after(statement: Any) -> set[tuple[int | None, int | None, int | None]]:
        with station.engine.begin() as connection:
            connection.execute(delete(relink_journal))
            connection.execute(statement)
        return journal(station)

    assert after(update(clips).where(clips.c.id == clip).values(original_name="renamed.MP4")) == set()
    assert after(update(clips).where(clips.c.id == clip).values(utc_start=at(6))) == {
        (clip, None, officer),
        (clip, None, None),
    }
    assert after(update(documents).where(documents.c.id == document).values(title="x")) == {
        (None, document, None)
    }
    assert after(delete(document_officers).where(document_officers.c.document_id == document)) == {
        (None, document, officer)
    }
    assert after(insert(document_officers).values(document_id=document, officer_id=officer)) == {
        (None, document, officer)
    }
    assert after(update(transfers).where(transfers.c.id == transfer).values(started_at=at(2000))) == {
        (clip, None, None)
    }
    link = update(clip_links).where(clip_links.c.clip_id == clip).values(uncertain=True)
    assert after(link) == {(clip, document, None)}
    flags = update(compliance_flags).where(compliance_flags.c.document_id == document).values(details={})
    named = after(flags)
    assert named and named <= {(None, document, None)}
    exception = insert(recording_exceptions).values(
        case_id=case_id, document_id=None, reason="r", approved_by="c", approved_at=at(0), created_at=at(0)
    )
    assert after(exception) == {(None, document, None)}  # a case's exception: each of its documents


def test_a_relink_under_another_tolerance_or_rules_reads_everything(station: Station, tmp_path: Path) -> None:
    import_json(station, tmp_path, "r.json", [case("CASE-R", [doc("R-1", ["r1"], 0, 30)])])
    link_clip(station, add_clip(station, "r-near", "r1", 33, 5))  # 3 minutes after the act
    assert relink_all(station).full
    assert not relink_all(station).full
    wider = relink_all(station, timedelta(minutes=10))
    assert wider.full  # another tolerance: everything
    assert not relink_all(station, timedelta(minutes=10)).full
    assert relink_all(station).full  # back to the setting: everything again
    with station.engine.begin() as connection:
        connection.execute(update(relink_state).values(rules_version="an older version of the rules"))
    assert relink_all(station).full
    assert not relink_all(station).full


def test_a_filing_window_that_ends_between_two_relinks_opens_its_flag_with_nothing_written(
    clocked: tuple[Station, list[datetime]], tmp_path: Path
) -> None:
    station, clock = clocked
    import_json(station, tmp_path, "f.json", [case("CASE-F", [doc("F-1", ["f1"], 0, 30)])])
    with station.engine.begin() as connection:
        connection.execute(update(documents).values(requires_video=True))
    assert relink_all(station).full
    assert ("filing_overdue", "F-1") not in open_flags(station)
    clock[0] = at(30) + timedelta(days=31)  # the 30-day window after the act has ended
    assert journal(station) == set()
    later = relink_all(station)
    assert not later.full and later.flag_counts["flags_opened"] == 1
    assert ("filing_overdue", "F-1") in open_flags(station)
    clock[0] = at(60)  # a clock set back: the flag is not due yet
    assert relink_all(station).flag_counts["flags_cleared"] == 1
    assert ("filing_overdue", "F-1") not in open_flags(station)


def test_cases_relink_says_what_it_read_and_full_reads_everything(
    station: Station, station_env: dict[str, str], tmp_path: Path
) -> None:
    import_json(station, tmp_path, "c.json", [case("CASE-C", [doc("C-1", ["c1"], 0, 30)])])
    add_clip(station, "c-clip", "c1", 5, 10)

    def relink(*options: str) -> dict[str, Any]:
        result = run_cli(["cases", "relink", "--json", *options], station_env)
        assert result.code == 0, result.stderr
        return dict(json.loads(result.stdout))

    assert relink()["full"] is True
    second = relink()
    assert second["full"] is False and second["links_added"] == 0
    assert relink("--full")["full"] is True
    assert relink("--all-flags")["full"] is True  # the old name
    assert table_count(station, relink_journal) == 0
    assert table_count(station, relink_state, relink_state.c.relinked_at.is_not(None)) == 1  # one row, kept


def test_a_relink_that_fails_leaves_the_journal_and_its_triggers_as_they_were(
    station: Station, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash inside the relink (here: its flag refresh) rolls back the journal's emptying and, on
    SQLite, the dropping of the link and flag triggers: the next relink still sees every change, and
    edits made afterwards are still journaled."""
    import_json(station, tmp_path, "x.json", [case("CASE-X", [doc("X-1", ["x1"], 0, 30)])])
    clip = add_clip(station, "x-clip", "x1", 5, 10)
    relink_all(station)
    with station.engine.begin() as connection:
        connection.execute(delete(clip_links).where(clip_links.c.clip_id == clip))
    pending = journal(station)
    assert pending

    def crash(*_args: Any, **_kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(linking_service, "refresh_flags", crash)
    with pytest.raises(OSError):
        relink_all(station)
    monkeypatch.undo()
    assert journal(station) == pending  # nothing taken
    with station.engine.begin() as connection:  # the flag trigger is back: this edit is journaled too
        connection.execute(update(compliance_flags).values(details={}))
    assert journal(station) > pending
    repaired = relink_all(station)
    assert not repaired.full and repaired.added == 1
    assert active_links(station) == {("x-clip", "X-1", False)}


def test_a_station_with_no_relink_yet_reads_everything_even_with_an_empty_journal(station: Station) -> None:
    assert journal(station) == set()
    assert relink_all(station).full
    with station.engine.connect() as connection:
        state = connection.execute(select(relink_state)).one()
    assert state.id == 1 and state.relinked_at is not None
    assert datetime.now(UTC) - state.relinked_at < timedelta(minutes=5)
