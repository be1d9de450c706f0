"""Store-and-forward (issue 18, R1, R3, R10): docking into the station's spool while the backend is
unreachable, and forwarding the spool into the backend once it is back.

**Where a docking goes.** `open_for_docking` opens the backend (database, then object store); when it
cannot be reached (`DatabaseUnavailableError`, a `TransientError`, a `StoreError` of the object store)
and `spool_enabled` is on, it logs the decision with the reason and opens the spool instead
(`bootstrap.open_spool`): a SQLite journal and a local store under `spool_dir`. The pull then runs
unchanged against the spool, so recorders are handed over on time (R1, R2): the journal's entries
(transfer, clips, attachments, devices, officers) are the spool's audit chain, each signed with this
station's own enrolled key.

**Forwarding** (`forward_spool`), one closed spooled transfer at a time:

1. its key is the hash of the spooled `transfer.started` journal entry; a backend that already has a
   `spool_forwards` row with that key has it (a forward cut after its commit): only the spool's note
   is written;
2. every clip's and attachment's bytes are put into the backend store with their spooled sha256 as
   the expected hash, so the receiving store re-hashes them and stores nothing that differs, then the
   store is synced (durable before any record names them);
3. one backend transaction writes the transfer (its original times and counts), the device, officer
   and dock station if new, the clips (`record_originals`: bytes already on record are the existing
   clip, never a second one) and attachments with their original times, the `spool_forwards` row,
   and one `spool.forwarded` event quoting every journal entry of the transfer with its original time
   and signature (`domain.spool`). `audit verify` checks those quotes against the key the chain
   enrolled for this station (`audit.verify_audit_log`). The station must be approved to write at all:
   a station not enrolled or revoked cannot forward (`StationNotTrustedError`, the spool keeps it);
4. the spool notes the forward (its own `spool_forwards` row and a signed `spool.forwarded` entry).

A cut anywhere leaves either nothing in the backend's records (the retry writes it once; blobs put
before the cut are orphans the retry adopts) or the whole transfer with its key (the retry only notes
it): no duplicate, nothing lost. Concurrent forwarders are serialised by the audit lock and the key.

**Freeing** (`free_forwarded`): a spooled copy is deleted from the spool only when `domain.spool.may_free`
says so: forwarded, the backend's store still holds the bytes (checked now, size included), and
`spool_keep_hours` passed since the forward. The spool's journal itself is kept (it is small).

**A filling spool** (`spool_status`): bytes held against `spool_high_water_bytes`; above it the dock stops
clearing recorders (deleting verified files from them) but keeps pulling; logged, shown by
`evidence status`, `evidence spool status` and the dashboard.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlalchemy.orm import Session

from evidence_store.attachments import link_to_clips, record_attachments
from evidence_store.blobs.local import LocalBlobStore
from evidence_store.bootstrap import Station, open_spool, open_station, spool_settings, system_clock
from evidence_store.db.engine import check_connection, make_engine
from evidence_store.db.tables import (
    attachments,
    audit_events,
    clips,
    devices,
    dock_stations,
    officers,
    spool_forwards,
    transfers,
)
from evidence_store.domain.audit_chain import STORED_FIELDS
from evidence_store.domain.model import (
    Attachment,
    Clip,
    Device,
    DockStation,
    Officer,
    Transfer,
    TransferOutcome,
)
from evidence_store.domain.spool import (
    FORWARDED_ACTION,
    SPOOLED_KEY,
    JournalEntry,
    SpoolLevel,
    may_free,
    spool_level,
)
from evidence_store.errors import (
    BlobMismatchError,
    DatabaseUnavailableError,
    IntegrityError,
    StoreError,
    TransientError,
)
from evidence_store.interrupted_work import close_interrupted_work
from evidence_store.originals import record_originals
from evidence_store.ports import BlobStore, Clock, NoProcessingQueue, ProcessingQueue, StoredBlob
from evidence_store.settings import Settings
from evidence_store.stations import report_spool_depth

log = logging.getLogger(__name__)

# Blobs of one transfer put into the backend store at once: one PUT is one stream to the object store,
# and a gateway (radosgw) or a long link serves several streams faster than one (bench_forward_wan.py).
FORWARD_PUTS_AT_ONCE = 4

# the errors that say the backend cannot be reached now (and may be later): a docking then spools
UNREACHABLE = (DatabaseUnavailableError, TransientError, StoreError)

Step = Callable[[str], None]


def _no_step(_name: str) -> None:
    return None


# -- where a docking goes ---------------------------------------------------------------------------


@dataclass
class DockTarget:
    """The station a docking writes into: the backend, or the spool (with the reason)."""

    station: Station
    spooled: bool = False
    reason: str = ""


def open_backend(settings: Settings, *, clock: Clock = system_clock) -> Station:
    """The backend station, reached now: the database (`open_station` checks it) and the store."""
    station = open_station(settings, clock=clock)
    try:
        station.blobs.exists("0" * 64)  # the object store answers (S3: a HEAD)
    except BaseException:
        station.close()
        raise
    return station


def reach_backend(
    settings: Settings,
    *,
    attempts: int = 3,
    wait_s: float = 2.0,
    open_: Callable[[Settings], Station] = open_backend,
    sleep: Callable[[float], None] = time.sleep,
) -> Station:
    """The backend for a one-shot forward, tried `attempts` times `wait_s` apart: a link that has just
    come back can drop the first connections (the server still holds the sessions of a station that
    vanished mid-forward), and an operator who runs `evidence spool forward` after the link is back
    should not have to run it twice. A backend still unreachable after the last try raises as before."""
    for attempt in range(1, attempts + 1):
        try:
            return open_(settings)
        except UNREACHABLE as exc:
            if attempt == attempts:
                raise
            log.info("backend not reached (attempt %d of %d): %s; trying again", attempt, attempts, exc)
            sleep(wait_s)
    raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover


def open_for_docking(settings: Settings, *, clock: Clock = system_clock) -> DockTarget:
    """The backend if it can be reached, else (spool enabled) the station's spool, said in the log."""
    try:
        return DockTarget(open_backend(settings, clock=clock))
    except UNREACHABLE as exc:
        if not settings.spool_enabled:
            raise
        log.warning(
            "backend unreachable (%s): docking into the spool at %s; it is forwarded when the backend "
            "is back ('evidence spool forward', or the station every %.0f s)",
            exc,
            settings.effective_spool_dir,
            settings.spool_forward_interval_s,
        )
        return DockTarget(open_spool(settings, clock=clock), spooled=True, reason=str(exc))


class DockTargets:
    """For the dock daemon: per docking, the backend if it answers now, else the spool, so a dock that
    lost its backend spools the next recorder and one whose backend came back writes to it again. Each
    switch is logged. Thread-safe (several bays pull at once); the stations are opened once."""

    def __init__(
        self,
        settings: Settings,
        *,
        queue: ProcessingQueue,
        backend: Station | None = None,
        spool: Station | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self.settings = settings
        self.queue = queue
        self.clock = clock
        self._backend = backend
        self._spool = spool
        self._lock = threading.Lock()
        self._spooling = backend is None

    def choose(self) -> tuple[Station, ProcessingQueue]:
        with self._lock:
            try:
                if self._backend is None:
                    self._backend = open_backend(self.settings, clock=self.clock)
                else:
                    check_connection(self._backend.engine)
                    self._backend.blobs.exists("0" * 64)
            except UNREACHABLE as exc:
                if not self.settings.spool_enabled:
                    raise
                if not self._spooling:
                    log.warning("backend unreachable (%s): the dock docks into the spool", exc)
                self._spooling = True
                if self._spool is None:
                    self._spool = open_spool(self.settings, clock=self.clock)
                return self._spool, NoProcessingQueue()
            if self._spooling:
                log.warning("backend reachable again: the dock docks into it")
            self._spooling = False
            return self._backend, self.queue

    def close(self) -> None:
        for station in (self._backend, self._spool):
            if station is not None:
                station.close()


def spool_exists(settings: Settings) -> bool:
    return settings.spool_journal_path.is_file()


# -- how full it is ---------------------------------------------------------------------------------


@dataclass
class SpoolStatus:
    path: str
    level: SpoolLevel
    transfers_waiting: int  # closed, not yet forwarded
    transfers_running: int
    clips_waiting: int
    transfers_forwarded: int
    transfers_kept: int  # forwarded, copy not freed yet (the local keep)

    @property
    def empty(self) -> bool:
        return self.level.held_bytes == 0 and not self.transfers_waiting and not self.transfers_running

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "held_bytes": self.level.held_bytes,
            "high_water_bytes": self.level.high_water_bytes,
            "over_high_water": self.level.over_high_water,
            "may_clear_recorders": self.level.may_clear_recorders,
            "transfers_waiting": self.transfers_waiting,
            "transfers_running": self.transfers_running,
            "clips_waiting": self.clips_waiting,
            "transfers_forwarded": self.transfers_forwarded,
            "transfers_kept": self.transfers_kept,
            "empty": self.empty,
        }


def held_bytes(spool: Station) -> int:
    return sum(blob.size for blob in spool.blobs.iter_blobs())


def spool_status(spool: Station, settings: Settings) -> SpoolStatus:
    """How full the spool is and what waits in it; over the high-water mark it is also logged."""
    with spool.connect() as connection:
        status = _read_status(connection, spool.blobs, settings)
    if status.level.over_high_water:
        log.warning("%s", status.level.describe())
    return status


def local_spool_status(settings: Settings) -> SpoolStatus | None:
    """This host's spool, read without migrating or writing it (the web dashboard); None if there is
    none."""
    if not spool_exists(settings):
        return None
    conf = spool_settings(settings)
    engine = make_engine(conf.effective_database_url)
    try:
        with engine.connect() as connection:
            return _read_status(connection, LocalBlobStore(conf.effective_store_path), settings)
    finally:
        engine.dispose()


def _read_status(connection: Connection, blobs: BlobStore, settings: Settings) -> SpoolStatus:
    level = spool_level(sum(blob.size for blob in blobs.iter_blobs()), settings.spool_high_water_bytes)
    forwarded = {
        row.spool_transfer_id: row.freed_at
        for row in connection.execute(select(spool_forwards.c.spool_transfer_id, spool_forwards.c.freed_at))
    }
    rows = connection.execute(select(transfers.c.id, transfers.c.outcome)).all()
    waiting_ids = [r.id for r in rows if r.outcome is not TransferOutcome.RUNNING and r.id not in forwarded]
    clips_waiting = 0
    if waiting_ids:
        clips_waiting = int(
            connection.scalar(
                select(func.count()).select_from(clips).where(clips.c.transfer_id.in_(waiting_ids))
            )
            or 0
        )
    return SpoolStatus(
        path=str(settings.effective_spool_dir),
        level=level,
        transfers_waiting=len(waiting_ids),
        transfers_running=sum(1 for r in rows if r.outcome is TransferOutcome.RUNNING),
        clips_waiting=clips_waiting,
        transfers_forwarded=len(forwarded),
        transfers_kept=sum(1 for freed in forwarded.values() if freed is None),
    )


def report_depth(spool: Station, backend: Station) -> SpoolStatus:
    """Tell the backend how full this station's spool is now (its `stations` row), so that every host's
    status and dashboard show a filling spool; returns what was reported."""
    status = spool_status(spool, backend.settings)
    with backend.engine.begin() as connection:
        report_spool_depth(
            connection,
            backend.key.fingerprint,
            status.level,
            transfers_waiting=status.transfers_waiting + status.transfers_running,
            clips_waiting=status.clips_waiting,
            now=backend.clock(),
        )
    return status


def may_clear_recorders(station: Station) -> tuple[bool, str]:
    """Whether a docking into `station` may delete verified files from the recorder: always into the
    backend; into the spool only below its high-water mark (R10: the spool is then the only copy)."""
    if not station.spool:
        return True, ""
    level = spool_level(held_bytes(station), station.settings.spool_high_water_bytes)
    if level.may_clear_recorders:
        return True, ""
    log.warning("%s", level.describe())
    return False, level.describe()


# -- forwarding -------------------------------------------------------------------------------------


@dataclass
class ForwardedTransfer:
    spool_transfer_id: int
    transfer_id: int | None
    clips: int
    duplicates: int
    attachments: int
    bytes: int
    already: bool = False  # the backend had it (a forward cut after its commit)
    new_clip_ids: list[int] = field(default_factory=list)  # for the processing queue

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "new_clip_ids"}


@dataclass
class ForwardReport:
    forwarded: list[ForwardedTransfer] = field(default_factory=list)
    freed: list[int] = field(default_factory=list)  # spool transfer ids whose copies were freed
    running: int = 0  # spooled transfers still being pulled: forwarded once they are closed
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "forwarded": [f.as_dict() for f in self.forwarded],
            "freed": self.freed,
            "running": self.running,
            "problems": self.problems,
        }


def forward_spool(
    spool: Station,
    backend: Station,
    *,
    actor: str,
    keep: timedelta,
    queue: ProcessingQueue | None = None,
    step: Step = _no_step,
) -> ForwardReport:
    """Forward every closed spooled transfer not yet forwarded, then free what may be freed.

    `step(name)` is called at each named point of the way (tests cut the process there)."""
    queue = queue or NoProcessingQueue()
    report = ForwardReport()
    close_interrupted_work(spool, actor=actor)  # a pull killed mid-way: its transfer is closed, kept
    with spool.connect() as connection:
        done = set(connection.scalars(select(spool_forwards.c.spool_transfer_id)))
        rows = connection.execute(select(transfers.c.id, transfers.c.outcome).order_by(transfers.c.id)).all()
    for row in rows:
        if row.id in done:
            continue
        if row.outcome is TransferOutcome.RUNNING:
            report.running += 1
            continue
        try:
            forwarded = _forward_transfer(spool, backend, row.id, actor=actor, step=step)
        except IntegrityError as exc:
            # a spooled copy missing or no longer hashing to its name: nothing of this transfer is
            # recorded in the backend, the spool keeps it, it is reported, and the others go on
            report.problems.append(f"spooled transfer {row.id} not forwarded: {exc}")
            log.error("spooled transfer %d not forwarded: %s", row.id, exc)
            continue
        report.forwarded.append(forwarded)
        if forwarded.new_clip_ids:
            queue.clips_stored(forwarded.new_clip_ids)
        log.info(
            "spooled transfer %d forwarded as transfer %s: %d clip(s), %d duplicate(s), %d attachment(s)%s",
            forwarded.spool_transfer_id,
            forwarded.transfer_id,
            forwarded.clips,
            forwarded.duplicates,
            forwarded.attachments,
            " (the backend had it already)" if forwarded.already else "",
        )
    report.freed = free_forwarded(spool, backend, actor=actor, keep=keep, step=step)
    return report


def _journal_key(spool: Station, spool_transfer_id: int) -> JournalEntry:
    """The spooled `transfer.started` entry: its hash keys the forward."""
    with spool.connect() as connection:
        row = connection.execute(
            select(*[audit_events.c[name] for name in STORED_FIELDS]).where(
                audit_events.c.object_type == "transfer",
                audit_events.c.object_id == str(spool_transfer_id),
                audit_events.c.action == "transfer.started",
            )
        ).one()
    return JournalEntry.from_row(row)


def _journal_entries(spool: Station, objects: dict[str, Iterable[int | None]]) -> list[JournalEntry]:
    """Every journal entry about the given objects (type -> ids), in journal order."""
    conditions = []
    for object_type, ids in objects.items():
        wanted = sorted({str(i) for i in ids if i is not None})
        if wanted:
            conditions.append(
                and_(audit_events.c.object_type == object_type, audit_events.c.object_id.in_(wanted))
            )
    with spool.connect() as connection:
        rows = connection.execute(
            select(*[audit_events.c[name] for name in STORED_FIELDS])
            .where(or_(*conditions))
            .order_by(audit_events.c.seq)
        ).all()
    return [JournalEntry.from_row(row) for row in rows]


@dataclass
class _Spooled:
    transfer: dict[str, Any]
    device: dict[str, Any] | None
    officer: dict[str, Any] | None
    dock_station: str | None
    clips: list[dict[str, Any]]
    attachments: list[dict[str, Any]]


def _read_spooled(spool: Station, spool_transfer_id: int) -> _Spooled:
    with spool.connect() as connection:
        transfer = connection.execute(select(transfers).where(transfers.c.id == spool_transfer_id)).one()
        device = (
            connection.execute(select(devices).where(devices.c.id == transfer.device_id)).first()
            if transfer.device_id is not None
            else None
        )
        officer = (
            connection.execute(select(officers).where(officers.c.id == transfer.officer_id)).first()
            if transfer.officer_id is not None
            else None
        )
        dock = (
            connection.scalar(
                select(dock_stations.c.name).where(dock_stations.c.id == transfer.dock_station_id)
            )
            if transfer.dock_station_id is not None
            else None
        )
        clip_rows = connection.execute(
            select(clips).where(clips.c.transfer_id == spool_transfer_id).order_by(clips.c.id)
        ).all()
        attachment_rows = connection.execute(
            select(attachments)
            .where(attachments.c.transfer_id == spool_transfer_id)
            .order_by(attachments.c.id)
        ).all()
    return _Spooled(
        transfer=dict(transfer._mapping),
        device=dict(device._mapping) if device is not None else None,
        officer=dict(officer._mapping) if officer is not None else None,
        dock_station=dock,
        clips=[dict(r._mapping) for r in clip_rows],
        attachments=[dict(r._mapping) for r in attachment_rows],
    )


def _put_one(spool: Station, backend: Station, sha256: str, size: int) -> StoredBlob:
    with spool.blobs.open(sha256) as source:
        blob = backend.blobs.put(source, expected_sha256=sha256, durable=False)
    if blob.size != size:
        raise BlobMismatchError(f"blob {sha256} arrived with {blob.size} bytes, spooled with {size}")
    return blob


def _put_bytes(spool: Station, backend: Station, spooled: _Spooled, step: Step) -> dict[str, StoredBlob]:
    """Every blob of the transfer into the backend store, re-hashed there against its spooled sha256,
    FORWARD_PUTS_AT_ONCE at a time; then one sync: durable before any record names them. The steps are
    named in the transfer's order, each once its blob (and every one before it) is stored."""
    wanted = [(c["sha256"], c["size"]) for c in spooled.clips] + [
        (a["sha256"], a["size"]) for a in spooled.attachments
    ]
    stored: dict[str, StoredBlob] = {}
    with ThreadPoolExecutor(max_workers=FORWARD_PUTS_AT_ONCE, thread_name_prefix="forward-put") as pool:
        pending: dict[str, Future[StoredBlob]] = {}
        for sha256, size in wanted:
            if sha256 not in pending:
                pending[sha256] = pool.submit(_put_one, spool, backend, sha256, size)
        try:
            for index, (sha256, _size) in enumerate(wanted):
                if sha256 in stored:
                    continue
                stored[sha256] = pending[sha256].result()
                step(f"bytes.put:{index}")
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # the puts not started yet are not started
            raise
    backend.blobs.sync()
    step("bytes.synced")
    return stored


def _forward_transfer(
    spool: Station, backend: Station, spool_transfer_id: int, *, actor: str, step: Step
) -> ForwardedTransfer:
    key = _journal_key(spool, spool_transfer_id)
    spooled = _read_spooled(spool, spool_transfer_id)
    with backend.connect() as connection:
        existing = connection.execute(
            select(spool_forwards).where(spool_forwards.c.journal_entry_hash == key.hash)
        ).first()
    step("checked")
    if existing is not None:
        result = ForwardedTransfer(
            spool_transfer_id,
            existing.transfer_id,
            existing.clips,
            0,
            existing.attachments,
            existing.bytes,
            already=True,
        )
        _note_forwarded(spool, key, result, actor=actor, step=step)
        return result
    stored = _put_bytes(spool, backend, spooled, step)
    entries = _journal_entries(
        spool,
        {
            "transfer": [spool_transfer_id],
            "clip": [c["id"] for c in spooled.clips],
            "attachment": [a["id"] for a in spooled.attachments],
            "device": [spooled.transfer["device_id"]],
            "officer": [spooled.transfer["officer_id"]],
        },
    )
    try:
        with backend.transaction() as session:
            backend.audit.lock(session)  # another forwarder of the same spool: one of them writes it
            again = session.execute(
                select(spool_forwards).where(spool_forwards.c.journal_entry_hash == key.hash)
            ).first()
            if again is not None:
                result = ForwardedTransfer(
                    spool_transfer_id, again.transfer_id, again.clips, 0, again.attachments, again.bytes, True
                )
            else:
                result = _write_transfer(backend, session, spooled, stored, key, entries, actor=actor)
                step("before_commit")
    except SAIntegrityError:  # the key, written by a forwarder that got there first
        with backend.connect() as connection:
            again = connection.execute(
                select(spool_forwards).where(spool_forwards.c.journal_entry_hash == key.hash)
            ).one()
        result = ForwardedTransfer(
            spool_transfer_id, again.transfer_id, again.clips, 0, again.attachments, again.bytes, True
        )
    step("committed")
    _note_forwarded(spool, key, result, actor=actor, step=step)
    return result


def _write_transfer(
    backend: Station,
    session: Session,
    spooled: _Spooled,
    stored: dict[str, StoredBlob],
    key: JournalEntry,
    entries: list[JournalEntry],
    *,
    actor: str,
) -> ForwardedTransfer:
    by_action = {(e.object_type, e.object_id, e.action): e for e in entries}
    t = spooled.transfer
    pointer = {SPOOLED_KEY: key.pointer()}
    device_id = _device(backend, session, spooled, by_action, actor=actor)
    officer_id = _officer(backend, session, spooled, by_action, actor=actor)
    dock_id = None
    if spooled.dock_station:
        dock_id = session.scalar(
            select(dock_stations.c.id).where(dock_stations.c.name == spooled.dock_station)
        )
        if dock_id is None:
            dock = DockStation(name=spooled.dock_station, unit=backend.settings.unit_name)
            session.add(dock)
            session.flush()
            dock_id = dock.id
    transfer = Transfer(
        source=t["source"],
        device_id=device_id,
        officer_id=officer_id,
        dock_station_id=dock_id,
        volume_label=t["volume_label"],
        volume_uuid=t["volume_uuid"],
        source_path=t["source_path"],
        started_at=t["started_at"],
        finished_at=t["finished_at"],
        files_seen=t["files_seen"],
        files_ingested=t["files_ingested"],
        files_duplicate=t["files_duplicate"],
        files_failed=t["files_failed"],
        files_deleted=t["files_deleted"],
        bytes_copied=t["bytes_copied"],
        outcome=t["outcome"],
        device_clock_offset_s=t["device_clock_offset_s"],
        device_clock_read_at=t["device_clock_read_at"],
        problems=list(t["problems"] or []),
        owner_host=t["owner_host"],
        owner_pid=t["owner_pid"],
        owner_started=t["owner_started"],
    )
    session.add(transfer)
    session.flush()
    assert transfer.id is not None
    started = by_action.get(("transfer", str(t["id"]), "transfer.started"))
    backend.audit.record(
        session,
        actor=started.actor if started else actor,
        action="transfer.started",
        object_type="transfer",
        object_id=transfer.id,
        details={**_details(started), **pointer},
    )
    spooled_clips = [
        (
            stored[c["sha256"]],
            Clip(
                sha256=c["sha256"],
                size=c["size"],
                media_type=c["media_type"],
                original_name=c["original_name"],
                device_path=c["device_path"],
                device_mtime=c["device_mtime"],
                device_id=device_id,
                officer_id=officer_id,
                transfer_id=transfer.id,
                device_start=c["device_start"],
                device_end=c["device_end"],
                utc_start=c["utc_start"],
                utc_end=c["utc_end"],
                clock_offset_s=c["clock_offset_s"],
                clock_status=c["clock_status"],
                duration_s=c["duration_s"],
                status=c["status"],
                ingested_at=c["ingested_at"],  # the original time: when the station took it
                late_handover=c["late_handover"],
                media_info=dict(c["media_info"] or {}),
                warnings=list(c["warnings"] or []),
            ),
        )
        for c in spooled.clips
    ]
    clip_actor = next((e.actor for e in entries if e.action == "clip.stored"), actor)
    recorded = record_originals(
        spooled_clips, store_name=backend.blobs.name, session=session, audit=backend.audit, actor=clip_actor
    )
    new_ids = [r.clip_id for r in recorded if not r.duplicate]
    record_attachments(
        [
            (
                Attachment(
                    transfer_id=transfer.id,
                    device_id=device_id,
                    kind=a["kind"],
                    original_name=a["original_name"],
                    device_path=a["device_path"],
                    size=a["size"],
                    sha256=a["sha256"],
                    device_mtime=a["device_mtime"],
                    stored_at=a["stored_at"],
                ),
                stored[a["sha256"]].created,
            )
            for a in spooled.attachments
        ],
        store_name=backend.blobs.name,
        session=session,
        audit=backend.audit,
        actor=clip_actor,
    )
    link_to_clips(session, transfer_id=transfer.id, audit=backend.audit, actor=clip_actor)
    finished = by_action.get(("transfer", str(t["id"]), "transfer.finished"))
    backend.audit.record(
        session,
        actor=finished.actor if finished else actor,
        action="transfer.finished",
        object_type="transfer",
        object_id=transfer.id,
        details={**_details(finished), **pointer},
    )
    total = sum(c["size"] for c in spooled.clips) + sum(a["size"] for a in spooled.attachments)
    result = ForwardedTransfer(
        int(t["id"]),
        transfer.id,
        len(new_ids),
        len(recorded) - len(new_ids),
        len(spooled.attachments),
        total,
        new_clip_ids=new_ids,
    )
    now = backend.clock()
    session.execute(
        insert(spool_forwards).values(
            journal_entry_hash=key.hash,
            station_fingerprint=backend.key.fingerprint,
            spool_transfer_id=int(t["id"]),
            transfer_id=transfer.id,
            forwarded_at=now,
            clips=len(new_ids),
            attachments=len(spooled.attachments),
            bytes=total,
        )
    )
    backend.audit.record(
        session,
        actor=actor,
        action=FORWARDED_ACTION,
        object_type="transfer",
        object_id=transfer.id,
        details={
            "station": backend.settings.station_name,
            "key_fingerprint": backend.key.fingerprint,
            "journal_entry_hash": key.hash,
            "spool_transfer_id": int(t["id"]),
            "clips": [
                {
                    "spool_clip_id": c["id"],
                    "clip_id": r.clip_id,
                    "sha256": r.sha256,
                    "duplicate": r.duplicate,
                }
                for c, r in zip(spooled.clips, recorded, strict=True)
            ],
            "attachments": [a["sha256"] for a in spooled.attachments],
            "entries": [e.quote() for e in entries],
        },
    )
    return result


def _details(entry: JournalEntry | None) -> dict[str, Any]:
    if entry is None:
        return {}
    loaded = json.loads(entry.details)
    return loaded if isinstance(loaded, dict) else {}


def _device(
    backend: Station,
    session: Session,
    spooled: _Spooled,
    by_action: dict[tuple[str, str, str], JournalEntry],
    *,
    actor: str,
) -> int | None:
    d = spooled.device
    if d is None:
        return None
    device_id = session.scalar(select(devices.c.id).where(devices.c.serial == d["serial"]))
    if device_id is not None:
        return int(device_id)
    device = Device(
        serial=d["serial"],
        model=d["model"],
        vendor=d["vendor"],
        profile=d["profile"],
        registered_at=d["registered_at"],
    )
    session.add(device)
    session.flush()
    assert device.id is not None
    entry = by_action.get(("device", str(d["id"]), "device.registered"))
    details = _details(entry) or {"serial": d["serial"], "profile": d["profile"]}
    if entry is not None:
        details[SPOOLED_KEY] = entry.pointer()
    backend.audit.record(
        session,
        actor=entry.actor if entry else actor,
        action="device.registered",
        object_type="device",
        object_id=device.id,
        details=details,
    )
    return device.id


def _officer(
    backend: Station,
    session: Session,
    spooled: _Spooled,
    by_action: dict[tuple[str, str, str], JournalEntry],
    *,
    actor: str,
) -> int | None:
    o = spooled.officer
    if o is None:
        return None
    officer_id = session.scalar(select(officers.c.id).where(officers.c.badge_number == o["badge_number"]))
    if officer_id is None:
        officer = Officer(badge_number=o["badge_number"], name=o["name"], unit=o["unit"])
        session.add(officer)
        session.flush()
        assert officer.id is not None
        officer_id = officer.id
        entry = by_action.get(("officer", str(o["id"]), "officer.registered"))
        details = _details(entry) or {"badge_number": o["badge_number"], "via": "spool"}
        if entry is not None:
            details[SPOOLED_KEY] = entry.pointer()
        backend.audit.record(
            session,
            actor=entry.actor if entry else actor,
            action="officer.registered",
            object_type="officer",
            object_id=officer.id,
            details=details,
        )
    if spooled.device is not None:
        session.execute(
            update(devices)
            .where(devices.c.serial == spooled.device["serial"], devices.c.assigned_officer_id.is_(None))
            .values(assigned_officer_id=officer_id)
        )
    return int(officer_id)


def _note_forwarded(
    spool: Station, key: JournalEntry, result: ForwardedTransfer, *, actor: str, step: Step
) -> None:
    """The spool's own note of the forward: its `spool_forwards` row and a signed journal entry."""
    with spool.transaction() as session:
        if session.scalar(select(spool_forwards.c.id).where(spool_forwards.c.journal_entry_hash == key.hash)):
            return
        now = spool.clock()
        session.execute(
            insert(spool_forwards).values(
                journal_entry_hash=key.hash,
                station_fingerprint=spool.key.fingerprint,
                spool_transfer_id=result.spool_transfer_id,
                transfer_id=result.transfer_id,
                forwarded_at=now,
                clips=result.clips,
                attachments=result.attachments,
                bytes=result.bytes,
            )
        )
        spool.audit.record(
            session,
            actor=actor,
            action=FORWARDED_ACTION,
            object_type="transfer",
            object_id=result.spool_transfer_id,
            details={
                "transfer_id": result.transfer_id,
                "journal_entry_hash": key.hash,
                "already": result.already,
            },
        )
    step("noted")


# -- freeing ----------------------------------------------------------------------------------------


def free_forwarded(
    spool: Station, backend: Station, *, actor: str, keep: timedelta, step: Step = _no_step
) -> list[int]:
    """Free the spooled copies of forwarded transfers that `may_free` allows; returns their spool
    transfer ids. A blob another spooled transfer not yet freed still needs stays."""
    store = spool.blobs
    assert isinstance(store, LocalBlobStore), "a spool's store is local"
    now = spool.clock()
    freed: list[int] = []
    with spool.connect() as connection:
        pending = connection.execute(
            select(spool_forwards.c.spool_transfer_id, spool_forwards.c.forwarded_at).where(
                spool_forwards.c.freed_at.is_(None)
            )
        ).all()
        forwarded = set(connection.scalars(select(spool_forwards.c.spool_transfer_id)))
    for row in pending:
        blobs = _blobs_of(spool, row.spool_transfer_id)
        holds = all(_backend_holds(backend, sha256, size) for sha256, size in blobs)
        if not may_free(forwarded_at=row.forwarded_at, backend_holds=holds, keep=keep, now=now):
            continue
        needed = _needed_elsewhere(spool, row.spool_transfer_id, forwarded)
        removed: list[dict[str, Any]] = []
        for sha256, size in blobs:
            if sha256 in needed:
                continue
            path = store.path_for(sha256)
            try:
                path.unlink()
                removed.append({"sha256": sha256, "size": size})
            except FileNotFoundError:
                continue
            step(f"freed:{len(removed) - 1}")
        _fsync_parents(store, [b["sha256"] for b in removed])
        with spool.transaction() as session:
            session.execute(
                update(spool_forwards)
                .where(spool_forwards.c.spool_transfer_id == row.spool_transfer_id)
                .values(freed_at=now)
            )
            spool.audit.record(
                session,
                actor=actor,
                action="spool.freed",
                object_type="transfer",
                object_id=row.spool_transfer_id,
                details={"blobs": removed, "keep_hours": keep.total_seconds() / 3600},
            )
        freed.append(row.spool_transfer_id)
    return freed


def _blobs_of(spool: Station, spool_transfer_id: int) -> list[tuple[str, int]]:
    with spool.connect() as connection:
        found = {
            (r.sha256, r.size)
            for r in connection.execute(
                select(clips.c.sha256, clips.c.size).where(clips.c.transfer_id == spool_transfer_id)
            )
        }
        found |= {
            (r.sha256, r.size)
            for r in connection.execute(
                select(attachments.c.sha256, attachments.c.size).where(
                    attachments.c.transfer_id == spool_transfer_id
                )
            )
        }
    return sorted(found)


def _needed_elsewhere(spool: Station, spool_transfer_id: int, forwarded: set[int]) -> set[str]:
    """The blobs of this transfer that a spooled transfer not yet forwarded also names."""
    with spool.connect() as connection:
        freed_ids = set(
            connection.scalars(
                select(spool_forwards.c.spool_transfer_id).where(spool_forwards.c.freed_at.is_not(None))
            )
        )
        others = [
            r.id
            for r in connection.execute(select(transfers.c.id))
            if r.id != spool_transfer_id and r.id not in freed_ids and r.id not in forwarded
        ]
        if not others:
            return set()
        return set(
            connection.scalars(select(attachments.c.sha256).where(attachments.c.transfer_id.in_(others)))
        ) | set(connection.scalars(select(clips.c.sha256).where(clips.c.transfer_id.in_(others))))


def _backend_holds(backend: Station, sha256: str, size: int) -> bool:
    try:
        return backend.blobs.exists(sha256) and backend.blobs.size(sha256) == size
    except (StoreError, OSError):
        return False


def _fsync_parents(store: LocalBlobStore, hashes: list[str]) -> None:
    for parent in {store.path_for(h).parent for h in hashes}:
        try:
            fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            continue
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
