"""Reading a SQLite database file into the page cache ahead of a pass that reads most of it.

A relink of everything (`evidence_store.cases.linking_service.relink_all`) reads nearly every page of
the clip, document and link tables, in index order, one 4 KiB page at a time. With the file out of
the page cache (a station's nightly relink, after a day of dockings pushed it out) each of those is a
random read from the disk. One sequential read of the whole file, by a thread beside the pass, brings
it in at the disk's streaming speed instead; the pass then finds its pages cached. The thread holds no
lock and no connection: it only reads the file (`read(2)` into one buffer, the GIL released), and the
page cache serves both. A file already cached costs one copy per page on the other core.

Only when the files fit: at most `MAX_SHARE_OF_AVAILABLE_MEMORY` of the memory the kernel says is
available, so the read never pushes out more than it brings in. PostgreSQL keeps its own buffers
(its `pg_prewarm` extension does this there): nothing is done for it.

Measured by bench/bench_linking.py (cold rounds, with and without); see bench/RESULTS.md.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection

from evidence_store.db.columns import is_sqlite

READ_SIZE = 8 * 1024 * 1024
# the files are read only if they take at most this share of the available memory (0: never)
MAX_SHARE_OF_AVAILABLE_MEMORY = 0.5


class Prewarm:
    """The reading thread of `prewarmed` (None when nothing is read): `wait` for it to finish."""

    def __init__(self, files: list[Path]) -> None:
        self.files = files
        self.bytes_read = 0
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        if files:
            self._thread = threading.Thread(target=self._read, name="db-prewarm", daemon=True)
            self._thread.start()
        else:
            self._done.set()

    @property
    def reading(self) -> bool:
        """The thread is still reading."""
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Whether every file was read to its end (or nothing was to be read) within `timeout`."""
        return self._done.wait(timeout)

    def stop(self) -> None:
        """Stop after the read in progress (the pass is over: what is left is not needed)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _read(self) -> None:
        buffer = bytearray(READ_SIZE)
        for file in self.files:
            # only a hint for the disk: a file that went, or cannot be read, is left to the pass
            try:
                fd = os.open(file, os.O_RDONLY)
            except OSError:
                continue
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
                while not self._stop.is_set() and (n := os.readv(fd, [buffer])):
                    self.bytes_read += n
            except OSError:
                pass
            finally:
                os.close(fd)
            if self._stop.is_set():
                return
        self._done.set()


def database_files(connection: Connection) -> list[Path]:
    """The main database file of a SQLite connection and its WAL (those that exist); none for an
    in-memory database or another dialect."""
    if not is_sqlite(connection):
        return []
    files: list[Path] = []
    for _seq, name, path in connection.exec_driver_sql("PRAGMA database_list").fetchall():
        if name == "main" and path:
            main = Path(path)
            files = [file for file in (main, main.with_name(main.name + "-wal")) if file.exists()]
    return files


def available_memory() -> int | None:
    """What the kernel says is available for the page cache without swapping (Linux), or None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def worth_reading(files: list[Path], available: int | None, share: float) -> bool:
    """Read the files ahead only if they fit in `share` of the available memory (unknown: no)."""
    if not files or available is None or share <= 0:
        return False
    total = 0
    for file in files:
        try:
            total += file.stat().st_size
        except OSError:
            return False
    return total <= available * share


@contextmanager
def prewarmed(connection: Connection) -> Iterator[Prewarm]:
    """Within the block, a thread reads the connection's SQLite database files into the page cache
    (when they fit: `worth_reading`); it stops when the block ends, read to the end or not."""
    files = database_files(connection)
    if not worth_reading(files, available_memory(), MAX_SHARE_OF_AVAILABLE_MEMORY):
        files = []
    prewarm = Prewarm(files)
    try:
        yield prewarm
    finally:
        prewarm.stop()
