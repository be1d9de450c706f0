"""Pulling every file off a recorder's volume (or a folder) into the store, with a handover record.

One pass per file: read -> SHA-256 inline -> blob store (bounded memory), then confirm the file did not
change during the copy (size, mtime, inode; and in skeptical mode a second read compared by hash).
Only then does the file become a Clip, in one transaction with its audit event (R1, R2, R3, R10).

Safety on the volume: the walk goes through directory file descriptors (`os.fwalk`) and opens every
file relative to its directory with O_NOFOLLOW, so no symlink is followed and nothing outside the
volume is read; FIFOs, devices and sockets are listed and skipped; nothing on the volume is written.
A file that cannot be read is recorded as failed with the reason and the pull goes on; a recorder that
disappears ends the transfer as `interrupted`; a store that cannot write (disk full) ends it as
`failed`. What was committed stays; the next docking takes only what is missing.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from evidence_store.blobs.hashing_copy import hash_stream
from evidence_store.bootstrap import Station
from evidence_store.db.tables import clips, devices, dock_stations, officers, transfers
from evidence_store.domain.device_clock import ClockReading, measure_offset, place_in_time
from evidence_store.domain.handover import HandoverRule, handover_deadline, is_late
from evidence_store.domain.model import (
    Clip,
    Device,
    MediaType,
    Officer,
    RecordWarning,
    Transfer,
    TransferOutcome,
    TransferSource,
)
from evidence_store.errors import StoreError
from evidence_store.originals import record_originals
from evidence_store.ports import NoProcessingQueue, ProcessingQueue, StoredBlob
from ingest.devices.profiles import (
    RecorderProfile,
    VolumeFacts,
    decode_text,
    device_info_value,
    parse_device_info,
    read_clock_value,
)
from ingest.fat import FatError, FatVolume
from ingest.names import display_name
from ingest.quick_probe import quick_probe

log = logging.getLogger(__name__)

# Folders operating systems create on removable volumes; not recorder content.
SYSTEM_DIRS = {b"System Volume Information", b"$RECYCLE.BIN", b".Trashes", b".Spotlight-V100", b".fseventsd"}
# errno values that mean the volume itself is gone (recorder unplugged, FUSE daemon dead).
VOLUME_GONE = {errno.ENODEV, errno.ENXIO, errno.ENOTCONN, errno.ESHUTDOWN, errno.ENOMEDIUM}
MAX_CONSECUTIVE_IO_ERRORS = 5
CHANGE_RETRIES = 2
# Copied files are committed in batches: one store sync and one transaction per batch.
BATCH_FILES = 200
BATCH_BYTES = 256 * 1024 * 1024
BATCH_SECONDS = 2.0
INFO_FILE_LIMIT = 64 * 1024


@dataclass
class PullProgress:
    files_done: int
    bytes_done: int
    current: str
    started: float

    @property
    def rate_bytes_s(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.bytes_done / elapsed if elapsed > 0 else 0.0


@dataclass
class PullRequest:
    root: Path
    profile: RecorderProfile
    source: TransferSource
    volume: VolumeFacts = field(default_factory=VolumeFacts)
    device_serial: str | None = None
    officer_badge: str | None = None
    verify_reread: bool = False
    actor: str = "dock"
    dock_station: str | None = None
    progress: Callable[[PullProgress], None] | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)
    # The device (or image) of a FAT volume mounted through fusefat: its directory entries give the
    # true file times and tell the volume label from a file (see ingest.fat). `fusefat` without a
    # device: the times cannot be corrected, which the transfer says.
    fat_device: str | None = None
    fusefat: bool = False
    # Files will be deleted from the recorder after this pull (R10): every file is read and hashed
    # now, none is taken as known from an earlier docking by path, size and time alone.
    hash_every_file: bool = False


@dataclass
class FileResult:
    path: str
    status: str  # ingested | duplicate | failed | skipped
    size: int = 0
    sha256: str | None = None
    clip_id: int | None = None
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    codes: list[str] = field(default_factory=list)  # the warning codes on the clip
    # read and hashed from the device in this transfer, and its size/mtime (ns, as the mount shows it)
    # once the copy was confirmed: what deleting it from the recorder is checked against
    hashed: bool = False
    device_mtime_ns: int | None = None
    deleted: bool = False  # deleted from the recorder after the copy was verified (ingest.deletion)


@dataclass
class TransferSummary:
    transfer_id: int
    outcome: TransferOutcome
    device_serial: str
    officer_badge: str | None
    profile: str
    started_at: datetime
    finished_at: datetime
    files_seen: int = 0
    files_ingested: int = 0
    files_duplicate: int = 0
    files_failed: int = 0
    files_skipped: int = 0
    files_deleted: int = 0
    bytes_copied: int = 0
    clock_offset_s: float | None = None
    problems: list[str] = field(default_factory=list)
    files: list[FileResult] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "transfer_id": self.transfer_id,
            "outcome": str(self.outcome),
            "device_serial": self.device_serial,
            "officer": self.officer_badge,
            "profile": self.profile,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "files_seen": self.files_seen,
            "files_ingested": self.files_ingested,
            "files_duplicate": self.files_duplicate,
            "files_failed": self.files_failed,
            "files_skipped": self.files_skipped,
            "files_deleted": self.files_deleted,
            "bytes_copied": self.bytes_copied,
            "clock_offset_s": self.clock_offset_s,
            "problems": self.problems,
            "files": [vars(f) for f in self.files],
        }


@dataclass
class _Docking:
    """What every file of one transfer shares."""

    transfer: Transfer
    device: Device
    officer: Officer | None
    reading: ClockReading
    summary: TransferSummary


@dataclass
class _Pending:
    """A file whose bytes are in the store, waiting for its batch to be put on the record."""

    stored: StoredBlob
    clip: Clip
    device_mtime_ns: int = 0


class VolumeGone(Exception):
    """The recorder was unplugged (or its mount died) during the pull."""


class StoreFailed(Exception):
    """The station's store cannot take more bytes (disk full, I/O error)."""


@dataclass
class _Identity:
    serial: str | None
    officer: str | None
    unit: str | None
    model: str | None
    clock: datetime | None  # the recorder's clock as read at docking (naive local)


def handover_rule_from(station: Station) -> HandoverRule:
    import json

    from evidence_store.domain.handover import DeadlineMode, WorkCalendar, parse_calendar

    settings = station.settings
    calendar = WorkCalendar()
    if settings.holiday_calendar is not None:
        calendar = parse_calendar(json.loads(settings.holiday_calendar.read_text(encoding="utf-8")))
    return HandoverRule(
        mode=DeadlineMode(settings.handover_deadline_mode),
        hours=settings.handover_deadline_hours,
        working_days=settings.handover_working_days,
        calendar=calendar,
    )


def pull(station: Station, request: PullRequest, queue: ProcessingQueue | None = None) -> TransferSummary:
    """Pull every file of the volume at `request.root`; return the handover summary (R2)."""
    return _Puller(station, request, queue or NoProcessingQueue()).run()


class _Puller:
    def __init__(self, station: Station, request: PullRequest, queue: ProcessingQueue) -> None:
        self.station = station
        self.request = request
        self.queue = queue
        self.zone = ZoneInfo(station.settings.timezone)
        self.rule = handover_rule_from(station)
        self.verify_reread = (
            request.verify_reread or request.profile.verify_reread or station.settings.verify_reread
        )
        self.progress = PullProgress(0, 0, "", time.monotonic())
        self.new_clip_ids: list[int] = []
        self._known: dict[str, tuple[int, datetime | None, int, str]] | None = None
        self.consecutive_io_errors = 0
        self.fat: FatVolume | None = None
        self._syncing: tuple[list[_Pending], _BackgroundSync] | None = None  # see _sync_in_background

    # -- the transfer -------------------------------------------------------------------------------

    def run(self) -> TransferSummary:
        request = self.request
        handed_over_at = self.station.clock()
        try:
            root_fd = os.open(request.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise VolumeUnreadableError(f"cannot open {request.root}: {exc.strerror}") from exc
        try:
            identity = self._identity(root_fd)
            offset = (
                measure_offset(identity.clock, handed_over_at, self.zone)
                if identity.clock is not None
                else None
            )
            transfer, device, officer, previous_offset = self._open_transfer(identity, offset, handed_over_at)
            summary = TransferSummary(
                transfer_id=transfer.id or 0,
                outcome=TransferOutcome.RUNNING,
                device_serial=device.serial,
                officer_badge=officer.badge_number if officer else None,
                profile=request.profile.name,
                started_at=handed_over_at,
                finished_at=handed_over_at,
                clock_offset_s=offset,
            )
            reading = ClockReading(offset, previous_offset)
            if identity.clock is None and request.profile.clock is not None:
                summary.problems.append("the recorder's clock file could not be read")
            self._open_fat(summary)
            outcome = self._pull_all(root_fd, _Docking(transfer, device, officer, reading, summary))
            if outcome is TransferOutcome.COMPLETE and summary.files_failed:
                outcome = TransferOutcome.PARTIAL
            summary.outcome = outcome
            summary.finished_at = self.station.clock()
            self._close_transfer(transfer, summary)
        finally:
            os.close(root_fd)
            if self.fat is not None:
                self.fat.close()
        if self.new_clip_ids:
            self.queue.clips_stored(self.new_clip_ids)
        return summary

    def _open_fat(self, summary: TransferSummary) -> None:
        """Open the FAT directory entries behind a fusefat mount (see `ingest.fat`), or say why not."""
        request = self.request
        if request.fat_device is None and not request.fusefat:
            from ingest.mount import fusefat_device

            request.fusefat, request.fat_device = fusefat_device(request.root)
        if request.fat_device is None:
            if request.fusefat:
                summary.problems.append(
                    "read through fusefat without knowing its device: file times are one month late "
                    "and the volume label is listed as an empty file"
                )
            return
        try:
            self.fat = FatVolume(request.fat_device)
        except (OSError, FatError) as exc:
            summary.problems.append(
                f"cannot read the FAT directory entries of {request.fat_device} ({exc}): "
                "file times through fusefat are one month late"
            )

    def _pull_all(self, root_fd: int, docking: _Docking) -> TransferOutcome:
        """Walk the volume, copying each file and committing in batches; say how it ended."""
        summary = docking.summary
        batch: list[_Pending] = []
        batch_started = time.monotonic()
        try:
            try:
                for dirfd, raw_dir, rel_dir, name in self._walk(root_fd, summary):
                    if self.request.cancelled.is_set():
                        raise VolumeGone("the recorder was removed")
                    result = self._pull_one(dirfd, raw_dir, rel_dir, name, docking)
                    if isinstance(result, FileResult):
                        summary.files.append(result)
                        continue
                    if self.request.cancelled.is_set():
                        # The recorder went away while this file was read. A vanished disk reads as
                        # end-of-file, and exfat-fuse then returns stale bytes without an error: this
                        # copy cannot be trusted, so it is not recorded.
                        raise VolumeGone(f"the recorder was removed while {result.clip.device_path} was read")
                    batch.append(result)
                    if (
                        len(batch) >= BATCH_FILES
                        or sum(item.stored.size for item in batch) >= BATCH_BYTES
                        or time.monotonic() - batch_started >= BATCH_SECONDS
                    ):
                        # `batch` is emptied first: when the flush before it failed, this batch was
                        # written while that flush ran, and a second flush could not say whether its
                        # bytes were lost in the first (syncfs reports an error once), so it is not
                        # recorded either; the next docking takes it
                        syncing, batch = batch, []
                        self._sync_in_background(syncing, summary)
                        batch_started = time.monotonic()
            finally:
                # what was copied before an interruption is kept (R10)
                self._commit_synced(summary)
                self._commit_batch(batch, summary)
        except VolumeGone as exc:
            summary.problems.append(f"interrupted: {exc}")
            return TransferOutcome.INTERRUPTED
        except StoreFailed as exc:
            summary.problems.append(f"station store failed: {exc}")
            return TransferOutcome.FAILED
        return TransferOutcome.COMPLETE

    def _identity(self, root_fd: int) -> _Identity:
        profile, request = self.request.profile, self.request
        info: dict[str, str] = {}
        clock_text: str | None = None
        if profile.device_info_file:
            text = _read_small_text(root_fd, profile.device_info_file, profile.text_encodings)
            if text is not None:
                info = parse_device_info(text)
        if profile.clock is not None:
            clock_text = (
                _read_small_text(root_fd, profile.clock.file, profile.text_encodings)
                if profile.clock.file != profile.device_info_file or not info
                else None
            )
            if clock_text is None and profile.clock.file == profile.device_info_file:
                clock_text = "\n".join(f"{k}={v}" for k, v in info.items())
        serial = request.device_serial or device_info_value(profile, info, "serial")
        officer = request.officer_badge or device_info_value(profile, info, "officer")
        if serial is None or officer is None:
            facts = self._facts_from_names(root_fd)
            serial = serial or (facts[0] if facts else None)
            officer = officer or (facts[1] if facts else None)
        return _Identity(
            serial=serial,
            officer=officer,
            unit=device_info_value(profile, info, "unit"),
            model=device_info_value(profile, info, "model"),
            clock=read_clock_value(profile, clock_text) if clock_text else None,
        )

    def _facts_from_names(self, root_fd: int, limit: int = 500) -> tuple[str | None, str | None] | None:
        seen = 0
        for _dirpath, _dirs, files, _fd in os.fwalk(".", dir_fd=root_fd, follow_symlinks=False):
            for raw in sorted(files):
                name, _exact = display_name(os.fsencode(raw))
                facts = self.request.profile.parse_name(name)
                if facts and (facts.serial or facts.officer):
                    return facts.serial, facts.officer
                seen += 1
                if seen >= limit:
                    return None
        return None

    def _open_transfer(
        self, identity: _Identity, offset: float | None, handed_over_at: datetime
    ) -> tuple[Transfer, Device, Officer | None, float | None]:
        request = self.request
        serial = identity.serial or _unidentified_serial(request)
        with self.station.transaction() as session:
            device = session.scalars(select(Device).where(devices.c.serial == serial)).one_or_none()
            if device is None:
                device = Device(
                    serial=serial,
                    model=identity.model or "",
                    profile=request.profile.name,
                    registered_at=handed_over_at,
                )
                session.add(device)
                session.flush()
                self.station.audit.record(
                    session,
                    actor=request.actor,
                    action="device.registered",
                    object_type="device",
                    object_id=device.id or 0,
                    details={"serial": serial, "profile": request.profile.name},
                )
            officer = self._officer(session, identity, device, handed_over_at)
            if officer is not None and device.assigned_officer_id is None:
                device.assigned_officer_id = officer.id
            previous_offset = session.scalar(
                select(transfers.c.device_clock_offset_s)
                .where(transfers.c.device_id == device.id, transfers.c.device_clock_offset_s.is_not(None))
                .order_by(transfers.c.started_at.desc())
                .limit(1)
            )
            station_id = None
            if request.dock_station:
                station_id = self._dock_station_id(session, request.dock_station)
            transfer = Transfer(
                source=request.source,
                device_id=device.id,
                officer_id=officer.id if officer else None,
                dock_station_id=station_id,
                volume_label=request.volume.label or "",
                volume_uuid=request.volume.uuid or "",
                source_path=str(request.root),
                started_at=handed_over_at,
                device_clock_offset_s=offset,
                device_clock_read_at=handed_over_at if offset is not None else None,
            )
            session.add(transfer)
            session.flush()
            self.station.audit.record(
                session,
                actor=request.actor,
                action="transfer.started",
                object_type="transfer",
                object_id=transfer.id or 0,
                details={
                    "device": serial,
                    "officer": officer.badge_number if officer else None,
                    "dock_station": request.dock_station,
                    "source": str(request.source),
                    "profile": request.profile.name,
                    "volume_label": request.volume.label,
                    "volume_uuid": request.volume.uuid,
                    "clock_offset_s": offset,
                },
            )
        return transfer, device, officer, previous_offset

    def _officer(self, session: Any, identity: _Identity, device: Device, now: datetime) -> Officer | None:
        if identity.officer:
            officer = session.scalars(
                select(Officer).where(officers.c.badge_number == identity.officer)
            ).one_or_none()
            if officer is None:
                officer = Officer(badge_number=identity.officer, unit=identity.unit or "")
                session.add(officer)
                session.flush()
                self.station.audit.record(
                    session,
                    actor=self.request.actor,
                    action="officer.registered",
                    object_type="officer",
                    object_id=officer.id or 0,
                    details={"badge_number": identity.officer, "via": "recorder"},
                )
            return officer  # type: ignore[no-any-return]
        if device.assigned_officer_id is not None:
            return session.get(Officer, device.assigned_officer_id)  # type: ignore[no-any-return]
        return None

    def _dock_station_id(self, session: Any, name: str) -> int:
        from evidence_store.domain.model import DockStation

        dock = session.scalars(select(DockStation).where(dock_stations.c.name == name)).one_or_none()
        if dock is None:
            dock = DockStation(name=name, unit=self.station.settings.unit_name)
            session.add(dock)
            session.flush()
        return int(dock.id)

    def _close_transfer(self, transfer: Transfer, summary: TransferSummary) -> None:
        with self.station.transaction() as session:
            row = session.get(Transfer, transfer.id)
            assert row is not None
            row.finished_at = summary.finished_at
            row.files_seen = summary.files_seen
            row.files_ingested = summary.files_ingested
            row.files_duplicate = summary.files_duplicate
            row.files_failed = summary.files_failed
            row.bytes_copied = summary.bytes_copied
            row.outcome = summary.outcome
            row.problems = [RecordWarning("transfer", p) for p in summary.problems] + [
                RecordWarning("file_failed", f"{f.path}: {f.error}")
                for f in summary.files
                if f.status == "failed"
            ][:1000]
            self.station.audit.record(
                session,
                actor=self.request.actor,
                action="transfer.finished",
                object_type="transfer",
                object_id=transfer.id or 0,
                details={
                    "outcome": str(summary.outcome),
                    "files_seen": summary.files_seen,
                    "files_ingested": summary.files_ingested,
                    "files_duplicate": summary.files_duplicate,
                    "files_failed": summary.files_failed,
                    "files_skipped": summary.files_skipped,
                    "bytes_copied": summary.bytes_copied,
                    "problems": summary.problems[:50],
                },
            )

    # -- the walk -----------------------------------------------------------------------------------

    def _walk(
        self, root_fd: int, summary: TransferSummary
    ) -> Iterator[tuple[int, tuple[bytes, ...], str, bytes]]:
        """(directory fd, raw directory path parts, displayed directory path, raw file name)."""

        def on_error(exc: OSError) -> None:
            if exc.errno in VOLUME_GONE or not _volume_alive(root_fd):
                raise VolumeGone(f"{exc.strerror} while listing {exc.filename}")
            summary.problems.append(f"cannot list {exc.filename}: {exc.strerror}")

        for dirpath, dirnames, filenames, dirfd in os.fwalk(
            b".", dir_fd=root_fd, follow_symlinks=False, onerror=on_error
        ):
            rel_dir = "" if dirpath == b"." else display_name(dirpath[2:])[0]
            raw_dir = tuple(dirpath[2:].split(b"/")) if dirpath != b"." else ()
            dirnames[:] = sorted(
                d for d in dirnames if d not in SYSTEM_DIRS and not self._is_link(dirfd, d, rel_dir, summary)
            )
            for name in sorted(filenames):
                yield dirfd, raw_dir, rel_dir, name

    def _is_link(self, dirfd: int, name: bytes, rel_dir: str, summary: TransferSummary) -> bool:
        try:
            st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
        except OSError:
            return False
        if stat.S_ISLNK(st.st_mode):
            path = _join(rel_dir, display_name(name)[0])
            summary.files_seen += 1
            summary.files_skipped += 1
            summary.files.append(
                FileResult(path, "skipped", warnings=["symlink to a directory: not followed"])
            )
            return True
        return False

    # -- one file -----------------------------------------------------------------------------------

    def _pull_one(
        self, dirfd: int, raw_dir: tuple[bytes, ...], rel_dir: str, raw_name: bytes, docking: _Docking
    ) -> FileResult | _Pending:
        summary = docking.summary
        name, exact = display_name(raw_name)
        path = _join(rel_dir, name)
        summary.files_seen += 1
        self.progress.current = path
        try:
            before = os.stat(raw_name, dir_fd=dirfd, follow_symlinks=False)
        except OSError as exc:
            return self._failed(summary, path, exc)
        kind = _special_kind(before.st_mode)
        if kind is not None:
            summary.files_skipped += 1
            return FileResult(path, "skipped", warnings=[_skip_reason(kind, dirfd, raw_name)])
        if before.st_size == 0 and self._is_fat_label(raw_dir, raw_name):
            summary.files_skipped += 1
            note = "the FAT volume label, which fusefat lists as an empty file: not a file, not stored"
            return FileResult(path, "skipped", warnings=[note])
        warnings: list[RecordWarning] = []
        mtime = self._device_mtime(raw_dir, raw_name, before, warnings)
        hash_now = self.verify_reread or self.request.hash_every_file
        known = None if hash_now else self._already_on_record(docking.device, path, before, mtime)
        if known is not None:
            summary.files_duplicate += 1
            note = "already ingested at an earlier docking"
            return FileResult(path, "duplicate", before.st_size, known[1], known[0], [note])

        if not exact:
            warnings.append(RecordWarning("name_not_utf8", f"file name bytes {raw_name.hex()} are not UTF-8"))
        try:
            stored, after = self._copy_verified(dirfd, raw_name, before, warnings)
        except OSError as exc:
            return self._failed(summary, path, exc)
        if after.st_mtime_ns != before.st_mtime_ns:  # changed during the copy: its time as last seen
            last_seen: list[RecordWarning] = []
            mtime = self._device_mtime(raw_dir, raw_name, after, last_seen)
            # a time left uncorrected is said, once (the FAT entry read before may no longer match)
            codes = {w.code for w in warnings}
            warnings.extend(w for w in last_seen if w.code not in codes)
        before = after
        self.consecutive_io_errors = 0
        if before.st_size == 0:
            warnings.append(RecordWarning("empty_file", "the file on the recorder is empty (0 bytes)"))
        transfer, device, officer = docking.transfer, docking.device, docking.officer
        clip_facts = self._clip_facts(dirfd, raw_name, name, before, mtime, docking)
        warnings.extend(clip_facts.pop("warnings"))
        clip = Clip(
            sha256=stored.sha256,
            size=stored.size,
            original_name=name,
            device_path=path,
            device_mtime=mtime,
            device_id=device.id,
            officer_id=officer.id if officer else None,
            transfer_id=transfer.id,
            ingested_at=self.station.clock(),
            warnings=warnings,
            **clip_facts,
        )
        self.progress.files_done += 1
        self.progress.bytes_done += stored.size
        if self.request.progress:
            self.request.progress(self.progress)
        summary.bytes_copied += stored.size
        return _Pending(stored, clip, before.st_mtime_ns)

    def _is_fat_label(self, raw_dir: tuple[bytes, ...], raw_name: bytes) -> bool:
        """Whether an empty root entry is the volume label fusefat lists as a file: by the FAT
        directory entry when it can be read, else by the label blkid/udev reported (R10: a real
        empty file is never taken for the label)."""
        if raw_dir:
            return False
        if self.fat is not None:
            try:
                return self.fat.is_label((), raw_name)
            except (OSError, FatError):
                pass
        if not self.request.fusefat or not self.request.volume.label:
            return False
        return raw_name in fat_label_names(self.request.volume.label)

    def _device_mtime(
        self,
        raw_dir: tuple[bytes, ...],
        raw_name: bytes,
        st: os.stat_result,
        warnings: list[RecordWarning],
    ) -> datetime:
        """The file's modification time (UTC). Through fusefat it is read from the FAT directory
        entry (the wall-clock time the recorder wrote, taken in the station's zone), since fusefat's
        own is one month late (R4, R5); elsewhere it is the filesystem's."""
        if self.fat is not None:
            try:
                entry = self.fat.entry(raw_dir, raw_name)
            except (OSError, FatError):
                entry = None
            if entry is not None and entry.modified is not None and entry.size == st.st_size:
                return entry.modified.replace(tzinfo=self.zone).astimezone(UTC)
            warnings.append(
                RecordWarning(
                    "mtime_uncorrected",
                    "the file's FAT directory entry could not be read: its modification time is "
                    "fusefat's, which is one month late",
                )
            )
        elif self.request.fusefat:
            warnings.append(
                RecordWarning(
                    "mtime_uncorrected", "read through fusefat: the modification time is one month late"
                )
            )
        return datetime.fromtimestamp(st.st_mtime, UTC)

    def _sync_in_background(self, batch: list[_Pending], summary: TransferSummary) -> None:
        """Commit the batch synced before (waiting for its sync), then start syncing `batch` while the
        next one is copied: the store's flush, tens of milliseconds per batch and more when other
        work has dirty data on the disk, overlaps the copying instead of stopping it."""
        self._commit_synced(summary)
        self._syncing = (batch, _BackgroundSync(self.station.blobs.sync))

    def _commit_synced(self, summary: TransferSummary) -> None:
        """Put the batch being synced on the record once its sync has finished; nothing if none."""
        if self._syncing is None:
            return
        batch, sync = self._syncing
        self._syncing = None
        sync.wait()
        self._commit_batch(batch, summary, synced=True)

    def _commit_batch(self, batch: list[_Pending], summary: TransferSummary, *, synced: bool = False) -> None:
        """Make a batch of copied files durable, then put them on the record in one transaction.

        The store is synced first (here, or before by `_sync_in_background`), so a committed clip
        always has durable bytes; a crash before the commit leaves orphan blobs that the next
        docking adopts.
        """
        if not batch:
            return
        if not synced:
            _sync_store(self.station.blobs.sync)
        with self.station.transaction() as session:
            recorded = record_originals(
                [(item.stored, item.clip) for item in batch],
                store_name=self.station.blobs.name,
                session=session,
                audit=self.station.audit,
                actor=self.request.actor,
            )
        results = list(zip(batch, recorded, strict=True))
        for item, result in results:
            notes = [w.message for w in item.clip.warnings]
            codes = [w.code for w in item.clip.warnings]
            if result.duplicate:
                summary.files_duplicate += 1
                notes.append("same bytes already on record")
                status = "duplicate"
            else:
                summary.files_ingested += 1
                self.new_clip_ids.append(result.clip_id)
                status = "ingested"
            summary.files.append(
                FileResult(
                    item.clip.device_path,
                    status,
                    item.stored.size,
                    item.stored.sha256,
                    result.clip_id,
                    notes,
                    codes=codes,
                    hashed=True,
                    device_mtime_ns=item.device_mtime_ns,
                )
            )
        batch.clear()

    def _copy_verified(
        self, dirfd: int, raw_name: bytes, before: os.stat_result, warnings: list[RecordWarning]
    ) -> tuple[StoredBlob, os.stat_result]:
        """Copy until a copy sees the file unchanged (or retries run out: kept with a warning); the
        stored copy and the file's stat as that copy saw it (not as listed: it may have changed since)."""
        for attempt in range(CHANGE_RETRIES + 1):
            try:
                stored, changed, after = self._copy(dirfd, raw_name, before)
            except StoreError as exc:
                raise StoreFailed(str(exc)) from exc
            if not changed:
                break
            if attempt == CHANGE_RETRIES:
                warnings.append(
                    RecordWarning(
                        "changed_during_copy",
                        f"the file changed on the recorder during {attempt + 1} copies; kept the last copy",
                    )
                )
            before = after
        if self.verify_reread:
            reread = self._reread_hash(dirfd, raw_name)
            if reread != stored.sha256:
                warnings.append(
                    RecordWarning(
                        "reread_mismatch",
                        f"a second read hashed to {reread}, the stored copy to {stored.sha256}",
                    )
                )
        return stored, after

    def _copy(
        self, dirfd: int, raw_name: bytes, before: os.stat_result
    ) -> tuple[StoredBlob, bool, os.stat_result]:
        fd = os.open(raw_name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dirfd)
        with os.fdopen(fd, "rb", buffering=0) as handle:
            opened = os.fstat(fd)
            if not stat.S_ISREG(opened.st_mode) or opened.st_ino != before.st_ino:
                raise OSError(errno.ESTALE, "the file was replaced between listing and opening")
            stored = self.station.blobs.put(handle, durable=False)
            after_fd = os.fstat(fd)
        after = os.stat(raw_name, dir_fd=dirfd, follow_symlinks=False)
        changed = (
            stored.size != opened.st_size
            or after_fd.st_size != opened.st_size
            or after_fd.st_mtime_ns != opened.st_mtime_ns
            or after.st_ino != opened.st_ino
            or after.st_size != opened.st_size
            or after.st_mtime_ns != opened.st_mtime_ns
        )
        return stored, changed, after

    def _reread_hash(self, dirfd: int, raw_name: bytes) -> str:
        fd = os.open(raw_name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd)
        with os.fdopen(fd, "rb", buffering=0) as handle:
            return hash_stream(handle).sha256

    def _already_on_record(
        self, device: Device, path: str, st: os.stat_result, mtime: datetime
    ) -> tuple[int, str] | None:
        """The clip (id, sha256) this device's file became at an earlier docking, if unchanged since."""
        if self._known is None:
            with self.station.engine.connect() as connection:
                rows = connection.execute(
                    select(
                        clips.c.device_path, clips.c.size, clips.c.device_mtime, clips.c.id, clips.c.sha256
                    ).where(clips.c.device_id == device.id)
                )
                self._known = {
                    row.device_path: (row.size, row.device_mtime, row.id, row.sha256) for row in rows
                }
        known = self._known.get(path)
        if known is None or known[0] != st.st_size or known[1] != mtime:
            return None
        return known[2], known[3]

    def _clip_facts(
        self, dirfd: int, raw_name: bytes, name: str, st: os.stat_result, mtime: datetime, docking: _Docking
    ) -> dict[str, Any]:
        profile = self.request.profile
        media_type, sidecar = profile.classify(name)
        warnings: list[RecordWarning] = []
        media_info: dict[str, Any] = {"profile": profile.name}
        if sidecar:
            media_info["sidecar"] = True
        elif media_type is MediaType.OTHER:
            warnings.append(RecordWarning("not_media", "not a recognised media file; stored as it is"))
        facts = profile.parse_name(name)
        device_start = facts.start if facts else None
        if facts:
            media_info.update(
                {
                    k: v
                    for k, v in (
                        ("name_serial", facts.serial),
                        ("name_officer", facts.officer),
                        ("sequence", facts.sequence),
                    )
                    if v
                }
            )
        duration: float | None = None
        if media_type in (MediaType.VIDEO, MediaType.AUDIO) and st.st_size > 0:
            probe = self._probe(dirfd, raw_name)
            duration = probe.duration_s
            if probe.problem:
                warnings.append(
                    RecordWarning(
                        "probe_failed", f"the container could not be read at ingest: {probe.problem}"
                    )
                )
            if device_start is None and probe.creation_time is not None:
                device_start = probe.creation_time.astimezone(self.zone).replace(tzinfo=None)
                media_info["time_source"] = "container creation_time"
        if device_start is None and media_type is not MediaType.OTHER and not sidecar:
            # A recorder's file time is when it closed the file: the end of the recording.
            mtime_local = mtime.astimezone(self.zone).replace(tzinfo=None)
            device_start = mtime_local - timedelta(seconds=duration or 0)
            media_info["time_source"] = "file modification time"
            warnings.append(
                RecordWarning("time_from_mtime", "start time taken from the file's modification time")
            )
        elif device_start is not None and "time_source" not in media_info:
            media_info["time_source"] = "file name"
        device_end = (
            device_start + timedelta(seconds=duration) if device_start is not None and duration else None
        )
        transfer = docking.transfer
        placed = place_in_time(
            device_start,
            device_end,
            docking.reading,
            self.zone,
            drift_tolerance_s=self.station.settings.clock_drift_tolerance_s,
        )
        if device_start is not None:
            warnings.extend(placed.warnings)
        ended = placed.utc_end or placed.utc_start
        late = ended is not None and is_late(ended, transfer.started_at, self.rule, self.zone)
        if late and ended is not None:
            deadline = handover_deadline(ended, self.rule, self.zone)
            warnings.append(
                RecordWarning(
                    "late_handover",
                    f"handed over {transfer.started_at.isoformat()}, "
                    f"after the deadline {deadline.isoformat()} (R1)",
                )
            )
        return {
            "media_type": media_type,
            "device_start": device_start,
            "device_end": device_end,
            "utc_start": placed.utc_start if device_start else None,
            "utc_end": placed.utc_end if device_start else None,
            "clock_offset_s": placed.offset_s,
            "clock_status": placed.clock_status,
            "duration_s": duration,
            "late_handover": late,
            "media_info": media_info,
            "warnings": warnings,
        }

    def _probe(self, dirfd: int, raw_name: bytes) -> Any:
        fd = os.open(raw_name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd)
        with os.fdopen(fd, "rb") as handle:
            return quick_probe(handle)

    def _failed(self, summary: TransferSummary, path: str, exc: OSError) -> FileResult:
        if exc.errno in VOLUME_GONE or self.request.cancelled.is_set():
            # any error once the recorder is gone is its going (fusefat reports a vanished disk as EPERM)
            raise VolumeGone(f"{exc.strerror} reading {path}")
        if exc.errno == errno.EIO:
            self.consecutive_io_errors += 1
            if self.consecutive_io_errors >= MAX_CONSECUTIVE_IO_ERRORS:
                raise VolumeGone(f"{MAX_CONSECUTIVE_IO_ERRORS} I/O errors in a row (last at {path})")
        summary.files_failed += 1
        if exc.errno in (errno.EIO, errno.EPERM):  # fusefat reports a disk read error as EPERM
            why = "the recorder could not read it (I/O error: a bad sector?)"
        else:
            why = "it could not be read"
        note = f"{why}: nothing of it was stored; the next docking tries it again"
        return FileResult(path, "failed", warnings=[note], error=f"{exc.strerror or exc} (errno {exc.errno})")


def _sync_store(sync: Callable[[], None]) -> None:
    try:
        sync()
    except OSError as exc:
        raise StoreFailed(f"flushing the store to disk failed: {exc.strerror or exc}") from exc


class _BackgroundSync:
    """One run of the store's sync in a thread of its own; `wait` returns when it is done and raises
    `StoreFailed` if it failed (the batch it was for is then not recorded)."""

    def __init__(self, sync: Callable[[], None]) -> None:
        self._failure: StoreFailed | None = None
        self._thread = threading.Thread(target=self._run, args=(sync,), name="store-sync", daemon=True)
        self._thread.start()

    def _run(self, sync: Callable[[], None]) -> None:
        try:
            _sync_store(sync)
        except StoreFailed as exc:
            self._failure = exc

    def wait(self) -> None:
        self._thread.join()
        if self._failure is not None:
            raise self._failure


class VolumeUnreadableError(StoreError):
    """The volume's root cannot be opened at all."""


def _read_small_text(root_fd: int, rel_path: str, encodings: tuple[str, ...]) -> str | None:
    """Read a small text file at a relative path on the volume without following symlinks."""
    parts = [p for p in rel_path.split("/") if p and p not in {".", ".."}]
    dir_fd = os.dup(root_fd)
    try:
        for part in parts[:-1]:
            next_fd = os.open(
                part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd
            )
            os.close(dir_fd)
            dir_fd = next_fd
        fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                return None
            return decode_text(handle.read(INFO_FILE_LIMIT), encodings)
    except (OSError, IndexError):
        return None
    finally:
        os.close(dir_fd)


def fat_label_names(label: str) -> set[bytes]:
    """The names a FAT volume label may be listed under: as it is, and split 8.3 the way fusefat
    shows an 11-character label (`ZFJLY02ABCD` as `ZFJLY02A.BCD`)."""
    raw = label.encode("utf-8", errors="surrogateescape")
    names = {raw}
    if len(raw) > 8:
        names.add(raw[:8].rstrip(b" ") + b"." + raw[8:11].rstrip(b" "))
    return names


def _volume_alive(root_fd: int) -> bool:
    try:
        os.fstat(root_fd)
        with os.scandir(root_fd) as entries:
            next(entries, None)
    except OSError:
        return False
    return True


def _skip_reason(kind: str, dirfd: int, raw_name: bytes) -> str:
    if kind == "symlink":
        try:
            target = os.readlink(raw_name, dir_fd=dirfd)
        except OSError:
            return "symlink: not followed"
        return f"symlink to {display_name(target)[0]!r}: not followed"
    return f"{kind}: not a regular file, not read"


def _special_kind(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device node"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "special file"


def _join(rel_dir: str, name: str) -> str:
    return f"{rel_dir}/{name}" if rel_dir else name


def _unidentified_serial(request: PullRequest) -> str:
    volume = request.volume
    if volume.uuid:
        return f"unidentified-{volume.uuid}"
    if volume.label:
        return f"unidentified-{volume.label}"
    return f"unidentified-{request.root.name or 'volume'}"
