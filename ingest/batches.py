"""Putting copied files on the record in batches: one store sync and one transaction per batch.

The store is synced before a batch is committed, so a committed clip always has durable bytes; the sync
of one batch runs while the next is copied. A crash before the commit leaves orphan blobs that the next
docking adopts (R10).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from evidence_store.attachments import record_attachments
from evidence_store.bootstrap import Station
from evidence_store.domain.model import Attachment, Clip
from evidence_store.originals import record_originals
from evidence_store.ports import StoredBlob
from ingest.copying import StoreFailed
from ingest.pull_report import FileResult, TransferSummary

# Copied files are committed in batches: one store sync and one transaction per batch.
BATCH_FILES = 200
BATCH_BYTES = 256 * 1024 * 1024
BATCH_SECONDS = 2.0


@dataclass
class PendingClip:
    """A file whose bytes are in the store, waiting for its batch to be put on the record."""

    stored: StoredBlob
    clip: Clip
    device_mtime_ns: int = 0

    @property
    def device_path(self) -> str:
        return self.clip.device_path


@dataclass
class PendingAttachment:
    """A recorder sidecar whose bytes are in the store, waiting for its batch (never a clip)."""

    stored: StoredBlob
    attachment: Attachment

    @property
    def device_path(self) -> str:
        return self.attachment.device_path


Pending = PendingClip | PendingAttachment


def batch_is_full(batch: list[Pending], started: float) -> bool:
    """Whether a batch begun at `started` (time.monotonic) is to be flushed now."""
    return (
        len(batch) >= BATCH_FILES
        or sum(item.stored.size for item in batch) >= BATCH_BYTES
        or time.monotonic() - started >= BATCH_SECONDS
    )


@dataclass
class BatchRecorder:
    """Commits the batches of one transfer, the sync of each overlapping the copy of the next; collects
    the ids of the new clips (for the processing queue)."""

    station: Station
    actor: str
    new_clip_ids: list[int] = field(default_factory=list)
    _syncing: tuple[list[Pending], BackgroundSync] | None = field(
        default=None, init=False
    )  # see sync_in_background

    def sync_in_background(self, batch: list[Pending], summary: TransferSummary) -> None:
        """Commit the batch synced before (waiting for its sync), then start syncing `batch` while the
        next one is copied: the store's flush, tens of milliseconds per batch and more when other
        work has dirty data on the disk, overlaps the copying instead of stopping it."""
        self.commit_synced(summary)
        self._syncing = (batch, BackgroundSync(self.station.blobs.sync))

    def commit_synced(self, summary: TransferSummary) -> None:
        """Put the batch being synced on the record once its sync has finished; nothing if none."""
        if self._syncing is None:
            return
        batch, sync = self._syncing
        self._syncing = None
        sync.wait()
        self.commit_batch(batch, summary, synced=True)

    def commit_batch(self, batch: list[Pending], summary: TransferSummary, *, synced: bool = False) -> None:
        """Make a batch of copied files durable, then put them on the record in one transaction.

        The store is synced first (here, or before by `sync_in_background`), so a committed clip
        always has durable bytes; a crash before the commit leaves orphan blobs that the next
        docking adopts.
        """
        if not batch:
            return
        if not synced:
            sync_store(self.station.blobs.sync)
        footage = [item for item in batch if isinstance(item, PendingClip)]
        sidecars = [item for item in batch if isinstance(item, PendingAttachment)]
        with self.station.transaction() as session:
            recorded = record_originals(
                [(item.stored, item.clip) for item in footage],
                store_name=self.station.blobs.name,
                session=session,
                audit=self.station.audit,
                actor=self.actor,
            )
            attached = record_attachments(
                [(item.attachment, item.stored.created) for item in sidecars],
                store_name=self.station.blobs.name,
                session=session,
                audit=self.station.audit,
                actor=self.actor,
            )
        for sidecar, attachment_id in zip(sidecars, attached, strict=True):
            summary.files_attached += 1
            summary.files.append(
                FileResult(
                    sidecar.attachment.device_path,
                    "attached",
                    sidecar.stored.size,
                    sidecar.stored.sha256,
                    warnings=[f"{sidecar.attachment.kind} sidecar: kept as attachment {attachment_id}"],
                    hashed=True,
                )
            )
        results = list(zip(footage, recorded, strict=True))
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


def sync_store(sync: Callable[[], None]) -> None:
    try:
        sync()
    except OSError as exc:
        raise StoreFailed(f"flushing the store to disk failed: {exc.strerror or exc}") from exc


class BackgroundSync:
    """One run of the store's sync in a thread of its own; `wait` returns when it is done and raises
    `StoreFailed` if it failed (the batch it was for is then not recorded)."""

    def __init__(self, sync: Callable[[], None]) -> None:
        self._failure: StoreFailed | None = None
        self._thread = threading.Thread(target=self._run, args=(sync,), name="store-sync", daemon=True)
        self._thread.start()

    def _run(self, sync: Callable[[], None]) -> None:
        try:
            sync_store(sync)
        except StoreFailed as exc:
            self._failure = exc

    def wait(self) -> None:
        self._thread.join()
        if self._failure is not None:
            raise self._failure
