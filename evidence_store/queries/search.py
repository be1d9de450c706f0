"""Clip search (R11, R13 applied): one function used by the API, the pages, `evidence clips search` and
the benchmark.

Every filter is an indexed Core query: officer and device use `(officer_id, utc_start, id)` and
`(device_id, utc_start, id)`, the time range `utc_start`, a case number or document goes through
`clip_links`, a flag through the open-flag indexes of `compliance_flags`, a sha256 prefix is a range on
the unique `sha256` index. See `build_query` for which rows drive a query. Pages are limit/offset with
a cap (`MAX_LIMIT` rows, offsets up to `MAX_OFFSET`), or continue after a cursor (`ClipQuery.after`, the
`SearchPage.next_after` of the page before: keyset paging, so a later page costs what the first does
instead of walking every row before it); no total is counted (one extra row says whether there is a
next page). The time range selects clips whose recording STARTS in [start_from, start_to).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    Select,
    and_,
    any_,
    bindparam,
    column,
    exists,
    false,
    func,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY

from evidence_store.db.tables import (
    cases,
    clip_links,
    clip_markers,
    clip_tags,
    clips,
    compliance_flags,
    derivatives,
    devices,
    documents,
    officers,
)
from evidence_store.domain.access import Role, User
from evidence_store.domain.annotations import MAX_NOTE_CHARS, tag_key
from evidence_store.domain.model import ClipStatus, DerivativeKind, MediaType
from evidence_store.errors import InputError
from evidence_store.queries.visibility import visible_case_clause, visible_clip_clause

MAX_LIMIT = 200
MAX_OFFSET = 10_000
LATE_HANDOVER = "late_handover"  # a flag kept on the clip itself, not in compliance_flags
ANY_FLAG = "any"
FLAG_LIST_MAX = 20_000  # up to this many flagged clips, their ids drive the search
# Up to this many flagged clips are fetched by id and sorted; more are found by walking the start index
# in order and testing each id against the list. On a cold cache a fetch by id is a random read of the
# clips table per flagged clip (5,000 of them: 0.3-0.5 s at 1M clips), while the walk reads the compact
# (utc_start, id) index a page at a time and stops after a page of results.
FLAG_LOOKUP_MAX = 1_000
SORTS = ("start_desc", "start_asc", "id_desc", "id_asc")
Sort = Literal["start_desc", "start_asc", "id_desc", "id_asc"]
_HEX_PREFIX = re.compile(r"^[0-9a-f]{1,64}$")
# a cursor: the last clip's start in microseconds since 1970 (empty when unknown), "_", its id; every
# string of this form is a valid cursor (16 digits stay within the years 1653-2286; 9 digits of id
# within a 32-bit integer column), so the API's pattern is the whole rule
CURSOR_PATTERN = r"^(-?\d{1,16})?_\d{1,9}$"
_CURSOR = re.compile(CURSOR_PATTERN)


def is_cursor(token: str) -> bool:
    """Whether `token` has the form of a page cursor (`PageCursor.token`)."""
    return _CURSOR.match(token) is not None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class SearchError(InputError):
    """A search that cannot be run as asked (bad sha256 prefix, page out of range)."""


@dataclass(frozen=True)
class PageCursor:
    """Where a page ended: the last clip's start (None when unknown) and id, as a URL-safe token."""

    start: datetime | None
    id: int

    def token(self) -> str:
        start = "" if self.start is None else str((self.start - _EPOCH) // timedelta(microseconds=1))
        return f"{start}_{self.id}"

    @classmethod
    def parse(cls, token: str) -> PageCursor:
        if not _CURSOR.match(token):
            raise SearchError("a page cursor is the next_after of a page of results")
        start, _, clip_id = token.partition("_")
        return cls(_EPOCH + timedelta(microseconds=int(start)) if start else None, int(clip_id))


@dataclass
class ClipQuery:
    officer: str | None = None  # officer number (执法证号)
    device: str | None = None  # recorder serial
    start_from: datetime | None = None
    start_to: datetime | None = None
    case_number: str | None = None
    document: str | None = None  # document external id
    flag: str | None = None  # a compliance flag kind, "late_handover" or "any"
    media_type: MediaType | None = None
    status: ClipStatus | None = None
    transfer_id: int | None = None
    sha256_prefix: str | None = None
    tag: str | None = None  # a tag the clip carries (as normalised)
    note: str | None = None  # words in one of the clip's markers' notes
    sort: Sort = "start_desc"
    limit: int = 50
    offset: int = 0  # rows skipped (after `after`, when it is given)
    after: str | None = None  # a page cursor: continue after the clip it names (keyset paging)

    def check(self) -> None:
        if self.sha256_prefix is not None:
            self.sha256_prefix = self.sha256_prefix.strip().lower()
            if not _HEX_PREFIX.match(self.sha256_prefix):
                raise SearchError("a sha256 prefix is 1 to 64 hexadecimal digits")
        if self.tag is not None:
            # a tag nobody could have put finds nothing, like any other value that names nothing
            self.tag = tag_key(self.tag) or None
        if self.note is not None:
            self.note = self.note.strip() or None
            if self.note is not None and len(self.note) > MAX_NOTE_CHARS:
                raise SearchError(f"a note to search for is at most {MAX_NOTE_CHARS} characters")
        if not 1 <= self.limit <= MAX_LIMIT:
            raise SearchError(f"limit must be between 1 and {MAX_LIMIT}")
        if not 0 <= self.offset <= MAX_OFFSET:
            raise SearchError(f"offset must be between 0 and {MAX_OFFSET}: narrow the search instead")
        if self.sort not in SORTS:
            raise SearchError(f"sort must be one of {', '.join(SORTS)}")
        if self.after is not None:
            PageCursor.parse(self.after)

    def filters(self) -> dict[str, Any]:
        """The filters that were set (for the audit record and for links to the next page)."""
        skip = {"sort", "limit", "offset", "after"}
        return {
            k: (v.isoformat() if isinstance(v, datetime) else str(v) if not isinstance(v, int) else v)
            for k, v in asdict(self).items()
            if v not in (None, "") and k not in skip
        }


@dataclass
class ClipHit:
    id: int
    sha256: str
    original_name: str
    media_type: str
    status: str
    size: int
    officer: str | None
    officer_name: str | None
    device: str | None
    utc_start: datetime | None
    utc_end: datetime | None
    duration_s: float | None
    transfer_id: int | None
    late_handover: bool
    poster: bool
    flags: list[str] = field(default_factory=list)
    cases: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("utc_start", "utc_end"):
            data[key] = data[key].isoformat() if data[key] else None
        return data


@dataclass
class SearchPage:
    hits: list[ClipHit]
    limit: int
    offset: int
    has_next: bool
    next_after: str | None = None  # the cursor of the next page (`ClipQuery.after`), when there is one

    def as_dict(self) -> dict[str, Any]:
        return {
            "items": [h.as_dict() for h in self.hits],
            "limit": self.limit,
            "offset": self.offset,
            "has_next": self.has_next,
            "next_after": self.next_after,
        }


def _sha_range(prefix: str) -> ColumnElement[bool]:
    if len(prefix) == 64:
        return clips.c.sha256 == prefix
    return and_(clips.c.sha256 >= prefix, clips.c.sha256 < prefix + "g")  # 'g' sorts after every hex digit


class _Nothing(Exception):
    """A named officer, device, case or document does not exist: the search finds nothing."""


def _named(connection: Connection, query: ClipQuery) -> list[ColumnElement[bool]]:
    """Conditions for the filters that name a record (looked up first, so the clip query stays on an
    index of `clips` or `clip_links`)."""

    def lookup(statement: Any) -> int:
        found = connection.scalar(statement)
        if found is None:
            raise _Nothing
        return int(found)

    conditions: list[ColumnElement[bool]] = []
    if query.officer:
        officer_id = lookup(select(officers.c.id).where(officers.c.badge_number == query.officer))
        conditions.append(clips.c.officer_id == officer_id)
    if query.device:
        device_id = lookup(select(devices.c.id).where(devices.c.serial == query.device))
        conditions.append(clips.c.device_id == device_id)
    if query.case_number:
        case_id = lookup(select(cases.c.id).where(cases.c.number == query.case_number))
        linked = select(clip_links.c.clip_id).where(
            clip_links.c.case_id == case_id, clip_links.c.removed_at.is_(None)
        )
        conditions.append(clips.c.id.in_(linked))
    if query.document:
        document_id = lookup(select(documents.c.id).where(documents.c.external_id == query.document))
        linked = select(clip_links.c.clip_id).where(
            clip_links.c.document_id == document_id, clip_links.c.removed_at.is_(None)
        )
        conditions.append(clips.c.id.in_(linked))
    if query.tag:
        tagged = select(clip_tags.c.clip_id).where(clip_tags.c.tag == query.tag)
        conditions.append(clips.c.id.in_(tagged))
    if query.note:
        # the note's words as typed, anywhere in a marker (LIKE's wildcards in them are literal)
        pattern = "%" + query.note.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        noted = select(clip_markers.c.clip_id).where(
            clip_markers.c.removed_at.is_(None), clip_markers.c.note.ilike(pattern, escape="\\")
        )
        conditions.append(clips.c.id.in_(noted))
    return conditions


def _id_list(connection: Connection, ids: list[int]) -> ColumnElement[bool]:
    """`clips.id` among some ids: one array parameter on PostgreSQL (hashed when used as a filter),
    one JSON array parameter read with `json_each` on SQLite (no limit on the number of parameters, and
    nothing for SQLAlchemy to render or for SQLite to parse per id: 5,000 ids written into the statement
    cost 15 ms of a cold search). More than `FLAG_LOOKUP_MAX` ids are tested as `id + 0`, which hides
    the primary key from the planner, so the query walks the start index in order instead of reading
    every listed row and sorting them."""
    if not ids:
        return false()
    tested: ColumnElement[int] = clips.c.id + 0 if len(ids) > FLAG_LOOKUP_MAX else clips.c.id
    if connection.dialect.name == "postgresql":
        return tested == any_(bindparam("flagged_ids", ids, type_=ARRAY(Integer)))
    listed = select(column("value", Integer)).select_from(
        func.json_each(bindparam("flagged_ids", json.dumps(ids)))
    )
    return tested.in_(listed)


def _flag_condition(connection: Connection, flag: str) -> tuple[ColumnElement[bool], bool]:
    """Clips with an open flag, and whether the flagged clips are few enough to drive the query.

    Up to `FLAG_LIST_MAX` flagged clips, their ids are read first (from the partial index of open
    flags) and given to the clip query as a list: the database then either looks them up by id and
    sorts them, or walks the `utc_start` index testing each row against the (hashed) list, whichever
    is cheaper. More flagged clips than that are common enough that walking the `utc_start` index and
    probing the flags of each row finds a page after a few thousand rows. See `_id_list` for how the
    list is used."""
    if flag == LATE_HANDOVER:
        return clips.c.late_handover.is_(True), False
    where: list[ColumnElement[bool]] = [
        compliance_flags.c.cleared_at.is_(None),
        compliance_flags.c.clip_id.is_not(None),
    ]
    if flag != ANY_FLAG:
        where.append(compliance_flags.c.kind == flag)
    flagged = select(compliance_flags.c.clip_id).where(*where)
    probed = exists(select(compliance_flags.c.id).where(compliance_flags.c.clip_id == clips.c.id, *where))
    if connection.dialect.name == "sqlite":
        count = (
            connection.scalar(select(func.count()).select_from(flagged.limit(FLAG_LIST_MAX + 1).subquery()))
            or 0
        )
        if count > FLAG_LIST_MAX:
            return probed, False
        if count > FLAG_LOOKUP_MAX:
            # the list stays in the database: SQLite reads it once per statement into a temporary
            # index, with nothing fetched into Python and sent back (the walk as in `_id_list`)
            return (clips.c.id + 0).in_(flagged), True
    ids = list(connection.scalars(flagged.limit(FLAG_LIST_MAX + 1)))
    if len(ids) <= FLAG_LIST_MAX:
        return _id_list(connection, sorted(set(ids))), True
    return probed, False


@dataclass
class _Plan:
    statement: Select[Any]  # clip ids in order (no limit)
    late_visibility: bool  # a driven query: visibility is checked on the ordered candidates afterwards


def _nulls_high(connection: Connection) -> bool:
    """Whether the database sorts an unknown start after every known one (PostgreSQL) or before
    (SQLite): where the clips without a start fall in a page order."""
    return connection.dialect.name == "postgresql"


def _after_cursor(
    connection: Connection, sort: Sort, cursor: PageCursor, columns: tuple[Any, Any]
) -> tuple[list[ColumnElement[bool]], ColumnElement[bool] | None]:
    """The conditions for the rows after `cursor` in the order `sort` and, when rows of the other kind
    (start known / unknown) follow them in that order, the condition for those. `columns` are the start
    and the clip id the query walks (`_walked_columns`). Each part is a range of an index in the wanted
    order (`(utc_start, id)`, or `id`), so the database starts the walk at the cursor instead of at the
    first row; an OR across the two kinds would defeat that."""
    start, clip_id = columns
    if sort in ("id_desc", "id_asc"):
        return [clip_id < cursor.id if sort == "id_desc" else clip_id > cursor.id], None
    descending = sort == "start_desc"
    # in a descending order the high values come first: unknown starts first when they sort high
    unknown_first = _nulls_high(connection) == descending
    if cursor.start is None:
        after = [start.is_(None), clip_id < cursor.id if descending else clip_id > cursor.id]
        return after, (start.is_not(None) if unknown_first else None)
    if descending:
        after = [start <= cursor.start, or_(start < cursor.start, clip_id < cursor.id)]
    else:
        after = [start >= cursor.start, or_(start > cursor.start, clip_id > cursor.id)]
    return after, (None if unknown_first else start.is_(None))


def _walks_flags(query: ClipQuery, user: User | None) -> bool:
    """Whether the query is answered from the open flags of one kind (or of any) in their clips' order
    (`compliance_flags.clip_start`): a flag, by start, with at most a time range besides,
    for a user who may see all but a few clips (the rule is checked on the page's candidates, see
    `_visible_in_order`; an officer, who sees only their own clips, is answered by the clips' walk)."""
    if query.flag in (None, LATE_HANDOVER) or query.sort not in ("start_desc", "start_asc"):
        return False
    if user is not None and (not user.sees_footage or user.role is Role.OFFICER):
        return False
    named = (query.officer, query.device, query.case_number, query.document, query.tag, query.note)
    other = (query.media_type, query.status, query.transfer_id, query.sha256_prefix)
    return not any(named) and all(value is None for value in other)


def _walked_columns(query: ClipQuery, user: User | None) -> tuple[Any, Any]:
    """The start and the clip id the query's page order (and a cursor) is expressed in."""
    if _walks_flags(query, user):
        return compliance_flags.c.clip_start, compliance_flags.c.clip_id
    return clips.c.utc_start, clips.c.id


def _flag_plan(query: ClipQuery, user: User | None, extra: list[ColumnElement[bool]]) -> _Plan:
    """A flag search as one range of `ix_compliance_flags_open_kind_start` in the wanted order: a cold
    page reads a few pages of that index, where walking every clip by start and probing its flags read a
    page per clip walked (issue 21 item 5). A clip with several open flags of the kind is listed once."""
    start, clip_id = compliance_flags.c.clip_start, compliance_flags.c.clip_id
    where = [compliance_flags.c.cleared_at.is_(None), clip_id.is_not(None), *extra]
    if query.flag != ANY_FLAG:  # any open flag: `ix_compliance_flags_open_start`, the same order
        where.append(compliance_flags.c.kind == query.flag)
    if query.start_from is not None:
        where.append(start >= query.start_from)
    if query.start_to is not None:
        where.append(start < query.start_to)
    order = (start.desc(), clip_id.desc()) if query.sort == "start_desc" else (start.asc(), clip_id.asc())
    statement = select(clip_id, start).where(*where).distinct().order_by(*order)
    return _Plan(statement, late_visibility=user is not None)


def build_query(
    connection: Connection,
    query: ClipQuery,
    user: User | None,
    extra: list[ColumnElement[bool]] | None = None,
) -> _Plan | None:
    """How to find the clip ids of a query, or None when a named officer/device/case does not exist.

    A case, a document or a rare flag names few clips: those drive the query (fetched by id, then
    sorted), and the confidentiality rule is applied afterwards to the ordered candidates, so it is
    evaluated for the page rather than for every candidate. Otherwise the rule is part of the query,
    which walks an index in the wanted order and stops after a page."""
    query.check()
    if _walks_flags(query, user):
        return _flag_plan(query, user, extra or [])
    try:
        conditions = _named(connection, query)
    except _Nothing:
        return None
    # a case, a document or a rare flag names few clips: those drive the query
    fenced = driven = bool(query.case_number or query.document or query.tag or query.note)
    if query.start_from is not None:
        conditions.append(clips.c.utc_start >= query.start_from)
    if query.start_to is not None:
        conditions.append(clips.c.utc_start < query.start_to)
    if query.flag:
        condition, few = _flag_condition(connection, query.flag)
        conditions.append(condition)
        driven = driven or few
    if query.media_type is not None:
        conditions.append(clips.c.media_type == MediaType(query.media_type))
    if query.status is not None:
        conditions.append(clips.c.status == ClipStatus(query.status))
    if query.transfer_id is not None:
        conditions.append(clips.c.transfer_id == query.transfer_id)
    if query.sha256_prefix:
        conditions.append(_sha_range(query.sha256_prefix))
    conditions.extend(extra or [])
    if user is not None and not driven:
        conditions.append(visible_clip_clause(user))
    if fenced:
        # OFFSET 0 keeps the planner from walking the whole utc_start index for the ORDER BY ... LIMIT
        # (PostgreSQL does when it misjudges how the few rows are spread): fetch them, then sort them
        found = select(clips.c.id, clips.c.utc_start).where(*conditions).offset(0).subquery()
        id_column, start_column = found.c.id, found.c.utc_start
        source: Any = select(id_column)
    else:
        id_column, start_column = clips.c.id, clips.c.utc_start
        source = select(id_column).where(*conditions)
    order = {
        "start_desc": (start_column.desc(), id_column.desc()),
        "start_asc": (start_column.asc(), id_column.asc()),
        "id_desc": (id_column.desc(),),
        "id_asc": (id_column.asc(),),
    }[query.sort]
    ordered = cast(Select[Any], source.order_by(*order))
    return _Plan(ordered, late_visibility=driven and user is not None)


def _visible_in_order(connection: Connection, plan: _Plan, user: User, wanted: int) -> list[int]:
    """The first `wanted` candidates of a driven query that the user may see, in order: candidates
    are read in growing batches and checked with one query per batch."""
    found: list[int] = []
    read = 0
    batch = max(wanted, 64)
    while len(found) < wanted:
        candidates = list(connection.scalars(plan.statement.limit(batch).offset(read)))
        if not candidates:
            break
        visible = set(
            connection.scalars(
                select(clips.c.id).where(clips.c.id.in_(candidates), visible_clip_clause(user))
            )
        )
        found.extend(c for c in candidates if c in visible)
        read += len(candidates)
        if len(candidates) < batch:
            break
        batch *= 2
    return found[:wanted]


def _first_ids(connection: Connection, plan: _Plan, user: User | None, wanted: int) -> list[int]:
    if plan.late_visibility and user is not None:
        return _visible_in_order(connection, plan, user, wanted)
    return list(connection.scalars(plan.statement.limit(wanted)))


def search_clips(connection: Connection, query: ClipQuery, user: User | None) -> SearchPage:
    """Run a search as `user` (None: unrestricted, for the station's own command line)."""
    if connection.dialect.name == "postgresql":
        # one short query wants one core: a parallel index walk only delays the first rows
        connection.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))
    query.check()
    wanted = query.offset + query.limit + 1
    following: ColumnElement[bool] | None = None
    extra: list[ColumnElement[bool]] = []
    if query.after is not None:
        cursor = PageCursor.parse(query.after)
        extra, following = _after_cursor(connection, query.sort, cursor, _walked_columns(query, user))
    plan = build_query(connection, query, user, extra)
    if plan is None:
        return SearchPage([], query.limit, query.offset, False)
    ids = _first_ids(connection, plan, user, wanted)
    if len(ids) < wanted and following is not None:
        rest = build_query(connection, replace(query, after=None), user, [following])
        ids += _first_ids(connection, rest, user, wanted - len(ids)) if rest is not None else []
    ids = ids[query.offset :]
    has_next = len(ids) > query.limit
    hits = describe_clips(connection, ids[: query.limit], user)
    next_after = PageCursor(hits[-1].utc_start, hits[-1].id).token() if has_next and hits else None
    return SearchPage(hits, query.limit, query.offset, has_next, next_after)


def describe_clips(connection: Connection, ids: list[int], user: User | None) -> list[ClipHit]:
    """Summaries of some clips, in the order given (a few small indexed queries for the whole page)."""
    if not ids:
        return []
    rows = {
        r.id: r
        for r in connection.execute(
            select(
                clips.c.id,
                clips.c.sha256,
                clips.c.original_name,
                clips.c.media_type,
                clips.c.status,
                clips.c.size,
                clips.c.utc_start,
                clips.c.utc_end,
                clips.c.duration_s,
                clips.c.transfer_id,
                clips.c.late_handover,
                officers.c.badge_number,
                officers.c.name.label("officer_name"),
                devices.c.serial,
            )
            .outerjoin(officers, officers.c.id == clips.c.officer_id)
            .outerjoin(devices, devices.c.id == clips.c.device_id)
            .where(clips.c.id.in_(ids))
        )
    }
    posters = set(
        connection.scalars(
            select(derivatives.c.clip_id).where(
                derivatives.c.clip_id.in_(ids), derivatives.c.kind == DerivativeKind.POSTER
            )
        )
    )
    flags: dict[int, list[str]] = {}
    for clip_id, kind in connection.execute(
        select(compliance_flags.c.clip_id, compliance_flags.c.kind).where(
            compliance_flags.c.clip_id.in_(ids), compliance_flags.c.cleared_at.is_(None)
        )
    ):
        flags.setdefault(clip_id, []).append(kind)
    case_query = (
        select(clip_links.c.clip_id, cases.c.number)
        .join(cases, cases.c.id == clip_links.c.case_id)
        .where(clip_links.c.clip_id.in_(ids), clip_links.c.removed_at.is_(None))
    )
    if user is not None:
        case_query = case_query.where(visible_case_clause(user))
    linked: dict[int, list[str]] = {}
    for clip_id, number in connection.execute(case_query):
        if number not in linked.setdefault(clip_id, []):
            linked[clip_id].append(number)
    tags: dict[int, list[str]] = {}
    for clip_id, tag in connection.execute(
        select(clip_tags.c.clip_id, clip_tags.c.tag)
        .where(clip_tags.c.clip_id.in_(ids))
        .order_by(clip_tags.c.tag)
    ):
        tags.setdefault(clip_id, []).append(tag)
    hits = []
    for clip_id in ids:
        r = rows.get(clip_id)
        if r is None:
            continue
        hits.append(
            ClipHit(
                id=r.id,
                sha256=r.sha256,
                original_name=r.original_name,
                media_type=str(r.media_type),
                status=str(r.status),
                size=r.size,
                officer=r.badge_number,
                officer_name=r.officer_name,
                device=r.serial,
                utc_start=r.utc_start,
                utc_end=r.utc_end,
                duration_s=r.duration_s,
                transfer_id=r.transfer_id,
                late_handover=bool(r.late_handover),
                poster=r.id in posters,
                flags=sorted(flags.get(r.id, [])),
                cases=linked.get(r.id, []),
                tags=tags.get(r.id, []),
            )
        )
    return hits
