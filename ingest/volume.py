"""Reading a recorder's volume safely: listing it, reading its small info files, telling it is gone.

The walk goes through directory file descriptors (`os.fwalk`) and opens every file relative to its
directory with O_NOFOLLOW, so no symlink is followed and nothing outside the volume is read; FIFOs,
devices and sockets are listed and skipped; nothing on the volume is written.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
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
from ingest.names import SYSTEM_DIRS, display_name
from ingest.pull_report import FileResult, PullRequest, TransferSummary

# Folders operating systems create on removable volumes; not recorder content.
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
    try:
        for _dirpath, _dirs, files, _fd in os.fwalk(".", dir_fd=root_fd, follow_symlinks=False):
            for raw in sorted(files):
                name, _exact = display_name(os.fsencode(raw))
                facts = profile.parse_name(name)
                if facts and (facts.serial or facts.officer):
                    return facts.serial, facts.officer
                seen += 1
                if seen >= limit:
                    return None
    except OSError:
        # os.fwalk passes a failing listing to `onerror`, but not one failing part-way (EIO from a
        # recorder pulled out): names are only a hint to the identity, and the pull's own walk meets
        # the same error and records it
        return None
    return None


# (name as listed, is a directory, the kernel refuses the name) for each entry of a directory given by
# its raw path parts, read another way than through the mount (the FAT directory entries), or None
DirectoryFallback = Callable[[tuple[bytes, ...]], "list[tuple[bytes, bool, bool]] | None"]


@dataclass
class UnlistedEntry:
    """An entry a directory holds but the mount cannot list or open (a name the kernel refuses)."""

    path: str
    reason: str


def walk_volume(
    root_fd: int,
    summary: TransferSummary,
    fallback: DirectoryFallback | None = None,
    refused: list[UnlistedEntry] | None = None,
) -> Iterator[tuple[int, tuple[bytes, ...], str, bytes]]:
    """(directory fd, raw directory path parts, displayed directory path, raw file name), top-down,
    sorted. A directory that cannot be listed (EIO from FUSE: a name the kernel refuses) is a problem
    of that directory, recorded on the summary; the entries read before the error and those the
    `fallback` names are still taken, the names the kernel refuses go to `refused`, and the walk goes on
    with the rest of the volume. A volume that is gone ends the walk (`VolumeGone`)."""
    yield from _walk_dir(root_fd, root_fd, (), "", summary, fallback, refused)


def _walk_dir(
    root_fd: int,
    dirfd: int,
    raw_dir: tuple[bytes, ...],
    rel_dir: str,
    summary: TransferSummary,
    fallback: DirectoryFallback | None,
    refused: list[UnlistedEntry] | None,
) -> Iterator[tuple[int, tuple[bytes, ...], str, bytes]]:
    dirs, files = _list_directory(root_fd, dirfd, raw_dir, rel_dir, summary, fallback, refused)
    for name in sorted(files):
        yield dirfd, raw_dir, rel_dir, name
    for name in sorted(dirs):
        if name in SYSTEM_DIRS or _is_link(dirfd, name, rel_dir, summary):
            continue
        sub_rel = join_path(rel_dir, display_name(name)[0])
        try:
            sub_fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd)
        except OSError as exc:
            _listing_failed(root_fd, exc, sub_rel, summary)
            continue
        try:
            yield from _walk_dir(root_fd, sub_fd, (*raw_dir, name), sub_rel, summary, fallback, refused)
        finally:
            os.close(sub_fd)


def _list_directory(
    root_fd: int,
    dirfd: int,
    raw_dir: tuple[bytes, ...],
    rel_dir: str,
    summary: TransferSummary,
    fallback: DirectoryFallback | None,
    refused: list[UnlistedEntry] | None,
) -> tuple[list[bytes], list[bytes]]:
    dirs: list[bytes] = []
    files: list[bytes] = []
    try:
        with os.scandir(dirfd) as entries:
            for entry in entries:
                try:
                    is_dir = entry.is_dir()  # a link to a directory is told apart by `_is_link`
                except OSError:
                    is_dir = False
                (dirs if is_dir else files).append(os.fsencode(entry.name))
    except OSError as exc:
        _listing_failed(root_fd, exc, rel_dir, summary)
        other = fallback(raw_dir) if fallback is not None else None
        seen = set(dirs) | set(files)
        for name, is_dir, kernel_refuses in other or []:
            if kernel_refuses:
                if refused is not None:
                    reason = (
                        "its name holds a character no file name may hold ('/' or NUL): not listed, not read"
                    )
                    refused.append(UnlistedEntry(join_path(rel_dir, display_name(name)[0]), reason))
            elif name not in seen:
                seen.add(name)
                (dirs if is_dir else files).append(name)
    return dirs, files


def _listing_failed(root_fd: int, exc: OSError, rel_dir: str, summary: TransferSummary) -> None:
    if exc.errno in VOLUME_GONE or not _root_alive(root_fd):
        raise VolumeGone(f"{exc.strerror} while listing {rel_dir or 'the volume'}")
    summary.problems.append(
        f"cannot list {rel_dir or 'the volume root'}: {exc.strerror} (errno {exc.errno}); "
        "the rest of the volume was pulled"
    )
    summary.directories_unlisted.append(rel_dir or "/")


def _root_alive(root_fd: int) -> bool:
    try:
        os.fstat(root_fd)
    except OSError:
        return False
    return True


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


def count_volume(root_fd: int, *, limit: int = 1_000_000) -> tuple[int, int]:
    """(regular files, their bytes) on the volume, walked like `walk_volume` (no symlink followed, the
    system folders left out): the totals a bay's progress is measured against. A directory that cannot
    be listed counts as empty (the pull itself says so); at most `limit` entries are looked at."""
    files = size = seen = 0
    pending = [os.dup(root_fd)]
    try:
        while pending:
            dirfd = pending.pop()
            try:
                with os.scandir(dirfd) as entries:
                    for entry in entries:
                        seen += 1
                        if seen > limit:
                            return files, size
                        try:
                            st = entry.stat(follow_symlinks=False)
                        except OSError:
                            continue
                        if stat.S_ISREG(st.st_mode):
                            files += 1
                            size += st.st_size
                        elif stat.S_ISDIR(st.st_mode) and os.fsencode(entry.name) not in SYSTEM_DIRS:
                            try:
                                flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
                                pending.append(os.open(entry.name, flags, dir_fd=dirfd))
                            except OSError:
                                continue
            except OSError:
                pass
            finally:
                os.close(dirfd)
    finally:
        for dirfd in pending:
            os.close(dirfd)
    return files, size
