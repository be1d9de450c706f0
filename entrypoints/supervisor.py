"""A small supervisor for the station's roles: each role a child process, restarted with backoff when
it dies, all stopped together on SIGINT or SIGTERM.

Written by hand: the process managers on PyPI (supervisor, circus) are daemons of their own, with their
own configuration files and control sockets, and honcho stops everything when one process exits instead
of restarting it; systemd does this job on an installed station (deploy/systemd/), but not under
`make run`. What is needed here is one loop:

- each role runs in a session (process group) of its own, so a terminal's Ctrl-C reaches only the
  supervisor, which stops the roles in order, and whatever a role leaves behind (a dramatiq worker
  process, an ffmpeg) is found by its group and killed;
- a role that exits is restarted after 1, 2, 4 … 60 s (reset once it has run for a minute), and each
  exit and restart is logged;
- stopping sends SIGTERM to every role, waits up to `stop_timeout`, then sends SIGKILL to the groups
  still there; the children also get SIGTERM if the supervisor itself dies (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType

log = logging.getLogger("entrypoints.station")

PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Role:
    """One long-running part of the station and the command that runs it."""

    name: str
    argv: tuple[str, ...]


def restart_delay(exits_in_a_row: int, *, first: float = 1.0, longest: float = 60.0) -> float:
    """Seconds to wait before starting a role again after its `exits_in_a_row`-th quick exit:
    doubling from `first`, never more than `longest`."""
    return min(longest, first * 2.0 ** max(0, exits_in_a_row - 1))


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with code {returncode}"


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the supervisor dies, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


@dataclass
class _Child:
    role: Role
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    quick_exits: int = 0
    start_at: float = 0.0

    @property
    def running(self) -> bool:
        """Started and not exited. An exited child is left unreaped (a zombie), so its pid, which
        names its process group, cannot be given to another process before `_end` kills that group."""
        if self.process is None or self.process.returncode is not None:
            return False
        try:
            return os.waitid(os.P_PID, self.process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None
        except ChildProcessError:
            return self.process.poll() is None

    def end(self) -> int:
        """Kill what is left in the child's process group (the child too, if it still runs), reap the
        child and return its exit code."""
        assert self.process is not None
        _kill_group(self.process.pid)
        return self.process.wait()


class Supervisor:
    """Runs `roles` until SIGINT or SIGTERM (or `stop()`), restarting each one that exits."""

    def __init__(
        self,
        roles: Sequence[Role],
        *,
        stop_timeout: float = 30.0,
        stable_after: float = 60.0,
        first_delay: float = 1.0,
        longest_delay: float = 60.0,
        poll_interval: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._children = [_Child(role) for role in roles]
        self._stop_timeout = stop_timeout
        self._stable_after = stable_after
        self._first_delay = first_delay
        self._longest_delay = longest_delay
        self._poll_interval = poll_interval
        self._clock = clock
        self._stopping = False

    def pids(self) -> dict[str, int]:
        """The pid of each role running now."""
        return {c.role.name: c.process.pid for c in self._children if c.process is not None and c.running}

    def stop(self, signum: int | None = None, _frame: FrameType | None = None) -> None:
        if signum is not None and not self._stopping:
            log.info("station: %s, stopping %s", signal.Signals(signum).name, self._names())
        self._stopping = True

    def run(self) -> None:
        """Start every role, keep them running, and stop them all when asked. Returns once every
        child and everything in their process groups is gone."""
        previous = {sig: signal.signal(sig, self.stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            while not self._stopping:
                self._tend()
                time.sleep(self._poll_interval)
        finally:
            try:
                self._stop_all()
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    def _names(self) -> str:
        return ", ".join(c.role.name for c in self._children)

    def _tend(self) -> None:
        now = self._clock()
        for child in self._children:
            if child.process is None:
                if now >= child.start_at:
                    self._start(child)
                continue
            if child.running:
                continue
            returncode = child.end()  # what the role left behind dies with it
            ran = now - child.started_at
            child.quick_exits = 0 if ran >= self._stable_after else child.quick_exits
            child.quick_exits += 1
            delay = restart_delay(child.quick_exits, first=self._first_delay, longest=self._longest_delay)
            log.warning(
                "station: %s (pid %d) %s after %.0f s; restarting it in %.0f s",
                child.role.name,
                child.process.pid,
                describe_exit(returncode),
                ran,
                delay,
            )
            child.process = None
            child.start_at = now + delay

    def _start(self, child: _Child) -> None:
        try:
            child.process = subprocess.Popen(
                child.role.argv,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: Ctrl-C reaches the supervisor only
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - the supervisor starts no thread
            )
        except OSError as exc:
            child.quick_exits += 1
            delay = restart_delay(child.quick_exits, first=self._first_delay, longest=self._longest_delay)
            log.error("station: cannot start %s (%s); trying again in %.0f s", child.role.name, exc, delay)
            child.start_at = self._clock() + delay
            return
        child.started_at = self._clock()
        log.info("station: %s started (pid %d)", child.role.name, child.process.pid)

    def _stop_all(self) -> None:
        started = [c for c in self._children if c.process is not None]
        for child in started:
            assert child.process is not None
            if child.running:  # os.kill, not Popen.send_signal, which would reap an exited child
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.process.pid, signal.SIGTERM)
        deadline = self._clock() + self._stop_timeout
        while any(c.running for c in started) and self._clock() < deadline:
            time.sleep(0.1)
        for child in started:
            assert child.process is not None
            if child.running:
                log.warning(
                    "station: %s (pid %d) still running %.0f s after SIGTERM: killing it",
                    child.role.name,
                    child.process.pid,
                    self._stop_timeout,
                )
            returncode = child.end()
            log.info("station: %s (pid %d) %s", child.role.name, child.process.pid, describe_exit(returncode))
            child.process = None


def _kill_group(group: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signal.SIGKILL)
