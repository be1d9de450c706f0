"""Mounting a docked recorder's volume read-only, and only ever unmounting what we mounted.

(`ReadWriteMount` is the one exception, for one step: deleting files from the recorder after their
copies are verified, when the profile asks for it; see `ingest.deletion`. Pulling is always read-only.)

The kernel mounts it (`mount -o ro,nosuid,nodev,noexec`) when /proc/filesystems has the driver;
otherwise a FUSE driver does (`mount.exfat-fuse -o ro` for exFAT, `fusefat -o ro` for FAT). The
mountpoint is `<settings.effective_mount_dir>/<kernel name>`. A device that is already mounted is used
where it is when that mount is read-only, or through a read-only bind mount of it when it is not; a
mount made by someone else is never unmounted. After mounting, the mount is checked to be read-only
(the mount table and statvfs both), or it is undone and refused.

Observed with the FUSE drivers (see the notes on udev and recorder images):
- exfat-fuse mounts as `fuseblk` with the device as source and the device's major:minor.
- fusefat mounts as `fuse.fusefat` with source "fusefat"; we pass `fsname=<device>` so the mount
  table names the device. It shows the FAT volume label as an empty file in the root directory, and
  its file times are one month late (it does not convert FAT's 1-12 month to struct tm's 0-11). The
  pull corrects both from the FAT directory entries on the device (`ingest.fat`), found through
  `fusefat_device`.
- When the FUSE daemon dies or its connection is aborted, every access fails with ENOTCONN.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from evidence_store.errors import ConfigurationError, EvidenceError

log = logging.getLogger(__name__)

MOUNT_OPTIONS = ("ro", "nosuid", "nodev", "noexec")
MOUNT_TIMEOUT_S = 60.0
UNMOUNT_TIMEOUT_S = 30.0
FUSE_TOOLS = {"exfat": "mount.exfat-fuse", "vfat": "fusefat"}
FUSE_PACKAGES = {"exfat": "exfat-fuse", "vfat": "fusefat"}


class MountError(EvidenceError):
    """The volume could not be mounted (or unmounted) read-only; the recorder's files are untouched."""


class MountToolMissingError(ConfigurationError):
    """Neither the kernel nor an installed FUSE driver can read this filesystem."""


@dataclass(frozen=True)
class MountEntry:
    """One line of /proc/self/mountinfo."""

    mount_id: int
    device: str  # "major:minor" of the mounted filesystem
    root: str
    mountpoint: Path
    options: frozenset[str]  # per-mount options (ro, nosuid, ...)
    fs_type: str
    source: str
    super_options: frozenset[str]

    @property
    def read_only(self) -> bool:
        return "ro" in self.options or "ro" in self.super_options


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo octal."""
    out: list[str] = []
    i = 0
    while i < len(field):
        if field[i] == "\\" and i + 4 <= len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[MountEntry]:
    entries: list[MountEntry] = []
    for line in text.splitlines():
        fields = line.split(" ")
        try:
            separator = fields.index("-", 6)
            entries.append(
                MountEntry(
                    mount_id=int(fields[0]),
                    device=fields[2],
                    root=_unescape(fields[3]),
                    mountpoint=Path(_unescape(fields[4])),
                    options=frozenset(fields[5].split(",")),
                    fs_type=fields[separator + 1],
                    source=_unescape(fields[separator + 2]),
                    super_options=frozenset(fields[separator + 3].split(","))
                    if len(fields) > separator + 3
                    else frozenset(),
                )
            )
        except (ValueError, IndexError):
            continue
    return entries


def read_mountinfo() -> list[MountEntry]:
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as handle:
        return parse_mountinfo(handle.read())


def kernel_supports(fs_type: str) -> bool:
    """Whether the running kernel has a driver for `fs_type` (loaded or built in)."""
    try:
        with open("/proc/filesystems", encoding="ascii", errors="replace") as handle:
            return any(line.split()[-1:] == [fs_type] for line in handle)
    except OSError:
        return False


def device_number(devnode: str) -> str | None:
    try:
        st = os.stat(devnode)
    except OSError:
        return None
    if not stat.S_ISBLK(st.st_mode):
        return None
    return f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"


def mounts_of(devnode: str, entries: list[MountEntry]) -> list[MountEntry]:
    """Where the device is mounted now (kernel and fuseblk mounts by number, any mount by source)."""
    number = device_number(devnode)
    real = os.path.realpath(devnode)
    return [
        e
        for e in entries
        if (number is not None and e.device == number and not e.fs_type.startswith("fuse."))
        or e.source in {devnode, real}
    ]


def mount_of(path: Path, entries: list[MountEntry] | None = None) -> MountEntry | None:
    """The mount a path is on (the last-mounted of the deepest mountpoints above it)."""
    path = Path(os.path.realpath(path))
    found: MountEntry | None = None
    for entry in entries if entries is not None else read_mountinfo():
        above = entry.mountpoint == path or entry.mountpoint in path.parents
        if above and (found is None or len(entry.mountpoint.parts) >= len(found.mountpoint.parts)):
            found = entry
    return found


def fusefat_device(root: Path) -> tuple[bool, str | None]:
    """Whether `root` is read through fusefat, and the device (or image) behind it when the mount
    table names it (the dock mounts with `fsname=<device>`; a plain `fusefat` mount says "fusefat")."""
    entry = mount_of(root)
    if entry is None or entry.fs_type != "fuse.fusefat":
        return False, None
    source = entry.source
    if source.startswith("/") and os.path.exists(source):
        return True, source
    return True, None


def _alive(path: Path) -> bool:
    try:
        os.statvfs(path)
        os.listdir(path)
    except OSError:
        return False
    return True


def _statvfs_read_only(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _run(command: list[str], timeout: float) -> tuple[int, str]:
    """Run a mount helper. Its output goes to a file, not a pipe: a FUSE helper forks a daemon that
    could keep a pipe open and make us wait for it."""
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as output:
        try:
            done = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                timeout=timeout,
                check=False,
                close_fds=True,
            )
        except FileNotFoundError as exc:
            raise MountToolMissingError(f"{command[0]} is not installed") from exc
        except subprocess.TimeoutExpired as exc:
            raise MountError(f"{' '.join(command)} did not finish in {timeout:.0f} s") from exc
        output.seek(0)
        return done.returncode, output.read().strip()


class ReadOnlyMount:
    """A docked volume mounted read-only for the time of a pull. Use as a context manager:

    with ReadOnlyMount("/dev/sdb1", "exfat", settings.effective_mount_dir) as root:
        pull(... root ...)
    """

    def __init__(self, devnode: str, fs_type: str, mount_dir: Path) -> None:
        self.devnode = devnode
        self.fs_type = fs_type
        self.mount_dir = mount_dir
        self.path: Path | None = None
        self.method = ""  # kernel | fuse:<tool> | existing | bind
        self.owned = False  # we mounted it, so we unmount it

    @property
    def devname(self) -> str:
        return self.devnode.rsplit("/", 1)[-1]

    def __enter__(self) -> Path:
        return self.mount()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.unmount()

    # -- mounting -----------------------------------------------------------------------------------

    def mount(self) -> Path:
        if self.path is not None:
            return self.path
        if not os.path.exists(self.devnode):
            raise MountError(f"{self.devnode} is gone (the recorder was unplugged?)")
        target = self.mount_dir / self.devname
        entries = read_mountinfo()
        existing = [
            e for e in mounts_of(self.devnode, entries) if e.mountpoint != target and _alive(e.mountpoint)
        ]
        self._prepare_target(target, entries)
        if existing:
            chosen = next((e for e in existing if e.read_only), None)
            if chosen is not None and _statvfs_read_only(chosen.mountpoint):
                log.info(
                    "%s is already mounted read-only at %s; using that mount", self.devnode, chosen.mountpoint
                )
                self.path, self.method, self.owned = chosen.mountpoint, "existing", False
                self._remove_target(target)
                return chosen.mountpoint
            source = existing[0].mountpoint
            log.info(
                "%s is mounted read-write at %s; pulling through a read-only bind mount", self.devnode, source
            )
            self._mount_command(
                ["mount", "--bind", "-o", ",".join(MOUNT_OPTIONS), str(source), str(target)], target
            )
            self.method = "bind"
        elif kernel_supports(self.fs_type):
            options = list(MOUNT_OPTIONS)
            if self.fs_type == "vfat":
                options += ["utf8", "shortname=mixed"]
            self._mount_command(
                ["mount", "-t", self.fs_type, "-o", ",".join(options), self.devnode, str(target)], target
            )
            self.method = "kernel"
        else:
            tool = FUSE_TOOLS.get(self.fs_type)
            if tool is None:
                raise MountToolMissingError(
                    f"no driver for {self.fs_type} in the kernel and no FUSE driver known"
                )
            if shutil.which(tool) is None:
                raise MountToolMissingError(
                    f"the kernel has no {self.fs_type} driver and {tool} is not installed "
                    f"(Debian package {FUSE_PACKAGES[self.fs_type]})"
                )
            options = list(MOUNT_OPTIONS)
            if self.fs_type == "vfat":
                options += [f"fsname={self.devnode}", "subtype=fusefat"]
            self._mount_command([tool, "-o", ",".join(options), self.devnode, str(target)], target)
            self.method = f"fuse:{tool}"
        self.path, self.owned = target, True
        try:
            self._verify_read_only(target)
        except MountError:
            self.unmount()
            raise
        log.info("mounted %s (%s) read-only at %s via %s", self.devnode, self.fs_type, target, self.method)
        return target

    def _prepare_target(self, target: Path, entries: list[MountEntry]) -> None:
        try:
            self.mount_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise MountError(f"cannot create mount directory {self.mount_dir}: {exc.strerror}") from exc
        stale = [e for e in entries if e.mountpoint == target]
        for entry in reversed(stale):
            # Only the dock mounts under its mount directory: a mount left there is ours, from a dock
            # that was stopped or whose FUSE daemon died.
            log.warning("removing stale mount %s (%s) left by an earlier dock", target, entry.source)
            self._umount(target, fuse=entry.fs_type.startswith("fuse"))
        try:
            target.mkdir(exist_ok=True, mode=0o700)
        except OSError as exc:
            raise MountError(f"cannot create mountpoint {target}: {exc.strerror}") from exc
        if any(target.iterdir()):
            raise MountError(f"mountpoint {target} is not empty")

    def _mount_command(self, command: list[str], target: Path, *, mode: str = "read-only") -> None:
        code, output = _run(command, MOUNT_TIMEOUT_S)
        if code != 0 or not any(e.mountpoint == target for e in read_mountinfo()):
            self._remove_target(target)
            detail = output.splitlines()[-1] if output else f"exit status {code}"
            raise MountError(f"cannot mount {self.devnode} ({self.fs_type}) {mode}: {detail}")

    def _verify_read_only(self, target: Path) -> None:
        entry = next((e for e in reversed(read_mountinfo()) if e.mountpoint == target), None)
        if entry is None:
            raise MountError(f"{target} is not in the mount table after mounting {self.devnode}")
        if not entry.read_only or not _statvfs_read_only(target):
            raise MountError(f"{self.devnode} was mounted read-write at {target}; refused")

    # -- unmounting ---------------------------------------------------------------------------------

    def unmount(self) -> None:
        """Undo our mount (a lazy unmount when the volume is busy or its FUSE daemon is dead)."""
        path, owned = self.path, self.owned
        self.path, self.owned = None, False
        if path is None or not owned:
            return
        self._umount(path, fuse=self.method.startswith("fuse"))
        self._remove_target(path)
        log.info("unmounted %s from %s", self.devnode, path)

    def _umount(self, path: Path, *, fuse: bool) -> None:
        attempts: list[list[str]] = []
        if fuse and shutil.which("fusermount"):
            attempts.append(["fusermount", "-u", str(path)])
        attempts += [["umount", str(path)], ["umount", "-l", str(path)]]
        problems: list[str] = []
        for command in attempts:
            if not any(e.mountpoint == path for e in read_mountinfo()):
                return
            try:
                code, output = _run(command, UNMOUNT_TIMEOUT_S)
            except (MountError, MountToolMissingError) as exc:
                problems.append(str(exc))
                continue
            if code == 0:
                if command[-2] == "-l":
                    log.warning("%s was busy or dead: lazily unmounted", path)
                return
            problems.append(f"{' '.join(command)}: {output or code}")
            time.sleep(0.2)
        if any(e.mountpoint == path for e in read_mountinfo()):
            raise MountError(f"cannot unmount {path}: {'; '.join(problems)}")

    def _remove_target(self, target: Path) -> None:
        with contextlib.suppress(OSError):
            target.rmdir()


def wait_released(devnode: str, timeout: float = 10.0) -> None:
    """Wait until nothing holds the device open exclusively any more (a FUSE daemon exits a moment
    after its unmount returns)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            fd = os.open(devnode, os.O_RDONLY | os.O_EXCL | os.O_CLOEXEC)
        except OSError:
            time.sleep(0.05)
            continue
        os.close(fd)
        return


class ReadWriteMount(ReadOnlyMount):
    """The volume mounted read-write for one step only: deleting files whose copies are verified
    (`ingest.deletion`). Only a device nobody else has mounted is mounted so; the mount is checked to
    be read-write, and undone like a read-only one. fusefat writes only with its `rw+` option."""

    def mount(self) -> Path:
        if self.path is not None:
            return self.path
        if not os.path.exists(self.devnode):
            raise MountError(f"{self.devnode} is gone (the recorder was unplugged?)")
        target = self.mount_dir / self.devname
        entries = read_mountinfo()
        elsewhere = [e for e in mounts_of(self.devnode, entries) if e.mountpoint != target]
        if elsewhere:
            raise MountError(
                f"{self.devnode} is mounted at {elsewhere[0].mountpoint} by someone else: "
                "not mounting it read-write"
            )
        self._prepare_target(target, entries)
        wait_released(self.devnode)
        options = ["rw", "nosuid", "nodev", "noexec"]
        if kernel_supports(self.fs_type):
            if self.fs_type == "vfat":
                options += ["utf8", "shortname=mixed"]
            command = ["mount", "-t", self.fs_type, "-o", ",".join(options), self.devnode, str(target)]
            self.method = "kernel"
        else:
            tool = FUSE_TOOLS.get(self.fs_type)
            if tool is None or shutil.which(tool) is None:
                raise MountToolMissingError(f"no driver to mount {self.fs_type} read-write")
            if self.fs_type == "vfat":
                options = ["rw+", *options[1:], f"fsname={self.devnode}", "subtype=fusefat"]
            command = [tool, "-o", ",".join(options), self.devnode, str(target)]
            self.method = f"fuse:{tool}"
        self._mount_command(command, target, mode="read-write")
        self.path, self.owned = target, True
        entry = next((e for e in reversed(read_mountinfo()) if e.mountpoint == target), None)
        if entry is None or entry.read_only or _statvfs_read_only(target):
            self.unmount()
            raise MountError(f"{self.devnode} did not mount read-write at {target}")
        log.info("mounted %s (%s) read-write at %s via %s", self.devnode, self.fs_type, target, self.method)
        return target
