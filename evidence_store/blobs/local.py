"""The local filesystem blob store (the embedded default).

Layout: ``<root>/sha256/ab/cd/<sha256>`` for blobs, ``<root>/incoming/`` for writes in progress (same
filesystem, so the final step is an atomic link). A write hashes inline, fsyncs the file, links it to
its content address (link, unlike rename, never replaces an existing file), fsyncs the directory (and
the parent of each directory the write had to make) and makes the blob read-only. A crash leaves at
worst a temp file in ``incoming/``, never a partial blob.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import logging
import os
import re
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from evidence_store.blobs.hashing_copy import CHUNK_SIZE, copy_hashing, hash_stream, write_all
from evidence_store.errors import BlobMismatchError, BlobNotFoundError, StoreError
from evidence_store.ports import BlobListing, StoredBlob

log = logging.getLogger(__name__)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
try:
    _LIBC: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover - not Linux
    _LIBC = None


def check_sha256(sha256: str) -> str:
    """Refuse anything that is not a lowercase hex SHA-256 (it becomes a path)."""
    if not _SHA256.match(sha256):
        raise ValueError(f"not a sha256 digest: {sha256!r}")
    return sha256


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _directories_made(directory: Path) -> list[Path]:
    """Make `directory` and any of its parents missing; return those that were missing, topmost
    first (also one another writer made meanwhile: its entry may not be durable yet either)."""
    missing: list[Path] = []
    while not directory.is_dir():
        missing.append(directory)
        directory = directory.parent
    missing.reverse()
    for each in missing:
        # made meanwhile by another writer (or not a directory: the link then fails)
        with contextlib.suppress(FileExistsError):
            each.mkdir()
    return missing


def _fsync_entries(path: Path, made: list[Path]) -> None:
    """Make the entry of `path` durable, and the entry of each directory made for it: a new
    directory's own fsync does not, its parent's does (ext4's journal happens to cover it; POSIX does
    not say so)."""
    for directory in made:
        _fsync_dir(directory.parent)
    _fsync_dir(path.parent)


def _directories_in(directory: Path) -> list[Path]:
    """The directories (not symlinks) in `directory`, by name."""
    with os.scandir(directory) as entries:
        return sorted(Path(e.path) for e in entries if e.is_dir(follow_symlinks=False))


class LocalBlobStore:
    name = "local"

    def __init__(self, root: Path, *, chunk_size: int = CHUNK_SIZE, read_ahead: bool = False) -> None:
        self.root = root
        self.chunk_size = chunk_size
        # a cold source read with O_DIRECT by a thread ahead of the hashing (`copy_hashing`; issue 21):
        # the setting `store_direct_reads`, off unless a disk is measured to gain from it
        self.read_ahead = read_ahead
        self._blobs = root / "sha256"
        self._incoming = root / "incoming"
        try:
            self._blobs.mkdir(parents=True, exist_ok=True)
            self._incoming.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create blob store at {root}: {exc.strerror}") from exc

    def path_for(self, sha256: str) -> Path:
        check_sha256(sha256)
        return self._blobs / sha256[:2] / sha256[2:4] / sha256

    def put(
        self, source: BinaryIO, *, expected_sha256: str | None = None, durable: bool = True
    ) -> StoredBlob:
        """Store `source` under its sha256. An error reading `source` propagates as it is (the caller
        knows whether a recorder or a file failed); an error on the store's side is a `StoreError`."""
        temp = self._incoming / f"{uuid.uuid4().hex}.part"
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise StoreError(f"cannot write into {self._incoming}: {exc.strerror}") from exc
        # held until the temp file is gone: `clear_stale_incoming` takes only files nobody holds
        owner_fd = os.open(temp, os.O_RDONLY | os.O_CLOEXEC)
        fcntl.flock(owner_fd, fcntl.LOCK_EX)
        write_to_temp = write_all(fd, flush_behind=True, direct=True)

        def write(view: memoryview) -> None:
            try:
                write_to_temp(view)
            except OSError as exc:
                raise StoreError(f"writing blob failed: {exc.strerror or exc}") from exc

        linked = False
        try:
            try:
                # `write` is done with each chunk when it returns: the buffers can be reused.
                result = copy_hashing(
                    source, write, chunk_size=self.chunk_size, reuse_buffers=True, read_ahead=self.read_ahead
                )
                try:
                    if durable:
                        os.fsync(fd)
                except OSError as exc:
                    raise StoreError(f"flushing blob to disk failed: {exc.strerror or exc}") from exc
            finally:
                os.close(fd)
            if expected_sha256 is not None and result.sha256 != expected_sha256:
                raise BlobMismatchError(
                    f"bytes read hash to {result.sha256}, expected {expected_sha256}: nothing stored"
                )
            final = self.path_for(result.sha256)
            try:
                made = _directories_made(final.parent)
                os.chmod(temp, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
                try:
                    os.link(temp, final)
                    linked = True
                except FileExistsError:
                    if self._holds(final, result.sha256, result.size):
                        return StoredBlob(result.sha256, result.size, created=False)
                    # A blob left by a crash or a failed flush before it was on record may not hold
                    # its bytes: the verified copy just written takes its place (R10). Said in the log:
                    # were it a blob on record, `evidence scrub` would have reported it damaged too.
                    log.warning(
                        "blob %s in the store did not hold its bytes: replaced by a verified copy",
                        result.sha256,
                    )
                    os.replace(temp, final)
                    linked = True
                if durable:
                    _fsync_entries(final, made)
            except OSError as exc:
                raise StoreError(f"storing blob {result.sha256} failed: {exc.strerror or exc}") from exc
            return StoredBlob(result.sha256, result.size, created=True)
        finally:
            temp.unlink(missing_ok=True)
            os.close(owner_fd)
            if linked and durable:
                _fsync_dir(self._incoming)

    def _holds(self, path: Path, sha256: str, size: int) -> bool:
        """Whether the blob at `path` has exactly the bytes that hash to `sha256`."""
        try:
            if path.stat().st_size != size:
                return False
            with path.open("rb") as handle:
                return hash_stream(handle, self.chunk_size).sha256 == sha256
        except OSError:
            return False

    def sync(self) -> None:
        """Flush the store's whole filesystem (data and directories) in one call: syncfs(2). A failed
        flush (EIO, ENOSPC) raises `OSError`: the bytes written since the last flush may be lost."""
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            if _LIBC is None:
                os.sync()  # pragma: no cover - not Linux; sync(2) reports no error
                return
            if _LIBC.syncfs(fd) != 0:
                code = ctypes.get_errno()
                if code != errno.ENOSYS:
                    raise OSError(code, f"syncfs of {self.root}: {os.strerror(code)}")
                os.sync()  # pragma: no cover - a kernel without syncfs
        finally:
            os.close(fd)

    def open(self, sha256: str) -> BinaryIO:
        try:
            return self.path_for(sha256).open("rb")
        except FileNotFoundError as exc:
            raise BlobNotFoundError(f"blob {sha256} is not in the local store") from exc

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def size(self, sha256: str) -> int:
        try:
            return self.path_for(sha256).stat().st_size
        except FileNotFoundError as exc:
            raise BlobNotFoundError(f"blob {sha256} is not in the local store") from exc

    def rehash(self, sha256: str) -> str:
        with self.open(sha256) as handle:
            return hash_stream(handle, self.chunk_size).sha256

    def iter_blobs(self) -> Iterator[BlobListing]:
        """The blobs at their content address. Anything else in the tree (a stray file where a
        directory belongs, a name that is not a digest, a blob under another address) is not one of
        ours and is left out, as the S3 store's listing leaves out keys not its own."""
        for first in _directories_in(self._blobs):
            for second in _directories_in(first):
                for entry in os.scandir(second):
                    name = entry.name
                    if (
                        entry.is_file(follow_symlinks=False)
                        and _SHA256.match(name)
                        and name[:2] == first.name
                        and name[2:4] == second.name
                    ):
                        yield BlobListing(name, entry.stat(follow_symlinks=False).st_size)

    def stale_incoming(self) -> list[Path]:
        """Temp files left by a crash mid-write: never blobs, safe to report and clear."""
        return sorted(self._incoming.glob("*.part"))

    def clear_stale_incoming(self) -> list[tuple[str, int]]:
        """Remove the temp files no live process is writing (its lock went with it); (name, size) of
        each removed. A file still being written keeps its writer's lock and is left alone."""
        removed = []
        for path in self.stale_incoming():
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # finished meanwhile
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live process writes it
                size = os.fstat(fd).st_size
                path.unlink(missing_ok=True)
                removed.append((path.name, size))
            finally:
                os.close(fd)
        if removed:
            _fsync_dir(self._incoming)
        return removed


class LocalRetentionPurger:
    """Deletes local blobs for the retention run only (R9, R10)."""

    def __init__(self, store: LocalBlobStore) -> None:
        self.store = store

    def purge(self, sha256: str, *, run_id: int) -> bool:
        path = self.store.path_for(sha256)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        _fsync_dir(path.parent)
        return True
