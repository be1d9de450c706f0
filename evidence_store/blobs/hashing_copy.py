"""One-pass copy with inline SHA-256, overlapping reading, hashing and writing.

Reading and hashing run in the calling thread and writing in a second one; `hashlib` and file I/O
release the GIL on large buffers, so on two cores the three overlap and the copy runs at about the
speed of hashing alone. Memory is bounded by `queue_depth` chunks in flight (with `reuse_buffers`,
`queue_depth + 2` buffers allocated once). `write_all(fd, flush_behind=True)` also keeps the disk busy
during the copy, so the final fsync is short, and with `direct=True` writes large files with O_DIRECT
from those buffers, without a copy into the page cache (see bench/RESULTS.md for the measurements).
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import io
import mmap
import os
import queue
import stat
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, cast

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
    reuse_buffers: bool = False,
    read_ahead: bool = False,
) -> CopyResult:
    """Read `source` to its end, hash it, and hand every chunk to `write` (in a writer thread).

    `write=None` only hashes. An exception in the writer stops the copy and is re-raised here.

    Each chunk is a new immutable bytes object, which `write` may keep. With `reuse_buffers`, a
    source that has `readinto` is read into at most `queue_depth + 2` buffers, reused as soon as
    `write` returns and kept for the thread's next copy (no allocation and no page faults per chunk
    or per file); `write` must then be done with the view when it returns.

    With `read_ahead` too, a source that is a large regular file not in the page cache (a docked
    recorder, footage on disk) is read with O_DIRECT, straight into those buffers, by a reader thread
    that runs ahead of the hashing (`_ReadAhead`): the disk reads the next chunks while this thread
    hashes and the writer writes, without a copy through the page cache. A file that is cached, small,
    not a regular file, or on a filesystem without O_DIRECT is read as before. Issue 21 measured it
    (bench/RESULTS.md). The source's own callbacks (a counting wrapper's) then run in the reader thread.
    """
    if write is None:
        return _hash_only(source, chunk_size, on_progress)
    pooled = _Chunks(source, chunk_size, queue_depth + 2 if reuse_buffers else 0, direct=read_ahead)
    chunks: _Chunks | _ReadAhead = _ReadAhead(pooled) if pooled.direct else pooled
    try:
        return _copy_chunks(chunks, write, queue_depth, on_progress)
    finally:
        chunks.close()


def _copy_chunks(
    chunks: _Chunks | _ReadAhead, write: Writer, queue_depth: int, on_progress: Callable[[int], None] | None
) -> CopyResult:
    digest = hashlib.sha256()
    total = 0
    # Small files (most sidecars, photos) fit in one chunk: no thread is worth starting for them.
    first = chunks.next()
    second = chunks.next() if first else first
    if not second:
        digest.update(first)
        if first:
            write(first)
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
            view = cast(memoryview, item)
            if not failure:  # after a failure, drain so the reader never blocks on a dead writer
                try:
                    write(view)
                except BaseException as exc:
                    failure.append(exc)
            chunks.release(view)

    thread = threading.Thread(target=writer_loop, name="blob-writer", daemon=True)
    thread.start()
    try:
        # each chunk is hashed before the writer gets it: once written it is released, and the reader
        # (`_ReadAhead`) may read into its buffer again at once
        for view in (first, second):
            digest.update(view)
            pending.put(view)
            total += len(view)
        if on_progress:
            on_progress(total)
        while not failure and (view := chunks.next()):
            digest.update(view)  # while the writer writes the previous chunk
            pending.put(view)
            total += len(view)
            if on_progress:
                on_progress(total)
    finally:
        pending.put(_DONE)
        thread.join()
    if failure:
        raise failure[0]
    return CopyResult(digest.hexdigest(), total)


def _hash_only(source: BinaryIO, chunk_size: int, on_progress: Callable[[int], None] | None) -> CopyResult:
    digest = hashlib.sha256()
    total = 0
    readinto = _readinto_of(source)
    if readinto is not None:  # nothing outside sees the buffer: one is enough
        buffer = bytearray(chunk_size)
        view = memoryview(buffer)
        while n := readinto(buffer):
            digest.update(view[:n])
            total += n
            if on_progress:
                on_progress(total)
        return CopyResult(digest.hexdigest(), total)
    while chunk := source.read(chunk_size):
        digest.update(chunk)
        total += len(chunk)
        if on_progress:
            on_progress(total)
    return CopyResult(digest.hexdigest(), total)


def _readinto_of(source: BinaryIO) -> Callable[[bytearray | mmap.mmap], int | None] | None:
    """`source.readinto`, unless it has none or it is the io.RawIOBase stub over a `read`."""
    readinto = getattr(source, "readinto", None)
    if readinto is None or (
        isinstance(source, io.RawIOBase) and type(source).readinto is io.RawIOBase.readinto
    ):
        return None
    return readinto  # type: ignore[no-any-return]


class _KeptBuffers(threading.local):
    """Each thread's buffers from its last copies, kept for its next one: a docking copies file after
    file, and new buffers cost page faults and zeroing of the whole pool each time (about a tenth of
    the copy's time on small clips). A thread's buffers are freed when the thread ends."""

    def __init__(self) -> None:
        self.by_size: dict[int, list[mmap.mmap]] = {}


_kept_buffers = _KeptBuffers()


class _Chunks:
    """The chunks of a source, as memoryviews: of new bytes objects, or (`pool` > 0 and the source
    can `readinto`) of at most `pool` buffers, each reused once the writer has `release`d it. The
    buffers are the calling thread's kept ones while they last; `close` keeps them all again."""

    _EMPTY = memoryview(b"")

    def __init__(self, source: BinaryIO, chunk_size: int, pool: int, *, direct: bool = False) -> None:
        self._source = source
        self._chunk_size = chunk_size
        self._readinto = _readinto_of(source) if pool else None
        # the source's descriptor and its flags before O_DIRECT was set on it (`_read_direct`)
        self._direct_fd: int | None = None
        self._flags = 0
        self._free: queue.SimpleQueue[mmap.mmap] = queue.SimpleQueue()
        self._unallocated = pool
        self._owned: list[mmap.mmap] = []
        if self._readinto is not None:
            kept = _kept_buffers.by_size.pop(chunk_size, [])
            for buffer in kept[:pool]:
                self._free.put(buffer)
                self._owned.append(buffer)
            self._unallocated -= len(self._owned)
        if direct and self._readinto is not None:
            self._read_direct()

    @property
    def direct(self) -> bool:
        """The source is read with O_DIRECT into the pool's buffers."""
        return self._direct_fd is not None

    def _read_direct(self) -> None:
        """O_DIRECT on the source's descriptor when it is a large regular file, at a block offset, and
        not in the page cache (its next page is not: a cached file is read faster from the cache).
        Only a raw source: its `readinto` is one read(2), so a read the kernel refuses without the
        page cache (EINVAL) has read nothing and is tried again through it; a buffered reader may
        have read part of its chunk before the refusal, and that part would be lost."""
        if not _O_DIRECT or not isinstance(self._source, io.RawIOBase):
            return
        import fcntl  # POSIX only, like O_DIRECT

        try:
            fd = self._source.fileno()
            status = os.fstat(fd)
            if not stat.S_ISREG(status.st_mode) or status.st_size < 2 * self._chunk_size:
                return
            offset = os.lseek(fd, 0, os.SEEK_CUR)
            if offset % _DIRECT_ALIGN or self._chunk_size % _DIRECT_ALIGN or _cached(fd, offset):
                return
            flags = fcntl.fcntl(fd, fcntl.F_GETFL)
            fcntl.fcntl(fd, fcntl.F_SETFL, flags | _O_DIRECT)
        except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
            return  # no descriptor, or a filesystem without O_DIRECT: read as before
        self._direct_fd, self._flags = fd, flags

    def _stop_direct(self) -> None:
        if self._direct_fd is not None:
            import fcntl  # POSIX only, like O_DIRECT

            fcntl.fcntl(self._direct_fd, fcntl.F_SETFL, self._flags)
            self._direct_fd = None

    def close(self) -> None:
        """Every buffer is back (the writer has stopped): keep them for the calling thread's next copy;
        the source's descriptor gets its flags back."""
        self._stop_direct()
        if self._owned:
            _kept_buffers.by_size[self._chunk_size] = self._owned
            self._owned = []

    def next(self) -> memoryview:
        """The next chunk; empty at the end."""
        if self._readinto is None:
            return memoryview(self._source.read(self._chunk_size) or b"")
        buffer = self._take()
        try:
            n = self._readinto(buffer)
        except OSError as exc:
            if not (self.direct and exc.errno == errno.EINVAL):
                self._free.put(buffer)
                raise
            self._stop_direct()  # the kernel refused this read without the page cache (e.g. at the end)
            n = self._readinto(buffer)
        if not n:
            self._free.put(buffer)
            return self._EMPTY
        return memoryview(buffer)[:n]

    def release(self, view: memoryview) -> None:
        """The writer is done with `view`: its buffer may be read into again."""
        if self._readinto is not None and isinstance(view.obj, mmap.mmap):
            self._free.put(view.obj)

    def _take(self) -> mmap.mmap:
        if self._unallocated:
            try:
                return self._free.get_nowait()
            except queue.Empty:
                self._unallocated -= 1
                buffer = mmap.mmap(-1, self._chunk_size)  # page-aligned, for O_DIRECT
                self._owned.append(buffer)
                return buffer
        return self._free.get()  # all in flight: wait for the writer to release one


def _cached(fd: int, offset: int) -> bool:
    """Whether the page at `offset` is in the page cache: a read that may not wait for the disk
    (RWF_NOWAIT) gets it. Unknown (no RWF_NOWAIT here) counts as cached: nothing changes then."""
    nowait = getattr(os, "RWF_NOWAIT", 0)
    if not nowait:
        return True
    try:
        return os.preadv(fd, [bytearray(_DIRECT_ALIGN)], offset, nowait) > 0
    except BlockingIOError:
        return False
    except OSError:
        return True


class _ReadAhead:
    """`_Chunks` read by a thread of their own, ahead of the hashing: with a cold source the disk
    reads the next chunks while the calling thread hashes this one (as many as there are free
    buffers; the pool bounds the memory as before)."""

    _END = object()

    def __init__(self, chunks: _Chunks) -> None:
        self._chunks = chunks
        self._ready: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._direct = 2  # the first two chunks are read here: a small file starts no thread

    def _run(self) -> None:
        try:
            while not self._stop:
                view = self._chunks.next()
                self._ready.put(view)
                if not view:
                    return
        except BaseException as exc:  # handed to the caller: an error reading the source is its own
            self._ready.put(exc)
            return
        finally:
            self._ready.put(self._END)

    @property
    def direct(self) -> bool:
        return self._chunks.direct

    def next(self) -> memoryview:
        if self._direct:
            view = self._chunks.next()
            self._direct = self._direct - 1 if view else 0
            return view
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="blob-reader", daemon=True)
            self._thread.start()
        item = self._ready.get()
        if item is self._END:
            self._ready.put(self._END)
            return _Chunks._EMPTY
        if isinstance(item, BaseException):
            raise item
        return cast(memoryview, item)

    def release(self, view: memoryview) -> None:
        self._chunks.release(view)

    def close(self) -> None:
        self._stop = True
        # the reader may wait for a free buffer: give back what it read and no one took
        while self._thread is not None and self._thread.is_alive():
            try:
                item = self._ready.get(timeout=0.05)
            except queue.Empty:
                continue
            if isinstance(item, memoryview) and item:
                self._chunks.release(item)
        if self._thread is not None:
            self._thread.join()
        self._chunks.close()


def write_all(fd: int, *, flush_behind: bool = False, direct: bool = False) -> Writer:
    """A writer that writes every byte of each chunk to a file descriptor.

    With `flush_behind` (for a regular file that is written once and kept), it also starts the disk
    writing each `WRITEBACK_EVERY` bytes as soon as they are written (Linux `sync_file_range`), waits for
    the bytes more than `DROP_BEHIND` behind and drops them from the page cache. The disk then works
    while the copy runs, so the caller's final fsync finds almost nothing left to write, and a large
    blob neither piles up dirty pages nor evicts the page cache. It is only a hint: durability still
    comes from the caller's fsync. Elsewhere, or on a descriptor that does not support it, nothing
    extra happens.

    With `direct` too (Linux; for chunks in page-aligned buffers, as `copy_hashing(reuse_buffers=True)`
    reads into), whole blocks at block offsets are written with O_DIRECT from the first chunk on:
    from the chunk straight to the disk, without a copy into the page cache, which saves about a
    third of the CPU time of a store write (and, from the first chunk rather than after 8 MiB, about a
    tenth of the time of a docking's copies of 60-130 MiB clips). When the kernel refuses a chunk
    so (not aligned, the last partial chunk, a filesystem without O_DIRECT) O_DIRECT is turned off
    and the rest is written normally.
    The caller must not seek the descriptor while writing through it.
    """
    writer = FileWriter(fd, flush_behind=flush_behind, direct=direct)
    if not writer.hinting and not writer.may_go_direct:

        def write(view: memoryview) -> None:
            while view:
                written = os.write(fd, view)
                view = view[written:]

        return write
    return writer.write


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
_O_DIRECT = getattr(os, "O_DIRECT", 0) if sys.platform.startswith("linux") else 0
_DIRECT_ALIGN = 4096  # O_DIRECT offsets, lengths and buffers: a multiple of the logical block size


class FileWriter:
    """`write_all` with flush-behind and O_DIRECT: tracks the file offset it writes at."""

    def __init__(self, fd: int, *, flush_behind: bool, direct: bool) -> None:
        self.fd = fd
        try:
            offset = os.lseek(fd, 0, os.SEEK_CUR)
            seekable = True
        except OSError:  # a pipe or socket
            offset = 0
            seekable = False
        self.origin = self.written = self.started = self.dropped = offset
        self.hinting = flush_behind and seekable and _sync_file_range is not None
        self.may_go_direct = direct and seekable and bool(_O_DIRECT)
        self.direct = False

    def write(self, view: memoryview) -> None:
        if (
            self.may_go_direct
            and not self.direct
            and len(view) % _DIRECT_ALIGN == 0
            and self.written % _DIRECT_ALIGN == 0
            and (not self.hinting or self.started == self.written)
        ):
            self._set_direct(True)
        while view:
            try:
                written = os.write(self.fd, view)
            except OSError as exc:
                if not (self.direct and exc.errno == errno.EINVAL):
                    raise
                self._set_direct(False)  # the kernel refused this chunk without the page cache
                continue
            view = view[written:]
            self.written += written
        if self.direct:
            self.started = self.dropped = self.written  # nothing of it is in the page cache
        elif self.hinting:
            self._flush_behind()

    def stop_direct(self) -> None:
        """Back to writes through the page cache (before the descriptor is seeked or written elsewhere)."""
        if self.direct:
            self._set_direct(False)

    def _set_direct(self, on: bool) -> None:
        import fcntl  # POSIX only, like O_DIRECT

        flags = fcntl.fcntl(self.fd, fcntl.F_GETFL)
        try:
            fcntl.fcntl(self.fd, fcntl.F_SETFL, flags | _O_DIRECT if on else flags & ~_O_DIRECT)
        except OSError:
            if not on:
                raise
            self.may_go_direct = False  # the filesystem has no O_DIRECT
            return
        self.direct = on
        if not on:
            self.may_go_direct = False

    def _flush_behind(self) -> None:
        if self.written - self.started < WRITEBACK_EVERY:
            return
        self._sync(self.started, self.written - self.started, _SFR_WRITE)
        self.started = self.written
        upto = self.started - DROP_BEHIND
        if self.hinting and upto - self.dropped >= WRITEBACK_EVERY:
            self._sync(self.dropped, upto - self.dropped, _SFR_WAIT_BEFORE | _SFR_WRITE | _SFR_WAIT_AFTER)
            if self.hinting:
                os.posix_fadvise(self.fd, self.dropped, upto - self.dropped, os.POSIX_FADV_DONTNEED)
            self.dropped = upto

    def _sync(self, offset: int, length: int, flags: int) -> None:
        assert _sync_file_range is not None
        if _sync_file_range(self.fd, offset, length, flags) == 0:
            return
        code = ctypes.get_errno()
        if code in _NOT_SUPPORTED:
            self.hinting = False
            return
        raise OSError(code, os.strerror(code))  # e.g. EIO: the disk failed, say so now


def hash_stream(source: BinaryIO, chunk_size: int = CHUNK_SIZE) -> CopyResult:
    return copy_hashing(source, None, chunk_size=chunk_size)
