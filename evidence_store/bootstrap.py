"""The one place where adapters are chosen and wired to the services."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, inspect
from sqlalchemy.orm import Session, sessionmaker

from evidence_store.audit import AuditLog
from evidence_store.audit_anchoring import anchoring_for
from evidence_store.blobs.local import LocalBlobStore, LocalRetentionPurger
from evidence_store.db.engine import check_connection, make_engine
from evidence_store.db.migrate import current_revision, head_revision, upgrade_to_head
from evidence_store.db.orm import start_mappers
from evidence_store.db.transient import errors_that_pass_as_transient
from evidence_store.domain.record_facts import BASELINE_ACTION, BASELINE_KEY
from evidence_store.errors import ConfigurationError
from evidence_store.keys import StationKey, create_station_key, load_station_key
from evidence_store.ports import BlobStore, Clock, RetentionPurger
from evidence_store.record_check import records_baseline_needed
from evidence_store.settings import Settings, ensure_home_writable
from evidence_store.sidecar_migration import convert_sidecar_clips
from evidence_store.stations import enrol_first_station, request_enrolment, standing


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass
class Station:
    """Everything a command or worker needs, built once from the settings."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    blobs: BlobStore
    key: StationKey
    audit: AuditLog
    clock: Clock
    # the station's store-and-forward spool (`open_spool`), not its backend (issue 18)
    spool: bool = False

    # Every way into the database below raises an error that may pass (a restart, a cut connection,
    # a busy database) as TransientError, so that callers retry instead of failing the work for good.

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work (and audit events) commits together, or not at all."""
        with self._errors_that_pass(), self.sessions() as session, session.begin():
            yield session

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session for reading (or for work that commits itself)."""
        with self._errors_that_pass(), self.sessions() as session:
            yield session

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A Core connection for reading (or for work that commits itself)."""
        with self._errors_that_pass(), self.engine.connect() as connection:
            yield connection

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A Core connection in a transaction that commits when the block ends, or rolls back."""
        with self._errors_that_pass(), self.engine.begin() as connection:
            yield connection

    def _errors_that_pass(self) -> AbstractContextManager[None]:
        return errors_that_pass_as_transient(self.engine.dialect.name)

    def retention_purger(self) -> RetentionPurger:
        """Only the retention run calls this (R10): the single way to delete a blob."""
        if isinstance(self.blobs, LocalBlobStore):
            return LocalRetentionPurger(self.blobs)
        from evidence_store.blobs.s3 import S3BlobStore, S3RetentionPurger  # lazy: boto3, S3 only

        if isinstance(self.blobs, S3BlobStore):
            return S3RetentionPurger(self.blobs, self.clock)
        raise ConfigurationError(f"no retention purger for store {self.blobs.name}")

    def close(self) -> None:
        self.engine.dispose()


def make_blob_store(settings: Settings, clock: Clock) -> BlobStore:
    if settings.blob_store == "s3":
        # lazy: boto3 takes about a second to load; a station on the local store never pays for it
        from evidence_store.blobs.s3 import S3BlobStore

        return S3BlobStore.from_settings(settings, clock)
    return LocalBlobStore(settings.effective_store_path, read_ahead=settings.store_direct_reads)


def initialise(settings: Settings, *, clock: Clock = system_clock) -> tuple[Station, list[str]]:
    """`evidence init`: create what is missing (home, key, schema, store); idempotent."""
    ensure_home_writable(settings)
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    created: list[str] = []
    key, key_created = create_station_key(settings.keys_dir)
    if key_created:
        created.append("station key")
    engine = make_engine(settings.effective_database_url)
    check_connection(engine)
    before = current_revision(engine)
    upgrade_to_head(engine)
    if before != head_revision():
        created.append(f"database schema {head_revision()}")
    station = _assemble(settings, engine, key, clock)
    refused = _station_standing(station)
    if refused is not None:  # another station's database: this one asks to be enrolled, writes nothing
        created.append(refused)
        return station, created
    created.extend(_convert_sidecar_clips(station))
    with station.transaction() as session:
        first = (
            enrol_first_station(
                session,
                station.audit,
                name=settings.station_name,
                unit=settings.unit_name,
                actor="system",
                now=clock(),
            )
            if _no_station_enrolled(station)
            else None
        )
        if first is not None:
            created.append(f"station {settings.station_name} enrolled and approved (the first station)")
        # rows older than the baseline carry no facts in the chain: `audit verify` counts them apart
        baseline = records_baseline_needed(session)
        if created:
            details: dict[str, object] = {
                "created": created,
                "store": station.blobs.name,
                "key": key.fingerprint,
                **(first or {}),
            }
            if baseline is not None:
                details[BASELINE_KEY] = baseline
            station.audit.record(
                session,
                actor="system",
                action="station.initialised",
                object_type="station",
                object_id=settings.station_name,
                details=details,
            )
        elif baseline is not None:
            station.audit.record(
                session,
                actor="system",
                action=BASELINE_ACTION,
                object_type="station",
                object_id=settings.station_name,
                details={BASELINE_KEY: baseline},
            )
    return station, created


def _station_standing(station: Station) -> str | None:
    """None if this station may write (or is the first on the database); else what `init` says: its
    key asks to be enrolled (if it is not yet) and waits for an approved station's approval."""
    settings = station.settings
    with station.transaction() as session:
        where = standing(session, station.key, station.clock())
        if where.may_write:
            return None
        if not where.enrolled:
            request_enrolment(
                session,
                name=settings.station_name,
                unit=settings.unit_name,
                key=station.key,
                actor="system",
                now=station.clock(),
            )
            return (
                f"enrolment request for station {settings.station_name} (key {station.key.fingerprint}); "
                f"it writes nothing until approved: run 'evidence stations approve "
                f"{settings.station_name}' on an approved station"
            )
        return str(where.why)


def _no_station_enrolled(station: Station) -> bool:
    with station.session() as session:
        return standing(session, station.key, station.clock()).first


def _convert_sidecar_clips(station: Station) -> list[str]:
    """The data step of issue 17: sidecars an older station stored as clips become attachments."""
    report = convert_sidecar_clips(station)
    said = []
    if report.converted:
        said.append(f"{len(report.converted)} sidecar(s) stored as clips converted to attachments")
    said.extend(f"sidecar clip {clip_id} left as a clip: {why}" for clip_id, why in report.left.items())
    return said


def open_station(settings: Settings, *, clock: Clock = system_clock) -> Station:
    """Open an initialised station; a missing key or an old schema is a configuration error."""
    if not settings.home.is_dir():
        raise ConfigurationError(f"data directory {settings.home} does not exist: run 'evidence init'")
    engine = make_engine(settings.effective_database_url)
    check_connection(engine)
    revision = current_revision(engine)
    if revision != head_revision():
        has_tables = bool(inspect(engine).get_table_names())
        hint = "run 'evidence init' to migrate it" if has_tables else "run 'evidence init'"
        raise ConfigurationError(
            f"database schema is at {revision or 'nothing'}, not {head_revision()}: {hint}"
        )
    key = load_station_key(settings.keys_dir)
    return _assemble(settings, engine, key, clock)


def _assemble(settings: Settings, engine: Engine, key: StationKey, clock: Clock) -> Station:
    start_mappers()
    sessions = sessionmaker(engine, expire_on_commit=False)
    blobs = make_blob_store(settings, clock)
    audit = AuditLog(
        key,
        clock,
        checkpoint_interval=settings.audit_checkpoint_interval,
        source=f"station:{settings.station_name or socket.gethostname()}",
        anchoring=anchoring_for(settings, blobs, clock),
    )
    return Station(
        settings=settings,
        engine=engine,
        sessions=sessions,
        blobs=blobs,
        key=key,
        audit=audit,
        clock=clock,
    )


# -- the spool: a station's local journal and store while its backend is unreachable (issue 18) -------


def spool_settings(settings: Settings) -> Settings:
    """The settings of the station's spool: an embedded SQLite journal and a local store under
    `spool_dir`, anchors in its own file there, no TSA (it is for when the network is down)."""
    spool = settings.effective_spool_dir
    return settings.model_copy(
        update={
            "home": spool,
            "database_url": f"sqlite:///{settings.spool_journal_path}",
            "blob_store": "local",
            "local_store_path": spool / "blobs",
            "tsa_url": "",
        }
    )


def open_spool(settings: Settings, *, clock: Clock = system_clock) -> Station:
    """The station's spool as a Station of its own: its journal is the audit chain of a local SQLite
    database of the same schema, each entry signed with this station's own key (`keys/` of the
    station's home, which `evidence init` made), so the pull writes into it by the same code as into
    the backend. Created on first use; its first entry, `station.initialised`, states the key."""
    key = load_station_key(settings.keys_dir)
    conf = spool_settings(settings)
    try:
        conf.home.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ConfigurationError(f"cannot create the spool at {conf.home}: {exc.strerror or exc}") from exc
    engine = make_engine(conf.effective_database_url)
    if current_revision(engine) != head_revision():
        upgrade_to_head(engine)
    station = _assemble(conf, engine, key, clock)
    station.spool = True
    if _no_station_enrolled(station):
        with station.transaction() as session:
            first = enrol_first_station(
                session,
                station.audit,
                name=settings.station_name,
                unit=settings.unit_name,
                actor="system",
                now=clock(),
            )
            details: dict[str, object] = {
                "created": ["spool"],
                "store": station.blobs.name,
                "key": key.fingerprint,
            }
            details.update(first or {})
            baseline = records_baseline_needed(session)
            if baseline is not None:
                details[BASELINE_KEY] = baseline
            station.audit.record(
                session,
                actor="system",
                action="station.initialised",
                object_type="station",
                object_id=settings.station_name,
                details=details,
            )
    return station
