"""`evidence status` and `evidence stations list` on a SQLite station, read with the standard library's
`sqlite3` driver (issue 21, item 3: a light command in <= 0.3 s whole process).

Importing SQLAlchemy and defining the tables costs a light command about 0.2 s before it reads a row;
these two commands only read a few counts and the station list. `reader_for` opens the station the way
`bootstrap.open_station` does (the same checks, in the same order, with the same errors: home missing,
database unreachable, schema not at head, station key missing or readable by others, store not
creatable) and the queries return exactly what `status.describe` and `stations.list_stations` return:
the same values of the same Python types (times as aware UTC datetimes, flags as bools), so the JSON
and the text printed are identical (tests/integration/test_light_status.py compares them). Any other
database URL or an S3 store take the SQLAlchemy path (`reader_for` returns None), and so does `status`
when the station has a spool (its status opens the spool with SQLAlchemy anyway).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evidence_store.db.migrate import HEAD_REVISION, VERSION_TABLE
from evidence_store.domain.disclosure import (
    Application,
    ApplicationKind,
    ApplicationState,
    answer_due,
    overdue,
)
from evidence_store.domain.spool import reported_depth
from evidence_store.errors import ConfigurationError, DatabaseUnavailableError, TransientError
from evidence_store.settings import Settings

# a file URL SQLAlchemy renders back unchanged: no query string, no escapes, not in memory
_PLAIN_SQLITE_URL = re.compile(r"^sqlite:///(?P<path>[^?#%]+)$")
# the transfer outcome of a pull still running (domain.model.TransferOutcome.RUNNING; a test keeps it)
RUNNING = "running"
# SQLite's busy and locked pass, as in db/transient.py: a retry cures them
_SQLITE_PASSING = ("database is locked", "database table is locked", "database is busy")


def sqlite_path_of(url: str) -> Path | None:
    """The database file of a plain `sqlite:///FILE` URL; None for any other URL."""
    match = _PLAIN_SQLITE_URL.match(url)
    if match is None or match["path"] in (":memory:", ""):
        return None
    return Path(match["path"])


@dataclass
class SqliteStation:
    """What `status` needs of an opened station, without SQLAlchemy."""

    settings: Settings
    url: str
    path: Path
    key_fingerprint: str

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """One read transaction (a consistent snapshot), with the station's connection rules."""
        with _errors_that_pass():
            connection = _connect(self.path)
            try:
                connection.execute("BEGIN")
                yield connection
            finally:
                connection.close()


def reader_for(settings: Settings) -> SqliteStation | None:
    """The station opened for reading with `sqlite3`, or None when the SQLAlchemy path must serve it
    (another database, an S3 store); raises what `open_station` raises."""
    url = settings.effective_database_url
    path = sqlite_path_of(url)
    if path is None or settings.blob_store != "local":
        return None
    if not settings.home.is_dir():
        raise ConfigurationError(f"data directory {settings.home} does not exist: run 'evidence init'")
    connection: sqlite3.Connection | None = None
    try:
        connection = _connect(path)
        connection.execute("SELECT 1")
    except sqlite3.Error as exc:  # as db/engine.py `check_connection`
        if connection is not None:
            connection.close()
        reason = str(exc).strip().splitlines()[0]
        raise DatabaseUnavailableError(f"cannot reach database {url}: {reason}") from exc
    try:
        revision = _current_revision(connection)
        if revision != HEAD_REVISION:
            has_tables = bool(
                connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' LIMIT 1").fetchone()
            )
            hint = "run 'evidence init' to migrate it" if has_tables else "run 'evidence init'"
            raise ConfigurationError(
                f"database schema is at {revision or 'nothing'}, not {HEAD_REVISION}: {hint}"
            )
    finally:
        connection.close()
    from evidence_store.blobs.local import LocalBlobStore  # lazy: start-up (only here, after the checks)
    from evidence_store.keys import load_station_key  # lazy: start-up (cryptography, after the checks)

    key = load_station_key(settings.keys_dir)
    LocalBlobStore(settings.effective_store_path)  # as open_station: the store's directories exist
    return SqliteStation(settings=settings, url=url, path=path, key_fingerprint=key.fingerprint)


def describe(station: SqliteStation) -> dict[str, Any]:
    """`status.describe` of a SQLite station on a local store, value for value."""
    settings = station.settings
    with station.snapshot() as connection:
        by_status = dict(connection.execute("SELECT status, count(*) FROM clips GROUP BY status").fetchall())
        stored_bytes = connection.execute("SELECT coalesce(sum(size), 0) FROM clips").fetchone()[0]
        head = connection.execute("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1").fetchone()
        last_checkpoint = connection.execute("SELECT max(seq) FROM audit_checkpoints").fetchone()[0]
        last_scrub = connection.execute(
            "SELECT at, details FROM audit_events WHERE action = 'store.scrubbed' ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        n_transfers = connection.execute("SELECT count(*) FROM transfers").fetchone()[0]
        n_cases = connection.execute("SELECT count(*) FROM cases").fetchone()[0]
        revision = _current_revision(connection)
        enrolled = list_stations(connection)
        overdue = overdue_applications(connection, settings.disclosure_answer_days)
    scrub_info: dict[str, Any] | None = None
    if last_scrub is not None:
        import json  # lazy: start-up (only a scrubbed station reads it)

        details = json.loads(last_scrub[1])
        scrub_info = {"at": last_scrub[0], "ok": details.get("ok"), "counts": details.get("counts")}
    return {
        "station": settings.station_name,
        "unit": settings.unit_name,
        "home": str(settings.home),
        "database": {"url": station.url, "backend": "sqlite", "schema_revision": revision},
        "store": {"kind": "local", "path": str(settings.effective_store_path)},
        "key_fingerprint": station.key_fingerprint,
        "clips": {
            "total": sum(by_status.values()),
            "by_status": {str(k): v for k, v in by_status.items()},
            "bytes": int(stored_bytes or 0),
        },
        "transfers": n_transfers,
        "cases": n_cases,
        "disclosures_overdue": {
            "count": len(overdue),
            "applications": [f"{a.id} ({a.party_name}, due {due.isoformat()})" for a, due in overdue],
            "answer_days": settings.disclosure_answer_days,
        },
        "audit": {
            "head_seq": head[0] if head else 0,
            "head_hash": head[1] if head else None,
            "last_checkpoint_seq": last_checkpoint or 0,
        },
        "last_scrub": scrub_info,
        "stations": [
            {
                key: s[key]
                for key in (
                    "name",
                    "unit",
                    "fingerprint",
                    "approved",
                    "revoked_at",
                    "last_seen",
                    "version",
                    "refused_at",
                    "bays_in_use",
                    "spool",
                )
            }
            for s in enrolled
        ],
    }


def overdue_applications(
    connection: sqlite3.Connection, answer_days: int, limit: int = 200
) -> list[tuple[Application, datetime]]:
    """`disclosure.list_applications(only_overdue=True)`, value for value: the newest `limit` parties'
    applications still unanswered after their days (R15), each with when its answer was due."""
    now = datetime.now(UTC)
    found: list[tuple[Application, datetime]] = []
    rows = connection.execute(
        "SELECT id, party_name, id_document_type, id_document_number, kind, purpose, received_at, "
        "recorded_by, state FROM disclosure_applications WHERE state = ? ORDER BY id DESC",
        (ApplicationState.RECEIVED.value,),
    )
    for row in rows:
        application = Application(
            id=row[0],
            party_name=row[1],
            id_document_type=row[2],
            id_document_number=row[3],
            kind=ApplicationKind(row[4]),
            purpose=row[5],
            received_at=datetime.fromisoformat(row[6]).replace(tzinfo=UTC),
            recorded_by=row[7],
            state=ApplicationState(row[8]),
        )
        if overdue(application, now, answer_days):
            found.append((application, answer_due(application.received_at, answer_days)))
            if len(found) == limit:
                break
    return found


def list_stations(connection: sqlite3.Connection) -> list[dict[str, Any]]:
    """`stations.list_stations`, value for value."""
    busy = {
        str(name): int(count)
        for name, count in connection.execute(
            "SELECT dock_stations.name, count(*) FROM dock_stations "
            "JOIN transfers ON transfers.dock_station_id = dock_stations.id "
            "WHERE transfers.outcome = ? GROUP BY dock_stations.name",
            (RUNNING,),
        )
    }
    rows = connection.execute(
        "SELECT name, unit, fingerprint, approved, approved_by, approved_at, enrolled_at, enrolled_by, "
        "revoked_at, revoked_by, last_seen, version, refused_at, refused_action, spool_held_bytes, "
        "spool_high_water_bytes, spool_transfers_waiting, spool_clips_waiting, spool_reported_at "
        "FROM stations ORDER BY id"
    ).fetchall()
    return [
        {
            "name": row[0],
            "unit": row[1],
            "fingerprint": row[2],
            "approved": None if row[3] is None else bool(row[3]),
            "approved_by": row[4],
            "approved_at": _time(row[5]),
            "enrolled_at": _time(row[6]),
            "enrolled_by": row[7],
            "revoked_at": _time(row[8]),
            "revoked_by": row[9],
            "last_seen": _time(row[10]),
            "version": row[11],
            "refused_at": _time(row[12]),
            "refused_action": row[13],
            "bays_in_use": busy.get(row[0], 0),
            "spool": reported_depth(row[14], row[15], row[16], row[17], _time(row[18])),
        }
        for row in rows
    ]


def _time(stored: str | None) -> str | None:
    """A `UTCDateTime` column as `list_stations` gives it: SQLite keeps the UTC time without a zone."""
    if stored is None:
        return None
    return datetime.fromisoformat(stored).replace(tzinfo=UTC).isoformat()


def _current_revision(connection: sqlite3.Connection) -> str | None:
    """`db.migrate.current_revision`: None for a database Alembic never touched."""
    known = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (VERSION_TABLE,)
    ).fetchone()
    if known is None:
        return None
    try:
        found = connection.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchone()  # noqa: S608
    except sqlite3.DatabaseError:
        return None
    return None if found is None or found[0] is None else str(found[0])


def _connect(path: Path) -> sqlite3.Connection:
    """The station's SQLite connection rules (db/engine.py `configure_sqlite`); transactions are begun
    explicitly, as there."""
    connection = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA foreign_keys=ON")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute("PRAGMA busy_timeout=30000")
    except BaseException:
        connection.close()
        raise
    return connection


@contextmanager
def _errors_that_pass() -> Iterator[None]:
    """`db.transient.errors_that_pass_as_transient` for SQLite: busy and locked pass as TransientError."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        if not any(s in str(exc).lower() for s in _SQLITE_PASSING):
            raise
        lines = str(exc).strip().splitlines()
        raise TransientError(
            f"the database failed, try again later: {lines[0] if lines else 'OperationalError'}"
        ) from exc
