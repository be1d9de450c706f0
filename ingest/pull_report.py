"""What a pull is asked to do and what it reports: the request, its progress, each file's result and
the transfer's summary (the handover record the dock prints and stores, R2)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from evidence_store.domain.model import TransferOutcome, TransferSource
from ingest.devices.profiles import RecorderProfile, VolumeFacts


@dataclass
class PullProgress:
    """How far a pull is: files read so far and bytes read (the file being read counted as it is
    read), against what was listed on the volume at the start (None until listed)."""

    files_done: int
    bytes_done: int
    current: str
    started: float
    files_total: int | None = None
    bytes_total: int | None = None
    files_stored: int = 0  # on the record (verified copies, committed)

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
    status: (
        str  # ingested | attached (a sidecar, see evidence_store.attachments) | duplicate | failed | skipped
    )
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
    files_attached: int = 0  # recorder sidecars kept as attachments, not clips
    bytes_copied: int = 0
    clock_offset_s: float | None = None
    problems: list[str] = field(default_factory=list)
    files: list[FileResult] = field(default_factory=list)
    directories_unlisted: list[str] = field(default_factory=list)  # could not be listed: a partial pull

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
            "files_attached": self.files_attached,
            "bytes_copied": self.bytes_copied,
            "clock_offset_s": self.clock_offset_s,
            "problems": self.problems,
            "directories_unlisted": self.directories_unlisted,
            "files": [vars(f) for f in self.files],
        }
