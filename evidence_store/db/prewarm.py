"""Reading a SQLite database file into the page cache ahead of a pass that reads most of it.

A relink of everything (`evidence_store.cases.linking_service.relink_all`) reads nearly every page of
the clip, document and link tables, in index order, one 4 KiB page at a time. With the file out of
the page cache (a station's nightly relink, after a day of dockings pushed it out) each of those is a
random read from the disk. One sequential read of the whole file beside the pass brings it in at the
disk's streaming speed instead; the pass then finds its pages cached. A file already cached costs one
copy per page on the other core.

The read runs in a child process, never in this one: SQLite's locks are POSIX record locks, which the
kernel drops for the whole process when any descriptor of the file is closed. A thread here opening
and closing the database file would silently release the connections' locks, and another process
closing its last connection would then checkpoint and delete the WAL under them (a test shows it).

Only when it pays and fits: files of at least `MIN_BYTES` (a pass over a small file is quick anyway,
and starting a process is not), taking at most `MAX_SHARE_OF_AVAILABLE_MEMORY` of the memory the
kernel says is available, so the read never pushes out more than it brings in. PostgreSQL keeps its
own buffers (its `pg_prewarm` extension does this there): nothing is done for it.

Measured by bench/bench_linking.py (cold rounds, with and without); see bench/RESULTS.md.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection

from evidence_store.db.columns import is_sqlite

MIN_BYTES = 64 * 1024 * 1024
# the files are read only if they take at most this share of the available memory (0: never)
MAX_SHARE_OF_AVAILABLE_MEMORY = 0.5

# the child: reads each file named to its end, 8 MiB at a time, and prints how many bytes it read
_READER = """
import os, sys
buffer, total = bytearray(8 << 20), 0
for name in sys.argv[1:]:
    try:
        fd = os.open(name, os.O_RDONLY)
    except OSError:
        continue
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        while n := os.readv(fd, [buffer]):
            total += n
    except OSError:
        pass
    finally:
        os.close(fd)
print(total)
"""


class Prewarm:
    """The reading child of `prewarmed` (none when nothing is read)."""

    def __init__(self, files: list[Path]) -> None:
        self.files = files
        self.bytes_read = 0
        self._child: subprocess.Popen[str] | None = None
        if files and sys.executable:  # an embedded interpreter may have none to start
            try:  # isolated, no site: it starts in a few milliseconds and imports nothing of ours
                self._child = subprocess.Popen(
                    [sys.executable, "-I", "-S", "-c", _READER, *map(str, files)],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    text=True,
                )
            except OSError:
                self._child = None  # only a hint: the pass reads what it needs anyway

    @property
    def reading(self) -> bool:
        """The child is still reading."""
        return self._child is not None and self._child.poll() is None

    def wait(self, timeout: float | None = None) -> bool:
        """Whether every file was read to its end (or nothing was to be read) within `timeout`."""
        if self._child is None:
            return True
        try:
            out, _ = self._child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        self._finished(out)
        return self._child.returncode == 0

    def stop(self) -> None:
        """Stop reading (the pass is over: what is left is not needed)."""
        if self._child is None or self._child.returncode is not None:
            return
        if self._child.poll() is None:
            self._child.kill()
        out, _ = self._child.communicate()
        self._finished(out)

    def _finished(self, out: str) -> None:
        if self._child is not None and self._child.returncode == 0 and out.strip().isdigit():
            self.bytes_read = int(out)


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


def worth_reading(files: list[Path], available: int | None, share: float, smallest: int = 0) -> bool:
    """Read the files ahead only if they take at least `smallest` bytes and fit in `share` of the
    available memory (unknown: no)."""
    if not files or available is None or share <= 0:
        return False
    total = 0
    for file in files:
        try:
            total += file.stat().st_size
        except OSError:
            return False
    return smallest <= total <= available * share


@contextmanager
def prewarmed(connection: Connection) -> Iterator[Prewarm]:
    """Within the block, a child process reads the connection's SQLite database files into the page
    cache (when it pays and they fit: `worth_reading`); it stops when the block ends, read to the end
    or not."""
    files = database_files(connection)
    if not worth_reading(files, available_memory(), MAX_SHARE_OF_AVAILABLE_MEMORY, MIN_BYTES):
        files = []
    prewarm = Prewarm(files)
    try:
        yield prewarm
    finally:
        prewarm.stop()
