"""Automatic linking of footage to enforcement documents over the database (R5), around the pure core
in `evidence_store.domain.linking`.

- `relink_all`: every officer's clips against every document of that officer, one officer at a time
  (two Core selects per officer: its documents, and its clips with their links in one pass; rows as the
  driver gives them, never ORM objects; writes by executemany; memory bounded by one officer's data),
  then every flag; or, when the relink journal (`evidence_store.db.relink_journal`) can say what
  changed since the last relink, the same for the officers and flags it leads to. One definition
  whatever the tables hold: it ends where linking each document and clip as it arrives ends
  (property-tested in `tests/integration/test_relink_agreement.py`).
- `link_clip`: one clip against the documents a range query finds through `document_officers`.
- `link_documents`: documents just imported against the clips of their officers.

Each reconciles the stored automatic links with what the rules imply in its scope (a clip, some
documents, or everything), so re-running changes nothing. Pairs a custodian decided by hand - a manual
link, a link removed by a person, a link marked as evidence - are never touched. A clip whose recorder
clock was not read links as uncertain. Links the rules no longer imply are kept as history (`removed_at`,
`removed_by = "auto-linking"`), not deleted. Flags are refreshed in the same transaction
(`flags_service`): of everything touched by `link_clip` and `link_documents`, of everything (or of
what the journal leads to) by `relink_all`.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, func, null, or_, select
from sqlalchemy.orm import Session

from evidence_store.bootstrap import Station
from evidence_store.cases.flags_service import documents_due_between, refresh_all_flags, refresh_flags
from evidence_store.cases.linking_transaction import lock_linking, tolerance_of
from evidence_store.db.bulk import BulkWriter, indexes_down_if_empty
from evidence_store.db.columns import fetch_raw, time_column, time_reader
from evidence_store.db.prewarm import prewarmed
from evidence_store.db.relink_journal import journal_paused, journal_supported
from evidence_store.db.tables import (
    clip_links,
    clips,
    document_officers,
    documents,
    officers,
    relink_journal,
    relink_state,
)
from evidence_store.domain.linking import (
    AutoLink,
    ClipSpan,
    DocumentWindow,
    link_clips,
    link_one_clip,
    reconcile,
)
from evidence_store.domain.model import ClipStatus, ClockStatus, LinkOrigin
from evidence_store.errors import NotFoundError
from evidence_store.garbage_collection import collector_paused
from evidence_store.station_trust import software_version

SYSTEM_ACTOR = "auto-linking"
AUTO_REASON = "R5: recorded by an officer of the document within its window (± tolerance)"
_IN_CHUNK = 1000
RELINK_CACHE_KIB = 256 * 1024
# enum values as plain text, compared row by row in the hot paths
_AUTO = LinkOrigin.AUTO.value
_UNKNOWN_CLOCK = ClockStatus.UNKNOWN.value
_DELETED = ClipStatus.DELETED.value

LINK_COLUMNS = (
    "clip_id",
    "case_id",
    "document_id",
    "origin",
    "is_evidence",
    "uncertain",
    "reason",
    "created_by",
    "created_at",
    "removed_by",
)


@dataclass
class LinkChanges:
    """What a linking run changed, and what it touched (whose flags must be refreshed)."""

    added: int = 0
    removed: int = 0
    uncertain_added: int = 0
    clips: set[int] = field(default_factory=set)
    documents: set[int] = field(default_factory=set)
    seconds: float = 0.0
    link_seconds: float = 0.0  # of `seconds`, the linking itself (the rest: flags, audit, commit)
    flag_counts: dict[str, int] = field(default_factory=dict)
    full: bool = True  # a relink that read everything (False: what the relink journal named)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed)

    def as_dict(self) -> dict[str, Any]:
        return {
            "links_added": self.added,
            "links_removed": self.removed,
            "uncertain_added": self.uncertain_added,
            "clips_touched": len(self.clips),
            "documents_touched": len(self.documents),
        }


# -- the writer of link changes ---------------------------------------------------------------------


class _LinkWriter:
    def __init__(self, connection: Connection, now: datetime, *, track: bool = True) -> None:
        self.bulk = BulkWriter(connection)
        self.now = self.bulk.time(now)
        self.inserts: list[tuple[Any, ...]] = []
        self.removals: list[tuple[Any, ...]] = []
        self.changes = LinkChanges()
        self.track = track  # collect the touched clips and documents (whose flags are refreshed)

    def apply(
        self,
        wanted: set[AutoLink],
        existing: dict[tuple[int, int], tuple[int, bool]],
        manual: set[tuple[int, int]],
        extra_removals: Iterable[tuple[int, int, int]] = (),
    ) -> None:
        """Reconcile one scope: `existing` maps each active automatic pair to (link id, uncertain)."""
        change = reconcile(wanted, {(c, d, u) for (c, d), (_, u) in existing.items()}, manual)
        changes = self.changes
        track = self.track
        for pair in change.remove:
            self.removals.append((self.now, SYSTEM_ACTOR, existing[pair][0]))
            if track:
                changes.clips.add(pair[0])
                changes.documents.add(pair[1])
        for link_id, clip_id, document_id in extra_removals:
            self.removals.append((self.now, SYSTEM_ACTOR, link_id))
            changes.removed += 1
            if track:
                changes.clips.add(clip_id)
                changes.documents.add(document_id)
        for link in sorted(change.add, key=_pair_of):
            self.inserts.append(
                (
                    link.clip_id,
                    link.case_id,
                    link.document_id,
                    _AUTO,
                    False,
                    link.uncertain,
                    AUTO_REASON,
                    SYSTEM_ACTOR,
                    self.now,
                    "",
                )
            )
            if track:
                changes.clips.add(link.clip_id)
                changes.documents.add(link.document_id)
            changes.uncertain_added += link.uncertain
        changes.added += len(change.add)
        changes.removed += len(change.remove)
        if len(self.inserts) + len(self.removals) >= 20_000:
            self.flush()

    def flush(self) -> None:
        self.bulk.update(clip_links, ("removed_at", "removed_by"), "id", self.removals)
        self.bulk.insert(clip_links, LINK_COLUMNS, self.inserts)
        self.inserts = []
        self.removals = []


def _pair_of(link: AutoLink) -> tuple[int, int]:
    return (link.clip_id, link.document_id)


@contextmanager
def _large_page_cache(connection: Connection) -> Iterator[None]:
    """A full relink reads most of the database in index order: on SQLite, give this connection a
    page cache of RELINK_CACHE_KIB for the duration (the default is 2 MB), then restore it."""
    if connection.dialect.name != "sqlite":
        yield
        return
    before = int(connection.exec_driver_sql("PRAGMA cache_size").scalar() or -2000)
    connection.exec_driver_sql(f"PRAGMA cache_size = {-RELINK_CACHE_KIB:d}")
    try:
        yield
    finally:
        connection.exec_driver_sql(f"PRAGMA cache_size = {before:d}")


def _split_links(
    rows: Iterable[Any],
) -> tuple[dict[tuple[int, int], tuple[int, bool]], set[tuple[int, int]], list[tuple[int, int, int]]]:
    """Stored links of a scope -> (active automatic pairs, manually decided pairs, duplicate rows).

    Manually decided: a manual link (active or removed), a link a person removed, a link marked as
    evidence. Rows removed by auto-linking itself are history and were left out by the query.
    """
    existing: dict[tuple[int, int], tuple[int, bool]] = {}
    manual: set[tuple[int, int]] = set()
    duplicates: list[tuple[int, int, int]] = []
    for link_id, clip_id, document_id, origin, uncertain, is_evidence, active in rows:
        pair = (clip_id, document_id)
        if origin != _AUTO or is_evidence or not active:
            manual.add(pair)
        elif pair in existing:
            duplicates.append((link_id, clip_id, document_id))
        else:
            existing[pair] = (link_id, bool(uncertain))
    for pair in manual & existing.keys():
        # an automatic row left active beside a decision by hand: the decision wins, leave both alone
        existing.pop(pair)
    return existing, manual, duplicates


def _link_rows_query() -> Any:
    """Links of a scope for `_split_links` (read with `fetch_raw`)."""
    return select(
        clip_links.c.id,
        clip_links.c.clip_id,
        clip_links.c.document_id,
        clip_links.c.origin,
        clip_links.c.uncertain,
        clip_links.c.is_evidence,
        clip_links.c.removed_at.is_(None).label("active"),
    ).where(
        clip_links.c.document_id.is_not(None),
        or_(clip_links.c.removed_at.is_(None), clip_links.c.removed_by != SYSTEM_ACTOR),
    )


# -- everything ---------------------------------------------------------------------------------------


def relink_all(
    station: Station,
    tolerance: timedelta | None = None,
    *,
    actor: str = "system",
    full: bool = False,
) -> LinkChanges:
    """R5-R8 for the whole station, one definition whatever the state of its tables.

    Afterwards the active automatic links are exactly those `link_clips` implies for every clip and
    document (pairs decided by hand kept), and the open flags exactly those the rules compute from the
    stored facts for every document and clip: the state that linking each document and clip as it
    arrives (`link_documents`, `link_clip`) keeps.

    What it reads to get there: everything (`full`, or the first relink, or one under another
    tolerance, filing window or version of the rules than the last: every officer, every flag), or
    only what the relink journal names (`evidence_store.db.relink_journal`: the clips, documents and
    officers whose facts were written since the last relink, by anyone), plus the documents whose
    filing window (R8) ended since. Everything else is as the last relink left it, which was that
    state. Both ways end in the same links and flags (property-tested in
    tests/integration/test_relink_agreement.py).
    """
    started = time.perf_counter()
    tol = tolerance_of(station, tolerance)
    now = station.clock()
    basis = RelinkBasis(tol.total_seconds(), station.settings.retention_filing_window_days, rules_version())
    # millions of rows alive at once: the cyclic collector's full passes would find nothing to free
    with collector_paused(), station.transaction() as session:
        connection = session.connection()
        lock_linking(connection)
        with _large_page_cache(connection), journal_paused(connection):
            last = _last_relink(connection)
            scope = _journal_scope(connection, full=full or last is None or last[0] != basis)
            if scope is None:
                # it reads nearly every page: a cold database file is read ahead in one sequential pass
                with prewarmed(connection):
                    changes = relink_all_in(connection, now, tol, track=True)
                    changes.link_seconds = time.perf_counter() - started
                    flags = refresh_all_flags(session, station, tol)
            else:
                assert last is not None
                changes, documents_due = _relink_scope(
                    connection, now, tol, scope, last[1], basis.filing_window
                )
                changes.link_seconds = time.perf_counter() - started
                flags = refresh_flags(
                    session,
                    station,
                    document_ids=documents_due | changes.documents,
                    clip_ids=scope.clips | changes.clips,
                    tolerance=tol,
                    as_of=now,
                )
            _record_relink(connection, basis, now)
        changes.flag_counts = flags.as_dict()
        changes.full = scope is None
        station.audit.record(
            session,
            actor=actor,
            action="links.relinked",
            object_type="station",
            object_id=station.settings.station_name,
            details={
                **changes.as_dict(),
                **changes.flag_counts,
                "tolerance_minutes": tol.total_seconds() / 60,
                "full": changes.full,
                "journal_rows": scope.rows if scope is not None else None,
            },
        )
    changes.seconds = time.perf_counter() - started
    return changes


# -- what a relink reads: everything, or what the journal names -------------------------------------

# above this many journal rows a relink reads everything: per row it reads more than a full relink does
JOURNAL_FULL_ABOVE = 200_000
_RULES_MODULES = ("evidence_store.domain.linking", "evidence_store.domain.compliance", __name__)


@functools.cache
def rules_version() -> str:
    """The installed version and a digest of the rules' code (the core's linking and compliance
    modules, and the services reading their facts): a relink under other rules recomputes everything,
    even in a checkout whose version number did not change."""
    import importlib.util  # lazy: once per process
    from pathlib import Path

    digest = hashlib.sha256()
    for name in (*_RULES_MODULES, "evidence_store.cases.flags_service"):
        spec = importlib.util.find_spec(name)
        origin = spec.origin if spec is not None else None
        digest.update(Path(origin).read_bytes() if origin else name.encode())
    return f"{software_version()}+{digest.hexdigest()[:16]}"


@dataclass(frozen=True)
class RelinkBasis:
    """What a relink computes under: the tolerance (s), the filing window (days), the rules."""

    tolerance_s: float
    filing_window_days: int
    rules: str

    @property
    def filing_window(self) -> timedelta:
        return timedelta(days=self.filing_window_days)


@dataclass
class JournalScope:
    """What the journal names: clips, documents, officers, and how many rows named them."""

    clips: set[int]
    documents: set[int]
    officers: set[int]
    rows: int


def _last_relink(connection: Connection) -> tuple[RelinkBasis, datetime] | None:
    row = connection.execute(
        select(
            relink_state.c.tolerance_s,
            relink_state.c.filing_window_days,
            relink_state.c.rules_version,
            relink_state.c.relinked_at,
        ).where(relink_state.c.id == 1)
    ).first()
    if row is None:
        return None
    return RelinkBasis(float(row[0]), int(row[1]), str(row[2])), row[3]


def _record_relink(connection: Connection, basis: RelinkBasis, now: datetime) -> None:
    connection.execute(delete(relink_state))
    connection.execute(
        relink_state.insert().values(
            id=1,
            tolerance_s=basis.tolerance_s,
            filing_window_days=basis.filing_window_days,
            rules_version=basis.rules,
            relinked_at=now,
        )
    )


def _journal_scope(connection: Connection, *, full: bool) -> JournalScope | None:
    """Take the journal's rows (deleted in this transaction: a rollback puts them back); None for a
    relink of everything. Rows written by transactions that commit later stay for the next relink."""
    if not journal_supported(connection.dialect.name):
        return None
    if not full:
        count = connection.scalar(select(func.count()).select_from(relink_journal)) or 0
        full = count > JOURNAL_FULL_ABOVE
    if full:
        connection.execute(delete(relink_journal))
        return None
    taken = connection.execute(
        delete(relink_journal).returning(
            relink_journal.c.clip_id, relink_journal.c.document_id, relink_journal.c.officer_id
        )
    ).all()
    scope = JournalScope(set(), set(), set(), len(taken))
    for clip_id, document_id, officer_id in taken:
        if clip_id is not None:
            scope.clips.add(clip_id)
        if document_id is not None:
            scope.documents.add(document_id)
        if officer_id is not None:
            scope.officers.add(officer_id)
    return scope


def _relink_scope(
    connection: Connection,
    now: datetime,
    tolerance: timedelta,
    scope: JournalScope,
    last_relinked: datetime,
    filing_window: timedelta,
) -> tuple[LinkChanges, set[int]]:
    """Relink the officers the journal's rows lead to: the officers named, those of the clips named (as
    they are now) and of the documents named (an officer's links are one sweep over all their clips and
    documents). Returns the changes and the documents whose flags can differ besides those the changes
    touch (which the caller adds, with the named clips): the documents named, the documents the named
    clips are linked to now (their footage is those clips), and the documents whose filing window (R8)
    ended between the last relink's clock and this one."""
    officers_now: set[int] = set(scope.officers)
    documents_due: set[int] = set(scope.documents)
    without_officer: list[int] = []
    for chunk in _chunks(sorted(scope.clips)):
        for clip_id, officer_id, deleted in connection.execute(
            select(
                clips.c.id, clips.c.officer_id, (clips.c.status == ClipStatus.DELETED).label("deleted")
            ).where(clips.c.id.in_(chunk))
        ):
            if officer_id is not None:
                officers_now.add(officer_id)
            elif not deleted:
                without_officer.append(clip_id)
        documents_due.update(
            connection.scalars(
                select(clip_links.c.document_id).where(
                    clip_links.c.clip_id.in_(chunk),
                    clip_links.c.removed_at.is_(None),
                    clip_links.c.document_id.is_not(None),
                )
            )
        )
    for chunk in _chunks(sorted(documents_due)):
        officers_now.update(
            connection.scalars(
                select(document_officers.c.officer_id).where(document_officers.c.document_id.in_(chunk))
            )
        )
    documents_due.update(documents_due_between(connection, last_relinked, now, filing_window))
    changes = _relink_officers(
        connection,
        now,
        tolerance,
        track=True,
        empty=False,
        officer_ids=sorted(officers_now),
        without_officer=without_officer,
    )
    return changes, documents_due


def _relink_statements(connection: Connection) -> tuple[Any, Any]:
    """The two per-officer selects of a full relink, built once (parameter `officer`)."""
    officer: Any = bindparam("officer")
    docs = (
        select(
            documents.c.id,
            documents.c.case_id,
            time_column(connection, documents.c.start, "start"),
            time_column(connection, documents.c.end, "end"),
        )
        .join(document_officers, document_officers.c.document_id == documents.c.id)
        .where(document_officers.c.officer_id == officer, documents.c.start.is_not(None))
    )
    # the officer's clips with their links in one pass over the clip rows (a clip without a link
    # comes once, with NULL link columns); the link conditions are those of `_link_rows_query`
    clips_and_links = (
        select(
            clips.c.id,
            time_column(connection, clips.c.utc_start, "utc_start"),
            time_column(connection, clips.c.utc_end, "utc_end"),
            clips.c.clock_status,
            clip_links.c.id.label("link_id"),
            clip_links.c.document_id,
            clip_links.c.origin,
            clip_links.c.uncertain,
            clip_links.c.is_evidence,
            clip_links.c.removed_at.is_(None).label("active"),
        )
        .select_from(
            clips.outerjoin(
                clip_links,
                and_(
                    clip_links.c.clip_id == clips.c.id,
                    clip_links.c.document_id.is_not(None),
                    or_(clip_links.c.removed_at.is_(None), clip_links.c.removed_by != SYSTEM_ACTOR),
                ),
            )
        )
        .where(clips.c.officer_id == officer, clips.c.status != ClipStatus.DELETED)
    )
    return docs, clips_and_links


_LINK_COLUMNS_READ = ("link_id", "document_id", "origin", "uncertain", "is_evidence", "active")


def _clips_without_links_statement(connection: Connection) -> Any:
    """The officer's clips in the shape of the second select of `_relink_statements`, for a link
    table that is empty (the link columns are NULL): no join, as the table's indexes are down."""
    officer: Any = bindparam("officer")
    return select(
        clips.c.id,
        time_column(connection, clips.c.utc_start, "utc_start"),
        time_column(connection, clips.c.utc_end, "utc_end"),
        clips.c.clock_status,
        *(null().label(name) for name in _LINK_COLUMNS_READ),
    ).where(clips.c.officer_id == officer, clips.c.status != ClipStatus.DELETED)


def relink_all_in(
    connection: Connection, now: datetime, tolerance: timedelta, *, track: bool = False
) -> LinkChanges:
    """The whole relink inside the caller's transaction (no flags, no audit)."""
    with indexes_down_if_empty(connection, clip_links) as empty:
        return _relink_officers(connection, now, tolerance, track=track, empty=empty)


def _relink_officers(
    connection: Connection,
    now: datetime,
    tolerance: timedelta,
    *,
    track: bool,
    empty: bool,
    officer_ids: list[int] | None = None,
    without_officer: list[int] | None = None,
) -> LinkChanges:
    """Relink these officers (default: every officer), then remove the automatic links of clips that
    have no officer: of these clips (default: every such clip)."""
    read_time = time_reader(connection, naive=True)  # only compared with each other
    writer = _LinkWriter(connection, now, track=track)
    docs_statement, clips_statement = _relink_statements(connection)
    if empty:
        clips_statement = _clips_without_links_statement(connection)
    if officer_ids is None:
        officer_ids = list(connection.scalars(select(officers.c.id).order_by(officers.c.id)))
    for officer_id in officer_ids:
        officer = (officer_id,)
        params = {"officer": officer_id}
        docs = [
            DocumentWindow(document_id, case_id, officer, read_time(start), read_time(end))
            for document_id, case_id, start, end in fetch_raw(connection, docs_statement, params)
        ]
        spans: list[ClipSpan] = []
        link_rows: list[tuple[Any, ...]] = []
        seen: set[int] = set()
        for row in fetch_raw(connection, clips_statement, params):
            clip_id, start, end, clock, link_id = row[:5]
            if clip_id not in seen:
                seen.add(clip_id)
                if start is not None:
                    spans.append(
                        ClipSpan(
                            clip_id, officer_id, read_time(start), read_time(end), clock != _UNKNOWN_CLOCK
                        )
                    )
            if link_id is not None:
                link_rows.append((link_id, clip_id, *row[5:]))
        if not link_rows and not (docs and spans):
            continue
        existing, manual, duplicates = _split_links(link_rows)
        writer.apply(link_clips(spans, docs, tolerance), existing, manual, duplicates)
    # automatic links of clips whose officer was taken away (no officer: nothing to link to)
    stale_query = (
        _link_rows_query()
        .join(clips, clips.c.id == clip_links.c.clip_id)
        .where(clips.c.status != ClipStatus.DELETED, clips.c.officer_id.is_(None))
    )
    stale: list[Any] = []
    if without_officer is None:
        stale = [] if empty else list(fetch_raw(connection, stale_query))
    else:
        for chunk in _chunks(without_officer):
            stale.extend(fetch_raw(connection, stale_query.where(clips.c.id.in_(chunk))))
    if stale:
        existing, manual, duplicates = _split_links(stale)
        writer.apply(set(), existing, manual, duplicates)
    writer.flush()
    return writer.changes


def _officer_clips(connection: Connection, officer_id: int) -> Any:
    return (
        select(
            clips.c.id,
            time_column(connection, clips.c.utc_start, "utc_start"),
            time_column(connection, clips.c.utc_end, "utc_end"),
            clips.c.clock_status,
        )
        .where(
            clips.c.officer_id == officer_id,
            clips.c.utc_start.is_not(None),
            clips.c.status != ClipStatus.DELETED,
        )
        .order_by(clips.c.utc_start)
    )


# -- one clip -----------------------------------------------------------------------------------------


def link_clip(station: Station, clip_id: int, tolerance: timedelta | None = None) -> LinkChanges:
    """R5 for one clip (after processing): link it, and refresh its flags and its documents' flags."""
    started = time.perf_counter()
    with station.transaction() as session:
        changes = link_clip_in(session, station, clip_id, tolerance)
    changes.seconds = time.perf_counter() - started
    return changes


def _document_windows(connection: Connection) -> Any:
    """Documents with each of their officers and their window: what a `DocumentWindow` is made of."""
    return select(
        documents.c.id,
        documents.c.case_id,
        document_officers.c.officer_id,
        time_column(connection, documents.c.start, "start"),
        time_column(connection, documents.c.end, "end"),
    ).join(document_officers, document_officers.c.document_id == documents.c.id)


def _link_clip_statements(connection: Connection) -> tuple[Any, Any, Any]:
    """The three selects of `link_clip_in`, built once per dialect (parameters `clip`, `officer`,
    `first`, `last`): building them per clip cost about as much as running them."""
    name = connection.dialect.name
    if name not in _LINK_CLIP_STATEMENTS:
        clip_id: Any = bindparam("clip")
        the_clip = select(
            clips.c.id,
            clips.c.officer_id,
            time_column(connection, clips.c.utc_start, "utc_start"),
            time_column(connection, clips.c.utc_end, "utc_end"),
            func.lower(clips.c.clock_status).label("clock_status"),
            func.lower(clips.c.status).label("status"),
        ).where(clips.c.id == clip_id)
        candidates = _document_windows(connection).where(
            document_officers.c.officer_id == bindparam("officer"),
            documents.c.start.is_not(None),
            documents.c.start <= bindparam("last"),
            func.coalesce(documents.c.end, documents.c.start) >= bindparam("first"),
        )
        links_of_clip = _link_rows_query().where(clip_links.c.clip_id == clip_id)
        _LINK_CLIP_STATEMENTS[name] = (the_clip, candidates, links_of_clip)
    return _LINK_CLIP_STATEMENTS[name]


_LINK_CLIP_STATEMENTS: dict[str, tuple[Any, Any, Any]] = {}


def link_clip_in(
    session: Session, station: Station, clip_id: int, tolerance: timedelta | None = None
) -> LinkChanges:
    tol = tolerance_of(station, tolerance)
    connection = session.connection()
    lock_linking(connection)
    read_time = time_reader(connection)
    the_clip, candidates_of, links_of_clip = _link_clip_statements(connection)
    clip = connection.execute(the_clip, {"clip": clip_id}).first()
    if clip is None:
        raise NotFoundError(f"no clip {clip_id}")
    writer = _LinkWriter(connection, station.clock())
    if clip.status == _DELETED:
        return writer.changes
    span = ClipSpan(
        clip.id,
        clip.officer_id,
        read_time(clip.utc_start),
        read_time(clip.utc_end),
        clip.clock_status != _UNKNOWN_CLOCK,
    )
    wanted: set[AutoLink] = set()
    if span.placed and span.start is not None:
        clip_end = span.end if span.end is not None else span.start
        candidates = [
            DocumentWindow(row.id, row.case_id, (row.officer_id,), read_time(row.start), read_time(row.end))
            for row in connection.execute(
                candidates_of,
                {"officer": span.officer_id, "last": clip_end + tol, "first": span.start - tol},
            )
        ]
        wanted = link_one_clip(span, candidates, tol)
    link_rows = fetch_raw(connection, links_of_clip, {"clip": clip_id})
    # the documents it is linked to now (active links of any origin): their flags change with it
    before = {row[2] for row in link_rows if row[6]}
    existing, manual, duplicates = _split_links(link_rows)
    writer.apply(wanted, existing, manual, duplicates)
    writer.flush()
    changes = writer.changes
    refresh_flags(
        session,
        station,
        # the documents linked afterwards are among these: links only come and go through `changes`
        document_ids=before | changes.documents,
        clip_ids={clip_id},
        tolerance=tol,
    )
    if changes.changed:
        station.audit.record(
            session,
            actor=SYSTEM_ACTOR,
            action="clip.linked",
            object_type="clip",
            object_id=clip_id,
            details={**changes.as_dict(), "documents": sorted(changes.documents)},
        )
    return changes


# -- some documents -----------------------------------------------------------------------------------


def link_documents(
    station: Station, document_ids: Iterable[int], tolerance: timedelta | None = None
) -> LinkChanges:
    """R5 for documents that just arrived or changed (after an import); flags refreshed."""
    started = time.perf_counter()
    with station.transaction() as session:
        changes = link_documents_in(session, station, document_ids, tolerance)
    changes.seconds = time.perf_counter() - started
    return changes


def _chunks(ids: Iterable[int], size: int = _IN_CHUNK) -> Iterator[list[int]]:
    ordered = sorted(set(ids))
    for start in range(0, len(ordered), size):
        yield ordered[start : start + size]


def link_documents_in(
    session: Session,
    station: Station,
    document_ids: Iterable[int],
    tolerance: timedelta | None = None,
    *,
    actor: str = SYSTEM_ACTOR,
) -> LinkChanges:
    tol = tolerance_of(station, tolerance)
    session.flush()
    connection = session.connection()
    lock_linking(connection)
    read_time = time_reader(connection)
    writer = _LinkWriter(connection, station.clock())
    ids = set(document_ids)
    for chunk in _chunks(ids):
        by_officer: dict[int, list[DocumentWindow]] = {}
        for row in connection.execute(
            _document_windows(connection).where(documents.c.id.in_(chunk), documents.c.start.is_not(None))
        ):
            by_officer.setdefault(row.officer_id, []).append(
                DocumentWindow(
                    row.id, row.case_id, (row.officer_id,), read_time(row.start), read_time(row.end)
                )
            )
        wanted: set[AutoLink] = set()
        for officer_id, docs in by_officer.items():
            first = min(d.start for d in docs if d.start is not None)
            last = max(d.effective_end for d in docs if d.effective_end is not None)
            spans = [
                ClipSpan(clip_id, officer_id, read_time(start), read_time(end), clock != _UNKNOWN_CLOCK)
                for clip_id, start, end, clock in fetch_raw(
                    connection,
                    _officer_clips(connection, officer_id).where(
                        clips.c.utc_start <= last + tol,
                        func.coalesce(clips.c.utc_end, clips.c.utc_start) >= first - tol,
                    ),
                )
            ]
            wanted |= link_clips(spans, docs, tol)
        existing, manual, duplicates = _split_links(
            fetch_raw(
                connection,
                _link_rows_query()
                .join(clips, clips.c.id == clip_links.c.clip_id)
                .where(clip_links.c.document_id.in_(chunk), clips.c.status != ClipStatus.DELETED),
            )
        )
        writer.apply(wanted, existing, manual, duplicates)
    writer.flush()
    changes = writer.changes
    refresh_flags(
        session, station, document_ids=ids | changes.documents, clip_ids=changes.clips, tolerance=tol
    )
    if changes.changed:
        station.audit.record(
            session,
            actor=actor,
            action="documents.linked",
            object_type="documents",
            object_id=f"{len(ids)} documents",
            details={**changes.as_dict(), "documents": sorted(ids)[:1000]},
        )
    return changes
