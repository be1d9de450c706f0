"""Ports: the small interfaces the services depend on. Adapters implement them; `bootstrap` and the entry
layer (`entrypoints.wiring`) choose and wire them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Literal, Protocol, runtime_checkable

from evidence_store.domain.segment import Segment

Clock = Callable[[], datetime]  # returns an aware UTC datetime


@dataclass(frozen=True)
class StoredBlob:
    """The result of writing a blob: its address, its size, and whether this write created it."""

    sha256: str
    size: int
    created: bool


@dataclass(frozen=True)
class BlobListing:
    sha256: str
    size: int


@runtime_checkable
class BlobStore(Protocol):
    """A content-addressed, write-once store of original files and derivatives (R3, R10).

    There is deliberately no delete here: only `RetentionPurger` deletes, and only the retention run
    holds one.
    """

    name: str

    def put(
        self, source: BinaryIO, *, expected_sha256: str | None = None, durable: bool = True
    ) -> StoredBlob:
        """Read `source` to its end, hashing inline, and store it under its sha256.

        Writing bytes that are already stored creates nothing. If `expected_sha256` is given and the
        bytes do not match it, nothing is stored and `BlobMismatchError` is raised. With
        `durable=False` the bytes may still be in the page cache on return: the caller must call
        `sync()` before it records the blob anywhere (batching many small writes into one flush).
        """
        ...

    def sync(self) -> None:
        """Make every blob written so far durable."""
        ...

    def open(self, sha256: str) -> BinaryIO:
        """Open a stored blob for reading; `BlobNotFoundError` if it is not there."""
        ...

    def exists(self, sha256: str) -> bool: ...

    def size(self, sha256: str) -> int:
        """The stored size; `BlobNotFoundError` if it is not there."""
        ...

    def rehash(self, sha256: str) -> str:
        """Re-read the stored bytes (streaming) and return the sha256 they have now."""
        ...

    def iter_blobs(self) -> Iterator[BlobListing]:
        """Every blob the store holds, in no particular order."""
        ...


class LockableBlobStore(BlobStore, Protocol):
    """A store that can hold blobs under WORM retention (S3 Object Lock)."""

    def retain_until(self, sha256: str) -> datetime | None: ...

    def extend_retention(self, sha256: str, until: datetime) -> datetime:
        """Set retain-until to `until` if later than the current one (never shortens); return it."""
        ...

    def set_legal_hold(self, sha256: str, on: bool) -> None: ...


class RetentionPurger(Protocol):
    """The one way to delete a blob, used only by the retention run (R9, R10)."""

    def purge(self, sha256: str, *, run_id: int) -> bool:
        """Delete the blob; return False if it was already gone. Refuses objects still locked."""
        ...


class ProcessingQueue(Protocol):
    """Where new clips are offered for processing (probe, proxy, thumbnails, timestamp).

    A hint, not the source of truth: a clip's status in the database says what is still to do, so a
    lost message only delays work (`evidence process` finds every pending clip).
    """

    def clips_stored(self, clip_ids: list[int]) -> None: ...


class NoProcessingQueue:
    """Used until a queue is configured: pending clips are found by status instead."""

    def clips_stored(self, clip_ids: list[int]) -> None:
        return None


class MadeDerivative(Protocol):
    """What a tool run made, as the export's manifest records it (R12: how the copy was made)."""

    @property
    def tool(self) -> str: ...
    @property
    def tool_version(self) -> str: ...
    @property
    def arguments(self) -> list[str]: ...
    @property
    def mime_type(self) -> str: ...


class DerivativeCutter(Protocol):
    """Cuts an export's derivatives from the package's verified copy of an original (R12); the source
    is only read. The ffmpeg adapter is `ingest.transcode.segment.FfmpegCutter`, wired by the entry
    layer."""

    def cut(
        self,
        source: Path,
        target: Path,
        segment: Segment,
        mode: Literal["exact", "keyframe"],
        *,
        has_video: bool,
    ) -> MadeDerivative: ...

    def disclosure_copy(
        self, source: Path, target: Path, segment: Segment, *, text: str, height: int | None
    ) -> MadeDerivative: ...
