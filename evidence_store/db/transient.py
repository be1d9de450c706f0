"""Database errors that may pass, raised as `TransientError` where a session or connection is opened
(and values the database refuses, raised as `InputError` there).

A restart of the database server, a cut connection, a failover, a deadlock or a busy SQLite file all
end the current transaction but say nothing about the work: the same work, tried again later, succeeds.
They are translated once, at `Station.transaction` and its siblings, so that a worker hands the job
back to the queue for a retry instead of recording it as failed for good. Everything else (a broken
constraint, a bad statement) stays the SQLAlchemy error it is: retrying would not change it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import DataError, DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from evidence_store.errors import InputError, TransientError

# SQLite reports a bad statement as an OperationalError too ("no such table"); only these pass.
_SQLITE_PASSING = ("database is locked", "database table is locked", "database is busy")


def may_pass(exc: BaseException, dialect: str) -> bool:
    """Whether a database error is one a retry can cure: a lost or refused connection (any backend),
    PostgreSQL's operational errors (shutdown, restart, serialization failure, deadlock, lock timeout),
    SQLite's busy and locked, or an exhausted connection pool."""
    if isinstance(exc, (DisconnectionError, PoolTimeoutError)):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    if dialect == "sqlite":
        return isinstance(exc, OperationalError) and any(s in str(exc.orig).lower() for s in _SQLITE_PASSING)
    return isinstance(exc, (OperationalError, InterfaceError))


@contextmanager
def errors_that_pass_as_transient(dialect: str) -> Iterator[None]:
    """Raise a database error that may pass as `TransientError` (the original as its cause), and a value
    the database refuses to store (PostgreSQL's data exceptions: a NUL character in text, a number out of
    its column's range) as the `InputError` it is: the same input would be refused again."""
    try:
        yield
    except DataError as exc:
        raise InputError(f"the database cannot store this value: {_first_line(exc)}") from exc
    except (DBAPIError, DisconnectionError, PoolTimeoutError) as exc:
        if not may_pass(exc, dialect):
            raise
        raise TransientError(f"the database failed, try again later: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    reason = getattr(exc, "orig", None) or exc
    lines = str(reason).strip().splitlines()
    return lines[0] if lines else type(reason).__name__
