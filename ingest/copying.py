"""Copying one file off the volume into the store: one read, SHA-256 inline (bounded memory), then a
check that the file did not change during the copy (size, mtime, inode; and in skeptical mode a second
read compared by hash)."""

from __future__ import annotations

import errno
import io
import os
import stat
from collections.abc import Callable
from typing import Any, BinaryIO, cast

from evidence_store.blobs.hashing_copy import hash_stream
from evidence_store.domain.model import RecordWarning
from evidence_store.errors import StoreError
from evidence_store.ports import BlobStore, StoredBlob

CHANGE_RETRIES = 2


class StoreFailed(Exception):
    """The station's store cannot take more bytes (disk full, I/O error)."""


def copy_verified(
    blobs: BlobStore,
    dirfd: int,
    raw_name: bytes,
    before: os.stat_result,
    warnings: list[RecordWarning],
    *,
    verify_reread: bool,
    on_bytes: Callable[[int], None] | None = None,
) -> tuple[StoredBlob, os.stat_result]:
    """Copy until a copy sees the file unchanged (or retries run out: kept with a warning); the
    stored copy and the file's stat as that copy saw it (not as listed: it may have changed since).
    `on_bytes` is told how many bytes of the file the current copy has read, as it reads them."""
    for attempt in range(CHANGE_RETRIES + 1):
        try:
            stored, changed, after = copy_once(blobs, dirfd, raw_name, before, on_bytes)
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
    if verify_reread:
        reread = _reread_hash(dirfd, raw_name)
        if reread != stored.sha256:
            warnings.append(
                RecordWarning(
                    "reread_mismatch",
                    f"a second read hashed to {reread}, the stored copy to {stored.sha256}",
                )
            )
    return stored, after


def copy_once(
    blobs: BlobStore,
    dirfd: int,
    raw_name: bytes,
    before: os.stat_result,
    on_bytes: Callable[[int], None] | None = None,
) -> tuple[StoredBlob, bool, os.stat_result]:
    """One copy of the file into the store (not yet durable: its batch syncs the store), whether the
    file changed while it was read, and its stat after the copy."""
    fd = os.open(raw_name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dirfd)
    with os.fdopen(fd, "rb", buffering=0) as handle:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode) or opened.st_ino != before.st_ino:
            raise OSError(errno.ESTALE, "the file was replaced between listing and opening")
        source: BinaryIO = handle if on_bytes is None else cast(BinaryIO, _Counting(handle, on_bytes))
        stored = blobs.put(source, durable=False)
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


class _Counting(io.RawIOBase):
    """A file read through, telling `on_bytes` how many bytes were read so far (the copy's progress)."""

    def __init__(self, raw: io.RawIOBase, on_bytes: Callable[[int], None]) -> None:
        super().__init__()
        self._raw = raw
        self._on_bytes = on_bytes
        self._count = 0

    def _add(self, n: int) -> None:
        if n:
            self._count += n
            self._on_bytes(self._count)

    def readinto(self, buffer: Any) -> int | None:
        n = self._raw.readinto(buffer)
        self._add(n or 0)
        return n

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size) or b""
        self._add(len(data))
        return data

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        """The file's descriptor: the store may read a cold file with O_DIRECT through it (issue 21)."""
        return self._raw.fileno()


def _reread_hash(dirfd: int, raw_name: bytes) -> str:
    fd = os.open(raw_name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd)
    with os.fdopen(fd, "rb", buffering=0) as handle:
        return hash_stream(handle).sha256
