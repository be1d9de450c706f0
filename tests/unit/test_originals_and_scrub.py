"""Storing an original in the safe order (bytes, then row and audit event together) and the integrity
scrub that finds altered, missing and orphan blobs (R3, R10), on the fake station."""

from __future__ import annotations

import hashlib
import io

import pytest
from sqlalchemy import func, select

from evidence_store.audit import verify_audit_log
from evidence_store.db.tables import clips
from evidence_store.domain.model import Clip
from evidence_store.originals import record_originals, store_original
from evidence_store.scrub import scrub
from tests.factories import clip_maker, make_clip, store_clip
from tests.fakes import FakeStation, audit_trail, fake_station


def clip_count(station: FakeStation) -> int:
    with station.engine.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(clips)) or 0)


class Boom(Exception):
    pass


def test_an_original_is_stored_then_recorded_with_its_audit_event() -> None:
    station = fake_station()
    data = b"footage " * 1000
    stored = store_clip(station, data, original_name="A001.MP4", actor="dock")
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.size == len(data) and not stored.duplicate
    assert station.blobs.open(stored.sha256).read() == data
    with station.sessions() as session:
        clip = session.get(Clip, stored.clip_id)
        assert clip is not None
        assert (clip.sha256, clip.size, clip.original_name) == (stored.sha256, len(data), "A001.MP4")
        assert clip.ingested_at == station.clock.now  # the station's clock, not the wall clock
    [event] = audit_trail(station, "clip.stored")
    assert (event.actor, event.object_id) == ("dock", str(stored.clip_id))
    assert event.details["sha256"] == stored.sha256
    assert event.details["new_blob"] is True
    assert event.details["store"] == "memory"


def test_the_same_bytes_twice_are_one_clip_and_one_event() -> None:
    station = fake_station()
    first = store_clip(station, b"docked twice", original_name="a.MP4")
    again = store_clip(station, b"docked twice", original_name="renamed.MP4")
    assert again.duplicate and again.clip_id == first.clip_id
    assert clip_count(station) == 1
    assert len(audit_trail(station, "clip.stored")) == 1


def test_the_same_bytes_twice_in_one_batch_are_one_clip() -> None:
    station = fake_station()
    blob = station.blobs.put(io.BytesIO(b"one file seen under two paths"))
    now = station.clock()
    with station.transaction() as session:
        results = record_originals(
            [
                (blob, make_clip(sha256=blob.sha256, size=blob.size, ingested_at=now, device_path="/a")),
                (blob, make_clip(sha256=blob.sha256, size=blob.size, ingested_at=now, device_path="/b")),
            ],
            store_name=station.blobs.name,
            session=session,
            audit=station.audit,
            actor="test",
        )
    assert [r.duplicate for r in results] == [False, True]
    assert results[0].clip_id == results[1].clip_id
    assert clip_count(station) == 1


def test_a_failure_after_the_bytes_leaves_an_orphan_never_a_clip_without_bytes() -> None:
    station = fake_station()
    data = b"the transaction dies after the bytes are stored"
    with pytest.raises(Boom), station.transaction() as session:
        store_original(
            source=io.BytesIO(data),
            blobs=station.blobs,
            session=session,
            audit=station.audit,
            clock=station.clock,
            make_clip=clip_maker(original_name="crash.MP4"),
            actor="test",
        )
        raise Boom
    sha256 = hashlib.sha256(data).hexdigest()
    assert station.blobs.exists(sha256)
    assert clip_count(station) == 0
    assert audit_trail(station) == []  # the event rolled back with the row it described
    assert [f.sha256 for f in scrub(station).orphans] == [sha256]
    # docking the same file again adopts the orphan as the clip's bytes
    adopted = store_clip(station, data, original_name="crash.MP4")
    assert not adopted.duplicate
    assert audit_trail(station, "clip.stored")[0].details["new_blob"] is False
    assert scrub(station).orphans == []


def test_a_clean_store_scrubs_ok_and_the_scrub_is_audited() -> None:
    station = fake_station()
    for n in range(3):
        store_clip(station, f"clip {n}".encode() * 100)
    report = scrub(station, actor="custodian")
    assert report.ok
    assert (report.blobs_checked, report.records_checked) == (3, 3)
    assert report.altered == report.missing == report.orphans == []
    [event] = audit_trail(station, "store.scrubbed")
    assert event.actor == "custodian" and event.object_id == "memory"
    assert event.details["ok"] is True


def test_scrub_finds_an_altered_a_missing_and_an_orphan_blob() -> None:
    station = fake_station()
    good = store_clip(station, b"good footage" * 100).sha256
    altered = store_clip(station, b"footage to be altered" * 100).sha256
    missing = store_clip(station, b"footage to be lost" * 100).sha256
    orphan = station.blobs.put(io.BytesIO(b"on no record")).sha256
    station.blobs.tamper(altered, b"footage to be altered" * 99 + b"x")
    station.blobs.lose(missing)

    report = scrub(station)

    assert not report.ok
    assert [f.sha256 for f in report.altered] == [altered]
    assert [f.sha256 for f in report.missing] == [missing]
    assert [f.sha256 for f in report.orphans] == [orphan]
    assert good not in {f.sha256 for f in report.altered + report.missing + report.orphans}
    [event] = audit_trail(station, "store.scrubbed")
    assert event.details["ok"] is False
    assert event.details["altered"] == [altered]
    assert event.details["missing"] == [missing]
    assert event.details["counts"] == {"altered": 1, "missing": 1, "unrecorded": 0, "orphans": 1}
    assert verify_audit_log(station.engine, station.key.public()).ok
