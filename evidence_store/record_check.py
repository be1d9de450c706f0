"""`audit verify`'s records check: replay the chain's facts and compare them with the rows (R3, R10, R17).

The events are streamed once in chain order and folded into the recorded state; then each tracked
table is streamed in id order, in batches, and compared; matched rows leave the state as they are read.
Memory grows with the number of tracked rows on record, not with the number of events.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from sqlalchemy import Connection, Engine, String, case, func, select, type_coerce
from sqlalchemy import Enum as SAEnum
from sqlalchemy.orm import Session

from evidence_store.db import tables
from evidence_store.db.engine import read_only
from evidence_store.db.types import NaiveDateTime, UTCDateTime
from evidence_store.domain.record_facts import BASELINE_ACTIONS, BASELINE_KEY, TRACKED
from evidence_store.domain.record_replay import RecordState, TableComparison, compare_table, fold_events

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


def _stream(connection: Connection, statement: Any) -> Iterator[Any]:
    result = connection.execution_options(stream_results=True, yield_per=BATCH).execute(statement)
    return chain.from_iterable(result.partitions())


def replay_events(connection: Connection, state: RecordState | None = None) -> RecordState:
    """Fold every stored event, in seq order, into the recorded state."""
    events = tables.audit_events
    return fold_events(
        _stream(connection, select(events.c.seq, events.c.action, events.c.details).order_by(events.c.seq)),
        state,
    )


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


def _stored_rows(connection: Connection, table: str) -> Iterator[tuple[int, Mapping[str, Any]]]:
    stored = tables.metadata.tables[table]
    dialect = connection.dialect.name
    names = TRACKED[table]
    columns = [stored.c.id, *(_as_fact_text(stored.c[name], dialect).label(name) for name in names)]
    for row in _stream(connection, select(*columns).order_by(stored.c.id)):
        yield row[0], row._mapping


def verify_records(engine: Engine) -> RecordsVerdict:
    """Replay the chain and compare every tracked table with it."""
    with engine.connect() as plain:
        connection = read_only(plain)
        state = replay_events(connection)
        verdict = RecordsVerdict(
            events_replayed=state.events_folded,
            events_with_facts=state.events_with_facts,
            baseline_seq=state.baseline_seq,
        )
        for table in TRACKED:
            verdict.tables.append(compare_table(state, table, _stored_rows(connection, table)))
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
