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

Here the pull itself (the transfer from start to end, each file's way); the volume's listing is
`ingest.volume`, the copy `ingest.copying`, the batches `ingest.batches`, the transfer's record
`ingest.transfer_record`, a clip's facts `ingest.clip_facts`, the request and report `ingest.pull_report`.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select

from evidence_store.attachments import link_to_clips
from evidence_store.bootstrap import Station
from evidence_store.db.tables import attachments, clips
from evidence_store.domain.device_clock import ClockReading, measure_offset
from evidence_store.domain.dock_status import progress_due
from evidence_store.domain.handover import DeadlineMode, HandoverRule, WorkCalendar, parse_calendar
from evidence_store.domain.model import (
    Attachment,
    Clip,
    Device,
    Officer,
    RecordWarning,
    Transfer,
    TransferOutcome,
)
from evidence_store.ports import NoProcessingQueue, ProcessingQueue, StoredBlob
from ingest.batches import BatchRecorder, Pending, PendingAttachment, PendingClip, batch_is_full
from ingest.clip_facts import clip_facts
from ingest.copying import StoreFailed, copy_verified
from ingest.fat import FatError, FatVolume
from ingest.mount import fusefat_device
from ingest.names import display_name
from ingest.pull_report import FileResult, PullProgress, PullRequest, TransferSummary
from ingest.transfer_record import close_transfer, open_transfer, record_progress
from ingest.volume import (
    VOLUME_GONE,
    UnlistedEntry,
    VolumeGone,
    VolumeUnreadableError,
    count_volume,
    fat_label_names,
    join_path,
    read_identity,
    skip_reason,
    special_kind,
    walk_volume,
)

# what `ingest.dock`, `ingest.cli` and `ingest.deletion` take from here
__all__ = ["FileResult", "PullProgress", "PullRequest", "TransferSummary", "VolumeUnreadableError", "pull"]

log = logging.getLogger(__name__)

MAX_CONSECUTIVE_IO_ERRORS = 5


@dataclass
class _Docking:
    """What every file of one transfer shares."""

    transfer: Transfer
    device: Device
    officer: Officer | None
    reading: ClockReading
    summary: TransferSummary


def handover_rule_from(station: Station) -> HandoverRule:
    """The station's handover deadline rule (R1) from its settings and holiday calendar."""
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


def _record_refused(refused: list[UnlistedEntry], summary: TransferSummary) -> None:
    """Entries the volume holds that no file name may be (a crafted or corrupt directory entry):
    failed files of the transfer, with the reason, so the handover record lists them."""
    for entry in refused:
        summary.files_seen += 1
        summary.files_failed += 1
        summary.files.append(
            FileResult(entry.path, "failed", warnings=[entry.reason], error="a name the system refuses")
        )
    refused.clear()


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
        self.batches = BatchRecorder(station, request.actor)
        self._known: dict[str, tuple[int, datetime | None, int, str]] | None = None
        self.consecutive_io_errors = 0
        self.fat: FatVolume | None = None
        self.transfer_id = 0  # once opened
        self._written_at: float | None = None  # when the counters were last written (monotonic)

    # -- the transfer -------------------------------------------------------------------------------

    def run(self) -> TransferSummary:
        request = self.request
        handed_over_at = self.station.clock()
        try:
            root_fd = os.open(request.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise VolumeUnreadableError(f"cannot open {request.root}: {exc.strerror}") from exc
        try:
            identity = read_identity(root_fd, request)
            totals = count_volume(root_fd)
            self.progress.files_total, self.progress.bytes_total = totals
            offset = (
                measure_offset(identity.clock, handed_over_at, self.zone)
                if identity.clock is not None
                else None
            )
            transfer, device, officer, previous_offset = open_transfer(
                self.station, request, identity, offset, handed_over_at, totals
            )
            self.transfer_id = transfer.id or 0
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
            self._link_attachments(transfer)
            if outcome is TransferOutcome.COMPLETE and (summary.files_failed or summary.directories_unlisted):
                outcome = TransferOutcome.PARTIAL
            summary.outcome = outcome
            summary.finished_at = self.station.clock()
            close_transfer(self.station, request.actor, transfer, summary)
        finally:
            os.close(root_fd)
            if self.fat is not None:
                self.fat.close()
        if self.batches.new_clip_ids:
            self.queue.clips_stored(self.batches.new_clip_ids)
        return summary

    def _link_attachments(self, transfer: Transfer) -> None:
        """Once every file is on the record: each per-clip sidecar (a GPS track or log with a clip's
        base name) joins its clip, so it goes with that clip rather than with the whole transfer."""
        with self.station.transaction() as session:
            link_to_clips(
                session, transfer_id=transfer.id or 0, audit=self.station.audit, actor=self.request.actor
            )

    def _open_fat(self, summary: TransferSummary) -> None:
        """Open the FAT directory entries behind a fusefat mount (see `ingest.fat`), or say why not."""
        request = self.request
        if request.fat_device is None and not request.fusefat:
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
        batch: list[Pending] = []
        batch_started = time.monotonic()
        refused: list[UnlistedEntry] = []
        try:
            try:
                fallback = self._fat_listing if self.fat is not None else None
                for dirfd, raw_dir, rel_dir, name in walk_volume(root_fd, summary, fallback, refused):
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
                        raise VolumeGone(f"the recorder was removed while {result.device_path} was read")
                    batch.append(result)
                    if batch_is_full(batch, batch_started):
                        # `batch` is emptied first: when the flush before it failed, this batch was
                        # written while that flush ran, and a second flush could not say whether its
                        # bytes were lost in the first (syncfs reports an error once), so it is not
                        # recorded either; the next docking takes it
                        syncing, batch = batch, []
                        self.batches.sync_in_background(syncing, summary)
                        batch_started = time.monotonic()
                        self._tick(summary, force=True)  # a batch went on the record
            finally:
                # what was copied before an interruption is kept (R10)
                self.batches.commit_synced(summary)
                self.batches.commit_batch(batch, summary)
                _record_refused(refused, summary)
        except VolumeGone as exc:
            summary.problems.append(f"interrupted: {exc}")
            return TransferOutcome.INTERRUPTED
        except StoreFailed as exc:
            summary.problems.append(f"station store failed: {exc}")
            return TransferOutcome.FAILED
        return TransferOutcome.COMPLETE

    # -- progress -----------------------------------------------------------------------------------

    def _tick(self, summary: TransferSummary, *, force: bool = False) -> None:
        """Tell the caller how far the pull is (each file done, and as a file is read), and write the
        transfer's counters to the record at most once a second (or now, when a batch was committed),
        so the station page sees them move while the transfer runs (issue 19)."""
        progress = self.progress
        progress.files_stored = summary.files_ingested + summary.files_duplicate + summary.files_attached
        if self.request.progress:
            self.request.progress(progress)
        now = time.monotonic()
        if self.transfer_id and (force or progress_due(self._written_at, now)):
            self._written_at = now
            record_progress(self.station, self.transfer_id, summary, progress.bytes_done)

    # -- the walk -----------------------------------------------------------------------------------

    def _fat_listing(self, raw_dir: tuple[bytes, ...]) -> list[tuple[bytes, bool, bool]] | None:
        """A directory fusefat cannot list, read from its FAT entries instead (see `ingest.fat`)."""
        if self.fat is None:
            return None
        try:
            return self.fat.listing(raw_dir)
        except (OSError, FatError):
            return None

    # -- one file -----------------------------------------------------------------------------------

    def _pull_one(
        self, dirfd: int, raw_dir: tuple[bytes, ...], rel_dir: str, raw_name: bytes, docking: _Docking
    ) -> FileResult | Pending:
        summary = docking.summary
        name, exact = display_name(raw_name)
        path = join_path(rel_dir, name)
        summary.files_seen += 1
        self.progress.current = path
        try:
            before = os.stat(raw_name, dir_fd=dirfd, follow_symlinks=False)
        except OSError as exc:
            return self._failed(summary, path, exc)
        skipped = self._not_a_file(dirfd, raw_dir, raw_name, path, before)
        if skipped is not None:
            summary.files_skipped += 1
            return skipped
        warnings: list[RecordWarning] = []
        mtime = self._device_mtime(raw_dir, raw_name, before, warnings)
        hash_now = self.verify_reread or self.request.hash_every_file
        sidecar_kind = self.request.profile.sidecar_kind(path)
        known = None if hash_now else self._known_file(docking, path, before, mtime, sidecar_kind)
        if known is not None:
            return known
        if not exact:
            warnings.append(RecordWarning("name_not_utf8", f"file name bytes {raw_name.hex()} are not UTF-8"))
        base = self.progress.bytes_done

        def reading(done: int) -> None:
            self.progress.bytes_done = base + done
            self._tick(summary)

        try:
            stored, after = copy_verified(
                self.station.blobs,
                dirfd,
                raw_name,
                before,
                warnings,
                verify_reread=self.verify_reread,
                on_bytes=reading,
            )
        except OSError as exc:
            self.progress.bytes_done = base
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
        self.progress.files_done += 1
        self.progress.bytes_done = base + stored.size
        summary.bytes_copied += stored.size
        self._tick(summary)
        if sidecar_kind is not None:
            # a recorder's own file (device info, log, GPS track): kept with its provenance beside
            # the footage, never as a clip (issue 17)
            same = self._sidecar_on_record(docking, path, before, mtime, sha256=stored.sha256)
            return same or self._attachment(stored, sidecar_kind, name, path, mtime, docking)
        facts = clip_facts(
            dirfd,
            raw_name,
            name,
            before,
            mtime,
            profile=self.request.profile,
            zone=self.zone,
            rule=self.rule,
            reading=docking.reading,
            handed_over_at=transfer.started_at,
            drift_tolerance_s=self.station.settings.clock_drift_tolerance_s,
        )
        warnings.extend(facts.pop("warnings"))
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
            **facts,
        )
        return PendingClip(stored, clip, before.st_mtime_ns)

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

    def _already_on_record(
        self, device: Device, path: str, st: os.stat_result, mtime: datetime
    ) -> tuple[int, str] | None:
        """The clip (id, sha256) this device's file became at an earlier docking, if unchanged since."""
        if self._known is None:
            with self.station.connect() as connection:
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

    def _not_a_file(
        self, dirfd: int, raw_dir: tuple[bytes, ...], raw_name: bytes, path: str, st: os.stat_result
    ) -> FileResult | None:
        """Why an entry is skipped (a special file, the FAT label fusefat lists), or None to copy it."""
        kind = special_kind(st.st_mode)
        if kind is not None:
            return FileResult(path, "skipped", warnings=[skip_reason(kind, dirfd, raw_name)])
        if st.st_size == 0 and self._is_fat_label(raw_dir, raw_name):
            note = "the FAT volume label, which fusefat lists as an empty file: not a file, not stored"
            return FileResult(path, "skipped", warnings=[note])
        return None

    def _known_file(
        self, docking: _Docking, path: str, st: os.stat_result, mtime: datetime, sidecar_kind: str | None
    ) -> FileResult | None:
        """This device's file as an earlier docking recorded it (a clip, or a sidecar's attachment)
        when its size and time are unchanged; None when it is to be copied."""
        known = self._already_on_record(docking.device, path, st, mtime)
        if known is not None:
            docking.summary.files_duplicate += 1
            note = "already ingested at an earlier docking"
            return FileResult(path, "duplicate", st.st_size, known[1], known[0], [note])
        if sidecar_kind is None:
            return None
        return self._sidecar_on_record(docking, path, st, mtime)

    def _attachment(
        self, stored: StoredBlob, kind: str, name: str, path: str, mtime: datetime, docking: _Docking
    ) -> PendingAttachment:
        attachment = Attachment(
            transfer_id=docking.transfer.id or 0,
            device_id=docking.device.id,
            kind=kind,
            original_name=name,
            device_path=path,
            size=stored.size,
            sha256=stored.sha256,
            device_mtime=mtime,
            stored_at=self.station.clock(),
        )
        return PendingAttachment(stored, attachment)

    def _sidecar_on_record(
        self, docking: _Docking, path: str, st: os.stat_result, mtime: datetime, *, sha256: str | None = None
    ) -> FileResult | None:
        """The attachment this device's sidecar became at an earlier docking, if unchanged since (by
        size and time, or, once read, by its sha256)."""
        device = docking.device
        same = (
            # bytes just copied are only "known" while a live attachment holds them in the store
            (attachments.c.sha256 == sha256) & attachments.c.deleted_at.is_(None)
            if sha256 is not None
            else (attachments.c.size == st.st_size) & (attachments.c.device_mtime == mtime)
        )
        with self.station.connect() as connection:
            row = connection.execute(
                select(attachments.c.id, attachments.c.sha256)
                .where(attachments.c.device_id == device.id, attachments.c.device_path == path, same)
                .order_by(attachments.c.id.desc())
                .limit(1)
            ).first()
        if row is None:
            return None
        docking.summary.files_duplicate += 1
        note = f"already kept as attachment {row.id} at an earlier docking"
        return FileResult(path, "attached", st.st_size, row.sha256, warnings=[note])

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
