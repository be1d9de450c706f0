"""The stored audit log on SQLite and PostgreSQL: tampering through SQL is detected and named (R3, R17)."""

from __future__ import annotations

import json

from sqlalchemy import delete, select, update

from evidence_store.bootstrap import Station
from evidence_store.db.tables import audit_checkpoints, audit_events
from tests.conftest import run_cli


def record_events(station: Station, n: int) -> None:
    for i in range(n):
        with station.transaction() as session:
            station.audit.record(
                session,
                actor="cli:custodian",
                action="clip.viewed",
                object_type="clip",
                object_id=i,
                details={"i": i, "note": "现场检查"},
            )


def test_untouched_log_verifies(station: Station, station_env: dict[str, str]) -> None:
    record_events(station, 24)  # plus the init event: 25, checkpoints at 10 and 20
    result = run_cli(["audit", "verify", "--json"], station_env)
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert report["events_checked"] == 25
    assert report["checkpoints_checked"] == 2
    with station.engine.connect() as conn:
        assert conn.scalars(select(audit_checkpoints.c.seq).order_by(audit_checkpoints.c.seq)).all() == [
            10,
            20,
        ]


def test_editing_one_row_is_named(station: Station, station_env: dict[str, str]) -> None:
    record_events(station, 24)
    with station.engine.begin() as conn:
        conn.execute(update(audit_events).where(audit_events.c.seq == 7).values(actor="cli:someone-else"))
    result = run_cli(["audit", "verify", "--json"], station_env)
    assert result.code == 1
    report = json.loads(result.stdout)
    assert report["first_bad_event"] == 7
    human = run_cli(["audit", "verify"], station_env)
    assert human.code == 1
    assert "first bad event is 7" in human.stderr


def test_deleting_one_row_is_named(station: Station, station_env: dict[str, str]) -> None:
    record_events(station, 24)
    with station.engine.begin() as conn:
        conn.execute(delete(audit_events).where(audit_events.c.seq == 13))
    result = run_cli(["audit", "verify", "--json"], station_env)
    assert result.code == 1
    assert json.loads(result.stdout)["first_bad_event"] == 13


def test_swapping_two_rows_is_named(station: Station, station_env: dict[str, str]) -> None:
    record_events(station, 24)
    columns = [c for c in audit_events.c if c.name != "seq"]
    with station.engine.begin() as conn:
        row5 = conn.execute(select(*columns).where(audit_events.c.seq == 5)).one()._asdict()
        row6 = conn.execute(select(*columns).where(audit_events.c.seq == 6)).one()._asdict()
        # park row 6's hash first: the hash column is unique
        conn.execute(update(audit_events).where(audit_events.c.seq == 6).values(hash="f" * 64))
        conn.execute(update(audit_events).where(audit_events.c.seq == 5).values(**row6))
        conn.execute(update(audit_events).where(audit_events.c.seq == 6).values(**row5))
    result = run_cli(["audit", "verify", "--json"], station_env)
    assert result.code == 1
    assert json.loads(result.stdout)["first_bad_event"] == 5


def test_deleting_the_newest_rows_below_a_checkpoint_is_caught(
    station: Station, station_env: dict[str, str]
) -> None:
    record_events(station, 24)
    with station.engine.begin() as conn:
        conn.execute(delete(audit_events).where(audit_events.c.seq >= 18))
    result = run_cli(["audit", "verify", "--json"], station_env)
    assert result.code == 1
    assert json.loads(result.stdout)["first_bad_event"] == 18


def test_an_event_rolled_back_with_its_change_leaves_no_trace(station: Station) -> None:
    record_events(station, 3)
    try:
        with station.transaction() as session:
            station.audit.record(session, actor="a", action="clip.linked", object_type="clip", object_id=1)
            raise RuntimeError("the change failed")
    except RuntimeError:
        pass
    record_events(station, 1)
    from evidence_store.audit import verify_audit_log

    verdict = verify_audit_log(station.engine, station.key)
    assert verdict.ok, verdict.problems
    assert verdict.head_seq == 5


def test_audit_log_lists_events(station: Station, station_env: dict[str, str]) -> None:
    record_events(station, 2)
    result = run_cli(["audit", "log", "--json", "--object", "clip:1"], station_env)
    assert result.code == 0, result.stderr
    events = json.loads(result.stdout)["events"]
    assert [e["object"] for e in events] == ["clip:1"]
    assert events[0]["details"] == {"i": 1, "note": "现场检查"}


def test_verifying_does_not_block_writers(station: Station) -> None:
    """A long `audit verify` reads a snapshot; docking (a writer) goes on meanwhile (SQLite WAL)."""
    from sqlalchemy import text

    from evidence_store.db.engine import read_only

    record_events(station, 3)
    with station.engine.connect() as plain:
        reader = read_only(plain)
        assert reader.scalar(select(audit_events.c.seq).order_by(audit_events.c.seq.desc()).limit(1)) == 4
        # a writer commits while the reader's transaction is still open
        record_events(station, 1)
        assert reader.scalar(text("SELECT max(seq) FROM audit_events")) == 4  # its own snapshot
    from evidence_store.audit import verify_audit_log

    assert verify_audit_log(station.engine, station.key).head_seq == 5
