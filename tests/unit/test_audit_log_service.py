"""The audit log service over a database (R3, R10, R17), on the fake station: appends chain inside the
caller's transaction, checkpoints are signed every `checkpoint_interval` events and on demand, and
verification finds an edited event, a foreign key's checkpoint and events cut from the end."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import delete, select, update

from evidence_store.audit import AuditLog, load_checkpoints, verify_audit_log
from evidence_store.db.tables import audit_checkpoints, audit_events
from evidence_store.domain.audit_chain import GENESIS_HASH
from evidence_store.keys import StationKey
from tests.fakes import FakeStation, audit_trail, fake_station


def append(station: FakeStation, n: int, *, log: AuditLog | None = None) -> None:
    with station.transaction() as session:
        for i in range(n):
            (log or station.audit).record(
                session, actor="custodian", action="clip.viewed", object_type="clip", object_id=i
            )


def test_appends_chain_in_order_and_verify() -> None:
    station = fake_station(checkpoint_interval=1000)
    append(station, 3)
    station.clock.advance(timedelta(minutes=5))
    append(station, 2)
    with station.engine.connect() as connection:
        rows = connection.execute(select(audit_events).order_by(audit_events.c.seq)).all()
    assert [row.seq for row in rows] == [1, 2, 3, 4, 5]
    assert rows[0].prev_hash == GENESIS_HASH
    assert all(later.prev_hash == earlier.hash for earlier, later in itertools.pairwise(rows))
    assert rows[0].at != rows[4].at  # the station's clock, moved between the two transactions
    assert rows[0].source == "station:fake-station"
    verdict = verify_audit_log(station.engine, station.key.public(), all_signatures=True)
    assert verdict.ok, verdict.problems
    assert (verdict.events_checked, verdict.signatures_checked, verdict.head_seq) == (5, 5, 5)


def test_a_rolled_back_append_leaves_no_trace_and_the_chain_goes_on() -> None:
    station = fake_station()
    append(station, 2)
    with pytest.raises(RuntimeError), station.transaction() as session:
        station.audit.record(session, actor="x", action="clip.viewed", object_type="clip", object_id=9)
        raise RuntimeError("the change it describes failed")
    append(station, 1)
    assert [e.seq for e in audit_trail(station)] == [1, 2, 3]
    assert verify_audit_log(station.engine, station.key.public()).ok


def test_a_checkpoint_is_signed_every_interval_and_on_demand() -> None:
    station = fake_station(checkpoint_interval=4)
    append(station, 9)
    with station.engine.connect() as connection:
        assert [cp.seq for cp in load_checkpoints(connection)] == [4, 8]
        head = connection.scalar(select(audit_events.c.hash).where(audit_events.c.seq == 9))
    with station.transaction() as session:
        checkpoint = station.audit.checkpoint_now(session)
        assert checkpoint is not None
        assert (checkpoint.seq, checkpoint.head_hash) == (9, head)
        assert checkpoint.key_fingerprint == station.key.fingerprint
        again = station.audit.checkpoint_now(session)  # the head is vouched for already: no second
        assert again is not None and again.seq == 9
    with station.engine.connect() as connection:
        assert [cp.seq for cp in load_checkpoints(connection)] == [4, 8, 9]
    assert verify_audit_log(station.engine, station.key.public()).ok


def test_an_edited_event_is_named() -> None:
    station = fake_station()
    append(station, 5)
    with station.engine.begin() as connection:
        connection.execute(update(audit_events).where(audit_events.c.seq == 3).values(actor="someone else"))
    verdict = verify_audit_log(station.engine, station.key.public())
    assert not verdict.ok
    assert verdict.first_problem is not None and verdict.first_problem.seq == 3
    assert "altered" in verdict.first_problem.reason


def test_events_cut_from_the_end_are_found_by_the_checkpoint() -> None:
    station = fake_station(checkpoint_interval=3)
    append(station, 3)
    with station.engine.begin() as connection:
        connection.execute(delete(audit_events).where(audit_events.c.seq >= 2))
    verdict = verify_audit_log(station.engine, station.key.public())
    assert not verdict.ok
    assert any("deleted from its end" in p.reason for p in verdict.problems)


def test_a_checkpoint_by_another_key_is_reported() -> None:
    station = fake_station(checkpoint_interval=1000)
    intruder = StationKey(Ed25519PrivateKey.generate())
    append(station, 2)
    foreign = AuditLog(intruder, station.clock, checkpoint_interval=1000, source="elsewhere")
    with station.transaction() as session:
        foreign.checkpoint_now(session)
    with station.engine.connect() as connection:
        assert connection.scalar(select(audit_checkpoints.c.key_fingerprint)) == intruder.fingerprint
    verdict = verify_audit_log(station.engine, station.key.public())
    assert any("signed by another key" in p.reason for p in verdict.problems)
