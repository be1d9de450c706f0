"""Database helpers for the hot paths of case linking: raw time columns and driver-level bulk writes.

SQLAlchemy's typed processing costs microseconds per value; at a million clips that is most of the
time budget. On SQLite, times are read as their stored text and parsed with `datetime.fromisoformat`,
and bulk writes go to the driver's `executemany` with values already in stored form (the exact text
format SQLAlchemy itself writes, so both kinds of rows compare and sort alike). On PostgreSQL the typed
Core statements are used as they are (psycopg converts natively).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, String, Table, bindparam, insert, type_coerce, update
from sqlalchemy.sql.elements import ColumnElement

_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # what SQLAlchemy's SQLite DATETIME stores
WRITE_BATCH = 20_000


def is_sqlite(connection: Connection) -> bool:
    return connection.dialect.name == "sqlite"


def time_column(connection: Connection, column: ColumnElement[Any], name: str | None = None) -> Any:
    """A time column to select in a hot path: its stored text on SQLite (parse with `time_reader`)."""
    label = name or getattr(column, "name", None) or "t"
    if is_sqlite(connection):
        return type_coerce(column, String).label(label)
    return column.label(label)


def _parse_sqlite(value: str | None) -> datetime | None:
    # appending the zone is several times faster than datetime.replace(tzinfo=...)
    return None if value is None else datetime.fromisoformat(value + "+00:00")


def _parse_sqlite_naive(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _pass_through(value: datetime | None) -> datetime | None:
    return value


def _to_utc(value: datetime | None) -> datetime | None:
    # psycopg gives timestamptz in the session's zone: the same instant, but written times must be UTC
    return None if value is None else value.astimezone(UTC)


def time_reader(connection: Connection, *, naive: bool = False) -> Callable[[Any], datetime | None]:
    """How to turn a value selected with `time_column` into an aware UTC datetime.

    `naive=True` (hot paths that only compare times with each other) skips attaching the zone on
    SQLite; every time read by such a reader on one connection is then naive UTC, so they still compare
    correctly with each other, but never with aware times.
    """
    if not is_sqlite(connection):
        return _pass_through if naive else _to_utc
    return _parse_sqlite_naive if naive else _parse_sqlite


def fetch_raw(
    connection: Connection, statement: Any, params: dict[str, Any] | None = None
) -> list[tuple[Any, ...]]:
    """Every row as the driver returns it, without SQLAlchemy's per-row processing: times selected
    with `time_column` (text on SQLite), booleans as 0/1 on SQLite, JSON as text on SQLite (parse with
    `json_value`), enum columns as their stored text."""
    result = connection.execute(statement, params) if params is not None else connection.execute(statement)
    try:
        return list(result.cursor.fetchall())
    finally:
        result.close()


def json_value(value: Any) -> Any:
    """A JSON column's value from `fetch_raw` (SQLite gives the text, psycopg the parsed value)."""
    return json.loads(value) if isinstance(value, str) else value


class BulkWriter:
    """Values in stored form for one connection's dialect, and batched executemany writes."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.sqlite = is_sqlite(connection)
        self._sql: dict[tuple[str, str, tuple[str, ...], str], tuple[str, list[str]]] = {}

    def time(self, moment: datetime | None) -> Any:
        if moment is None or not self.sqlite:
            return moment
        return moment.astimezone(UTC).strftime(_SQLITE_TIME)

    def json(self, value: Any) -> Any:
        return json.dumps(value, ensure_ascii=False) if self.sqlite else value

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
        if key not in self._sql:
            statement = insert(table).values(
                {name: bindparam(param) for name, param in zip(columns, names, strict=True)}
            )
            self._sql[key] = self._compiled(statement, names)
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
        if key not in self._sql:
            self._sql[key] = self._compiled(statement, names)
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
        sql, order = self._sql[key]
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
