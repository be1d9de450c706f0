"""The supervisor of `evidence station` with real child processes (issue #19, item 0): a role that dies
is restarted and logged, and what it left behind dies with it; SIGTERM stops every role (SIGKILL after
the timeout for one that ignores it) and leaves no process behind; if the supervisor itself is killed,
its roles get SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO

SUPERVISOR = """
import logging, sys
from entrypoints.supervisor import Role, Supervisor

logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
steady = "{steady}"
stubborn = "{stubborn}"
Supervisor(
    [Role("steady", (sys.executable, "-c", steady)), Role("stubborn", (sys.executable, "-c", stubborn))],
    stop_timeout=2,
    first_delay=0.2,
).run()
print("supervisor done", flush=True)
"""
# a role that starts a helper of its own (as dramatiq starts worker processes), then waits
STEADY = (
    "import os, subprocess, sys, time; "
    "helper = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)']); "
    "open('{dir}/steady-' + str(os.getpid()), 'w').write(str(helper.pid)); "
    "time.sleep(300)"
)
STUBBORN = (
    "import os, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "open('{dir}/stubborn-' + str(os.getpid()), 'w').close(); time.sleep(300)"
)


def gone(pid: int) -> bool:
    """No such process, or only its zombie (reparented to an init that reaps it later)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in {"Z", "X"}


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


class Run:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.log = directory / "supervisor.log"
        script = SUPERVISOR.format(
            steady=STEADY.format(dir=directory).replace('"', '\\"'),
            stubborn=STUBBORN.format(dir=directory).replace('"', '\\"'),
        )
        self.handle = self.log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", script],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=self.handle,
            stderr=subprocess.STDOUT,
        )

    def roles(self, name: str) -> dict[int, int | None]:
        """pid of each `name` role started so far -> the pid of its helper (steady only)."""
        found: dict[int, int | None] = {}
        for path in self.dir.glob(f"{name}-*"):
            text = path.read_text()
            if name == "steady" and not text:
                continue  # being written
            found[int(path.name.split("-")[1])] = int(text) if text else None
        return found

    def text(self) -> str:
        return self.log.read_text()


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Run]:
    started = Run(tmp_path)
    try:
        yield started
    finally:
        if started.proc.poll() is None:
            started.proc.kill()
            started.proc.wait(timeout=30)
        for name in ("steady", "stubborn"):
            for pid, helper in started.roles(name).items():
                for each in (pid, helper):
                    if each and not gone(each):
                        os.kill(each, signal.SIGKILL)
        started.handle.close()


def test_a_role_that_dies_is_restarted_and_what_it_left_dies_with_it(run: Run) -> None:
    wait_for(lambda: len(run.roles("steady")) == 1 and len(run.roles("stubborn")) == 1, "both roles run")
    ((first, helper),) = run.roles("steady").items()
    assert helper is not None

    os.kill(first, signal.SIGKILL)

    wait_for(lambda: len(run.roles("steady")) == 2, "the steady role is started again")
    assert helper is not None and gone(helper)  # its helper was killed with it, not left an orphan
    assert gone(first)
    assert f"station: steady (pid {first}) killed by SIGKILL" in run.text()
    assert "restarting it in" in run.text()
    assert len(run.roles("stubborn")) == 1  # the others went on untouched


def test_sigterm_stops_every_role_and_kills_one_that_will_not_stop(run: Run) -> None:
    wait_for(lambda: len(run.roles("steady")) == 1 and len(run.roles("stubborn")) == 1, "both roles run")
    ((steady, helper),) = run.roles("steady").items()
    (stubborn,) = run.roles("stubborn")

    started = time.monotonic()
    run.proc.send_signal(signal.SIGTERM)
    assert run.proc.wait(timeout=30) == 0
    took = time.monotonic() - started

    assert 2 <= took < 15, took  # the stubborn role had its 2 s, then was killed
    assert all(gone(pid) for pid in (steady, stubborn, helper or 0)), run.text()
    text = run.text()
    assert f"station: steady (pid {steady}) killed by SIGTERM" in text
    assert f"station: stubborn (pid {stubborn}) still running 2 s after SIGTERM: killing it" in text
    assert text.rstrip().endswith("supervisor done")


def test_roles_get_sigterm_when_the_supervisor_is_killed(run: Run) -> None:
    wait_for(lambda: len(run.roles("steady")) == 1 and len(run.roles("stubborn")) == 1, "both roles run")
    (steady,) = run.roles("steady")

    run.proc.kill()
    run.proc.wait(timeout=30)

    wait_for(lambda: gone(steady), "the steady role ends with its supervisor")
