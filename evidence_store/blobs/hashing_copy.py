"""One-pass copy with inline SHA-256, overlapping reading, hashing and writing.

Reading and hashing run in the calling thread and writing in a second one; `hashlib` and file I/O
release the GIL on large buffers, so on two cores the three overlap and the copy runs at about the
speed of hashing alone. Memory is bounded by `queue_depth` chunks in flight. `write_all(fd,
flush_behind=True)` also keeps the disk busy during the copy, so the final fsync is short.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import queue
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

CHUNK_SIZE = 4 * 1024 * 1024
QUEUE_DEPTH = 4
# Flush-behind (see `write_all`): start writeback every 8 MiB, keep at most 64 MiB of the file cached.
WRITEBACK_EVERY = 8 * 1024 * 1024
DROP_BEHIND = 64 * 1024 * 1024

Writer = Callable[[memoryview], None]


@dataclass(frozen=True)
class CopyResult:
    sha256: str
    size: int


_DONE = object()


def copy_hashing(
    source: BinaryIO,
    write: Writer | None,
    *,
    chunk_size: int = CHUNK_SIZE,
    queue_depth: int = QUEUE_DEPTH,
    on_progress: Callable[[int], None] | None = None,
) -> CopyResult:
    """Read `source` to its end, hash it, and hand every chunk to `write` (in a writer thread).

    `write=None` only hashes. An exception in the writer stops the copy and is re-raised here.
    """
    digest = hashlib.sha256()
    total = 0
    if write is None:
        while chunk := source.read(chunk_size):
            digest.update(chunk)
            total += len(chunk)
            if on_progress:
                on_progress(total)
        return CopyResult(digest.hexdigest(), total)

    # Small files (most sidecars, photos) fit in one chunk: no thread is worth starting for them.
    first = source.read(chunk_size)
    second = source.read(chunk_size) if first else b""
    if not second:
        digest.update(first)
        if first:
            write(memoryview(first))
        if on_progress:
            on_progress(len(first))
        return CopyResult(digest.hexdigest(), len(first))

    pending: queue.Queue[object] = queue.Queue(maxsize=queue_depth)
    failure: list[BaseException] = []

    def writer_loop() -> None:
        while True:
            item = pending.get()
            if item is _DONE:
                return
            if failure:
                continue  # drain so the reader never blocks on a dead writer
            try:
                write(memoryview(item))  # type: ignore[arg-type]
            except BaseException as exc:
                failure.append(exc)

    thread = threading.Thread(target=writer_loop, name="blob-writer", daemon=True)
    thread.start()
    try:
        for chunk in (first, second):
            pending.put(chunk)
            digest.update(chunk)
            total += len(chunk)
        if on_progress:
            on_progress(total)
        while not failure and (chunk := source.read(chunk_size)):
            pending.put(chunk)
            digest.update(chunk)
            total += len(chunk)
            if on_progress:
                on_progress(total)
    finally:
        pending.put(_DONE)
        thread.join()
    if failure:
        raise failure[0]
    return CopyResult(digest.hexdigest(), total)


def write_all(fd: int, *, flush_behind: bool = False) -> Writer:
    """A writer that writes every byte of each chunk to a file descriptor.

    With `flush_behind` (for a regular file that is written once and kept), it also starts the disk
    writing each `WRITEBACK_EVERY` bytes as soon as they are written (Linux `sync_file_range`), waits for
    the bytes more than `DROP_BEHIND` behind and drops them from the page cache. The disk then works
    while the copy runs, so the caller's final fsync finds almost nothing left to write, and a large
    blob neither piles up dirty pages nor evicts the page cache. It is only a hint: durability still
    comes from the caller's fsync. Elsewhere, or on a descriptor that does not support it, nothing
    extra happens.
    """
    behind = _FlushBehind(fd) if flush_behind and _sync_file_range is not None else None

    def write(view: memoryview) -> None:
        while view:
            written = os.write(fd, view)
            view = view[written:]
            if behind is not None:
                behind.wrote(written)

    return write


def _load_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):  # pragma: no cover - a libc without it
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_sync_file_range = _load_sync_file_range()
_SFR_WAIT_BEFORE, _SFR_WRITE, _SFR_WAIT_AFTER = 1, 2, 4
# sync_file_range does not apply to this descriptor: stop hinting, the final fsync does the work.
_NOT_SUPPORTED = {errno.ESPIPE, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EBADF}


class _FlushBehind:
    """Starts writeback of what was written and drops what is safely on disk (see `write_all`)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        try:
            offset = os.lseek(fd, 0, os.SEEK_CUR)
            self.active = True
        except OSError:
            offset = 0
            self.active = False  # a pipe or socket
        self.written = self.started = self.dropped = offset

    def wrote(self, n: int) -> None:
        self.written += n
        if not self.active or self.written - self.started < WRITEBACK_EVERY:
            return
        self._sync(self.started, self.written - self.started, _SFR_WRITE)
        self.started = self.written
        upto = self.started - DROP_BEHIND
        if self.active and upto - self.dropped >= WRITEBACK_EVERY:
            self._sync(self.dropped, upto - self.dropped, _SFR_WAIT_BEFORE | _SFR_WRITE | _SFR_WAIT_AFTER)
            if self.active:
                os.posix_fadvise(self.fd, self.dropped, upto - self.dropped, os.POSIX_FADV_DONTNEED)
            self.dropped = upto

    def _sync(self, offset: int, length: int, flags: int) -> None:
        assert _sync_file_range is not None
        if _sync_file_range(self.fd, offset, length, flags) == 0:
            return
        code = ctypes.get_errno()
        if code in _NOT_SUPPORTED:
            self.active = False
            return
        raise OSError(code, os.strerror(code))  # e.g. EIO: the disk failed, say so now


def hash_stream(source: BinaryIO, chunk_size: int = CHUNK_SIZE) -> CopyResult:
    return copy_hashing(source, None, chunk_size=chunk_size)
