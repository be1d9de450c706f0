"""Following a directory's cluster chain on FAT12, FAT16 and FAT32 images (ingest.fat.FatVolume, R3,
R5): the chain's entries decoded as each FAT width packs them (FAT12's pairs of 12-bit entries in
three bytes), in chain order, and a damaged chain (looping back, pointing past the volume, marked
free) ending the directory instead of repeating or reading outside it.

The images are built here byte by byte (sparse files in tmp_path): a boot sector, one FAT, the root
directory and the clusters of one subdirectory, `DCIM`."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from ingest.fat import ATTR_DIRECTORY, FatVolume

SECTOR = 512  # one sector per cluster: a cluster holds 16 entries
WHEN = datetime(2026, 1, 31, 23, 59, 58)


@dataclass(frozen=True)
class Layout:
    total_sectors: int
    fat_sectors: int
    root_entries: int  # 0 on FAT32 (its root is a cluster chain from cluster 2)


LAYOUTS = {  # the FAT width follows from the cluster count alone: < 4085 FAT12, < 65525 FAT16
    12: Layout(total_sectors=200, fat_sectors=1, root_entries=16),  # 197 clusters
    16: Layout(total_sectors=5000, fat_sectors=20, root_entries=16),  # 4978 clusters
    32: Layout(total_sectors=70000, fat_sectors=547, root_entries=0),  # 69452 clusters
}
END = {12: 0xFFF, 16: 0xFFFF, 32: 0x0FFFFFFF}
DELETED = b"\xe5" + bytes(31)


def entry(name: bytes, cluster: int, *, attributes: int = 0x20, size: int = 0) -> bytes:
    base, _, ext = name.partition(b".")
    date = ((WHEN.year - 1980) << 9) | (WHEN.month << 5) | WHEN.day
    time = (WHEN.hour << 11) | (WHEN.minute << 5) | (WHEN.second // 2)
    return struct.pack(
        "<11sBBBHHHHHHHI",
        base.ljust(8) + ext.ljust(3),
        attributes,
        0,
        0,
        0,
        0,
        0,
        cluster >> 16,
        time,
        date,
        cluster & 0xFFFF,
        size,
    )


def set_fat(fat: bytearray, bits: int, cluster: int, value: int) -> None:
    if bits == 32:
        struct.pack_into("<I", fat, cluster * 4, value)
    elif bits == 16:
        struct.pack_into("<H", fat, cluster * 2, value)
    else:  # two 12-bit entries share three bytes: an odd cluster takes the high 12 bits of its pair
        offset = cluster * 3 // 2
        (pair,) = struct.unpack_from("<H", fat, offset)
        pair = (pair & 0x000F) | (value << 4) if cluster & 1 else (pair & 0xF000) | value
        struct.pack_into("<H", fat, offset, pair)


def make_image(path: Path, bits: int, chain: dict[int, int], clusters: dict[int, bytes]) -> Path:
    """A FAT`bits` volume whose root holds the directory DCIM starting at cluster 5; `chain` is the
    FAT (cluster -> next), `clusters` the contents of the data clusters."""
    layout = LAYOUTS[bits]
    boot = bytearray(SECTOR)
    boot[0:3] = b"\xeb\x3c\x90"
    boot[3:11] = b"MSWIN4.1"
    struct.pack_into(
        "<HBHBHHBH",
        boot,
        11,
        SECTOR,
        1,  # sectors per cluster
        1,  # reserved sectors
        1,  # FATs
        layout.root_entries,
        layout.total_sectors if layout.total_sectors < 0x10000 else 0,
        0xF8,
        0 if bits == 32 else layout.fat_sectors,
    )
    struct.pack_into("<I", boot, 32, layout.total_sectors if layout.total_sectors >= 0x10000 else 0)
    if bits == 32:
        struct.pack_into("<I4xI", boot, 36, layout.fat_sectors, 2)
        boot[71:82] = b"DSJ0001    "
    else:
        boot[43:54] = b"DSJ0001    "
    boot[510:512] = b"\x55\xaa"

    fat = bytearray(layout.fat_sectors * SECTOR)
    for cluster, following in chain.items():
        set_fat(fat, bits, cluster, following)
    root = entry(b"DSJ0001", 0, attributes=0x08) + entry(b"DCIM", 5, attributes=ATTR_DIRECTORY)
    fat_offset = SECTOR
    root_offset = fat_offset + len(fat)
    data_offset = root_offset + layout.root_entries * 32
    if bits == 32:  # the root directory is cluster 2, a chain of its own
        set_fat(fat, bits, 2, END[32])
        clusters = {2: root, **clusters}
    with path.open("wb") as image:
        image.truncate(layout.total_sectors * SECTOR)
        image.write(boot)
        image.seek(fat_offset)
        image.write(fat)
        if bits != 32:
            image.seek(root_offset)
            image.write(root)
        for cluster, data in clusters.items():
            image.seek(data_offset + (cluster - 2) * SECTOR)
            # the rest of a cluster: deleted entries, since an empty one (first byte 0) ends the directory
            image.write(data + DELETED * ((SECTOR - len(data)) // 32))
    return path


def names(entries: list[object]) -> list[bytes]:
    return [e.short_name for e in entries]  # type: ignore[attr-defined]


@pytest.mark.parametrize("bits", [12, 16, 32])
def test_a_directory_is_read_along_its_chain_in_chain_order(tmp_path: Path, bits: int) -> None:
    # DCIM spans clusters 5 -> 3 -> 8 -> 7: backwards, odd and even (FAT12 packs those differently)
    end = END[bits]
    chain = {5: 3, 3: 8, 8: 7, 7: end}
    clusters = {
        5: entry(b"A0001.MP4", 20, size=10),
        3: entry(b"A0002.MP4", 30, size=20),
        8: entry(b"A0003.MP4", 40, size=30),
        7: entry(b"A0004.MP4", 50, size=40),
        4: entry(b"STRAY.MP4", 60),  # not in the chain: never read as part of DCIM
    }
    image = make_image(tmp_path / f"fat{bits}.img", bits, chain, clusters)

    with FatVolume(image) as fat:
        assert fat.geometry.fat_bits == bits
        assert fat.is_label((), b"DSJ0001")
        listed = fat.directory((b"DCIM",))
        assert listed is not None
        assert names(listed) == [b"A0001.MP4", b"A0002.MP4", b"A0003.MP4", b"A0004.MP4"]
        found = fat.entry((b"DCIM",), b"a0004.mp4")
        assert found is not None and (found.size, found.first_cluster) == (40, 50)
        assert found.modified == WHEN
        assert fat.entry((b"DCIM",), b"STRAY.MP4") is None


@pytest.mark.parametrize("bits", [12, 16, 32])
@pytest.mark.parametrize(
    ("damage", "read"),
    [
        ("loops back to its first cluster", [b"A0001.MP4", b"A0002.MP4"]),
        ("loops onto itself", [b"A0001.MP4", b"A0002.MP4"]),
        ("points past the last cluster", [b"A0001.MP4", b"A0002.MP4"]),
        ("is marked free half way", [b"A0001.MP4", b"A0002.MP4"]),
    ],
)
def test_a_damaged_chain_ends_the_directory_without_repeating_it(
    tmp_path: Path, bits: int, damage: str, read: list[bytes]
) -> None:
    clusters_on_volume = LAYOUTS[bits].total_sectors  # more than the volume has, whatever the width
    after_second = {
        "loops back to its first cluster": 5,
        "loops onto itself": 3,
        "points past the last cluster": min(clusters_on_volume, END[bits] - 8),
        "is marked free half way": 0,
    }[damage]
    chain = {5: 3, 3: after_second}
    clusters = {5: entry(b"A0001.MP4", 20), 3: entry(b"A0002.MP4", 30), 6: entry(b"NEXT.MP4", 40)}
    image = make_image(tmp_path / f"fat{bits}.img", bits, chain, clusters)

    with FatVolume(image) as fat:
        listed = fat.directory((b"DCIM",))
        assert listed is not None
        # each cluster once: a loop would otherwise repeat the entries up to 65,536 of them
        assert names(listed) == read, damage
        found = fat.entry((b"DCIM",), b"A0002.MP4")
        assert found is not None and found.first_cluster == 30
