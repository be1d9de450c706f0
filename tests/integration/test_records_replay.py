"""Records replayed from the audit chain (issue 15, R3, R10, R17): an edit of the evidence on record made
directly in the database, on SQLite and PostgreSQL, makes `evidence audit verify` (and `scrub`, for a
clip row that vanished) exit 1 naming the object; an untouched station verifies clean."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Connection, delete, insert, select, update

from evidence_store.bootstrap import Station
from evidence_store.cases.manual import approve_exception, link_manually, mark_evidence
from evidence_store.db.tables import (
    clip_links,
    clips,
    derivatives,
    documents,
    legal_holds,
    recording_exceptions,
    retention_decisions,
    retention_runs,
    tombstones,
)
from retention.holds import place_hold, release_hold
from tests import factories
from tests.conftest import run_cli
from workers.planning import plan_clips

T0 = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


@dataclass
class Built:
    clips: list[int]
    sha256: list[str]
    derivative: int
    link: int
    document: int
    exception: int
    hold: int
    released_hold: int
    tombstone: int


def build(station: Station) -> Built:
    """One station with a few clips, built through the services (the factories state what they write
    in the chain as the services do)."""
    officer = factories.add_officer(station, "310777")
    device = factories.add_device(station, "DSJ7", assigned_officer_id=officer)
    stored = [
        factories.store_clip(
            station,
            f"clip {i} bytes".encode() * 100,
            device_id=device,
            officer_id=officer,
            device_start=datetime(2026, 11, 24, 16, i),
            utc_start=T0 + timedelta(minutes=i),
            utc_end=T0 + timedelta(minutes=i, seconds=30),
            original_name=f"A{i}.MP4",
        )
        for i in range(4)
    ]
    ids = [s.clip_id for s in stored]
    plan_clips(station, [ids[0]])  # status ingested -> processing, stated in the chain
    derivative = factories.add_derivative(station, ids[0], stored[0].sha256, b"proxy bytes")
    case = factories.add_case(station, "XZ-2026-001")
    document = factories.add_document(station, "DOC-1", case, start=T0, officer_ids=[officer])
    linked = link_manually(
        station, ids[0], "XZ-2026-001", document="DOC-1", reason="seen on scene", actor="t"
    )
    mark_evidence(station, ids[0], "XZ-2026-001", reason="shows the act", actor="t")
    exception = approve_exception(
        station, "XZ-2026-001", document=None, reason="camera broke", approved_by="chief", actor="t"
    )
    hold = place_hold(station, clip_id=ids[1], case_number=None, reason="complaint", actor="t")
    released = place_hold(station, clip_id=None, case_number="XZ-2026-001", reason="appeal", actor="t")
    release_hold(station, released, reason="appeal over", actor="t")
    tombstone = _tombstone_of(station, ids[3])
    return Built(
        ids,
        [s.sha256 for s in stored],
        derivative,
        linked["link_id"],
        document,
        exception["exception_id"],
        hold,
        released,
        tombstone,
    )


def _tombstone_of(station: Station, clip_id: int) -> int:
    """The retention run's tombstone step (retention.deletion), for one clip, with a run row to own it."""
    from retention.deletion import _tombstone  # the step itself: a whole run needs months of clock
    from retention.run_record import RunReport

    with station.transaction() as session:
        run_id = session.execute(
            insert(retention_runs).values(
                started_at=T0, as_of=T0, dry_run=False, policy_version="test", status="running", report={}
            )
        ).inserted_primary_key[0]
        decision_id = session.execute(
            insert(retention_decisions).values(
                run_id=run_id,
                clip_id=clip_id,
                action="delete",
                rule="test",
                state="planned",
                decided_at=T0,
            )
        ).inserted_primary_key[0]
    report = RunReport(run_id=run_id, policy_version="test", dry_run=False, as_of=T0)
    _tombstone(station, decision_id, clip_id, report, "retention")
    with station.connect() as connection:
        return int(connection.scalar(select(tombstones.c.id).where(tombstones.c.clip_id == clip_id)) or 0)


def verify(station_env: dict[str, str]) -> tuple[int, dict[str, Any], str]:
    result = run_cli(["audit", "verify", "--json"], station_env)
    human = run_cli(["audit", "verify"], station_env)
    assert human.code == result.code
    return result.code, json.loads(result.stdout), human.stderr


def test_an_untouched_station_verifies_clean(station: Station, station_env: dict[str, str]) -> None:
    build(station)
    code, report, _ = verify(station_env)
    assert code == 0, report
    records = report["records"]
    assert records["ok"] is True
    assert records["differences"] == 0
    assert records["rows_not_covered"] == 0
    assert records["tables"]["clips"]["rows_checked"] == 4
    for table in (
        "derivatives",
        "clip_links",
        "documents",
        "recording_exceptions",
        "legal_holds",
        "tombstones",
    ):
        assert records["tables"][table]["rows_checked"] >= 1, table
    human = run_cli(["audit", "verify"], station_env)
    assert "records match the chain" in human.stdout
    assert run_cli(["scrub"], station_env).code == 0


def _swap_sha256(conn: Connection, b: Built) -> None:
    first, second = b.clips[1], b.clips[2]
    conn.execute(update(clips).where(clips.c.id == first).values(sha256="f" * 64))
    conn.execute(update(clips).where(clips.c.id == second).values(sha256=b.sha256[1]))
    conn.execute(update(clips).where(clips.c.id == first).values(sha256=b.sha256[2]))


def _move_a_year(conn: Connection, b: Built) -> None:
    start = conn.scalar(select(clips.c.utc_start).where(clips.c.id == b.clips[1]))
    conn.execute(update(clips).where(clips.c.id == b.clips[1]).values(utc_start=start + timedelta(days=365)))


def _edit(table: Any, row_id: Callable[[Built], int], **values: Any) -> Callable[[Connection, Built], None]:
    def apply(conn: Connection, b: Built) -> None:
        conn.execute(update(table).where(table.c.id == row_id(b)).values(**values))

    return apply


def _remove(table: Any, row_id: Callable[[Built], int]) -> Callable[[Connection, Built], None]:
    def apply(conn: Connection, b: Built) -> None:
        conn.execute(delete(table).where(table.c.id == row_id(b)))

    return apply


def _grow(conn: Connection, b: Built) -> None:
    conn.execute(update(clips).where(clips.c.id == b.clips[1]).values(size=clips.c.size + 1))


def _relink_to_another_clip(conn: Connection, b: Built) -> None:
    conn.execute(update(clip_links).where(clip_links.c.id == b.link).values(clip_id=b.clips[1]))


def _slip_in_a_clip(conn: Connection, b: Built) -> None:
    row = conn.execute(select(clips).where(clips.c.id == b.clips[1])).one()._asdict()
    row.update(id=None, sha256="e" * 64)
    row.pop("id")
    conn.execute(insert(clips).values(**row))


TAMPERING: dict[str, tuple[Callable[[Connection, Built], None], Callable[[Built], str], str]] = {
    "sha256 swapped between two clips": (_swap_sha256, lambda b: f"clip {b.clips[1]}", "sha256"),
    "utc_start moved by a year": (_move_a_year, lambda b: f"clip {b.clips[1]}", "utc_start"),
    "size + 1": (_grow, lambda b: f"clip {b.clips[1]}", "size"),
    "clip row deleted": (_remove(clips, lambda b: b.clips[2]), lambda b: f"clip {b.clips[2]}", ""),
    "clip row slipped in": (_slip_in_a_clip, lambda b: "clip ", ""),
    "officer changed": (
        _edit(clips, lambda b: b.clips[1], officer_id=None),
        lambda b: f"clip {b.clips[1]}",
        "officer_id",
    ),
    "device changed": (
        _edit(clips, lambda b: b.clips[1], device_id=None),
        lambda b: f"clip {b.clips[1]}",
        "device_id",
    ),
    "raw time changed": (
        _edit(clips, lambda b: b.clips[1], device_start=datetime(2025, 1, 1, 12, 0)),
        lambda b: f"clip {b.clips[1]}",
        "device_start",
    ),
    "status changed": (
        _edit(clips, lambda b: b.clips[0], status="ready"),
        lambda b: f"clip {b.clips[0]}",
        "status",
    ),
    "deleted clip brought back": (
        _edit(clips, lambda b: b.clips[3], status="ready"),
        lambda b: f"clip {b.clips[3]}",
        "status",
    ),
    "derivative hash changed": (
        _edit(derivatives, lambda b: b.derivative, sha256="d" * 64),
        lambda b: f"derivative {b.derivative}",
        "sha256",
    ),
    "derivative deleted": (
        _remove(derivatives, lambda b: b.derivative),
        lambda b: f"derivative {b.derivative}",
        "",
    ),
    "evidence mark removed": (
        _edit(clip_links, lambda b: b.link, is_evidence=False),
        lambda b: f"case link {b.link}",
        "is_evidence",
    ),
    "case link deleted": (_remove(clip_links, lambda b: b.link), lambda b: f"case link {b.link}", ""),
    "case link moved to another clip": (
        _relink_to_another_clip,
        lambda b: f"case link {b.link}",
        "clip_id",
    ),
    "document time changed": (
        _edit(documents, lambda b: b.document, start=T0 + timedelta(hours=5)),
        lambda b: f"document {b.document}",
        "start",
    ),
    "exception approver changed": (
        _edit(recording_exceptions, lambda b: b.exception, approved_by="nobody"),
        lambda b: f"recording exception {b.exception}",
        "approved_by",
    ),
    "hold released behind the chain": (
        _edit(legal_holds, lambda b: b.hold, released_at=T0),
        lambda b: f"legal hold {b.hold}",
        "released_at",
    ),
    "released hold made active again": (
        _edit(legal_holds, lambda b: b.released_hold, released_at=None),
        lambda b: f"legal hold {b.released_hold}",
        "released_at",
    ),
    "hold deleted": (_remove(legal_holds, lambda b: b.hold), lambda b: f"legal hold {b.hold}", ""),
    "tombstone hash changed": (
        _edit(tombstones, lambda b: b.tombstone, sha256="c" * 64),
        lambda b: f"tombstone {b.tombstone}",
        "sha256",
    ),
    "tombstone deleted": (
        _remove(tombstones, lambda b: b.tombstone),
        lambda b: f"tombstone {b.tombstone}",
        "",
    ),
}


@pytest.mark.parametrize("tampering", list(TAMPERING))
def test_an_edit_on_record_is_named(station: Station, station_env: dict[str, str], tampering: str) -> None:
    built = build(station)
    edit, named, field = TAMPERING[tampering]
    with station.engine.begin() as conn:
        if station.engine.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA foreign_keys = OFF")
        edit(conn, built)
    code, report, stderr = verify(station_env)
    assert code == 1, report["records"]
    assert report["chain_ok"] is True  # the chain itself is intact: the rows moved under it
    assert report["ok"] is False  # ... while the verdict as a whole fails on the records
    findings = report["records"]["findings"]
    wanted = named(built)
    assert any(f["object"].startswith(wanted) and (not field or f["field"] == field) for f in findings), (
        findings
    )
    assert wanted in stderr


def test_scrub_names_a_blob_whose_clip_row_vanished(station: Station, station_env: dict[str, str]) -> None:
    built = build(station)
    with station.engine.begin() as conn:
        conn.execute(delete(clips).where(clips.c.id == built.clips[2]))
    result = run_cli(["scrub", "--json"], station_env)
    assert result.code == 1, result.stdout
    report = json.loads(result.stdout)
    assert [f["sha256"] for f in report["unrecorded"]] == [built.sha256[2]]
    assert f"clip {built.clips[2]}" in report["unrecorded"][0]["detail"]
    assert built.sha256[2] not in {f["sha256"] for f in report["orphans"]}
    human = run_cli(["scrub"], station_env)
    assert human.code == 1
    assert f"clip {built.clips[2]}" in human.stderr
    assert "INTEGRITY PROBLEM FOUND" in human.stdout


def test_rows_from_before_replay_are_reported_as_not_covered(
    station: Station, station_env: dict[str, str]
) -> None:
    """A station upgraded from before this change: its old rows carry no facts. They are counted apart
    and the check passes; rows made after the baseline are checked."""
    built = build(station)
    with station.engine.begin() as conn:
        # a row below the baseline (id 0; a new station's baseline is 0) stands for one written
        # before events stated their facts
        conn.execute(
            insert(clips).values(
                **{
                    **conn.execute(select(clips).where(clips.c.id == built.clips[1])).one()._asdict(),
                    "id": 0,
                    "sha256": "a" * 64,
                }
            )
        )
    code, report, _ = verify(station_env)
    assert code == 0, report["records"]
    assert report["records"]["rows_not_covered"] == 1
    human = run_cli(["audit", "verify"], station_env)
    assert "not covered by the chain: 1 rows from before records were replayed" in human.stdout


def test_verify_without_records_checks_the_chain_only(station: Station, station_env: dict[str, str]) -> None:
    built = build(station)
    with station.engine.begin() as conn:
        conn.execute(update(clips).where(clips.c.id == built.clips[1]).values(size=clips.c.size + 1))
    assert run_cli(["audit", "verify", "--no-records"], station_env).code == 0
    assert run_cli(["audit", "verify", "--records"], station_env).code == 1


def test_a_time_written_in_another_form_of_the_same_instant_is_not_a_difference(
    station: Station, station_env: dict[str, str]
) -> None:
    built = build(station)
    clip_id = built.clips[1]
    with station.engine.begin() as conn:
        start = conn.scalar(select(clips.c.utc_start).where(clips.c.id == clip_id))
        assert start is not None
        if station.engine.dialect.name == "sqlite":
            # another writer's text for the same instant: no microseconds, a 'T', an explicit zone
            same = start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")
            conn.exec_driver_sql("UPDATE clips SET utc_start = ? WHERE id = ?", (same, clip_id))
        else:
            # the same instant given in the station's zone (+08:00)
            conn.execute(
                update(clips)
                .where(clips.c.id == clip_id)
                .values(utc_start=start.astimezone(timezone(timedelta(hours=8))))
            )
    code, report, _ = verify(station_env)
    assert code == 0, [f["text"] for f in report["records"]["findings"]]
    # one second later is a different instant, and named
    with station.engine.begin() as conn:
        conn.execute(
            update(clips).where(clips.c.id == clip_id).values(utc_start=start + timedelta(seconds=1))
        )
    code, report, stderr = verify(station_env)
    assert code == 1
    assert [(f["object"], f["field"]) for f in report["records"]["findings"]] == [
        (f"clip {clip_id}", "utc_start")
    ]
    assert f"clip {clip_id}: utc_start recorded" in stderr
