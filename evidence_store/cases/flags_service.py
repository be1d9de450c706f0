"""Compliance flags over the database (R1, R5, R6, R7, R8), around the pure rules in
`evidence_store.domain.compliance`.

`refresh_flags` recomputes the flags of the given documents and clips from the stored facts (links,
clip times, approved exceptions, late handover) and makes the open flags in `compliance_flags` equal to
them: new ones are opened, changed numbers update the open flag, and a flag whose cause went away is
cleared (`cleared_at`), never deleted. It runs inside the caller's transaction, after any linking
change, exception approval, import or clip processing. `refresh_all_flags` does every document and clip,
a page of ids at a time.

R8's filing flag depends on the time as well as on the facts: a document becomes overdue when its
filing window passes with no footage linked. `flag_overdue_filing` (run by the nightly retention run)
refreshes the documents whose window has passed unfiled, and those already flagged, as of its `now`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Table, bindparam, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from evidence_store.bootstrap import Station
from evidence_store.cases.linking_transaction import lock_linking, tolerance_of
from evidence_store.db.bulk import BulkWriter, indexes_down_if_empty
from evidence_store.db.columns import fetch_raw, json_value, time_column, time_reader
from evidence_store.db.tables import (
    clip_links,
    clips,
    compliance_flags,
    documents,
    recording_exceptions,
    transfers,
)
from evidence_store.domain.compliance import (
    ClipFacts,
    DocumentFacts,
    Flag,
    FlagKind,
    Interval,
    clip_flags,
    diff_flags,
    document_flags,
    filing_flag,
)
from evidence_store.domain.model import ClipStatus, MediaType

CHUNK = 2000
FLAG_INSERT_COLUMNS = (
    "kind",
    "document_id",
    "clip_id",
    "case_id",
    "details",
    "opened_at",
    "updated_at",
    "clip_start",
)
FlagKey = tuple[str, int | None, int | None]
_KEPT_TEXTS = 4096  # distinct details texts kept parsed (and encoded) during a run
_DELETED = ClipStatus.DELETED.value
_OTHER = MediaType.OTHER.value


@dataclass
class FlagChanges:
    opened: int = 0
    updated: int = 0
    cleared: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"flags_opened": self.opened, "flags_updated": self.updated, "flags_cleared": self.cleared}


def _chunks(ids: Iterable[int], size: int = CHUNK) -> Iterator[list[int]]:
    ordered = sorted(set(ids))
    for start in range(0, len(ordered), size):
        yield ordered[start : start + size]


class _FlagWriter:
    def __init__(self, connection: Connection, now: datetime) -> None:
        self.bulk = BulkWriter(connection)
        self.now = self.bulk.time(now)
        self.changes = FlagChanges()
        self._parsed: dict[str, Any] = {}  # stored details text -> its value (never changed by a caller)
        self._encoded: dict[tuple[tuple[str, str], ...], Any] = {}  # details of text only -> stored form

    def apply(
        self,
        open_rows: list[tuple[Any, ...]],
        computed: list[Flag],
        clip_starts: dict[int, Any] | None = None,
    ) -> None:
        """Make the open flags of a scope equal to `computed`.

        `open_rows` are (id, kind, document_id, clip_id, case_id, details, clip_start) of the scope's
        open flags; `clip_starts` the flagged clips' starts as stored (`compliance_flags.clip_start`,
        for the flag search: written with each flag opened, and put back on an open flag that carries
        another value; see evidence_store/db/triggers.py).
        """
        starts = clip_starts or {}
        stored: dict[FlagKey, Any] = {}
        ids: dict[FlagKey, int] = {}
        cases: dict[FlagKey, int | None] = {}
        clears: list[tuple[Any, ...]] = []
        restarts: list[tuple[Any, ...]] = []
        for flag_id, kind, document_id, clip_id, case_id, details, clip_start in open_rows:
            key = (kind, document_id, clip_id)
            if key in ids:  # a duplicate open flag (should not happen): clear the extra one
                clears.append((self.now, self.now, flag_id))
                continue
            ids[key] = flag_id
            stored[key] = details
            cases[key] = case_id
            if clip_id in starts and starts[clip_id] != clip_start:
                restarts.append((starts[clip_id], flag_id))
        diff = diff_flags(self._details_of(stored), computed)
        updates = {flag.key: flag for flag in diff.update}
        if cases:
            for flag in computed:
                key = flag.key
                if key in cases and cases[key] != flag.case_id and key not in updates:
                    updates[key] = flag
        inserts = [
            (
                flag.key[0],
                flag.document_id,
                flag.clip_id,
                flag.case_id,
                self._stored(flag.details),
                self.now,
                self.now,
                starts.get(flag.clip_id) if flag.clip_id is not None else None,
            )
            for flag in diff.open
        ]
        update_rows = [
            (self._stored(flag.details), flag.case_id, self.now, ids[key]) for key, flag in updates.items()
        ]
        clears.extend((self.now, self.now, ids[key]) for key in diff.clear)
        self.bulk.update(compliance_flags, ("cleared_at", "updated_at"), "id", clears)
        self.bulk.update(compliance_flags, ("details", "case_id", "updated_at"), "id", update_rows)
        # not a change of the flag (no count): the copy of its clip's start the flag search reads
        self.bulk.update(compliance_flags, ("clip_start",), "id", restarts)
        self.bulk.insert(compliance_flags, FLAG_INSERT_COLUMNS, inserts)
        self.changes.opened += len(inserts)
        self.changes.updated += len(update_rows)
        self.changes.cleared += len(clears)

    def _stored(self, details: dict[str, Any]) -> Any:
        """The details in stored form. Details whose values are all text repeat (every unassigned
        clip's is one sentence, a third of a first relink's flags): each is encoded once per run.
        Other values are encoded each time: 1, 1.0 and True would share a key but not a text."""
        if not all(type(value) is str for value in details.values()):
            return self.bulk.json(details)
        key = tuple(details.items())
        text = self._encoded.get(key)
        if text is None:
            text = self.bulk.json(details)
            if len(self._encoded) >= _KEPT_TEXTS:
                self._encoded.clear()
            self._encoded[key] = text
        return text

    def _details_of(self, stored: dict[FlagKey, Any]) -> dict[FlagKey, dict[str, Any]]:
        """The stored details as values. Many flags store the same text (every unassigned clip's is
        one sentence): each distinct text is parsed once per run, not once per flag."""
        current: dict[FlagKey, dict[str, Any]] = {}
        parsed = self._parsed
        for key, text in stored.items():
            if not isinstance(text, str):
                current[key] = text  # PostgreSQL: the driver parsed it
                continue
            value = parsed.get(text)
            if value is None:
                value = json_value(text)
                if len(parsed) >= _KEPT_TEXTS:
                    parsed.clear()
                parsed[text] = value
            current[key] = value
        return current


def _open_flags(where: ColumnElement[bool]) -> Any:
    # only the id condition is indexed: "clip_id IS NULL" would make SQLite walk every document flag
    return select(
        compliance_flags.c.id,
        compliance_flags.c.kind,
        compliance_flags.c.document_id,
        compliance_flags.c.clip_id,
        compliance_flags.c.case_id,
        compliance_flags.c.details,
        compliance_flags.c.clip_start,
    ).where(compliance_flags.c.cleared_at.is_(None), where)


Where = Callable[[ColumnElement[Any]], ColumnElement[bool]]


class _Queries:
    """The selects of a refresh, built once per run in two shapes: an id range (dense chunks, an index
    range scan) and an id list (sparse chunks)."""

    def __init__(self, connection: Connection) -> None:
        lo: Any = bindparam("lo")
        hi: Any = bindparam("hi")
        ids: Any = bindparam("ids", expanding=True)
        self.shapes: dict[str, Where] = {"range": lambda c: c.between(lo, hi), "list": lambda c: c.in_(ids)}
        self.documents = self._both(
            lambda where: select(
                documents.c.id,
                documents.c.case_id,
                documents.c.kind,
                documents.c.requires_video,
                time_column(connection, documents.c.start, "start"),
                time_column(connection, documents.c.end, "end"),
            ).where(where(documents.c.id))
        )
        self.footage = self._both(
            lambda where: (
                select(
                    clip_links.c.document_id,
                    time_column(connection, clips.c.utc_start, "utc_start"),
                    time_column(connection, clips.c.utc_end, "utc_end"),
                )
                .join(clips, clips.c.id == clip_links.c.clip_id)
                .where(
                    where(clip_links.c.document_id),
                    clip_links.c.removed_at.is_(None),
                    clips.c.utc_start.is_not(None),
                )
            )
        )
        self.document_flags = self._both(lambda where: _open_flags(where(compliance_flags.c.document_id)))
        # the clips that can have a flag, or have one open: `clip_flags` flags a late handover (R1) and
        # footage linked to no case; a clip linked to a case and handed over in time has none, and
        # unless one is open there is nothing to clear (`test_a_linked_clip_handed_over_in_time_has_no_flag`)
        linked = (
            select(clip_links.c.id)
            .where(clip_links.c.clip_id == clips.c.id, clip_links.c.removed_at.is_(None))
            .exists()
        )
        flagged = (
            select(compliance_flags.c.id)
            .where(compliance_flags.c.clip_id == clips.c.id, compliance_flags.c.cleared_at.is_(None))
            .exists()
        )

        def candidate_clips(where: Where, *, none_open: bool) -> Any:
            may_have_flags = or_(clips.c.late_handover.is_(True), ~linked)
            return (
                select(
                    clips.c.id,
                    clips.c.media_type,
                    clips.c.status,
                    clips.c.late_handover,
                    time_column(connection, clips.c.utc_start, "utc_start"),
                    time_column(connection, clips.c.utc_end, "utc_end"),
                    time_column(connection, transfers.c.started_at, "handed_over_at"),
                    linked.label("linked"),
                )
                .outerjoin(transfers, transfers.c.id == clips.c.transfer_id)
                .where(where(clips.c.id), may_have_flags if none_open else or_(may_have_flags, flagged))
            )

        self.clips = self._both(lambda where: candidate_clips(where, none_open=False))
        # with no flag in the table at all (a first relink), nothing can be open: not even looked for
        self.clips_none_open = self._both(lambda where: candidate_clips(where, none_open=True))
        self.clip_cases = select(clip_links.c.clip_id, clip_links.c.case_id).where(
            clip_links.c.clip_id.in_(bindparam("ids", expanding=True)), clip_links.c.removed_at.is_(None)
        )
        self.clip_flags = self._both(lambda where: _open_flags(where(compliance_flags.c.clip_id)))

    def _both(self, build: Callable[[Where], Any]) -> dict[str, Any]:
        return {shape: build(where) for shape, where in self.shapes.items()}

    @classmethod
    def for_connection(cls, connection: Connection) -> _Queries:
        """Built once per dialect (they differ only in how times are read) and reused."""
        name = connection.dialect.name
        if name not in _QUERIES:
            _QUERIES[name] = cls(connection)
        return _QUERIES[name]

    @staticmethod
    def shape(chunk: list[int]) -> tuple[str, dict[str, Any]]:
        lo, hi = chunk[0], chunk[-1]
        if hi - lo + 1 <= 2 * len(chunk):
            return "range", {"lo": lo, "hi": hi}
        return "list", {"ids": chunk}


_QUERIES: dict[str, _Queries] = {}


@dataclass(frozen=True)
class _Filing:
    """R8's clock for a refresh: as of when, and the filing window."""

    now: datetime
    window: timedelta


def _filing(station: Station, as_of: datetime | None) -> _Filing:
    return _Filing(as_of or station.clock(), timedelta(days=station.settings.retention_filing_window_days))


_DOCUMENT_COLUMN, _CLIP_COLUMN = 2, 3  # of an `_open_flags` row


def _open_rows(
    connection: Connection, statement: Any, params: dict[str, Any], wanted: set[int], *, of_clips: bool
) -> list[tuple[Any, ...]]:
    """The open flags of the scope's clips (`of_clips`) or documents, each only of its own kind: a
    document's flag has no clip, a clip's no document."""
    own, other = (_CLIP_COLUMN, _DOCUMENT_COLUMN) if of_clips else (_DOCUMENT_COLUMN, _CLIP_COLUMN)
    return [
        row for row in fetch_raw(connection, statement, params) if row[own] in wanted and row[other] is None
    ]


def _refresh_documents(
    connection: Connection,
    queries: _Queries,
    chunk: list[int],
    writer: _FlagWriter,
    tolerance: timedelta,
    filing: _Filing,
    *,
    none_open: bool = False,
) -> None:
    read_time = time_reader(connection)
    wanted = set(chunk)
    shape, params = queries.shape(chunk)
    rows = [row for row in fetch_raw(connection, queries.documents[shape], params) if row[0] in wanted]
    footage: dict[int, list[Interval]] = defaultdict(list)
    for document_id, raw_start, raw_end in fetch_raw(connection, queries.footage[shape], params):
        start = read_time(raw_start)
        end = read_time(raw_end)
        assert start is not None
        footage[document_id].append(Interval(start, end if end is not None and end >= start else start))
    excepted_documents: set[int] = set()
    excepted_cases: set[int] = set()
    if rows:
        approved = (recording_exceptions.c.approved_at.is_not(None), recording_exceptions.c.approved_by != "")
        excepted_documents = set(
            connection.scalars(
                select(recording_exceptions.c.document_id).where(
                    recording_exceptions.c.document_id.in_([row[0] for row in rows]), *approved
                )
            )
        )
        excepted_cases = set(
            connection.scalars(
                select(recording_exceptions.c.case_id).where(
                    recording_exceptions.c.case_id.in_(sorted({row[1] for row in rows})),
                    recording_exceptions.c.document_id.is_(None),
                    *approved,
                )
            )
        )
    computed: list[Flag] = []
    no_footage: list[Interval] = []
    for document_id, case_id, kind, requires_video, start, end in rows:
        facts = DocumentFacts(
            document_id=document_id,
            case_id=case_id,
            kind=kind,
            requires_video=bool(requires_video),
            start=read_time(start),
            end=read_time(end),
            has_approved_exception=document_id in excepted_documents or case_id in excepted_cases,
        )
        linked_footage = footage.get(document_id, no_footage)
        computed.extend(document_flags(facts, linked_footage, tolerance))
        overdue = filing_flag(facts, bool(linked_footage), filing.now, filing.window)
        if overdue is not None:
            computed.append(overdue)
    open_rows = (
        []
        if none_open
        else _open_rows(connection, queries.document_flags[shape], params, wanted, of_clips=False)
    )
    writer.apply(open_rows, computed)


def _refresh_clips(
    connection: Connection,
    queries: _Queries,
    chunk: list[int],
    writer: _FlagWriter,
    *,
    none_open: bool = False,
) -> None:
    read_time = time_reader(connection)
    wanted = set(chunk)
    shape, params = queries.shape(chunk)
    candidates = queries.clips_none_open if none_open else queries.clips
    rows = [row for row in fetch_raw(connection, candidates[shape], params) if row[0] in wanted]
    open_rows = (
        [] if none_open else _open_rows(connection, queries.clip_flags[shape], params, wanted, of_clips=True)
    )
    # the cases of the candidates that have a link (a late handover, or a flag open): few
    linked: dict[int, set[int]] = defaultdict(set)
    with_links = [row[0] for row in rows if row[7]]
    if with_links:
        for clip_id, case_id in fetch_raw(connection, queries.clip_cases, {"ids": with_links}):
            linked[clip_id].add(case_id)
    computed: list[Flag] = []
    no_cases: tuple[int, ...] = ()
    starts: dict[int, Any] = {}
    for clip_id, media_type, status, late_handover, start, end, handed_over_at, _linked in rows:
        if status == _DELETED:
            continue  # what is left of a deleted clip is its tombstone; its flags clear
        case_ids = linked.get(clip_id)
        late = bool(late_handover)
        starts[clip_id] = start  # as stored (text on SQLite): copied as is into the flag's clip_start
        computed.extend(
            clip_flags(
                ClipFacts(
                    clip_id=clip_id,
                    is_media=media_type != _OTHER,
                    linked_case_ids=tuple(sorted(case_ids)) if case_ids else no_cases,
                    late_handover=late,
                    # the times only matter to a late handover: parsed only then
                    recording_end=(read_time(end) or read_time(start)) if late else None,
                    handed_over_at=read_time(handed_over_at) if late else None,
                )
            )
        )
    writer.apply(open_rows, computed, starts)


def refresh_flags(
    session: Session,
    station: Station,
    *,
    document_ids: Iterable[int] = (),
    clip_ids: Iterable[int] = (),
    tolerance: timedelta | None = None,
    as_of: datetime | None = None,
) -> FlagChanges:
    """Recompute and store the flags of these documents and clips, in the session's transaction; R8's
    filing flag as of `as_of` (default: the station's clock)."""
    tol = tolerance_of(station, tolerance)
    filing = _filing(station, as_of)
    session.flush()
    connection = session.connection()
    lock_linking(connection)  # one writer of links and flags at a time (PostgreSQL; SQLite has one anyway)
    writer = _FlagWriter(connection, station.clock())
    queries = _Queries.for_connection(connection)
    for chunk in _chunks(document_ids):
        _refresh_documents(connection, queries, chunk, writer, tol, filing)
    for chunk in _chunks(clip_ids):
        _refresh_clips(connection, queries, chunk, writer)
    return writer.changes


def _pages(connection: Connection, table: Table) -> Iterator[list[int]]:
    last = 0
    page_query = select(table.c.id).where(table.c.id > bindparam("last")).order_by(table.c.id).limit(CHUNK)
    while True:
        page = [row[0] for row in fetch_raw(connection, page_query, {"last": last})]
        if not page:
            return
        yield page
        last = page[-1]


def refresh_all_flags(session: Session, station: Station, tolerance: timedelta | None = None) -> FlagChanges:
    """Every document's and clip's flags, a page of ids at a time (memory bounded)."""
    tol = tolerance_of(station, tolerance)
    session.flush()
    connection = session.connection()
    lock_linking(connection)
    writer = _FlagWriter(connection, station.clock())
    queries = _Queries.for_connection(connection)
    filing = _filing(station, None)
    # a first relink's flags go into an empty table: on SQLite its indexes are built once afterwards
    with indexes_down_if_empty(connection, compliance_flags) as none_open:
        for page in _pages(connection, documents):
            _refresh_documents(connection, queries, page, writer, tol, filing, none_open=none_open)
        for page in _pages(connection, clips):
            _refresh_clips(connection, queries, page, writer, none_open=none_open)
    # open flags of rows that no longer exist cannot happen: flags reference them by foreign key
    return writer.changes


def documents_due_between(
    connection: Connection, earlier: datetime, later: datetime, window: timedelta
) -> set[int]:
    """R8's clock moving from `earlier` to `later` (either way): the documents needing video whose
    filing window ends in between (the end of the act, or its start when no end is written, plus
    `window`), whose filing flag may therefore open or close with no fact written."""
    low, high = sorted((earlier, later))
    low, high = low - window, high - window
    act_end = func.coalesce(documents.c.end, documents.c.start)
    return set(
        connection.scalars(
            select(documents.c.id).where(
                documents.c.requires_video.is_(True), act_end >= low, act_end <= high
            )
        )
    )


def flag_overdue_filing(session: Session, station: Station, now: datetime) -> FlagChanges:
    """R8 as of `now`: open the filing flag of every document needing video whose filing window has
    passed with no footage linked, and clear those filed since (or excused by an approved exception).
    Only those documents are refreshed: the unfiled ones past their window, and the ones flagged."""
    cutoff = now - timedelta(days=station.settings.retention_filing_window_days)
    connection = session.connection()
    linked = select(clip_links.c.document_id).where(
        clip_links.c.document_id == documents.c.id, clip_links.c.removed_at.is_(None)
    )
    act_end = func.coalesce(documents.c.end, documents.c.start)
    unfiled = set(
        connection.scalars(
            select(documents.c.id).where(
                documents.c.requires_video.is_(True), act_end <= cutoff, ~linked.exists()
            )
        )
    )
    flagged = set(
        connection.scalars(
            select(compliance_flags.c.document_id).where(
                compliance_flags.c.kind == FlagKind.FILING_OVERDUE.value,
                compliance_flags.c.cleared_at.is_(None),
            )
        )
    )
    return refresh_flags(session, station, document_ids=unfiled | flagged, as_of=now)


def open_flags_query(*where: ColumnElement[bool]) -> Any:
    return select(compliance_flags).where(compliance_flags.c.cleared_at.is_(None), *where)
