"""Reading a recorder's volume safely: listing it, reading its small info files, telling it is gone.

The walk goes through directory file descriptors (`os.fwalk`) and opens every file relative to its
directory with O_NOFOLLOW, so no symlink is followed and nothing outside the volume is read; FIFOs,
devices and sockets are listed and skipped; nothing on the volume is written.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from evidence_store.errors import StoreError
from ingest.devices.profiles import (
    RecorderProfile,
    decode_text,
    device_info_value,
    parse_device_info,
    read_clock_value,
)
from ingest.names import display_name
from ingest.pull_report import FileResult, PullRequest, TransferSummary

# Folders operating systems create on removable volumes; not recorder content.
SYSTEM_DIRS = {b"System Volume Information", b"$RECYCLE.BIN", b".Trashes", b".Spotlight-V100", b".fseventsd"}
# errno values that mean the volume itself is gone (recorder unplugged, FUSE daemon dead).
VOLUME_GONE = {errno.ENODEV, errno.ENXIO, errno.ENOTCONN, errno.ESHUTDOWN, errno.ENOMEDIUM}
INFO_FILE_LIMIT = 64 * 1024


class VolumeGone(Exception):
    """The recorder was unplugged (or its mount died) during the pull."""


class VolumeUnreadableError(StoreError):
    """The volume's root cannot be opened at all."""


@dataclass
class RecorderIdentity:
    """What the volume says about the recorder and its officer (device-info file, clock file, names)."""

    serial: str | None
    officer: str | None
    unit: str | None
    model: str | None
    clock: datetime | None  # the recorder's clock as read at docking (naive local)


def read_identity(root_fd: int, request: PullRequest) -> RecorderIdentity:
    """The recorder's serial, officer, unit, model and clock: as the request gives them, else from the
    profile's device-info and clock files, else (serial, officer) from the first file names."""
    profile = request.profile
    info: dict[str, str] = {}
    clock_text: str | None = None
    if profile.device_info_file:
        text = read_small_text(root_fd, profile.device_info_file, profile.text_encodings)
        if text is not None:
            info = parse_device_info(text)
    if profile.clock is not None:
        clock_text = (
            read_small_text(root_fd, profile.clock.file, profile.text_encodings)
            if profile.clock.file != profile.device_info_file or not info
            else None
        )
        if clock_text is None and profile.clock.file == profile.device_info_file:
            clock_text = "\n".join(f"{k}={v}" for k, v in info.items())
    serial = request.device_serial or device_info_value(profile, info, "serial")
    officer = request.officer_badge or device_info_value(profile, info, "officer")
    if serial is None or officer is None:
        facts = _facts_from_names(root_fd, request.profile)
        serial = serial or (facts[0] if facts else None)
        officer = officer or (facts[1] if facts else None)
    return RecorderIdentity(
        serial=serial,
        officer=officer,
        unit=device_info_value(profile, info, "unit"),
        model=device_info_value(profile, info, "model"),
        clock=read_clock_value(profile, clock_text) if clock_text else None,
    )


def _facts_from_names(
    root_fd: int, profile: RecorderProfile, limit: int = 500
) -> tuple[str | None, str | None] | None:
    seen = 0
    for _dirpath, _dirs, files, _fd in os.fwalk(".", dir_fd=root_fd, follow_symlinks=False):
        for raw in sorted(files):
            name, _exact = display_name(os.fsencode(raw))
            facts = profile.parse_name(name)
            if facts and (facts.serial or facts.officer):
                return facts.serial, facts.officer
            seen += 1
            if seen >= limit:
                return None
    return None


def walk_volume(
    root_fd: int, summary: TransferSummary
) -> Iterator[tuple[int, tuple[bytes, ...], str, bytes]]:
    """(directory fd, raw directory path parts, displayed directory path, raw file name)."""

    def on_error(exc: OSError) -> None:
        if exc.errno in VOLUME_GONE or not volume_alive(root_fd):
            raise VolumeGone(f"{exc.strerror} while listing {exc.filename}")
        summary.problems.append(f"cannot list {exc.filename}: {exc.strerror}")

    for dirpath, dirnames, filenames, dirfd in os.fwalk(
        b".", dir_fd=root_fd, follow_symlinks=False, onerror=on_error
    ):
        rel_dir = "" if dirpath == b"." else display_name(dirpath[2:])[0]
        raw_dir = tuple(dirpath[2:].split(b"/")) if dirpath != b"." else ()
        dirnames[:] = sorted(
            d for d in dirnames if d not in SYSTEM_DIRS and not _is_link(dirfd, d, rel_dir, summary)
        )
        for name in sorted(filenames):
            yield dirfd, raw_dir, rel_dir, name


def _is_link(dirfd: int, name: bytes, rel_dir: str, summary: TransferSummary) -> bool:
    try:
        st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    except OSError:
        return False
    if stat.S_ISLNK(st.st_mode):
        path = join_path(rel_dir, display_name(name)[0])
        summary.files_seen += 1
        summary.files_skipped += 1
        summary.files.append(FileResult(path, "skipped", warnings=["symlink to a directory: not followed"]))
        return True
    return False


def read_small_text(root_fd: int, rel_path: str, encodings: tuple[str, ...]) -> str | None:
    """Read a small text file at a relative path on the volume without following symlinks."""
    parts = [p for p in rel_path.split("/") if p and p not in {".", ".."}]
    dir_fd = os.dup(root_fd)
    try:
        for part in parts[:-1]:
            next_fd = os.open(
                part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd
            )
            os.close(dir_fd)
            dir_fd = next_fd
        fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                return None
            return decode_text(handle.read(INFO_FILE_LIMIT), encodings)
    except (OSError, IndexError):
        return None
    finally:
        os.close(dir_fd)


def fat_label_names(label: str) -> set[bytes]:
    """The names a FAT volume label may be listed under: as it is, and split 8.3 the way fusefat
    shows an 11-character label (`ZFJLY02ABCD` as `ZFJLY02A.BCD`)."""
    raw = label.encode("utf-8", errors="surrogateescape")
    names = {raw}
    if len(raw) > 8:
        names.add(raw[:8].rstrip(b" ") + b"." + raw[8:11].rstrip(b" "))
    return names


def volume_alive(root_fd: int) -> bool:
    try:
        os.fstat(root_fd)
        with os.scandir(root_fd) as entries:
            next(entries, None)
    except OSError:
        return False
    return True


def skip_reason(kind: str, dirfd: int, raw_name: bytes) -> str:
    if kind == "symlink":
        try:
            target = os.readlink(raw_name, dir_fd=dirfd)
        except OSError:
            return "symlink: not followed"
        return f"symlink to {display_name(target)[0]!r}: not followed"
    return f"{kind}: not a regular file, not read"


def special_kind(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device node"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "special file"


def join_path(rel_dir: str, name: str) -> str:
    return f"{rel_dir}/{name}" if rel_dir else name
