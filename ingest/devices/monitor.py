"""Block-device events for the dock: a pyudev netlink monitor, with udevd or without.

With a running udevd the monitor listens to udev's processed events (`source='udev'`): they carry
ID_FS_* from udev's blkid builtin and what our rules add (EVIDENCE_RECORDER, ...). Without udevd (a
container, a minimal station) it listens to the kernel's raw uevents (`source='kernel'`), which carry
only ACTION/DEVNAME/DEVPATH/DEVTYPE/DISKSEQ/...; the missing ID_FS_* are filled by `blkid -p -o
export DEVNODE` and, for USB devices, ID_BUS/ID_VENDOR_ID/ID_MODEL_ID/ID_SERIAL_SHORT from sysfs.
The decision what to do with an event is `ingest.devices.udev` (pure); this module only reads.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from evidence_store.errors import ConfigurationError
from ingest.devices.udev import HAS_PARTITIONS, is_removal, properties_from_blkid

log = logging.getLogger(__name__)

UDEV_CONTROL = Path("/run/udev/control")
BLKID_TIMEOUT_S = 15.0
Source = Literal["udev", "kernel"]


def udevd_running(control: Path = UDEV_CONTROL) -> bool:
    """Whether a udevd answers on its control socket (a stale socket file does not count)."""
    if not control.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(str(control))
        except OSError:
            return False
    return True


def blkid_properties(devnode: str) -> dict[str, str]:
    """Low-level probe of a device's filesystem as udev's ID_FS_* names; {} when there is none."""
    try:
        done = subprocess.run(
            ["blkid", "-p", "-o", "export", devnode],
            capture_output=True,
            text=True,
            timeout=BLKID_TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError as exc:
        raise ConfigurationError("blkid is not installed (Debian package util-linux)") from exc
    except subprocess.TimeoutExpired:
        log.warning("blkid on %s did not answer in %.0f s", devnode, BLKID_TIMEOUT_S)
        return {}
    # exit 2: nothing recognised (an empty loop device, a blank medium); other codes: unreadable
    if done.returncode != 0:
        if done.returncode != 2:
            log.debug("blkid %s exited %d: %s", devnode, done.returncode, done.stderr.strip())
        return {}
    return properties_from_blkid(done.stdout)


def _sysfs_properties(device: Any) -> dict[str, str]:
    """What udev would have added from sysfs: the USB ids of the device's USB parent, and whether a
    whole disk has partitions."""
    props: dict[str, str] = {}
    with contextlib.suppress(Exception):  # sysfs entries vanish when the device does
        usb = device.find_parent("usb", "usb_device")
        if usb is not None:
            attributes = usb.attributes
            props["ID_BUS"] = "usb"
            for key, attribute in (
                ("ID_VENDOR_ID", "idVendor"),
                ("ID_MODEL_ID", "idProduct"),
                ("ID_SERIAL_SHORT", "serial"),
            ):
                value = attributes.get(attribute)
                if value:
                    props[key] = value.decode("utf-8", "replace").strip()
    return props


def _has_partitions(sys_path: str) -> bool:
    try:
        return any((entry / "partition").exists() for entry in Path(sys_path).iterdir() if entry.is_dir())
    except OSError:
        return False


class BlockMonitor:
    """Block-subsystem events (and the devices already present) as plain property dicts."""

    def __init__(self, source: Literal["auto", "udev", "kernel"] = "auto") -> None:
        # start-up time: pyudev (about 30 ms, and libudev through ctypes) loads only when a monitor is
        # made; blkid_properties and udevd_running are used without it
        import pyudev

        self.context = pyudev.Context()
        self.source: Source = ("udev" if udevd_running() else "kernel") if source == "auto" else source
        self._monitor = pyudev.Monitor.from_netlink(self.context, source=self.source)
        self._monitor.filter_by("block")

    def start(self) -> None:
        """Start receiving; events from before this call are not seen (use `present()` for those)."""
        self._monitor.start()

    def fileno(self) -> int:
        return int(self._monitor.fileno())

    def poll(self, timeout: float | None = None) -> dict[str, str] | None:
        """The next event's properties (completed as the kernel source needs), or None on timeout."""
        device = self._monitor.poll(timeout=timeout)
        if device is None:
            return None
        return self.complete(device, device.action or "change", self.source)

    def settle(self, timeout: float = 30.0) -> None:
        """With udevd: wait until it has processed the events queued so far (`udevadm settle`), so
        that a device added a moment ago is listed with what udev's rules give it."""
        if self.source != "udev":
            return
        try:
            done = subprocess.run(
                ["udevadm", "settle", f"--timeout={timeout:.0f}"],
                capture_output=True,
                text=True,
                timeout=timeout + 5,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("udevadm settle failed: %s", exc)
            return
        if done.returncode != 0:
            log.warning("udevadm settle: %s", done.stderr.strip() or f"exit status {done.returncode}")

    def present(self) -> Iterator[dict[str, str]]:
        """Every block device there now, as if it had just been added."""
        for device in self.context.list_devices(subsystem="block"):
            yield self.complete(device, "add", "present")

    def complete(self, device: Any, action: str, via: str) -> dict[str, str]:
        props = {str(k): str(v) for k, v in device.properties.items()}
        props["ACTION"] = action
        props["EVIDENCE_EVENT_SOURCE"] = via
        if is_removal(props) or action not in {"add", "change"}:
            return props
        devnode = props.get("DEVNAME")
        # A device udevd processed carries USEC_INITIALIZED; its properties are complete as they are.
        if devnode and "USEC_INITIALIZED" not in props:
            if "ID_FS_TYPE" not in props:
                props.update(blkid_properties(devnode))
                if "ID_FS_TYPE" in props:
                    props["EVIDENCE_FS_FROM"] = "blkid"
            if "ID_BUS" not in props:
                props.update(_sysfs_properties(device))
        if props.get("DEVTYPE") == "disk":
            props[HAS_PARTITIONS] = "1" if _has_partitions(device.sys_path) else "0"
        return props
