"""Driver-level bulk writes for the hot paths (case linking, flags, retention).

On SQLite, rows go to the driver's `executemany` with values already in stored form (the exact text
format SQLAlchemy itself writes, so both kinds of rows compare and sort alike); the per-value typed
processing SQLAlchemy would do costs most of the time budget at a million clips. On PostgreSQL the
typed Core statements are used as they are (psycopg converts natively). The matching raw reads are in
`evidence_store.db.columns`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Table, bindparam, insert, select, update

from evidence_store.db.columns import is_sqlite

_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # what SQLAlchemy's SQLite DATETIME stores
WRITE_BATCH = 20_000
# one encoder for every value: json.dumps with a non-default option builds a new encoder per call,
# which costs more than encoding a flag's small details
_ENCODE_JSON = json.JSONEncoder(ensure_ascii=False).encode


# the SQLite statements compiled, by (insert/update, table, columns, key column): shared by every
# writer, since `link_clip` makes a writer per clip and compiling again took a quarter of its
# profiled time
_COMPILED: dict[tuple[str, str, tuple[str, ...], str], tuple[str, list[str]]] = {}


class BulkWriter:
    """Values in stored form for one connection's dialect, and batched executemany writes."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.sqlite = is_sqlite(connection)

    def time(self, moment: datetime | None) -> Any:
        if moment is None or not self.sqlite:
            return moment
        return moment.astimezone(UTC).strftime(_SQLITE_TIME)

    def json(self, value: Any) -> Any:
        return _ENCODE_JSON(value) if self.sqlite else value

    def insert(self, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Insert rows (tuples in `columns` order, values from `time`/`json` where they apply)."""
        if not rows:
            return
        if not self.sqlite:
            for start in range(0, len(rows), WRITE_BATCH):
                chunk = rows[start : start + WRITE_BATCH]
                self.connection.execute(
                    insert(table), [dict(zip(columns, row, strict=True)) for row in chunk]
                )
            return
        names = [f"p_{name}" for name in columns]
        key = ("insert", table.name, tuple(columns), "")
        if key not in _COMPILED:
            statement = insert(table).values(
                {name: bindparam(param) for name, param in zip(columns, names, strict=True)}
            )
            _COMPILED[key] = self._compiled(statement, names)
        self._driver_many(key, names, rows)

    def update(
        self, table: Table, columns: Sequence[str], key_column: str, rows: Sequence[Sequence[Any]]
    ) -> None:
        """`UPDATE table SET columns WHERE key_column = ?` for each row (the key value last in the row)."""
        if not rows:
            return
        names = [*(f"p_{name}" for name in columns), f"key_{key_column}"]
        statement = (
            update(table)
            .where(table.c[key_column] == bindparam(f"key_{key_column}"))
            .values({name: bindparam(f"p_{name}") for name in columns})
        )
        if not self.sqlite:
            for start in range(0, len(rows), WRITE_BATCH):
                chunk = rows[start : start + WRITE_BATCH]
                self.connection.execute(statement, [dict(zip(names, row, strict=True)) for row in chunk])
            return
        key = ("update", table.name, tuple(columns), key_column)
        if key not in _COMPILED:
            _COMPILED[key] = self._compiled(statement, names)
        self._driver_many(key, names, rows)

    def _compiled(self, statement: Any, names: Sequence[str]) -> tuple[str, list[str]]:
        compiled = statement.compile(dialect=self.connection.dialect)
        order = list(compiled.positiontup or [])
        missing = set(order) - set(names)
        if missing:
            raise ValueError(f"bulk write to {statement.table.name} lacks values for {sorted(missing)}")
        return compiled.string, order

    def _driver_many(
        self, key: tuple[str, str, tuple[str, ...], str], names: Sequence[str], rows: Iterable[Sequence[Any]]
    ) -> None:
        sql, order = _COMPILED[key]
        if order != list(names):
            index = [list(names).index(name) for name in order]
            rows = [tuple(row[i] for i in index) for row in rows]
        batch: list[Sequence[Any]] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= WRITE_BATCH:
                self.connection.exec_driver_sql(sql, batch)
                batch = []
        if batch:
            self.connection.exec_driver_sql(sql, batch)


@contextmanager
def indexes_down_if_empty(connection: Connection, table: Table) -> Iterator[bool]:
    """Bulk inserts into an empty table on SQLite (a station's first relink: 700,000 links and 470,000
    flags for a million clips): drop the table's declared indexes for the inserts and build each again
    afterwards in one sorted pass, instead of maintaining every B-tree row by row in no useful order.
    Yields whether that is the case (SQLite, and the table has no row at all); the caller must then
    not read the table by those indexes until the block ends. The drop is part of the transaction: if
    anything fails, the rollback restores the indexes with the rows."""
    empty = is_sqlite(connection) and connection.scalar(select(table.c.id).limit(1)) is None
    if not empty:
        yield False
        return
    indexes = sorted(table.indexes, key=lambda index: str(index.name))
    for index in indexes:
        index.drop(connection)
    yield True
    for index in indexes:
        index.create(connection)
