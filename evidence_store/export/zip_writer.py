"""Writing an export package's files: into its directory and, at the same time, into its zip (R12).

An original is read once (`copy_hashing`): a writer thread puts it in the directory and a second one in
the zip (stored; its CRC-32 computed as it goes with zlib-ng), both with O_DIRECT from the copy's
page-aligned buffers, the zip entry's data padded to a 4 KiB boundary. Where the filesystem can share
blocks (XFS with reflink, btrfs), the zip's range is cloned from the directory's copy once that is on
disk instead of written (`evidence_store.blobs.reflink`). Every other file goes into the zip at the end,
in path order (`PackageWriter.zip_rest`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import shutil
import struct
import threading
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from zlib_ng import zlib_ng

from evidence_store.blobs.hashing_copy import FileWriter, copy_hashing, write_all
from evidence_store.blobs.reflink import can_share_blocks, clone_range, copy_range
from evidence_store.export.manifest import check_path

SMALL_CHUNK = 1 << 20

log = logging.getLogger(__name__)


def _sha256_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(SMALL_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


class _ForkJoin:
    """Runs one function on each chunk in a thread of its own while the caller does its part, and
    returns when both are done with the chunk: the copy's buffers are reused as soon as the write
    returns (`copy_hashing(reuse_buffers=True)`), so neither may keep them. On two cores the
    reader's SHA-256, the zip's CRC-32 and the two O_DIRECT writes overlap."""

    _DONE = object()

    def __init__(self, work: Callable[[memoryview], Any]) -> None:
        self._work = work
        self._todo: queue.Queue[object] = queue.Queue(maxsize=1)
        self._done: queue.Queue[BaseException | None] = queue.Queue(maxsize=1)
        self._thread = threading.Thread(target=self._loop, name="export-zip-writer", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while (item := self._todo.get()) is not self._DONE:
            try:
                self._work(item)  # type: ignore[arg-type]
                self._done.put(None)
            except BaseException as exc:
                self._done.put(exc)

    def __call__(self, view: memoryview, mine: Callable[[memoryview], Any]) -> None:
        self._todo.put(view)
        try:
            mine(view)
        finally:
            failure = self._done.get()  # wait even when ours failed: the buffer is about to be reused
        if failure is not None:
            raise failure

    def close(self) -> None:
        self._todo.put(self._DONE)
        self._thread.join()


def _settle_zip_entry(entry: Any, size: int, crc: int) -> None:
    """Tell zipfile's write handle the size and CRC-32 of data that did not pass through its `write`
    (written to the sink directly, or cloned): the three counters its `close` puts in the header.
    zipfile computes the CRC with zlib's crc32, which on this path would cost a core's worth of the
    SHA-256's time; the caller checks the entry's recorded values after `close`."""
    entry._file_size = entry._compress_size = size
    entry._crc = crc


class ZipSink:
    """The zip's file for `zipfile`: unbuffered writes with flush-behind, so the disk writes the zip
    while the copy runs and the final fsync is short. An original's data starts on a 4 KiB boundary
    (see `PackageWriter._aligned_zinfo`), so from its page-aligned buffers it is written with O_DIRECT,
    like the directory's copy; `zipfile`'s seeks (to rewrite an entry's header) end that mode."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o444)
        self._run: FileWriter | None = None  # the writes since the last seek

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        if self._run is None:
            self._run = FileWriter(self.fd, flush_behind=True, direct=True)
        self._run.write(view)
        return len(view)

    def _end_run(self) -> None:
        if self._run is not None:
            self._run.stop_direct()
            self._run = None

    def share(self, source_fd: int, length: int, at: int) -> bool:
        """Fill the range at `at` (the file's end: nothing written there yet) with the source file's
        first `length` bytes by sharing its blocks (True); copied in the kernel instead if the clone is
        refused after all (False)."""
        try:
            clone_range(source_fd, self.fd, length, at)
        except OSError as exc:
            log.warning("the zip could not share the original's blocks (%s): copying them instead", exc)
            copy_range(source_fd, self.fd, length, at)
            return False
        return True

    def tell(self) -> int:
        return os.lseek(self.fd, 0, os.SEEK_CUR)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._end_run()
        return os.lseek(self.fd, offset, whence)

    def seekable(self) -> bool:
        return True

    def flush(self) -> None:
        return None

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            try:
                self._end_run()
                os.fsync(fd)
            finally:
                os.close(fd)


# Extra field of an original's local zip header that pads it so the data starts on a 4 KiB boundary
# (the id Android's zipalign uses: two bytes of alignment, then zeros; unzip tools skip it).
_ALIGNMENT_EXTRA_ID = 0xD935
_ZIP_DATA_ALIGN = 4096


class PackageWriter:
    """Writes files into the partial directory and the zip at the same time."""

    def __init__(
        self,
        root: Path,
        zip_file: zipfile.ZipFile | None,
        sink: ZipSink | None,
        top: str,
        when: datetime,
        *,
        share_blocks: bool = False,
    ) -> None:
        self.root = root
        self.zip = zip_file
        self.sink = sink
        self.share_blocks = share_blocks  # the zip's originals are clones of the directory's copies
        self.shared_bytes = 0
        self.top = top
        self.date_time = (when.year, when.month, when.day, when.hour, when.minute, when.second)
        self.hashes: dict[str, tuple[str, int]] = {}
        self.in_zip: set[str] = set()

    def _zinfo(self, rel: str, size: int) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(f"{self.top}/{rel}", date_time=self.date_time)
        info.compress_type = zipfile.ZIP_STORED
        info.external_attr = 0o444 << 16
        info.file_size = size
        return info

    def _aligned_zinfo(self, rel: str, size: int) -> zipfile.ZipInfo:
        """An entry whose data will start on a 4 KiB boundary of the zip file (for O_DIRECT)."""
        assert self.sink is not None
        info = self._zinfo(rel, size)
        info.CRC = info.compress_size = 0  # as `ZipFile.open(..., "w")` sets them before the header
        zip64 = size * 1.05 > zipfile.ZIP64_LIMIT  # as it decides
        header = len(info.FileHeader(zip64))
        pad = -(self.sink.tell() + header + 4) % _ZIP_DATA_ALIGN
        if pad < 2:
            pad += _ZIP_DATA_ALIGN
        info.extra = struct.pack("<HHH", _ALIGNMENT_EXTRA_ID, pad, _ZIP_DATA_ALIGN) + bytes(pad - 2)
        return info

    def path(self, rel: str) -> Path:
        target = self.root / check_path(rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def copy_original(self, rel: str, source: Any, size: int) -> tuple[str, int]:
        """Copy a stored original in one read: hash inline, write to the directory and the zip."""
        target = self.path(rel)
        # readable too: the zip clones (or copies) its range from this descriptor
        fd = os.open(target, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o444)
        try:
            write_dir = write_all(fd, flush_behind=True, direct=True)
            if self.zip is not None:
                result = self._copy_with_zip(rel, source, size, fd, write_dir)
            else:
                result = copy_hashing(source, write_dir, reuse_buffers=True)
                os.fsync(fd)
        finally:
            os.close(fd)
        self.hashes[rel] = (result.sha256, result.size)
        return result.sha256, result.size

    def _copy_with_zip(
        self, rel: str, source: Any, size: int, fd: int, write_dir: Callable[[memoryview], None]
    ) -> Any:
        """The copy to the directory, and the original's zip entry: its CRC-32 (zlib-ng's, beside the
        SHA-256 on the other core) and its data, written from the same buffers or, where the filesystem
        shares blocks, cloned from the directory's copy once that is on disk."""
        assert self.zip is not None and self.sink is not None
        sink = self.sink
        info = self._aligned_zinfo(rel, size)
        entry = self.zip.open(info, "w")
        data_at = self.sink.tell()
        crc = 0

        def zip_side(view: memoryview) -> None:
            nonlocal crc
            crc = zlib_ng.crc32(view, crc)
            if not self.share_blocks:
                sink.write(view)

        def with_crc(view: memoryview) -> None:
            write_dir(view)
            zip_side(view)

        # the zip's own write runs beside the directory's; the CRC alone (~25 GB/s) needs no thread
        both = _ForkJoin(zip_side) if not self.share_blocks else None
        write = with_crc if both is None else lambda view: both(view, write_dir)
        try:
            try:
                result = copy_hashing(source, write, reuse_buffers=True)
            finally:
                if both is not None:
                    both.close()
            if self.share_blocks:  # the range the clone will fill: zipfile goes on after it
                self.sink.seek(data_at + result.size)
            _settle_zip_entry(entry, result.size, crc)
        finally:
            entry.close()
        if (info.CRC, info.file_size, info.compress_size) != (crc, result.size, result.size):
            raise RuntimeError(f"zipfile did not record the CRC-32 and size given for {rel}")
        info.extra = b""  # the padding belongs in the local header only, not the directory
        os.fsync(fd)
        # the copy just written and flushed, shared into the zip's range
        if self.share_blocks and self.sink.share(fd, result.size, data_at):
            self.shared_bytes += result.size
        self.in_zip.add(rel)
        return result

    def write_bytes(self, rel: str, data: bytes) -> None:
        target = self.path(rel)
        with target.open("xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        self.hashes[rel] = (hashlib.sha256(data).hexdigest(), len(data))

    def adopt(self, rel: str) -> tuple[str, int]:
        """A file already written at `rel` (a derivative): hash it and keep it."""
        target = self.root / check_path(rel)
        with target.open("rb+") as handle:
            os.fsync(handle.fileno())
        self.hashes[rel] = _sha256_file(target)
        return self.hashes[rel]

    def zip_rest(self) -> None:
        """Every file not yet in the zip, in path order."""
        if self.zip is None:
            return
        for rel in sorted(self.hashes):
            if rel in self.in_zip:
                continue
            source = self.root / rel
            with (
                source.open("rb") as handle,
                self.zip.open(self._zinfo(rel, source.stat().st_size), "w") as entry,
            ):
                shutil.copyfileobj(handle, entry, SMALL_CHUNK)
            self.in_zip.add(rel)


@contextmanager
def package_writer(root: Path, zip_path: Path | None, top: str, when: datetime) -> Iterator[PackageWriter]:
    """A writer into `root` and, if `zip_path` is given, a zip of it whose entries sit under `top/`.
    When the block ends the zip's central directory is written and the zip flushed to disk (which
    fails too when the disk is full)."""
    share_blocks = zip_path is not None and can_share_blocks(zip_path.parent)
    sink = ZipSink(zip_path) if zip_path else None
    zip_file = zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED, allowZip64=True) if sink else None
    try:
        yield PackageWriter(root, zip_file, sink, top, when, share_blocks=share_blocks)
    finally:
        try:
            if zip_file is not None:
                zip_file.close()  # writes the central directory: fails too when the disk is full
        finally:
            if sink is not None:
                sink.close()  # fsync
