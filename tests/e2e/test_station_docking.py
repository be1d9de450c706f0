"""`evidence station` as `make run` starts it, alone (issue #19, item 0; R2, R3, R4): on the embedded
defaults (SQLite, local store) with its Redis, a recorder image attached on a loop device (a real udev
event, our rules) is pulled by the station's dock, processed by its workers and plays in Chromium; the
worker process killed with SIGKILL is restarted by the station and a second docking is processed;
SIGTERM to the station stops every process it started."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select

from evidence_store.db.tables import clips, derivatives, devices
from evidence_store.domain.model import ClipStatus, DerivativeKind
from tests.conftest import REPO, run_cli
from tests.e2e.test_browser import CHROMIUM, CHROMIUM_ARGS, sign_in
from tests.fixtures.recorders import (  # noqa: F401  (fixtures)
    LoopDevice,
    RecorderImage,
    RecorderSpec,
    build_recorder_image,
    dock_tools,
    udevd,
)
from tests.fixtures.redis import RedisServer
from tests.fixtures.services import free_port, require

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("dock_tools")]

PASSWORD = "a long custodian password"
SETTLED = {ClipStatus.READY, ClipStatus.UNPLAYABLE, ClipStatus.FAILED}


class Station:
    """`evidence station` in a child process of its own, its log in a file."""

    def __init__(self, env: dict[str, str], home: Path, port: int) -> None:
        self.env, self.home, self.port = env, home, port
        self.base = f"http://127.0.0.1:{port}"
        self.log = home.parent / "station.log"
        self._handle = self.log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "entrypoints", "station", "--port", str(port), "--stop-timeout", "20"],
            env=env,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=self._handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.engine = create_engine(f"sqlite:///{home / 'evidence.db'}")

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_until(self, condition: Callable[[], bool], what: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.proc.poll() is None, f"the station exited {self.proc.returncode}:\n{self.text()}"
            assert time.monotonic() < deadline, f"timed out waiting until {what}:\n{self.text()[-6000:]}"
            time.sleep(0.3)

    def started(self, role: str) -> list[int]:
        """The pids the station started `role` with, in order."""
        return [int(pid) for pid in re.findall(rf"station: {role} started \(pid (\d+)\)", self.text())]

    def serving(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base}/healthz", timeout=2):
                return True
        except OSError:
            return False

    def clips_of(self, serial: str) -> dict[str, tuple[int, ClipStatus, bool]]:
        """name -> (id, status, has a proxy) of the clips from the recorder `serial`."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(clips.c.id, clips.c.original_name, clips.c.status)
                .join(devices, devices.c.id == clips.c.device_id)
                .where(devices.c.serial == serial)
            ).all()
            proxied = set(
                connection.scalars(
                    select(derivatives.c.clip_id).where(derivatives.c.kind == DerivativeKind.PROXY)
                )
            )
        return {row.original_name: (row.id, ClipStatus(row.status), row.id in proxied) for row in rows}

    def processed(self, image: RecorderImage) -> Callable[[], bool]:
        """Every file of the recorder is on record and settled; its videos are ready with a proxy."""

        def done() -> bool:
            found = self.clips_of(image.spec.serial)
            # the recorder's DeviceInfo.txt is a sidecar: kept as an attachment, never a clip (issue 17)
            footage = [path for path in image.files if path != "DeviceInfo.txt"]
            if len(found) != len(footage) or any(s not in SETTLED for _, s, _ in found.values()):
                return False
            videos = [v for name, v in found.items() if name.upper().endswith(".MP4")]
            return len(videos) == image.spec.clips and all(
                status is ClipStatus.READY and proxy for _, status, proxy in videos
            )

        return done

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code: int | None = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
            code = None
        self._handle.close()
        self.engine.dispose()
        return code


def processes_of(home: Path) -> list[int]:
    """Live processes (not zombies) whose environment names this station's home."""
    marker = f"EVIDENCE_HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state not in {"Z", "X"}:
            found.append(int(entry.name))
    return found


@pytest.fixture
def station_alone(tmp_path: Path, redis_server: RedisServer) -> Iterator[Station]:
    require(Path(CHROMIUM).exists(), "Debian's chromium is not installed (deploy/install-system-packages.sh)")
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
    env.update(
        {
            "EVIDENCE_HOME": str(home),
            "EVIDENCE_STATION_NAME": "station-e2e",
            "EVIDENCE_REDIS_URL": redis_server.url,  # its own Redis; the queue is the product default
            "EVIDENCE_WORKER_PROCESSES": "1",
            "EVIDENCE_WORKER_THREADS": "2",
        }
    )
    assert run_cli(["init"], env).code == 0
    added = run_cli(
        ["users", "add", "custodian1", "--role", "custodian", "--password-stdin"], env, input=PASSWORD + "\n"
    )
    assert added.code == 0, added.stderr
    station = Station(env, home, free_port())
    try:
        yield station
    finally:
        if station.proc.poll() is None:
            station.stop()
        for pid in processes_of(home):  # a failed test leaves nothing running either
            os.kill(pid, signal.SIGKILL)


def plays_in_chromium(base: str, clip_id: int) -> float:
    """Sign in as the custodian, open the clip's page; the duration its <video> loaded."""
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="evidence-chromium-")
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
            context.set_default_timeout(20_000)
            page = context.pages[0] if context.pages else context.new_page()
            try:
                sign_in(page, base, "custodian1", PASSWORD)
                page.goto(f"{base}/clips/{clip_id}")
                page.locator("#player").wait_for()
                page.wait_for_function(
                    "() => { const v = document.getElementById('player');"
                    " return v.readyState >= 1 && v.duration > 0; }"
                )
                duration: Any = page.evaluate("() => document.getElementById('player').duration")
                return float(duration)
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@pytest.mark.usefixtures("udevd")
def test_the_station_alone_pulls_processes_and_plays_a_docked_recorder_and_survives_its_worker_dying(
    station_alone: Station, tmp_path: Path
) -> None:
    station = station_alone
    first = build_recorder_image(tmp_path, RecorderSpec("DSJ1901", "319001", "vfat", clips=1))
    second = build_recorder_image(tmp_path, RecorderSpec("DSJ1902", "319002", "vfat", clips=1))

    station.wait_until(station.serving, "the web UI answers", timeout=60)
    station.wait_until(lambda: bool(station.started("dock") and station.started("worker")), "every role runs")
    assert "UNIT_NAME (制作单位" in station.text()  # the station warns that exports would print "—"

    # docked: pulled, processed, playable in the browser, with nothing else started
    with LoopDevice(first.path):
        station.wait_until(station.processed(first), "the first recorder is processed", timeout=120)
    ((clip_id, _, _),) = [v for name, v in station.clips_of("DSJ1901").items() if name.endswith(".MP4")]
    assert plays_in_chromium(station.base, clip_id) == pytest.approx(first.spec.clip_seconds, abs=0.5)

    # the worker process dies: the station starts it again, and the next docking is processed
    (worker,) = station.started("worker")
    os.kill(worker, signal.SIGKILL)
    station.wait_until(lambda: len(station.started("worker")) == 2, "the worker is started again")
    assert f"station: worker (pid {worker}) killed by SIGKILL" in station.text()
    with LoopDevice(second.path):
        station.wait_until(station.processed(second), "the second recorder is processed", timeout=120)

    # SIGTERM stops the station and every process it started
    children = [pid for role in ("dock", "worker", "web") for pid in station.started(role)]
    assert station.stop() == 0, station.text()[-4000:]
    assert processes_of(station.home) == [], station.text()[-4000:]
    for pid in children:
        assert f"(pid {pid})" in station.text()
