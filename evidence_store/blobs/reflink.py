"""Sharing one file's blocks with another, on filesystems that can (XFS with reflink, btrfs, bcachefs).

The export writes each original into its package directory and again into the package's zip. Where the
filesystem can clone a range (Linux `FICLONERANGE`), the zip's copy is made by sharing the directory
copy's blocks: no second write of the data, no second copy on disk, and each file stays independent
(a later write to either one is copied on write, never seen by the other). Elsewhere (ext4, tmpfs)
the caller writes both copies; `can_share_blocks` says which, before any data is written.

No library wraps this ioctl (Python's `os.copy_file_range` may clone too, but never says whether it
did, and the caller must know before it chooses how to write), so it is called here directly.
"""

from __future__ import annotations

import contextlib
import errno
import os
import struct
import sys
import uuid
from pathlib import Path

# _IOW(0x94, 13, struct file_clone_range) from linux/fs.h; the struct is {s64 src_fd; u64 src_offset;
# u64 src_length; u64 dest_offset}
FICLONERANGE = 0x4020940D
_CLONE_RANGE = struct.Struct("=qQQQ")
PROBE_ALIGN = 4096  # the alignment of the ranges the export clones (a zip entry's data offset)


def clone_range(
    source_fd: int, target_fd: int, length: int, target_offset: int, source_offset: int = 0
) -> None:
    """Make `length` bytes of the target at `target_offset` share the source's blocks from
    `source_offset`. Offsets must be multiples of the filesystem block; the length too, unless the
    range ends at the source's end and the target's range at or past the target's end. Raises OSError
    (EOPNOTSUPP, EXDEV, EINVAL, ENOTTY...) when the filesystem cannot."""
    if not sys.platform.startswith("linux"):
        raise OSError(errno.EOPNOTSUPP, "cloning file ranges needs Linux (FICLONERANGE)")
    import fcntl  # POSIX only

    fcntl.ioctl(target_fd, FICLONERANGE, _CLONE_RANGE.pack(source_fd, source_offset, length, target_offset))


def can_share_blocks(directory: Path) -> bool:
    """Whether files in `directory` can share blocks at 4 KiB-aligned offsets: a probe with two small
    hidden files (removed again), cloning one block of the first to the second's second block."""
    probe = uuid.uuid4().hex[:8]
    source_path, target_path = directory / f".reflink-probe-{probe}", directory / f".reflink-probe-{probe}.to"
    source = target = -1
    try:
        source = os.open(source_path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        target = os.open(target_path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(source, bytes(range(256)) * (PROBE_ALIGN // 256))
        os.write(target, bytes(PROBE_ALIGN))
        clone_range(source, target, PROBE_ALIGN, PROBE_ALIGN)
        return os.pread(target, PROBE_ALIGN, PROBE_ALIGN) == bytes(range(256)) * (PROBE_ALIGN // 256)
    except OSError:
        return False
    finally:
        for fd in (source, target):
            if fd >= 0:
                os.close(fd)
        for path in (source_path, target_path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def copy_range(source_fd: int, target_fd: int, length: int, target_offset: int) -> None:
    """The same bytes as `clone_range`, copied in the kernel (shared where it can, written where not):
    the fallback when a clone the probe allowed is refused after all."""
    done = 0
    while done < length:
        copied = os.copy_file_range(source_fd, target_fd, length - done, done, target_offset + done)
        if copied == 0:
            raise OSError(errno.EIO, f"the source ended after {done} of {length} bytes")
        done += copied
