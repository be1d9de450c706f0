"""Building a station's records for tests, one way each: clips (with or without bytes), officers,
devices, cases, documents, links and users. The `add_*`/`store_*` functions work on a real station and
on `tests.fakes.fake_station` alike, take the station first and return the new row's id (or what was
stored); `make_clip` and `clip_maker` build the plain `Clip` dataclass."""

from __future__ import annotations

import functools
import hashlib
import io
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

from sqlalchemy import insert
from sqlalchemy.orm import Session

from evidence_store import accounts, credentials
from evidence_store.bootstrap import Station
from evidence_store.db.tables import document_officers, users
from evidence_store.domain.model import (
    Case,
    CaseCategory,
    Clip,
    ClipLink,
    ClipStatus,
    Confidentiality,
    Derivative,
    DerivativeKind,
    Device,
    Document,
    MediaType,
    Officer,
)
from evidence_store.domain.record_facts import FACTS_KEY, row_fact
from evidence_store.originals import ClipFactory, StoredOriginal, store_original

T0 = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


# -- clips --------------------------------------------------------------------------------------------


def make_clip(*, sha256: str, size: int, ingested_at: datetime, **fields: Any) -> Clip:
    """A `Clip` as the dock records it; any field may be given (defaults: a video with a name)."""
    fields.setdefault("media_type", MediaType.VIDEO)
    fields.setdefault("original_name", f"{sha256[:8]}.MP4")
    return Clip(sha256=sha256, size=size, ingested_at=ingested_at, **fields)


def clip_maker(**fields: Any) -> ClipFactory:
    """The `make_clip(sha256, size, now)` that `store_original` takes, building clips with `fields`."""

    def make(sha256: str, size: int, now: datetime) -> Clip:
        return make_clip(sha256=sha256, size=size, ingested_at=now, **fields)

    return make


def store_clip(station: Station, data: bytes, *, actor: str = "test", **fields: Any) -> StoredOriginal:
    """Store `data` as an original and record its clip (with `fields`) in the one safe order."""
    with station.transaction() as session:
        return store_original(
            source=io.BytesIO(data),
            blobs=station.blobs,
            session=session,
            audit=station.audit,
            clock=station.clock,
            make_clip=clip_maker(**fields),
            actor=actor,
        )


def add_clip_row(station: Station, label: str, **fields: Any) -> int:
    """A clip on record whose bytes are not in the store (rules over rows need no bytes); its sha256
    is that of `label`, so the same label is the same clip."""
    fields.setdefault("size", 1000)
    fields.setdefault("ingested_at", station.clock())
    fields.setdefault("original_name", f"{label}.MP4")
    with station.transaction() as session:
        clip = make_clip(sha256=hashlib.sha256(label.encode()).hexdigest(), **fields)
        session.add(clip)
        session.flush()
        assert clip.id is not None
        _state_on_the_chain(station, session, row_fact("clips", clip.id, clip, new=True))
        return clip.id


def _state_on_the_chain(station: Station, session: Session, fact: dict[str, Any]) -> None:
    """A row a factory writes is stated in an audit event as the services state theirs, so the
    station still verifies clean (`evidence audit verify` replays the chain against the rows)."""
    station.audit.record(
        session,
        actor="test",
        action="test.recorded",
        object_type=fact["t"],
        object_id=fact["id"],
        details={FACTS_KEY: [fact]},
    )


def add_derivative(
    station: Station,
    clip_id: int,
    derived_from: str,
    data: bytes,
    kind: DerivativeKind = DerivativeKind.PROXY,
) -> int:
    """A derivative of a clip with its bytes in the store, recorded as the worker records one."""
    blob = station.blobs.put(io.BytesIO(data))
    with station.transaction() as session:
        derivative = Derivative(
            clip_id=clip_id,
            kind=kind,
            sha256=blob.sha256,
            size=blob.size,
            mime_type="video/mp4",
            derived_from_sha256=derived_from,
            tool="ffmpeg",
            tool_version="test",
            arguments=[],
            created_at=station.clock(),
        )
        session.add(derivative)
        session.flush()
        assert derivative.id is not None
        _state_on_the_chain(station, session, row_fact("derivatives", derivative.id, derivative, new=True))
        return derivative.id


# -- people and things ----------------------------------------------------------------------------------


def add_officer(station: Station, badge: str, **fields: Any) -> int:
    with station.transaction() as session:
        officer = Officer(badge_number=badge, **fields)
        session.add(officer)
        session.flush()
        assert officer.id is not None
        return officer.id


def add_device(station: Station, serial: str, **fields: Any) -> int:
    with station.transaction() as session:
        device = Device(serial=serial, **fields)
        session.add(device)
        session.flush()
        assert device.id is not None
        return device.id


def add_case(station: Station, number: str, **fields: Any) -> int:
    fields.setdefault("category", CaseCategory.INSPECTION)
    with station.transaction() as session:
        case = Case(number=number, **fields)
        session.add(case)
        session.flush()
        assert case.id is not None
        return case.id


def add_document(
    station: Station,
    external_id: str,
    case_id: int,
    *,
    start: datetime | None = None,
    minutes: float = 30,
    indexed: bool = True,
    **fields: Any,
) -> int:
    """An enforcement document of `case_id`, by default an act that needs video, `minutes` long.

    `indexed`: its officers are in the officer index too (`document_officers`, which linking reads),
    as the case import leaves them."""
    fields.setdefault("kind", "现场检查笔录")
    fields.setdefault("requires_video", True)
    if start is not None:
        fields.setdefault("end", start + timedelta(minutes=minutes))
    with station.transaction() as session:
        document = Document(external_id=external_id, case_id=case_id, start=start, **fields)
        session.add(document)
        session.flush()
        assert document.id is not None
        _state_on_the_chain(station, session, row_fact("documents", document.id, document, new=True))
        if indexed and document.officer_ids:
            session.execute(
                insert(document_officers),
                [{"document_id": document.id, "officer_id": o} for o in dict.fromkeys(document.officer_ids)],
            )
        return document.id


def add_link(station: Station, clip_id: int, case_id: int, **fields: Any) -> int:
    """A link of a clip to a case (a test's decision, unless `fields` say otherwise)."""
    fields.setdefault("created_at", station.clock())
    fields.setdefault("created_by", "test")
    fields.setdefault("reason", "test")
    with station.transaction() as session:
        link = ClipLink(clip_id=clip_id, case_id=case_id, **fields)
        session.add(link)
        session.flush()
        assert link.id is not None
        _state_on_the_chain(station, session, row_fact("clip_links", link.id, link, new=True))
        return link.id


def add_user(
    station: Station,
    username: str,
    role: str,
    *,
    unit: str = "",
    active: bool = True,
    password_hash: str = "!",  # "!": no password login needed
) -> None:
    """A station user (a web account; the export workflow checks roles against these)."""
    now = station.clock()
    with station.engine.begin() as connection:
        connection.execute(
            insert(users).values(
                username=username,
                display_name=username,
                role=role,
                unit=unit,
                password_hash=password_hash,
                active=active,
                created_at=now,
                updated_at=now,
            )
        )


@functools.cache
def _password_hash(username: str, password: str) -> str:
    return credentials.hash_password(password)


def create_account(station: Station, username: str, password: str, **account: Any) -> int:
    """A user made by the account service (`create_user`: checked, audited), with a real argon2id hash
    of `password` that is made once per test session for this user name: the worlds of the web tests
    make their eight to ten users for each of some 180 tests, at about 0.12 s a hash here. Each user
    still has a hash of its own (its own salt), and sign-ins verify it at full cost."""
    with mock.patch.object(accounts, "hash_password", functools.partial(_password_hash, username)):
        return accounts.create_user(station, username=username, password=password, actor="test", **account)


def ready_clip(
    station: Station, officer_id: int, device_id: int, start: datetime, tag: str, *, repeat: int = 500
) -> int:
    """A stored, processed five-minute clip named `tag`.MP4 whose bytes say `tag` (`repeat` times)."""
    return store_clip(
        station,
        f"original bytes of {tag} ".encode() * repeat,
        original_name=f"{tag}.MP4",
        officer_id=officer_id,
        device_id=device_id,
        utc_start=start,
        utc_end=start + timedelta(minutes=5),
        duration_s=300.0,
        status=ClipStatus.READY,
    ).clip_id


def unit_case(station: Station, number: str, unit: str, level: Confidentiality, title: str) -> int:
    """An inspection case of `unit` at confidentiality `level` (R13), opened 2026-03-02."""
    return add_case(
        station,
        number,
        title=title,
        unit=unit,
        category=CaseCategory.INSPECTION,
        confidentiality=level,
        opened_at=datetime(2026, 3, 2, 2, 0, tzinfo=UTC),
    )
