"""Which block devices the dock takes, decided from recorded udev / kernel / blkid property sets."""

from __future__ import annotations

from ingest.devices.udev import (
    docked_volume_from_properties,
    is_removal,
    not_a_recorder_volume,
    properties_from_blkid,
)

# A USB recorder (执法记录仪 in mass-storage mode) docked at a station with udevd and our rules.
USB_RECORDER = {
    "ACTION": "add",
    "SUBSYSTEM": "block",
    "DEVNAME": "/dev/sdb",
    "DEVPATH": "/devices/pci0000:00/0000:00:14.0/usb1/1-3/1-3:1.0/host6/target6:0:0/6:0:0:0/block/sdb",
    "DEVTYPE": "disk",
    "DISKSEQ": "9",
    "MAJOR": "8",
    "MINOR": "16",
    "SEQNUM": "4711",
    "USEC_INITIALIZED": "912345678",
    "ID_BUS": "usb",
    "ID_USB_DRIVER": "usb-storage",
    "ID_VENDOR": "Rockchip",
    "ID_VENDOR_ID": "2207",
    "ID_MODEL": "DSJ-T9",
    "ID_MODEL_ID": "0010",
    "ID_SERIAL": "Rockchip_DSJ-T9_A1B2C3D4E5-0:0",
    "ID_SERIAL_SHORT": "A1B2C3D4E5",
    "ID_FS_TYPE": "exfat",
    "ID_FS_USAGE": "filesystem",
    "ID_FS_UUID": "5E1F-0C2A",
    "ID_FS_UUID_ENC": "5E1F-0C2A",
    "ID_FS_VERSION": "1.0",
    "ID_FS_LABEL": "DSJ_T9",
    "ID_FS_LABEL_ENC": "DSJ\\x20T9",
    "ID_PART_TABLE_TYPE": "dos",  # exFAT's boot sector carries 0x55AA: blkid also reports a "dos" table
    "EVIDENCE_RECORDER": "1",
    "UDISKS_IGNORE": "1",
    "TAGS": ":systemd:",
    "SYSTEMD_WANTS": "evidence-dock@sdb.service",
}

# The same kind of event as the kernel alone sends it (no udevd): no ID_* at all.
KERNEL_ONLY = {
    "ACTION": "add",
    "SUBSYSTEM": "block",
    "DEVNAME": "/dev/sdc1",
    "DEVPATH": "/devices/pci0000:00/0000:00:14.0/usb1/1-4/1-4:1.0/host7/target7:0:0/7:0:0:0/block/sdc/sdc1",
    "DEVTYPE": "partition",
    "DISKSEQ": "12",
    "MAJOR": "8",
    "MINOR": "33",
    "PARTN": "1",
    "SEQNUM": "4800",
}

# `blkid -p -o export /dev/sdc1` on a FAT32 recorder volume.
BLKID_FAT32 = """DEVNAME=/dev/sdc1
LABEL_FATBOOT=ZFJLY01
LABEL=ZFJLY01
UUID=0AC9-6EEA
VERSION=FAT32
BLOCK_SIZE=512
TYPE=vfat
USAGE=filesystem
"""

# A loop device as udevd with the test rule reports it (tests only).
LOOP_TAGGED = {
    "ACTION": "change",
    "SUBSYSTEM": "block",
    "DEVNAME": "/dev/loop47",
    "DEVPATH": "/devices/virtual/block/loop47",
    "DEVTYPE": "disk",
    "DISKSEQ": "27",
    "USEC_INITIALIZED": "2170872534",
    "ID_FS_TYPE": "vfat",
    "ID_FS_USAGE": "filesystem",
    "ID_FS_UUID": "0AC9-6EEA",
    "ID_FS_LABEL": "DSJTEST",
    "ID_FS_LABEL_ENC": "DSJTEST",
    "ID_FS_VERSION": "FAT32",
    "EVIDENCE_RECORDER": "1",
    "UDISKS_IGNORE": "1",
}


def test_usb_recorder_with_udev_is_docked_with_its_identity() -> None:
    volume = docked_volume_from_properties(USB_RECORDER)
    assert volume is not None
    assert volume.devnode == "/dev/sdb" and volume.devname == "sdb"
    assert (volume.fs_type, volume.fs_version) == ("exfat", "1.0")
    assert volume.uuid == "5E1F-0C2A"
    assert volume.label == "DSJ T9"  # from ID_FS_LABEL_ENC, not udev's "safe" ID_FS_LABEL
    assert volume.usb_id == "2207:0010"
    assert volume.serial_short == "A1B2C3D4E5"
    assert volume.tagged_recorder is True
    assert volume.diskseq == "9"
    # `change` (a medium inserted, udev's watch) is a candidate too; the dock drops repeats itself
    assert docked_volume_from_properties({**USB_RECORDER, "ACTION": "change"}) == volume


def test_untagged_usb_volume_is_docked_for_the_generic_profile() -> None:
    props = {k: v for k, v in USB_RECORDER.items() if k not in {"EVIDENCE_RECORDER", "SYSTEMD_WANTS"}}
    props.update({"ID_VENDOR_ID": "0781", "ID_MODEL_ID": "5567", "ID_FS_TYPE": "vfat"})
    volume = docked_volume_from_properties(props)
    assert volume is not None
    assert (volume.tagged_recorder, volume.usb_id, volume.fs_type) == (False, "0781:5567", "vfat")


def test_chinese_label_is_decoded_from_its_escaped_bytes() -> None:
    label = "执法仪01"
    encoded = "".join(f"\\x{b:02x}" if b > 0x7F else chr(b) for b in label.encode("utf-8"))
    volume = docked_volume_from_properties(
        {**USB_RECORDER, "ID_FS_LABEL": "_________01", "ID_FS_LABEL_ENC": encoded}
    )
    assert volume is not None and volume.label == label


def test_kernel_only_event_is_not_enough_until_blkid_fills_the_filesystem() -> None:
    assert docked_volume_from_properties(KERNEL_ONLY) is None
    assert not_a_recorder_volume(KERNEL_ONLY) == "filesystem none is not FAT or exFAT"
    filled = {**KERNEL_ONLY, **properties_from_blkid(BLKID_FAT32)}
    assert filled["ID_FS_TYPE"] == "vfat" and filled["ID_FS_UUID"] == "0AC9-6EEA"
    volume = docked_volume_from_properties(filled)
    assert volume is not None
    # on USB by its sysfs path; not tagged (no rules ran) and no USB ids unless the adapter read sysfs
    assert (volume.devnode, volume.fs_type, volume.label) == ("/dev/sdc1", "vfat", "ZFJLY01")
    assert (volume.tagged_recorder, volume.usb_id) == (False, None)
    with_ids = {**filled, "ID_BUS": "usb", "ID_VENDOR_ID": "1B3F", "ID_MODEL_ID": "2008"}
    assert docked_volume_from_properties(with_ids).usb_id == "1b3f:2008"  # type: ignore[union-attr]


def test_disk_with_a_partition_table_is_not_a_volume() -> None:
    disk = {
        **{k: v for k, v in USB_RECORDER.items() if not k.startswith("ID_FS_")},
        "ID_PART_TABLE_TYPE": "gpt",
        "ID_PART_TABLE_UUID": "8f1c3a52-54f0-4b8e-9d1a-1f2a3b4c5d6e",
    }
    assert docked_volume_from_properties(disk) is None
    # and a whole disk the adapter saw partitions under, even if a filesystem signature shows too
    assert docked_volume_from_properties({**USB_RECORDER, "EVIDENCE_HAS_PARTITIONS": "1"}) is None
    assert not_a_recorder_volume({**USB_RECORDER, "EVIDENCE_HAS_PARTITIONS": "1"}) == (
        "a whole disk that has partitions"
    )
    # its FAT partition is
    partition = {
        **USB_RECORDER,
        "DEVNAME": "/dev/sdb1",
        "DEVTYPE": "partition",
        "ID_FS_TYPE": "vfat",
        "EVIDENCE_HAS_PARTITIONS": "0",
    }
    assert docked_volume_from_properties(partition).devnode == "/dev/sdb1"  # type: ignore[union-attr]


def test_other_filesystems_and_other_devices_are_not_recorders() -> None:
    for fs_type in ("ext4", "ntfs", "iso9660", "crypto_LUKS", "swap"):
        assert docked_volume_from_properties({**USB_RECORDER, "ID_FS_TYPE": fs_type}) is None
    assert docked_volume_from_properties({**USB_RECORDER, "ID_FS_USAGE": "raid"}) is None
    assert docked_volume_from_properties({**USB_RECORDER, "ID_CDROM": "1"}) is None
    assert docked_volume_from_properties({**USB_RECORDER, "SUBSYSTEM": "usb"}) is None
    assert docked_volume_from_properties({**USB_RECORDER, "ACTION": "bind"}) is None
    # the station's own EFI system partition is FAT too, but neither USB nor tagged
    esp = {
        "ACTION": "change",
        "SUBSYSTEM": "block",
        "DEVNAME": "/dev/nvme0n1p1",
        "DEVPATH": "/devices/pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0/nvme0n1/nvme0n1p1",
        "DEVTYPE": "partition",
        "ID_BUS": "nvme",
        "ID_FS_TYPE": "vfat",
        "ID_FS_USAGE": "filesystem",
        "ID_FS_LABEL": "ESP",
    }
    assert docked_volume_from_properties(esp) is None
    assert not_a_recorder_volume(esp) == "neither tagged as a recorder nor on USB"


def test_loop_devices_only_when_tagged_by_the_test_rule_or_accepted() -> None:
    volume = docked_volume_from_properties(LOOP_TAGGED)
    assert volume is not None and volume.tagged_recorder and volume.devname == "loop47"
    untagged = {k: v for k, v in LOOP_TAGGED.items() if k not in {"EVIDENCE_RECORDER", "UDISKS_IGNORE"}}
    assert docked_volume_from_properties(untagged) is None
    accepted = docked_volume_from_properties(untagged, accept_loop=True)
    assert accepted is not None and not accepted.tagged_recorder
    # a loop node without a backing file yet (udev's 99-systemd.rules marks it not ready)
    assert docked_volume_from_properties({**LOOP_TAGGED, "SYSTEMD_READY": "0"}) is None


def test_removal_events() -> None:
    removed = {
        "ACTION": "remove",
        "SUBSYSTEM": "block",
        "DEVNAME": "/dev/sdb",
        "DEVPATH": USB_RECORDER["DEVPATH"],
        "DEVTYPE": "disk",
        "DISKSEQ": "9",
    }
    assert is_removal(removed)
    assert docked_volume_from_properties(removed) is None
    assert is_removal({**USB_RECORDER, "ACTION": "remove"})  # udev repeats the properties on remove
    # the medium went away: `change` with DISK_MEDIA_CHANGE and no filesystem left (seen when a loop
    # device is detached: udev drops ID_FS_* and sets SYSTEMD_READY=0)
    medium_gone = {
        "ACTION": "change",
        "SUBSYSTEM": "block",
        "DEVNAME": "/dev/loop47",
        "DEVPATH": "/devices/virtual/block/loop47",
        "DEVTYPE": "disk",
        "DISKSEQ": "27",
        "DISK_MEDIA_CHANGE": "1",
        "SYSTEMD_READY": "0",
    }
    assert is_removal(medium_gone)
    # a medium inserted is a change with a filesystem: not a removal, a docking
    inserted = {**USB_RECORDER, "ACTION": "change", "DISK_MEDIA_CHANGE": "1"}
    assert not is_removal(inserted)
    assert docked_volume_from_properties(inserted) is not None
    # a plain change or add is not a removal
    assert not is_removal(USB_RECORDER)
    assert not is_removal({**KERNEL_ONLY, "ACTION": "change"})


def test_blkid_export_mapping() -> None:
    # `blkid -p -o export` on an exFAT recorder image (note PTTYPE=dos beside TYPE=exfat)
    exfat = "\n".join(
        [
            "DEVNAME=/dev/loop48",
            "LABEL=DSJEX",
            "UUID=EB7F-E124",
            "VERSION=1.0",
            "BLOCK_SIZE=512",
            "TYPE=exfat",
            "USAGE=filesystem",
            "PTTYPE=dos",
        ]
    )
    assert properties_from_blkid(exfat) == {
        "ID_FS_TYPE": "exfat",
        "ID_FS_UUID": "EB7F-E124",
        "ID_FS_LABEL": "DSJEX",
        "ID_FS_VERSION": "1.0",
        "ID_FS_USAGE": "filesystem",
        "ID_PART_TABLE_TYPE": "dos",
    }
    assert properties_from_blkid("") == {}
