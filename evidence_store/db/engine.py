"""Engines for SQLite (embedded default: WAL, foreign keys, serialised writers) and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.exc import DatabaseError as SADatabaseError

from evidence_store.errors import ConfigurationError, DatabaseUnavailableError

READ_ONLY = "evidence_read_only"


def read_only(connection: Connection) -> Connection:
    """A connection whose transactions read one consistent snapshot without blocking writers: a plain
    deferred transaction on SQLite (WAL), REPEATABLE READ on PostgreSQL."""
    if connection.dialect.name == "postgresql":
        return connection.execution_options(isolation_level="REPEATABLE READ", **{READ_ONLY: True})
    return connection.execution_options(**{READ_ONLY: True})


# A station over a WAN link (issue 18): a link that dies while a query waits must fail that query in
# about a minute (then the dock spools, the worker retries), not after TCP's defaults (two hours of
# keepalive when idle, ~15 minutes of retransmissions with data in flight).
POSTGRES_LINK_DEFAULTS: dict[str, int] = {
    "connect_timeout": 5,  # seconds to reach the server at all
    "keepalives": 1,
    "keepalives_idle": 30,  # seconds of silence before the first probe
    "keepalives_interval": 10,
    "keepalives_count": 3,  # unanswered probes: the link is dead after ~60 s of silence
    "tcp_user_timeout": 60_000,  # ms that sent data may stay unacknowledged
}


def make_engine(url: str, *, echo: bool = False) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigurationError(f"database_url {url!r} is not a database URL") from exc
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    kwargs: dict[str, Any] = {"echo": echo, "future": True}
    if parsed.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": 30}
    else:
        kwargs["pool_pre_ping"] = True
        # defaults the URL's own query may override (`?keepalives_idle=120`)
        kwargs["connect_args"] = {k: v for k, v in POSTGRES_LINK_DEFAULTS.items() if k not in parsed.query}
    try:
        engine = create_engine(parsed, **kwargs)
    except (ArgumentError, ImportError) as exc:
        raise ConfigurationError(f"database_url {url!r}: {exc}") from exc
    if engine.dialect.name == "sqlite":
        configure_sqlite(engine)
    return engine


def configure_sqlite(engine: Engine) -> None:
    """The station's SQLite rules on every connection: SQLAlchemy begins transactions, writers take the
    lock up front, foreign keys on, a committed row is on disk (WAL, synchronous=FULL)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin (see "begin" below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=FULL")  # evidence: a committed row survives power loss
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Take the write lock up front: a transaction that reads the audit head and then appends must
        # not find that another writer moved the head in between (SQLITE_BUSY_SNAPSHOT). Long readers
        # (audit verify, scrub) ask for `read_only` and take a plain snapshot, so docking goes on.
        if connection.get_execution_options().get(READ_ONLY):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def check_connection(engine: Engine) -> None:
    """Fail with one clear line when the database cannot be reached."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except (OperationalError, SADatabaseError) as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise DatabaseUnavailableError(
            f"cannot reach database {engine.url.render_as_string(hide_password=True)}: {reason}"
        ) from exc
