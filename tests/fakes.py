"""A fake `Station` for the unit tier: the real services over in-memory adapters, built in milliseconds.

`fake_station(now=...)` gives a `Station` whose blob store is a dict, whose database is SQLite in
memory (one connection shared by every session, the schema from the project's tables, which
`tests/integration/test_migrations.py` proves equal to the migrations), whose clock stands still until a
test moves it, whose processing queue records what was offered, and whose audit log is the real one,
signing with a key generated for this station. Services take it exactly as they take a real station.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, create_engine, select
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import StaticPool

from evidence_store.audit import AuditLog
from evidence_store.bootstrap import Station
from evidence_store.db.engine import configure_sqlite
from evidence_store.db.orm import start_mappers
from evidence_store.db.tables import audit_events, metadata
from evidence_store.errors import BlobMismatchError, BlobNotFoundError
from evidence_store.keys import StationKey
from evidence_store.ports import BlobListing, RetentionPurger, StoredBlob
from evidence_store.settings import Settings

T0 = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
_CHUNK = 1 << 16


class FixedClock:
    """A clock tests can move; services take it instead of reading the time."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> datetime:
        self.now += by
        return self.now


class InMemoryBlobStore:
    """The `BlobStore` port over a dict: content-addressed, write-once, no delete (only the purger)."""

    name = "memory"

    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}
        self.unsynced: set[str] = set()  # written with durable=False and not yet `sync`ed

    def put(
        self, source: BinaryIO, *, expected_sha256: str | None = None, durable: bool = True
    ) -> StoredBlob:
        digest = hashlib.sha256()
        parts: list[bytes] = []
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
            parts.append(chunk)
        data = b"".join(parts)
        sha256 = digest.hexdigest()
        if expected_sha256 is not None and sha256 != expected_sha256:
            raise BlobMismatchError(
                f"bytes read hash to {sha256}, expected {expected_sha256}: nothing stored"
            )
        held = self._blobs.get(sha256)
        if held is not None and hashlib.sha256(held).hexdigest() == sha256:
            return StoredBlob(sha256, len(data), created=False)
        # as the local store does, a blob that no longer holds its bytes is replaced by the verified copy
        self._blobs[sha256] = data
        if not durable:
            self.unsynced.add(sha256)
        return StoredBlob(sha256, len(data), created=True)

    def sync(self) -> None:
        self.unsynced.clear()

    def open(self, sha256: str) -> BinaryIO:
        return io.BytesIO(self._get(sha256))

    def exists(self, sha256: str) -> bool:
        return sha256 in self._blobs

    def size(self, sha256: str) -> int:
        return len(self._get(sha256))

    def rehash(self, sha256: str) -> str:
        return hashlib.sha256(self._get(sha256)).hexdigest()

    def iter_blobs(self) -> Iterator[BlobListing]:
        for sha256, data in sorted(self._blobs.items()):
            yield BlobListing(sha256, len(data))

    def _get(self, sha256: str) -> bytes:
        try:
            return self._blobs[sha256]
        except KeyError:
            raise BlobNotFoundError(f"blob {sha256} is not in the memory store") from None

    # -- what tests do to a store behind the services' back ------------------------------------------

    def tamper(self, sha256: str, data: bytes) -> None:
        """Change a stored blob's bytes in place (a flipped bit on disk)."""
        self._get(sha256)
        self._blobs[sha256] = data

    def lose(self, sha256: str) -> None:
        """A blob vanishes (a lost disk, an operator's `rm`)."""
        self._get(sha256)
        del self._blobs[sha256]


class InMemoryRetentionPurger:
    """The one way to delete from the memory store (R10); remembers what it purged, for each run."""

    def __init__(self, store: InMemoryBlobStore) -> None:
        self.store = store
        self.purged: list[tuple[int, str]] = []

    def purge(self, sha256: str, *, run_id: int) -> bool:
        if not self.store.exists(sha256):
            return False
        self.store.lose(sha256)
        self.purged.append((run_id, sha256))
        return True


class RecordingQueue:
    """A `ProcessingQueue` that keeps every offer, in order."""

    def __init__(self) -> None:
        self.offered: list[list[int]] = []

    def clips_stored(self, clip_ids: list[int]) -> None:
        self.offered.append(list(clip_ids))

    @property
    def clip_ids(self) -> list[int]:
        return [clip_id for offer in self.offered for clip_id in offer]


@dataclass
class FakeStation(Station):
    """A `Station` over in-memory adapters, with the fakes at hand for the test to look at."""

    blobs: InMemoryBlobStore
    clock: FixedClock
    queue: RecordingQueue = field(default_factory=RecordingQueue)
    purger: InMemoryRetentionPurger | None = None

    def retention_purger(self) -> RetentionPurger:
        if self.purger is None:
            self.purger = InMemoryRetentionPurger(self.blobs)
        return self.purger


def memory_engine() -> Engine:
    """SQLite in memory, one connection for every session, configured by the same
    `db.engine.configure_sqlite` as a station's SQLite file, so the services meet the rules they meet in
    production."""
    engine = create_engine(
        "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}, future=True
    )

    configure_sqlite(engine)  # WAL and synchronous=FULL mean nothing in memory and do no harm
    metadata.create_all(engine)
    return engine


def fake_station(now: datetime = T0, *, checkpoint_interval: int = 10, **settings: Any) -> FakeStation:
    """A fresh station with nothing on record; `settings` override the defaults (as EVIDENCE_* would)."""
    config = Settings(
        home=Path("/nonexistent/fake-station"),  # nothing of the fake station lives on disk
        station_name="fake-station",
        processing_queue="none",
        audit_checkpoint_interval=checkpoint_interval,
        **settings,
    )
    start_mappers()
    engine = memory_engine()
    clock = FixedClock(now)
    key = StationKey(Ed25519PrivateKey.generate())
    return FakeStation(
        settings=config,
        engine=engine,
        sessions=sessionmaker(engine, expire_on_commit=False),
        blobs=InMemoryBlobStore(),
        key=key,
        audit=AuditLog(key, clock, checkpoint_interval=checkpoint_interval, source="station:fake-station"),
        clock=clock,
    )


@dataclass(frozen=True)
class Logged:
    seq: int
    actor: str
    action: str
    object_type: str
    object_id: str
    details: dict[str, Any]


def audit_trail(station: Station, action: str | None = None) -> list[Logged]:
    """The audit events on record, in order (only those of `action` if given), details decoded."""
    query = select(audit_events).order_by(audit_events.c.seq)
    if action is not None:
        query = query.where(audit_events.c.action == action)
    with station.engine.connect() as connection:
        return [
            Logged(row.seq, row.actor, row.action, row.object_type, row.object_id, json.loads(row.details))
            for row in connection.execute(query)
        ]
