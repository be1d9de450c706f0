"""Reading a FAT volume's directory entries straight from its device, read-only (R3, R4, R5).

Why: `fusefat` (the FUSE driver used where the kernel has no vfat) gets two things wrong that matter
for evidence. It passes FAT's month (1-12) to `mktime` as `tm_mon` (0-11), so every file time it
reports is one month late (31 January comes out as 3 March); and it lists the volume label, a
directory entry with the volume-ID attribute, as an empty file in the root. The month error cannot be
undone from the reported time alone: `mktime` normalises day overflow, so 1 March may be a true
1 February or a true 29 January. The pull therefore reads the directory entries themselves: the time
the recorder wrote (a naive wall-clock time, 2-second resolution) and which root entry is the label.

Everything here only reads. The parsing functions are pure (bytes in, values out); `FatVolume` reads
the boot sector, the FAT and directory clusters through one read-only file descriptor.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, replace
from datetime import datetime

from evidence_store.errors import PermanentError

ATTR_READ_ONLY = 0x01
ATTR_HIDDEN = 0x02
ATTR_SYSTEM = 0x04
ATTR_VOLUME_ID = 0x08
ATTR_DIRECTORY = 0x10
ATTR_LONG_NAME = 0x0F
LFN_LAST = 0x40
NT_LOWER_BASE = 0x08
NT_LOWER_EXT = 0x10
ENTRY_SIZE = 32
MAX_DIRECTORY_BYTES = 65536 * ENTRY_SIZE  # a FAT directory holds at most 65,536 entries (2 MiB)


class FatError(PermanentError):
    """The bytes are not a FAT volume this module can read.

    Permanent: the recorder's medium is what it is, so reading it again gives the same answer, and no
    one can correct it as input. The pull catches it and records a problem (it then trusts the times
    the filesystem driver reports); nothing of the volume is dropped for it."""


@dataclass(frozen=True)
class FatGeometry:
    """Where things are on a FAT12/16/32 volume, from its boot sector (BPB)."""

    fat_bits: int  # 12, 16 or 32
    bytes_per_sector: int
    sectors_per_cluster: int
    reserved_sectors: int
    fat_count: int
    fat_sectors: int
    root_entries: int  # FAT12/16 fixed root directory; 0 on FAT32
    total_sectors: int
    root_cluster: int  # FAT32 only
    label: str  # the boot sector's copy of the label (may differ from the root entry)

    @property
    def cluster_bytes(self) -> int:
        return self.bytes_per_sector * self.sectors_per_cluster

    @property
    def fat_offset(self) -> int:
        return self.reserved_sectors * self.bytes_per_sector

    @property
    def root_dir_offset(self) -> int:
        return self.fat_offset + self.fat_count * self.fat_sectors * self.bytes_per_sector

    @property
    def root_dir_bytes(self) -> int:
        return self.root_entries * ENTRY_SIZE

    @property
    def data_offset(self) -> int:
        root_sectors = -(-self.root_dir_bytes // self.bytes_per_sector)
        return self.root_dir_offset + root_sectors * self.bytes_per_sector

    @property
    def cluster_count(self) -> int:
        data_sectors = self.total_sectors - self.data_offset // self.bytes_per_sector
        return data_sectors // self.sectors_per_cluster

    def cluster_offset(self, cluster: int) -> int:
        return self.data_offset + (cluster - 2) * self.cluster_bytes


def parse_boot_sector(sector: bytes) -> FatGeometry:
    """The geometry of a FAT volume from its first 512 bytes; `FatError` when they are not FAT."""
    if len(sector) < 512 or sector[510:512] != b"\x55\xaa":
        raise FatError("no boot sector signature")
    bytes_per_sector, per_cluster, reserved, fats, root_entries, total16 = struct.unpack_from(
        "<HBHBHH", sector, 11
    )
    fat16_sectors = struct.unpack_from("<H", sector, 22)[0]
    total32 = struct.unpack_from("<I", sector, 32)[0]
    if bytes_per_sector not in (512, 1024, 2048, 4096) or per_cluster == 0 or per_cluster & (per_cluster - 1):
        raise FatError("not a FAT boot sector (bytes per sector / sectors per cluster)")
    if reserved == 0 or fats == 0:
        raise FatError("not a FAT boot sector (reserved sectors / FAT count)")
    if fat16_sectors == 0:  # FAT32's extended BPB
        fat_sectors, root_cluster = struct.unpack_from("<I4xI", sector, 36)
        label_raw = sector[71:82]
    else:
        fat_sectors, root_cluster = fat16_sectors, 0
        label_raw = sector[43:54]
    geometry = FatGeometry(
        fat_bits=32,
        bytes_per_sector=bytes_per_sector,
        sectors_per_cluster=per_cluster,
        reserved_sectors=reserved,
        fat_count=fats,
        fat_sectors=fat_sectors,
        root_entries=root_entries,
        total_sectors=total16 or total32,
        root_cluster=root_cluster,
        label=label_raw.decode("latin-1").rstrip(" "),
    )
    # the FAT type is decided by the cluster count alone (Microsoft's FAT specification)
    count = geometry.cluster_count
    bits = 12 if count < 4085 else 16 if count < 65525 else 32
    if (bits == 32) != (fat16_sectors == 0):
        kind = "FAT32" if fat16_sectors == 0 else "FAT12/16"
        raise FatError(f"inconsistent boot sector: {count} clusters with a {kind} BPB")
    return replace(geometry, fat_bits=bits)


def fat_datetime(date: int, time: int) -> datetime | None:
    """A FAT date/time pair as the naive wall-clock time the device wrote (None when unset or invalid)."""
    if date == 0:
        return None
    try:
        return datetime(
            1980 + (date >> 9),
            (date >> 5) & 0x0F,
            date & 0x1F,
            time >> 11,
            (time >> 5) & 0x3F,
            (time & 0x1F) * 2,
        )
    except ValueError:
        return None


@dataclass(frozen=True)
class FatEntry:
    """One directory entry (a file, a directory or the volume label)."""

    short_name: bytes  # the 8.3 name as a driver shows it: b"A.MP4", b"ZFJLY02A.BCD"
    long_name: str | None  # the VFAT long name, when there is one with a valid checksum
    attributes: int
    size: int
    first_cluster: int
    modified: datetime | None  # naive wall-clock time as the device wrote it
    nt_case: int = 0  # Windows NT lower-case flags for the short name

    @property
    def is_volume_label(self) -> bool:
        return bool(self.attributes & ATTR_VOLUME_ID) and not self.attributes & ATTR_DIRECTORY

    @property
    def is_directory(self) -> bool:
        return bool(self.attributes & ATTR_DIRECTORY)

    def shown_names(self) -> list[bytes]:
        """The names a FAT driver may list this entry under (fusefat: the long name in UTF-8, else the
        short name as stored; the kernel with shortname=mixed: the short name in the NT case)."""
        names = []
        if self.long_name:
            names.append(self.long_name.encode("utf-8", errors="surrogateescape"))
        names.append(self.short_name)
        base, dot, ext = self.short_name.partition(b".")
        cased = (base.lower() if self.nt_case & NT_LOWER_BASE else base) + dot
        cased += ext.lower() if self.nt_case & NT_LOWER_EXT else ext
        if cased != self.short_name:
            names.append(cased)
        return names


def _short_name(raw: bytes) -> bytes:
    base = raw[:8].rstrip(b" ")
    if base[:1] == b"\x05":  # a name that really starts with 0xE5
        base = b"\xe5" + base[1:]
    ext = raw[8:11].rstrip(b" ")
    return base + b"." + ext if ext else base


def _lfn_checksum(raw: bytes) -> int:
    total = 0
    for byte in raw[:11]:
        total = (((total & 1) << 7) + (total >> 1) + byte) & 0xFF
    return total


def parse_directory(data: bytes) -> list[FatEntry]:
    """The entries of one directory's bytes, in order; deleted entries, `.` and `..` left out."""
    entries: list[FatEntry] = []
    lfn_parts: dict[int, bytes] = {}
    lfn_checksum: int | None = None
    for offset in range(0, len(data) - ENTRY_SIZE + 1, ENTRY_SIZE):
        raw = data[offset : offset + ENTRY_SIZE]
        first = raw[0]
        if first == 0x00:
            break  # end of directory
        if first == 0xE5:
            lfn_parts, lfn_checksum = {}, None
            continue
        attributes = raw[11]
        if attributes & 0x3F == ATTR_LONG_NAME:
            if first & LFN_LAST:
                lfn_parts = {}
            lfn_checksum = raw[13]
            lfn_parts[first & 0x1F] = raw[1:11] + raw[14:26] + raw[28:32]
            continue
        long_name = None
        if lfn_parts and lfn_checksum == _lfn_checksum(raw):
            utf16 = b"".join(lfn_parts[i] for i in sorted(lfn_parts))
            text = utf16.decode("utf-16-le", errors="replace")
            long_name = text.split("\x00", 1)[0] or None
        lfn_parts, lfn_checksum = {}, None
        if raw[:11] in (b".          ", b"..         "):
            continue
        date, time = struct.unpack_from("<H", raw, 24)[0], struct.unpack_from("<H", raw, 22)[0]
        high, low = struct.unpack_from("<H", raw, 20)[0], struct.unpack_from("<H", raw, 26)[0]
        entries.append(
            FatEntry(
                short_name=_short_name(raw),
                long_name=long_name,
                attributes=attributes,
                size=struct.unpack_from("<I", raw, 28)[0],
                first_cluster=(high << 16) | low,
                modified=fat_datetime(date, time),
                nt_case=raw[12],
            )
        )
    return entries


def find_entry(entries: list[FatEntry], name: bytes) -> FatEntry | None:
    """The entry (not the volume label) a driver lists as `name`: exact first, then ignoring case."""
    candidates = [e for e in entries if not e.is_volume_label]
    for entry in candidates:
        if name in entry.shown_names():
            return entry
    folded = name.lower()
    matches = [e for e in candidates if folded in {n.lower() for n in e.shown_names()}]
    return matches[0] if len(matches) == 1 else None


def is_label_entry(entries: list[FatEntry], name: bytes) -> bool:
    """Whether a root-directory name a driver lists is the volume label, not a file of that name."""
    return find_entry(entries, name) is None and any(
        name in e.shown_names() for e in entries if e.is_volume_label
    )


class FatVolume:
    """A FAT volume's directories, read from the device (or image) through a read-only descriptor."""

    def __init__(self, device: str | os.PathLike[str]) -> None:
        self.device = os.fspath(device)
        self._fd = os.open(self.device, os.O_RDONLY | os.O_CLOEXEC)
        try:
            self.geometry = parse_boot_sector(os.pread(self._fd, 512, 0))
        except BaseException:
            os.close(self._fd)
            raise
        self._directories: dict[tuple[bytes, ...], list[FatEntry]] = {}
        # per directory: shown name -> entry (None when two entries claim it), and the same lower-cased
        self._index: dict[
            tuple[bytes, ...], tuple[dict[bytes, FatEntry | None], dict[bytes, FatEntry | None]]
        ] = {}

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> FatVolume:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _read(self, offset: int, size: int) -> bytes:
        data = os.pread(self._fd, size, offset)
        if len(data) != size:
            raise FatError(f"{self.device}: short read at {offset}")
        return data

    def _next_cluster(self, cluster: int) -> int | None:
        geometry = self.geometry
        value: int
        if geometry.fat_bits == 32:
            value = struct.unpack("<I", self._read(geometry.fat_offset + cluster * 4, 4))[0] & 0x0FFFFFFF
            end = value >= 0x0FFFFFF8
        elif geometry.fat_bits == 16:
            value = struct.unpack("<H", self._read(geometry.fat_offset + cluster * 2, 2))[0]
            end = value >= 0xFFF8
        else:
            pair: int = struct.unpack("<H", self._read(geometry.fat_offset + cluster * 3 // 2, 2))[0]
            value = pair >> 4 if cluster & 1 else pair & 0x0FFF
            end = value >= 0xFF8
        if end or value < 2 or value >= geometry.cluster_count + 2:
            return None
        return value

    def _cluster_chain_bytes(self, first: int) -> bytes:
        chunks: list[bytes] = []
        cluster: int | None = first
        limit = MAX_DIRECTORY_BYTES // self.geometry.cluster_bytes + 1
        seen: set[int] = set()
        # a damaged FAT may chain back to a cluster already read: each cluster is read once, so the
        # directory's entries are not repeated (up to the size limit) and every name stays unique
        while cluster is not None and cluster not in seen and len(chunks) < limit:
            seen.add(cluster)
            chunks.append(self._read(self.geometry.cluster_offset(cluster), self.geometry.cluster_bytes))
            cluster = self._next_cluster(cluster)
        return b"".join(chunks)

    def directory(self, parts: tuple[bytes, ...]) -> list[FatEntry] | None:
        """The entries of the directory at `parts` (names as the driver lists them), None if not found."""
        if parts in self._directories:
            return self._directories[parts]
        if not parts:
            geometry = self.geometry
            if geometry.fat_bits == 32:
                data = self._cluster_chain_bytes(geometry.root_cluster)
            else:
                data = self._read(geometry.root_dir_offset, geometry.root_dir_bytes)
            entries = parse_directory(data)
        else:
            parent = self.directory(parts[:-1])
            entry = find_entry(parent, parts[-1]) if parent is not None else None
            if entry is None or not entry.is_directory or entry.first_cluster < 2:
                return None
            entries = parse_directory(self._cluster_chain_bytes(entry.first_cluster))
        self._directories[parts] = entries
        return entries

    def entry(self, parts: tuple[bytes, ...], name: bytes) -> FatEntry | None:
        """Like `find_entry` on the directory, through an index (a directory may hold 65,535 entries)."""
        if parts not in self._index:
            entries = self.directory(parts)
            if entries is None:
                return None
            exact: dict[bytes, FatEntry | None] = {}
            folded: dict[bytes, FatEntry | None] = {}
            for entry in entries:
                if entry.is_volume_label:
                    continue
                for shown in entry.shown_names():
                    exact.setdefault(shown, entry)
                    key = shown.lower()
                    folded[key] = entry if folded.get(key, entry) is entry else None
            self._index[parts] = (exact, folded)
        exact, folded = self._index[parts]
        return exact.get(name) or folded.get(name.lower())

    def listing(self, parts: tuple[bytes, ...]) -> list[tuple[bytes, bool, bool]] | None:
        """The directory as a FAT driver lists it, from the entries themselves: (name, is a directory,
        the kernel refuses the name); what a listing through the mount cannot give when one name in it
        holds '/' or NUL (FUSE then fails the whole directory with EIO). None if there is no such
        directory."""
        entries = self.directory(parts)
        if entries is None:
            return None
        listed = []
        for entry in entries:
            if entry.is_volume_label:
                continue
            name = entry.shown_names()[0]
            listed.append((name, entry.is_directory, b"/" in name or b"\0" in name))
        return listed

    def is_label(self, parts: tuple[bytes, ...], name: bytes) -> bool:
        """Whether `name` in the directory `parts` is the volume label (only ever in the root)."""
        if parts:
            return False
        entries = self.directory(())
        return entries is not None and is_label_entry(entries, name)
