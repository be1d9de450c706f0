"""What every transaction that writes links or flags shares (R5): one such transaction at a time, and
the linking tolerance it works with.

Both the linking service and the flags service build on this module; it sits below them so that the
flags service needs nothing from the linking service (the dependency runs one way: linking -> flags).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Connection, text

from evidence_store.bootstrap import Station

_PG_LINKING_LOCK = 0x6C696E6B  # "link": serialises linking transactions on PostgreSQL


def tolerance_of(station: Station, tolerance: timedelta | None = None) -> timedelta:
    """The R5 window tolerance: the one asked for, else the station's `link_tolerance_minutes`."""
    if tolerance is not None:
        return tolerance
    return timedelta(minutes=station.settings.link_tolerance_minutes)


def lock_linking(connection: Connection) -> None:
    """On PostgreSQL, one linking transaction at a time (SQLite's writer lock already does this)."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LINKING_LOCK})
