"""One relink definition whatever the state of the link table (R5-R8, issue 21 item 4): on small random
stations, linking each document and clip as it arrives (the import and processing paths, in a random
order), a full relink into an empty link table with no flags, a relink with nothing to change, and a
relink with `all_flags` all end in the same active links and the same open flags. And a relink that
reads only what the relink journal names, after random edits made straight in the database (facts,
links, flags, exceptions) and a later clock, ends where a full relink ends. Property-tested with
hypothesis on SQLite (tests/integration/test_relink_journal.py has the triggers on both databases)."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert, select, update

from evidence_store.bootstrap import Station, initialise
from evidence_store.cases.linking_service import LinkChanges, link_clip, link_documents, relink_all
from evidence_store.db.columns import json_value
from evidence_store.db.tables import (
    clip_links,
    clips,
    compliance_flags,
    document_officers,
    documents,
    recording_exceptions,
)
from evidence_store.domain.model import ClipStatus, ClockStatus, MediaType
from evidence_store.settings import load_settings
from tests.factories import add_case, add_clip_row, add_document, add_officer

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
# R8's clock: thirty days after the acts, so some documents are past their filing window and some not
NOW = T0 + timedelta(days=30, minutes=60)
MIN = timedelta(minutes=1)
_counter = itertools.count()


@dataclass(frozen=True)
class DocumentSpec:
    case: int
    officers: tuple[int, ...]
    start: int | None  # minutes after T0
    length: int | None  # None: no end written
    requires_video: bool


@dataclass(frozen=True)
class ClipSpec:
    officer: int | None
    start: int | None
    length: int | None  # None: no end time (a photo, say)
    clock_unknown: bool
    late_handover: bool
    media: MediaType
    deleted: bool


# times on a coarse grid, so that windows often touch exactly at their (widened) edges
minutes = st.integers(min_value=0, max_value=24).map(lambda n: n * 5)
documents_ = st.builds(
    DocumentSpec,
    case=st.integers(0, 1),
    officers=st.lists(st.integers(0, 2), max_size=3).map(tuple),
    start=st.none() | minutes,
    length=st.none() | st.integers(0, 12).map(lambda n: n * 5),
    requires_video=st.booleans(),
)
clips_ = st.builds(
    ClipSpec,
    officer=st.none() | st.integers(0, 2),
    start=st.none() | minutes,
    length=st.none() | st.integers(0, 6).map(lambda n: n * 5),
    clock_unknown=st.booleans(),
    late_handover=st.booleans(),
    media=st.sampled_from([MediaType.VIDEO, MediaType.VIDEO, MediaType.PHOTO, MediaType.OTHER]),
    deleted=st.integers(0, 9).map(lambda n: n == 0),
)


@dataclass(frozen=True)
class World:
    documents: list[DocumentSpec]
    clips: list[ClipSpec]
    tolerance_minutes: float
    arrivals: list[tuple[str, int]]  # ("document" | "clip", index) in the order the station meets them


@st.composite
def worlds(draw: st.DrawFn) -> World:
    docs = draw(st.lists(documents_, max_size=5))
    clips = draw(st.lists(clips_, max_size=7))
    tolerance = draw(st.sampled_from([0, 2.5, 5, 10]))
    arrivals = draw(
        st.permutations(
            [("document", i) for i in range(len(docs))] + [("clip", i) for i in range(len(clips))]
        )
    )
    return World(docs, clips, tolerance, list(arrivals))


@pytest.fixture
def new_station() -> Iterator[Any]:
    base = Path(tempfile.mkdtemp(prefix="evidence-relink-"))
    made: list[Station] = []

    def make(clock: Any = lambda: NOW) -> Station:
        n = next(_counter)
        env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
        env.update(
            {
                "EVIDENCE_HOME": str(base / f"home{n}"),
                "EVIDENCE_DATABASE_URL": f"sqlite:///{base / f'{n}.db'}",
                "EVIDENCE_PROCESSING_QUEUE": "none",
            }
        )
        station, _ = initialise(load_settings(env), clock=clock)
        made.append(station)
        return station

    yield make
    for station in made:
        station.close()
    shutil.rmtree(base, ignore_errors=True)


Snapshot = tuple[frozenset[tuple[Any, ...]], frozenset[tuple[Any, ...]]]


def snapshot(station: Station) -> Snapshot:
    """Active links (clip, case, document, origin, uncertain) and open flags (kind, document, clip,
    case, details as JSON text with sorted keys)."""
    with station.engine.connect() as connection:
        links = connection.execute(
            select(
                clip_links.c.clip_id,
                clip_links.c.case_id,
                clip_links.c.document_id,
                clip_links.c.origin,
                clip_links.c.uncertain,
            ).where(clip_links.c.removed_at.is_(None))
        ).all()
        flags = connection.execute(
            select(
                compliance_flags.c.kind,
                compliance_flags.c.document_id,
                compliance_flags.c.clip_id,
                compliance_flags.c.case_id,
                compliance_flags.c.details,
            ).where(compliance_flags.c.cleared_at.is_(None))
        ).all()
    return (
        frozenset((c, k, d, str(o), bool(u)) for c, k, d, o, u in links),
        frozenset(
            (str(kind), d, c, k, json.dumps(json_value(x), sort_keys=True)) for kind, d, c, k, x in flags
        ),
    )


def assert_nothing_changed(changes: LinkChanges) -> None:
    assert (changes.added, changes.removed) == (0, 0)
    assert changes.flag_counts == {"flags_opened": 0, "flags_updated": 0, "flags_cleared": 0}


def arrive_incrementally(station: Station, world: World, tolerance: timedelta) -> None:
    """Each document as the case import brings it (linked against the footage already there, its flags
    refreshed), each clip as processing hands it to linking once ready."""
    officers = [add_officer(station, f"b{i}") for i in range(3)]
    cases = [add_case(station, f"CASE-{i}") for i in range(2)]
    for kind, index in world.arrivals:
        if kind == "document":
            spec = world.documents[index]
            start = T0 + spec.start * MIN if spec.start is not None else None
            fields: dict[str, Any] = {"end": None} if spec.length is None else {}  # no end written
            document_id = add_document(
                station,
                f"D{index}",
                cases[spec.case],
                start=start,
                minutes=spec.length or 0,
                officer_ids=[officers[o] for o in spec.officers],
                requires_video=spec.requires_video,
                **fields,
            )
            link_documents(station, [document_id], tolerance)
        else:
            clip = world.clips[index]
            start = T0 + clip.start * MIN if clip.start is not None else None
            clip_id = add_clip_row(
                station,
                f"clip-{index}",
                media_type=clip.media,
                officer_id=officers[clip.officer] if clip.officer is not None else None,
                utc_start=start,
                utc_end=start + clip.length * MIN if start is not None and clip.length is not None else None,
                clock_status=ClockStatus.UNKNOWN if clip.clock_unknown else ClockStatus.MEASURED,
                status=ClipStatus.DELETED if clip.deleted else ClipStatus.READY,
                late_handover=clip.late_handover,
            )
            link_clip(station, clip_id, tolerance)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(world=worlds(), other_tolerance=st.sampled_from([0, 1, 5, 15]))
def test_every_relink_path_agrees_with_linking_as_things_arrive(
    new_station: Any, world: World, other_tolerance: float
) -> None:
    station: Station = new_station()
    tolerance = timedelta(minutes=world.tolerance_minutes)
    arrive_incrementally(station, world, tolerance)
    incremental = snapshot(station)

    # a populated station relinked with nothing to change: nothing changes, links or flags
    assert_nothing_changed(relink_all(station, tolerance))
    assert snapshot(station) == incremental

    # the same facts with no links and no flags (data that came in without linking: a migration, the
    # benchmark's fill): the first relink, into an empty link table, finds the same links and flags
    with station.transaction() as session:
        session.execute(delete(compliance_flags))
        session.execute(delete(clip_links))
    relink_all(station, tolerance)
    assert snapshot(station) == incremental
    assert_nothing_changed(relink_all(station, tolerance))  # and once more changes nothing

    # flags lost while the links stay (or computed by an older version of the rules)
    with station.transaction() as session:
        session.execute(delete(compliance_flags))
    relink_all(station, tolerance)
    assert snapshot(station) == incremental

    # links and flags left by a relink under another tolerance: relinking under this one undoes them
    relink_all(station, timedelta(minutes=other_tolerance))
    relink_all(station, tolerance)
    assert snapshot(station) == incremental


# -- edits made straight in the database, then a relink of what the journal names --------------------

EDITS = (
    "move clip",
    "clip officer",
    "clip deleted",
    "clip late",
    "move document",
    "document needs video",
    "document officer",
    "drop link",
    "remove link",
    "drop flag",
    "edit flag",
    "clear flag",
    "exception",
    "case exception",
    "clock",
)
edits_ = st.lists(st.tuples(st.sampled_from(EDITS), st.integers(0, 50), st.integers(-3, 3)), max_size=6)


def _clip_edits(clip: Any, step: int) -> dict[str, Any]:
    where = clips.c.id == clip.id
    shift = timedelta(minutes=10 * step)
    moved = (
        {"utc_start": clip.utc_start + shift, "utc_end": clip.utc_end + shift if clip.utc_end else None}
        if clip.utc_start is not None
        else {}
    )
    return {
        "move clip": update(clips).where(where).values(**moved) if moved else None,
        "clip officer": update(clips)
        .where(where)
        .values(officer_id=None if step == 0 else (clip.officer_id or 0) % 3 + 1),
        "clip deleted": update(clips)
        .where(where)
        .values(status=ClipStatus.DELETED if step > 0 else ClipStatus.READY),
        "clip late": update(clips).where(where).values(late_handover=step > 0),
    }


def _document_edits(connection: Any, document: Any, pick: int, step: int) -> dict[str, Any]:
    where = documents.c.id == document.id
    shift = timedelta(minutes=10 * step)
    officer = pick % 3 + 1
    pair = (document_officers.c.document_id == document.id, document_officers.c.officer_id == officer)
    has_officer = connection.execute(select(document_officers.c.officer_id).where(*pair)).first()
    exception = {
        "case_id": document.case_id,
        "reason": "the recorder failed",
        "approved_by": "chief" if step >= 0 else "",
        "approved_at": NOW if step >= 0 else None,
        "created_at": NOW,
    }
    return {
        "move document": update(documents)
        .where(where)
        .values(
            start=document.start + shift if document.start is not None else None,
            end=document.end + shift if document.end is not None else None,
        ),
        "document needs video": update(documents).where(where).values(requires_video=step > 0),
        "document officer": delete(document_officers).where(*pair)
        if has_officer
        else insert(document_officers).values(document_id=document.id, officer_id=officer),
        "exception": insert(recording_exceptions).values(document_id=document.id, **exception),
        "case exception": insert(recording_exceptions).values(document_id=None, **exception),
    }


def _link_and_flag_edits(link: Any, flag: Any, step: int) -> dict[str, Any]:
    edits: dict[str, Any] = {}
    if link is not None:
        where = clip_links.c.id == link.id
        edits["drop link"] = delete(clip_links).where(where)
        edits["remove link"] = (
            update(clip_links).where(where).values(removed_at=NOW, removed_by="auto-linking")
        )
    if flag is not None:
        where = compliance_flags.c.id == flag.id
        edits["drop flag"] = delete(compliance_flags).where(where)
        edits["edit flag"] = update(compliance_flags).where(where).values(details={"edited": step})
        edits["clear flag"] = update(compliance_flags).where(where).values(cleared_at=NOW)
    return edits


def edit_directly(station: Station, edit: tuple[str, int, int], clock: list[datetime]) -> None:
    """One edit as someone with the database open would make it (no service, no relink)."""
    what, pick, step = edit
    if what == "clock":
        clock[0] += timedelta(days=10 * step)  # filing windows (30 days) end, or un-end, with no write
        return
    with station.engine.begin() as connection:

        def nth(query: Any) -> Any:
            rows = connection.execute(query).all()
            return rows[pick % len(rows)] if rows else None

        clip = nth(
            select(clips.c.id, clips.c.utc_start, clips.c.utc_end, clips.c.officer_id).order_by(clips.c.id)
        )
        document = nth(
            select(documents.c.id, documents.c.case_id, documents.c.start, documents.c.end).order_by(
                documents.c.id
            )
        )
        link = nth(select(clip_links.c.id).order_by(clip_links.c.id))
        flag = nth(select(compliance_flags.c.id).order_by(compliance_flags.c.id))
        statements = _link_and_flag_edits(link, flag, step)
        if clip is not None:
            statements.update(_clip_edits(clip, step))
        if document is not None:
            statements.update(_document_edits(connection, document, pick, step))
        if statements.get(what) is not None:
            connection.execute(statements[what])


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(world=worlds(), edits=edits_)
def test_a_relink_of_what_the_journal_names_ends_where_a_full_relink_ends(
    new_station: Any, world: World, edits: list[tuple[str, int, int]]
) -> None:
    clock = [NOW]
    station: Station = new_station(lambda: clock[0])
    tolerance = timedelta(minutes=world.tolerance_minutes)
    arrive_incrementally(station, world, tolerance)
    assert relink_all(station, tolerance).full  # the first relink reads everything
    assert not relink_all(station, tolerance).full  # then only what the journal names: nothing

    for edit in edits:
        edit_directly(station, edit, clock)
    journaled = relink_all(station, tolerance)
    assert not journaled.full
    after_journal = snapshot(station)

    # a relink of everything finds nothing left to do
    assert_nothing_changed(relink_all(station, tolerance, full=True))
    assert snapshot(station) == after_journal
