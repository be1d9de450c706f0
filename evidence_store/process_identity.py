"""Which process runs a piece of work, and whether it still runs: host, pid and the process's start
(boot id and start tick from /proc), so a pid reused after a crash or a reboot is not taken for it."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


@dataclass(frozen=True)
class ProcessIdentity:
    host: str
    pid: int
    started: str  # "<boot id>:<start tick>"; "" where /proc cannot tell


def _boot_id() -> str:
    try:
        return _BOOT_ID.read_text().strip()
    except OSError:
        return ""


def _start_tick(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: the fields after it follow the last ")"
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in {"Z", "X"}:
        return None  # a zombie has ended; only its exit status waits to be collected
    return fields[19]  # field 22, starttime


def this_process() -> ProcessIdentity:
    pid = os.getpid()
    tick = _start_tick(pid)
    return ProcessIdentity(socket.gethostname(), pid, f"{_boot_id()}:{tick}" if tick else "")


def still_running(owner: ProcessIdentity) -> bool | None:
    """Whether the process still runs: None when it ran on another host (this one cannot tell)."""
    if owner.host != socket.gethostname():
        return None
    tick = _start_tick(owner.pid)
    if tick is None:
        return False
    if not owner.started:
        return True  # recorded without a start time: a live pid is taken as the owner, to be safe
    return owner.started == f"{_boot_id()}:{tick}"
