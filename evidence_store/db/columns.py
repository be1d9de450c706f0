"""Raw reads for the hot paths (case linking, flags, retention planning): time columns as stored text
and rows as the driver returns them.

SQLAlchemy's typed processing costs microseconds per value; at a million clips that is most of the
time budget. On SQLite, times are read as their stored text and parsed with `datetime.fromisoformat`;
on PostgreSQL the typed columns are used as they are (psycopg converts natively). The matching writes
are in `evidence_store.db.bulk`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, String, type_coerce
from sqlalchemy.sql.elements import ColumnElement


def is_sqlite(connection: Connection) -> bool:
    """Whether the connection is SQLite (whose raw values need parsing here; psycopg's do not)."""
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
