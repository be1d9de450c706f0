"""The pure replay of the audit chain into records (issue 15, R3, R17), and the check over a fake station."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import delete, update

from evidence_store.db.tables import clips
from evidence_store.domain.record_facts import (
    BASELINE_KEY,
    FACTS_KEY,
    TRACKED,
    fact_value,
    gone_fact,
    row_fact,
    same_fact,
)
from evidence_store.domain.record_replay import RecordState, compare_table, compare_table_rows, fold_events
from evidence_store.record_check import verify_records
from tests import factories
from tests.fakes import T0, fake_station

CLIP = {
    "sha256": "a" * 64,
    "size": 10,
    "media_type": "video",
    "device_id": 1,
    "officer_id": 2,
    "transfer_id": None,
    "device_start": None,
    "device_end": None,
    "utc_start": T0,
    "utc_end": None,
    "clock_offset_s": 0.5,
    "clock_status": "measured",
    "duration_s": None,
    "status": "ingested",
    "ingested_at": T0,
}


def event(seq: int, *facts: dict, action: str = "clip.stored") -> tuple[int, str, str]:
    return seq, action, json.dumps({FACTS_KEY: list(facts)})


def baseline(seq: int, **tables: int) -> tuple[int, str, str]:
    return seq, "station.initialised", json.dumps({BASELINE_KEY: tables})


def stored(**changes: object) -> dict:
    row = {**CLIP, **changes}
    return {k: v for k, v in row.items()}


def test_a_row_as_recorded_compares_clean() -> None:
    state = fold_events([baseline(1, clips=0), event(2, row_fact("clips", 1, CLIP, new=True))])
    result = compare_table(state, "clips", [(1, stored())])
    assert result.differences == 0
    assert result.rows_checked == 1
    assert result.rows_not_covered == 0


def test_a_changed_field_is_named_with_both_values_and_the_event() -> None:
    state = fold_events([baseline(1, clips=0), event(2, row_fact("clips", 1, CLIP, new=True))])
    result = compare_table(state, "clips", [(1, stored(size=11))])
    [difference] = result.listed
    assert (difference.object, difference.field, difference.recorded, difference.stored) == (
        "clip 1",
        "size",
        10,
        11,
    )
    assert difference.seq == 2
    assert difference.describe() == "clip 1: size recorded 10, stored 11 (audit event 2)"


def test_later_facts_replace_earlier_ones() -> None:
    later = row_fact("clips", 1, {"status": "ready"}, new=False, fields=("status",))
    state = fold_events(
        [baseline(1, clips=0), event(2, row_fact("clips", 1, CLIP, new=True)), event(3, later)]
    )
    assert compare_table(state, "clips", [(1, stored(status="ready"))]).differences == 0
    state = fold_events(
        [baseline(1, clips=0), event(2, row_fact("clips", 1, CLIP, new=True)), event(3, later)]
    )
    assert compare_table(state, "clips", [(1, stored(status="ingested"))]).listed[0].field == "status"


def test_missing_extra_and_back_from_the_dead_rows() -> None:
    events = [
        baseline(1, clips=0, derivatives=0),
        event(2, row_fact("clips", 1, CLIP, new=True)),
        event(3, row_fact("clips", 2, {**CLIP, "sha256": "b" * 64}, new=True)),
    ]
    result = compare_table(fold_events(events), "clips", [(1, stored()), (3, stored(sha256="c" * 64))])
    problems = {(d.object, d.problem) for d in result.listed}
    assert problems == {("clip 2", "missing row"), ("clip 3", "extra row")}
    derivative = {
        "clip_id": 1,
        "kind": "proxy",
        "sha256": "d" * 64,
        "size": 1,
        "derived_from_sha256": "a" * 64,
    }
    gone = [
        *events,
        event(4, row_fact("derivatives", 5, derivative, new=True)),
        event(5, gone_fact("derivatives", 5)),
    ]
    assert compare_table(fold_events(gone), "derivatives", []).differences == 0
    back = compare_table(fold_events(gone), "derivatives", [(5, derivative)])
    assert [d.problem for d in back.listed] == ["deleted row back"]


def test_rows_below_the_baseline_are_not_covered_and_without_a_baseline_nothing_is_extra() -> None:
    state = fold_events([baseline(1, clips=7)])
    result = compare_table(state, "clips", [(7, stored()), (8, stored())])
    assert result.rows_not_covered == 1
    assert [d.problem for d in result.listed] == ["extra row"]
    result = compare_table(RecordState(), "clips", [(7, stored()), (8, stored())])
    assert (result.rows_not_covered, result.differences) == (2, 0)


def test_automatic_links_need_no_fact_but_must_be_unmarked() -> None:
    link = {
        "clip_id": 1,
        "case_id": 1,
        "document_id": 1,
        "origin": "auto",
        "is_evidence": False,
        "removed_at": None,
    }
    state = fold_events([baseline(1, clip_links=0)])
    assert compare_table(state, "clip_links", [(1, link)]).rows_unstated == 1
    marked = compare_table(
        fold_events([baseline(1, clip_links=0)]), "clip_links", [(1, {**link, "is_evidence": True})]
    )
    assert [(d.object, d.field) for d in marked.listed] == [("case link 1", "is_evidence")]
    # once a person marks it, the mark is stated and compared as such
    mark = row_fact("clip_links", 1, {"is_evidence": True}, new=False, fields=("is_evidence",))
    state = fold_events([baseline(1, clip_links=0), event(2, mark)])
    assert compare_table(state, "clip_links", [(1, {**link, "is_evidence": True})]).differences == 0


def test_events_without_facts_are_skipped() -> None:
    state = fold_events([(1, "clip.viewed", json.dumps({"note": "facts"}))])
    assert state.events_folded == 1
    assert state.events_with_facts == 0


# -- the check over a station --------------------------------------------------------------------------


def test_a_fake_station_verifies_clean_then_names_an_edit() -> None:
    station = fake_station()
    first = factories.store_clip(station, b"one", utc_start=T0)
    second = factories.store_clip(station, b"two", utc_start=T0)
    verdict = verify_records(station.engine)
    assert verdict.ok
    assert verdict.rows_checked == 2
    with station.engine.begin() as conn:
        conn.execute(
            update(clips).where(clips.c.id == first.clip_id).values(utc_start=T0 + timedelta(days=365))
        )
        conn.execute(delete(clips).where(clips.c.id == second.clip_id))
    verdict = verify_records(station.engine)
    assert not verdict.ok
    texts = [f["text"] for f in verdict.as_dict()["findings"]]
    assert any(t.startswith(f"clip {first.clip_id}: utc_start recorded") for t in texts), texts
    assert any(t.startswith(f"clip {second.clip_id}: on the record") for t in texts), texts


def test_a_stored_time_is_the_recorded_one_when_it_is_the_same_instant_in_another_form() -> None:
    recorded = "2026-03-02T01:00:00.000000+00:00"
    assert same_fact("utc_start", recorded, recorded)
    assert same_fact("utc_start", recorded, "2026-03-02T09:00:00+08:00")
    assert same_fact("utc_start", recorded, "2026-03-02 01:00:00")  # UTC kept without its zone
    assert not same_fact("utc_start", recorded, "2026-03-02T01:00:01+00:00")
    assert not same_fact("utc_start", recorded, "not a time")
    # a recorder's own clock (naive) is compared as written, never as an instant of some zone
    assert same_fact("device_start", "2026-03-02T09:00:00.000000", "2026-03-02 09:00:00")
    assert not same_fact("device_start", "2026-03-02T09:00:00.000000", "2026-03-02T09:00:00+00:00")
    # a field that is not a time is compared as text: the same date written otherwise is a change
    assert not same_fact("reason", "2026-03-02T01:00:00+00:00", "2026-03-02 01:00:00")
    assert same_fact("size", 10, 10) and not same_fact("size", 10, 11)


def test_rows_as_the_database_returns_them_give_the_same_findings() -> None:
    """`compare_table_rows` (tuples in `TRACKED` order, compared whole first) names exactly what
    `compare_table` names: a changed field with both values, a missing, an extra and a clean row."""
    events = [
        baseline(1, clips=0),
        event(2, row_fact("clips", 1, CLIP, new=True)),
        event(3, row_fact("clips", 2, {**CLIP, "sha256": "b" * 64}, new=True)),
        event(4, row_fact("clips", 4, CLIP, new=True)),
        event(5, row_fact("clips", 4, {"status": "ready"}, new=False, fields=("status",))),
    ]
    rows = [
        (1, fact_value_row(stored())),
        (3, fact_value_row(stored())),
        (4, fact_value_row(stored(size=11, status="ready"))),
    ]
    by_mapping = compare_table(fold_events(events), "clips", rows)
    by_tuple = compare_table_rows(
        fold_events(events), "clips", [(row_id, *(row[n] for n in TRACKED["clips"])) for row_id, row in rows]
    )
    assert by_tuple.listed == by_mapping.listed
    assert {(d.object, d.field, d.problem) for d in by_tuple.listed} == {
        ("clip 2", "", "missing row"),
        ("clip 3", "", "extra row"),
        ("clip 4", "size", "changed"),
    }
    assert (by_tuple.rows_checked, by_tuple.differences) == (3, 3)


def fact_value_row(row: dict) -> dict:
    """A row as the database renders it for the check (times as the chain's text)."""
    return {name: fact_value(value) for name, value in row.items()}


def test_facts_in_another_form_than_row_fact_writes_are_folded_by_the_same_rules() -> None:
    loose = {"t": "clips", "id": "1", "new": 1, "set": row_fact("clips", 1, CLIP, new=True)["set"]}
    state = fold_events([baseline(1, clips=0), event(2, loose)])
    assert state.events_with_facts == 1
    assert compare_table(state, "clips", [(1, stored())]).differences == 0
    state = fold_events([baseline(1, clips=0), event(2, loose)])
    assert compare_table(state, "clips", [(1, stored(size=11))]).listed[0].field == "size"
