"""Deciding from a block device's udev (or blkid) properties whether it is a docked recorder volume.

Pure: the properties come in as a plain mapping (recorded in tests, read from a udev event or filled by
`blkid -p -o export` by the adapter in `ingest.devices.monitor`); nothing here touches the system.

What the properties look like (seen on this kind of machine, see the notes on udev and recorder images):

- with udevd: ACTION, DEVNAME, DEVPATH, DEVTYPE, DISKSEQ, ... plus ID_FS_TYPE / ID_FS_UUID / ID_FS_LABEL
  (blkid builtin), ID_BUS / ID_VENDOR_ID / ID_MODEL_ID / ID_SERIAL_SHORT (USB devices), and what our
  rules add: EVIDENCE_RECORDER=1, UDISKS_IGNORE=1, SYSTEMD_WANTS.
- from the kernel alone: ACTION, DEVNAME, DEVPATH, DEVTYPE, DISKSEQ, MAJOR, MINOR, SEQNUM, SUBSYSTEM
  (+ PARTN); the adapter adds ID_FS_* from blkid (and ID_BUS/ID_*_ID from sysfs for USB devices).
- an exFAT volume without a partition table ("superfloppy") also reports ID_PART_TABLE_TYPE=dos: the
  exFAT boot sector carries the 0x55AA signature. A whole disk with a filesystem is a volume.
- a loop device that loses its backing file, like a card reader whose card is pulled, sends `change`
  with DISK_MEDIA_CHANGE=1 and no ID_FS_*; a USB recorder pulled out sends `remove`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# Filesystems a recorder's volume can carry (FAT32 or exFAT; FAT16 on old ones is `vfat` too).
RECORDER_FILESYSTEMS = frozenset({"vfat", "exfat"})
CANDIDATE_ACTIONS = frozenset({"add", "change"})
# Set by the monitor adapter when sysfs shows partitions under a whole disk (not a udev property).
HAS_PARTITIONS = "EVIDENCE_HAS_PARTITIONS"
RECORDER_TAG = "EVIDENCE_RECORDER"


@dataclass(frozen=True)
class DockedVolume:
    """A block device that holds a volume the dock should pull."""

    devnode: str  # /dev/sdb1, /dev/loop42
    fs_type: str  # vfat | exfat
    label: str | None
    uuid: str | None
    usb_id: str | None  # "vvvv:pppp", lowercase
    serial_short: str | None  # the USB serial (ID_SERIAL_SHORT)
    tagged_recorder: bool  # our udev rule recognised a recorder model (EVIDENCE_RECORDER=1)
    devpath: str = ""
    diskseq: str | None = None
    fs_version: str | None = None  # FAT32, 1.0, ...

    @property
    def devname(self) -> str:
        """The kernel name (sdb1, loop42): names the mountpoint and the log lines."""
        return self.devnode.rsplit("/", 1)[-1]

    def as_dict(self) -> dict[str, object]:
        return {
            "devnode": self.devnode,
            "fs_type": self.fs_type,
            "fs_version": self.fs_version,
            "label": self.label,
            "uuid": self.uuid,
            "usb_id": self.usb_id,
            "serial_short": self.serial_short,
            "tagged_recorder": self.tagged_recorder,
            "diskseq": self.diskseq,
        }


def is_removal(props: Mapping[str, str]) -> bool:
    """The device (or its medium) went away: `remove`, or `change` announcing a medium change after
    which no filesystem is left (a card pulled from a reader, a loop device detached)."""
    action = props.get("ACTION", "")
    if action == "remove":
        return True
    return action == "change" and props.get("DISK_MEDIA_CHANGE") == "1" and not props.get("ID_FS_TYPE")


def is_loop_device(props: Mapping[str, str]) -> bool:
    name = props.get("DEVNAME", "").rsplit("/", 1)[-1]
    return name.startswith("loop") or props.get("DEVPATH", "").startswith("/devices/virtual/block/loop")


def on_usb(props: Mapping[str, str]) -> bool:
    """Whether the device hangs off a USB bus: udev's ID_BUS, or the sysfs path (kernel events)."""
    return props.get("ID_BUS") == "usb" or "/usb" in props.get("DEVPATH", "")


def usb_id_of(props: Mapping[str, str]) -> str | None:
    vendor = props.get("ID_VENDOR_ID", "").strip().lower()
    model = props.get("ID_MODEL_ID", "").strip().lower()
    if len(vendor) == 4 and len(model) == 4 and _is_hex(vendor + model):
        return f"{vendor}:{model}"
    return None


def docked_volume_from_properties(
    props: Mapping[str, str], *, accept_loop: bool = False
) -> DockedVolume | None:
    """The recorder volume these properties describe, or None when the device is not one to pull.

    A candidate is a block device (disk or partition) being added or changed that carries a FAT or
    exFAT filesystem, and that is either tagged by our udev rule or sits on USB. A whole disk that
    has partitions is not a volume (its partitions come as their own events). Loop devices are never
    recorders in production; `accept_loop` admits them for tests and demonstrations, where the
    kernel-only fallback has no udev rule to tag them.
    """
    if not_a_recorder_volume(props, accept_loop=accept_loop) is not None:
        return None
    devnode = props["DEVNAME"]
    if not devnode.startswith("/"):
        devnode = f"/dev/{devnode}"
    return DockedVolume(
        devnode=devnode,
        fs_type=props["ID_FS_TYPE"].lower(),
        label=_label(props),
        uuid=_text(props, "ID_FS_UUID"),
        usb_id=usb_id_of(props),
        serial_short=_text(props, "ID_SERIAL_SHORT"),
        tagged_recorder=props.get(RECORDER_TAG) == "1",
        devpath=props.get("DEVPATH", ""),
        diskseq=_text(props, "DISKSEQ"),
        fs_version=_text(props, "ID_FS_VERSION"),
    )


def not_a_recorder_volume(props: Mapping[str, str], *, accept_loop: bool = False) -> str | None:
    """Why these properties do not describe a volume to pull (None: they do)."""
    devtype = props.get("DEVTYPE", "")
    usage = props.get("ID_FS_USAGE")
    checks = (
        (props.get("SUBSYSTEM", "block") != "block", "not a block device"),
        (is_removal(props), "the device or its medium went away"),
        (props.get("ACTION", "add") not in CANDIDATE_ACTIONS, f"action {props.get('ACTION')}"),
        (not props.get("DEVNAME"), "no device node"),
        (devtype not in {"disk", "partition", ""}, f"device type {devtype}"),
        (
            props.get("ID_FS_TYPE", "").lower() not in RECORDER_FILESYSTEMS,
            f"filesystem {props.get('ID_FS_TYPE') or 'none'} is not FAT or exFAT",
        ),
        (usage is not None and usage != "filesystem", f"filesystem usage {usage}"),
        (devtype == "disk" and props.get(HAS_PARTITIONS) == "1", "a whole disk that has partitions"),
        (props.get("SYSTEMD_READY") == "0", "marked not ready (SYSTEMD_READY=0)"),
        (props.get("ID_CDROM") == "1", "an optical drive"),
        (
            props.get(RECORDER_TAG) != "1"
            and not on_usb(props)
            and not (accept_loop and is_loop_device(props)),
            "neither tagged as a recorder nor on USB",
        ),
    )
    return next((reason for failed, reason in checks if failed), None)


def properties_from_blkid(output: str) -> dict[str, str]:
    """`blkid -p -o export DEV` lines (TYPE=vfat, UUID=..., LABEL=...) as udev's ID_FS_* properties."""
    raw: dict[str, str] = {}
    for line in output.splitlines():
        key, sep, value = line.partition("=")
        if sep and key:
            raw[key.strip()] = value.strip()
    mapping = {
        "TYPE": "ID_FS_TYPE",
        "UUID": "ID_FS_UUID",
        "LABEL": "ID_FS_LABEL",
        "VERSION": "ID_FS_VERSION",
        "USAGE": "ID_FS_USAGE",
        "PTTYPE": "ID_PART_TABLE_TYPE",
        "PTUUID": "ID_PART_TABLE_UUID",
    }
    return {udev_key: raw[key] for key, udev_key in mapping.items() if raw.get(key)}


def _label(props: Mapping[str, str]) -> str | None:
    """The volume label as written: udev's ID_FS_LABEL replaces what is not plain ASCII with `_`,
    ID_FS_LABEL_ENC keeps the bytes as \\xNN escapes (a Chinese label, a space)."""
    encoded = props.get("ID_FS_LABEL_ENC")
    if encoded:
        raw = bytearray()
        i = 0
        while i < len(encoded):
            if encoded.startswith("\\x", i) and i + 4 <= len(encoded) and _is_hex(encoded[i + 2 : i + 4]):
                raw.append(int(encoded[i + 2 : i + 4], 16))
                i += 4
            else:
                raw.extend(encoded[i].encode("utf-8"))
                i += 1
        decoded = raw.decode("utf-8", errors="replace").strip()
        if decoded:
            return decoded
    return _text(props, "ID_FS_LABEL")


def _text(props: Mapping[str, str], key: str) -> str | None:
    value = props.get(key, "").strip()
    return value or None


def _is_hex(text: str) -> bool:
    return bool(text) and all(c in "0123456789abcdefABCDEF" for c in text)
