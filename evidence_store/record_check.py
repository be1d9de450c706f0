"""`audit verify`'s records check: replay the chain's facts and compare them with the rows (R3, R10, R17).

The events are streamed once in chain order and folded into the recorded state; then each tracked
table is streamed in id order, in batches, and compared; matched rows leave the state as they are read.
Memory grows with the number of tracked rows on record, not with the number of events.
"""

from __future__ import annotations

import contextlib
import gc
import json
import queue
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, cast

from sqlalchemy import JSON, Boolean, Connection, Engine, Select, String, case, func, select, type_coerce
from sqlalchemy import Enum as SAEnum
from sqlalchemy.orm import Session

from evidence_store.db import tables
from evidence_store.db.engine import read_only
from evidence_store.db.types import NaiveDateTime, UTCDateTime
from evidence_store.domain.record_facts import BASELINE_ACTIONS, BASELINE_KEY, TRACKED
from evidence_store.domain.record_replay import RecordState, TableComparison, compare_table_rows, fold_events

BATCH = 20_000


@dataclass
class RecordsVerdict:
    events_replayed: int = 0
    events_with_facts: int = 0
    baseline_seq: int | None = None
    tables: list[TableComparison] = field(default_factory=list)

    @property
    def differences(self) -> int:
        return sum(t.differences for t in self.tables)

    @property
    def rows_checked(self) -> int:
        return sum(t.rows_checked for t in self.tables)

    @property
    def rows_not_covered(self) -> int:
        return sum(t.rows_not_covered for t in self.tables)

    @property
    def ok(self) -> bool:
        return self.differences == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events_replayed": self.events_replayed,
            "events_with_facts": self.events_with_facts,
            "baseline_seq": self.baseline_seq,
            "rows_checked": self.rows_checked,
            "rows_not_covered": self.rows_not_covered,
            "differences": self.differences,
            "tables": {
                t.table: {
                    "rows_checked": t.rows_checked,
                    "rows_not_covered": t.rows_not_covered,
                    "differences": t.differences,
                }
                for t in self.tables
            },
            "findings": [
                {
                    "object": d.object,
                    "table": d.table,
                    "id": d.row_id,
                    "field": d.field,
                    "recorded": d.recorded,
                    "stored": d.stored,
                    "problem": d.problem,
                    "seq": d.seq,
                    "text": d.describe(),
                }
                for t in self.tables
                for d in t.listed
            ],
        }


def _stream(connection: Connection, statement: Select[Any]) -> Iterator[Sequence[Any]]:
    """The statement's rows as the driver's own tuples, fetched in batches.

    Not through SQLAlchemy's result: building its row objects cost more than the driver's fetch and as
    much as the fold itself (measured: 0.59 s against 0.21 s for 200,000 events). The statement holds
    only constants of this module, so it is rendered with them inline. PostgreSQL reads through a
    server-side cursor, so memory stays flat however long the log; SQLite's cursor steps as it is read.
    The connection's transaction (begun by the caller) gives every statement one snapshot."""
    sql = str(statement.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True}))
    raw = connection.connection.driver_connection
    assert raw is not None
    cursor = raw.cursor(name="evidence_records") if connection.dialect.name == "postgresql" else raw.cursor()
    return chain.from_iterable(_read_ahead(_batches(cursor, sql)))


def _batches(cursor: Any, sql: str) -> Generator[list[Sequence[Any]]]:
    try:
        cursor.execute(sql)
        while batch := cursor.fetchmany(BATCH):
            yield batch
    finally:
        cursor.close()


def _read_ahead(batches: Generator[list[Sequence[Any]]]) -> Iterator[list[Sequence[Any]]]:
    """The batches, read by a thread one or two ahead of the caller.

    The drivers let go of the interpreter while the database works (psycopg while it waits for the
    server, sqlite3 while it steps), so the next batch is read while the caller folds or compares this
    one: on 2 cores much of the reading is hidden (measured: bench/RESULTS.md). Only that thread
    uses the connection until the batches end."""
    ahead: queue.Queue[Any] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def read() -> None:
        try:
            for batch in batches:
                if stop.is_set():
                    break
                ahead.put(batch)
            ahead.put(_END)
        except BaseException as exc:  # handed to the caller, raised there
            ahead.put(exc)
        finally:
            batches.close()

    reader = threading.Thread(target=read, name="records-check-reader", daemon=True)
    reader.start()
    try:
        while (item := ahead.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while reader.is_alive():  # a reader blocked on a full queue: make room so that it can stop
            with contextlib.suppress(queue.Empty):
                ahead.get(timeout=0.05)
        reader.join()


_END = object()


def replay_events(connection: Connection, state: RecordState | None = None) -> RecordState:
    """Fold every stored event, in seq order, into the recorded state."""
    events = tables.audit_events
    rows = _stream(connection, select(events.c.seq, events.c.action, events.c.details).order_by(events.c.seq))
    # the driver's tuples of (BIGINT, VARCHAR, TEXT)
    return fold_events(cast("Iterator[tuple[int, str, str]]", rows), state)


def _as_fact_text(column: Any, dialect: str) -> Any:
    """A column read in the form the chain states it, formatted by the database itself.

    Times are rendered as `fact_value` writes them and enums read as their stored value, so that the
    comparison of a million rows needs no Python conversion per value; a time whose text still differs
    (a row written in another format) is compared as an instant by the core (`same_fact`)."""
    if isinstance(column.type, UTCDateTime):
        if dialect == "postgresql":
            return func.to_char(func.timezone("UTC", column), 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')
        text = type_coerce(column, String)
        # SQLAlchemy writes "YYYY-MM-DD HH:MM:SS.ffffff" (26 characters, UTC); any other text is read
        # as it is stored and compared as an instant
        return case((func.length(text) == 26, func.replace(text, " ", "T").concat("+00:00")), else_=text)
    if isinstance(column.type, NaiveDateTime):
        if dialect == "postgresql":
            return func.to_char(column, 'YYYY-MM-DD"T"HH24:MI:SS.US')
        return func.replace(type_coerce(column, String), " ", "T")
    if isinstance(column.type, SAEnum):
        return type_coerce(column, String)
    return column


def _driver_value(column: Any, dialect: str) -> Callable[[Any], Any] | None:
    """How a value of the column, as the driver returns it, becomes the value SQLAlchemy would give:
    SQLite keeps booleans as 0/1 and JSON as its text (psycopg returns both decoded)."""
    if dialect != "sqlite":
        return None
    if isinstance(column.type, Boolean):
        return bool
    if isinstance(column.type, JSON):
        return json.loads
    return None


def _stored_rows(connection: Connection, table: str) -> Iterator[Sequence[Any]]:
    """The table's rows as (id, then its tracked fields in `TRACKED` order), in id order."""
    stored = tables.metadata.tables[table]
    dialect = connection.dialect.name
    names = TRACKED[table]
    columns = [stored.c.id, *(_as_fact_text(stored.c[name], dialect).label(name) for name in names)]
    rows = _stream(connection, select(*columns).order_by(stored.c.id))
    converters = [
        (at, convert)
        for at, name in enumerate(names, start=1)
        if (convert := _driver_value(stored.c[name], dialect)) is not None
    ]
    if not converters:
        return rows
    return _converted(rows, converters)


def _converted(
    rows: Iterator[Sequence[Any]], converters: list[tuple[int, Callable[[Any], Any]]]
) -> Iterator[Sequence[Any]]:
    for row in rows:
        values = list(row)
        for at, convert in converters:
            if values[at] is not None:
                values[at] = convert(values[at])
        yield tuple(values)


def verify_records(engine: Engine) -> RecordsVerdict:
    """Replay the chain and compare every tracked table with it."""
    # The check builds an object or two per event and per row and frees none until the end: with the
    # collector on, its full collections walk all of them again and again (about 10% of the check at
    # 100,000 clips, measured, and more as the state grows). Nothing here makes a reference cycle.
    collecting = gc.isenabled()
    gc.disable()
    try:
        with engine.connect() as plain:
            connection = read_only(plain)
            # begun here, not on a first statement: the driver's own cursors read the rows (`_stream`)
            with connection.begin():
                state = replay_events(connection)
                verdict = RecordsVerdict(
                    events_replayed=state.events_folded,
                    events_with_facts=state.events_with_facts,
                    baseline_seq=state.baseline_seq,
                )
                for table in TRACKED:
                    verdict.tables.append(compare_table_rows(state, table, _stored_rows(connection, table)))
    finally:
        if collecting:
            gc.enable()
    return verdict


def records_baseline_needed(session: Session) -> dict[str, int] | None:
    """Each tracked table's highest id now, if the chain holds no records baseline yet (else None).

    Written once, in `evidence init`: rows at or below it predate the facts in the chain."""
    events = tables.audit_events
    found = session.scalar(
        select(events.c.seq)
        .where(
            events.c.action.in_(BASELINE_ACTIONS),
            events.c.details.contains(f'"{BASELINE_KEY}":'),
        )
        .limit(1)
    )
    if found is not None:
        return None
    return {
        name: int(session.scalar(select(func.coalesce(func.max(tables.metadata.tables[name].c.id), 0))) or 0)
        for name in TRACKED
    }
