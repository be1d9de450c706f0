"""Reading a volume's first files into the page cache while `evidence import` starts (issue 21).

Before its pull copies a byte, the import process spends most of a second importing its libraries and
opening the station: work for one CPU while the disk the footage is on stands idle. `StartupPrefetch`
reads the files the pull takes first (not through FUSE: see `start`), in the pull's order
(`ingest.volume.walk_volume`: a directory's files sorted, then its sub-directories sorted), in a
thread of its own during that time, so the pull finds them in the page cache. The pull stops it
before it starts (`stop`): from then on the copy has the disk to itself (a cold file is read with
O_DIRECT by the store's read-ahead, which a second reader would only slow down).

It only reads, and what it reads decides nothing: the pull lists, opens, checks and copies every file
as it would without it. The same safety as the walk's: directories and files are opened relative to
their directory's descriptor with O_NOFOLLOW, a link is not followed, only regular files are read
(O_NONBLOCK: a FIFO does not block), and any error ends the prefetch quietly. At most `budget` bytes
are read, so a large folder does not fill the page cache before the pull starts.

Light (the standard library and `ingest.mount`'s mount table, which the pull imports anyway): it runs
before the command imports anything heavy.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Generator
from pathlib import Path

from ingest.mount import MountEntry, mount_of
from ingest.names import SYSTEM_DIRS

CHUNK = 4 * 1024 * 1024
# ~0.7-1.3 s of start-up at the ~1 GB/s a station's disk reads: more than that is not read in time
DEFAULT_BUDGET = 1024 * 1024 * 1024
STOP_WAIT_S = 10.0
FUSE_TYPES = {"fuse", "fuseblk"}  # as mountinfo names them: "fuse.exfat-fuse", "fuseblk", ...
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_OPEN_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class StartupPrefetch:
    """A thread reading the files under `root` in the pull's order until `stop` or `budget` bytes."""

    def __init__(self, root: Path, budget: int = DEFAULT_BUDGET) -> None:
        self.root = root
        self.budget = budget
        self.bytes_read = 0
        self.files_read: list[bytes] = []  # relative raw paths, in the order they were read
        self.done = threading.Event()  # it has read all it will read
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="import-prefetch", daemon=True)

    def start(self, mounts: list[MountEntry] | None = None) -> StartupPrefetch:
        """Start reading, unless the volume is read through FUSE (`mounts`: the mount table, for
        tests): a FUSE file's cached pages are dropped when it is opened again (unless its daemon
        says to keep them), so the pull would read those bytes a second time; measured, an exFAT
        import through exfat-fuse took longer with the prefetch (bench/RESULTS.md)."""
        try:
            mount = mount_of(self.root, mounts)
        except OSError:
            mount = None
        if mount is not None and mount.fs_type.split(".")[0] in FUSE_TYPES:
            self.done.set()
            return self
        self._thread.start()
        return self

    def stop(self) -> int:
        """Stop reading (at the end of the chunk being read) and wait for it; the bytes read. A read
        that hangs (a FUSE daemon that stopped answering) is not waited for past `STOP_WAIT_S`: the
        pull meets the volume's state itself."""
        self._stopping.set()
        if self._thread.ident is not None:  # started
            self._thread.join(STOP_WAIT_S)
        return self.bytes_read

    def _run(self) -> None:
        buffer = bytearray(CHUNK)
        try:
            root_fd = os.open(self.root, _OPEN_DIR)
        except OSError:
            self.done.set()
            return
        files = _files_in_pull_order(root_fd, b"")
        try:
            for dirfd, path, name in files:
                if not self._read(dirfd, path, name, buffer):
                    return
        except OSError:
            return  # the pull meets the same error and records it; here it only ends the prefetch
        finally:
            files.close()  # its sub-directories' descriptors, before the root's
            os.close(root_fd)
            self.done.set()

    def _read(self, dirfd: int, path: bytes, name: bytes, buffer: bytearray) -> bool:
        """Read one file through the page cache; False once stopped or out of budget. A file that
        cannot be opened or read (a link, gone, unreadable) is passed over: the pull records it."""
        try:
            fd = os.open(name, _OPEN_FILE, dir_fd=dirfd)
        except OSError:
            return not self._stopping.is_set()
        try:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                self.files_read.append(path)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)  # the kernel's larger read-ahead
                while not self._stopping.is_set() and self.bytes_read < self.budget:
                    n = os.readv(fd, [buffer])
                    if not n:
                        break
                    self.bytes_read += n
        except OSError:
            pass
        finally:
            os.close(fd)
        return not self._stopping.is_set() and self.bytes_read < self.budget


def _files_in_pull_order(dirfd: int, rel: bytes) -> Generator[tuple[int, bytes, bytes], None, None]:
    """(directory fd, relative raw path, raw name) of the entries that are not directories, in the
    order `ingest.volume.walk_volume` yields them; links to directories and system folders skipped."""
    dirs: list[bytes] = []
    files: list[bytes] = []
    with os.scandir(dirfd) as entries:
        for entry in entries:
            (dirs if entry.is_dir(follow_symlinks=False) else files).append(os.fsencode(entry.name))
    for name in sorted(files):
        yield dirfd, rel + name, name
    for name in sorted(dirs):
        if name in SYSTEM_DIRS:
            continue
        sub_fd = os.open(name, _OPEN_DIR, dir_fd=dirfd)
        try:
            yield from _files_in_pull_order(sub_fd, rel + name + b"/")
        finally:
            os.close(sub_fd)
