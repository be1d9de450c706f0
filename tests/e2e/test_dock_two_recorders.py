"""`evidence dock` as an operator runs it: two recorders docked at once; and the drop-folder mode."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, run_cli
from tests.fixtures.media import sha256_of
from tests.fixtures.recorders import (  # noqa: F401  (fixtures)
    LoopDevice,
    RecorderSpec,
    build_recorder_image,
    dock_tools,
    stage_recorder_files,
    udevd,
)

pytestmark = pytest.mark.slow


class DockProcess:
    """`evidence dock ...` in a child process; its JSON lines are collected as they come."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._log_handle = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "entrypoints", "dock", "--json", *args],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=self._log_handle,
            text=True,
        )
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.strip():
                self.lines.put(json.loads(line))

    def wait_for_log(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log.read_text():
            assert self.proc.poll() is None, f"dock exited {self.proc.returncode}: {self.log.read_text()}"
            assert time.monotonic() < deadline, f"no '{text}' in the dock's log: {self.log.read_text()}"
            time.sleep(0.05)

    def summaries(self, count: int, timeout: float = 90) -> list[dict[str, Any]]:
        found = []
        deadline = time.monotonic() + timeout
        while len(found) < count:
            try:
                found.append(self.lines.get(timeout=max(0.1, min(0.5, deadline - time.monotonic()))))
            except queue.Empty:
                assert time.monotonic() < deadline, (
                    f"{len(found)} of {count} summaries: {self.log.read_text()}"
                )
                assert self.proc.poll() is None, f"dock exited {self.proc.returncode}: {self.log.read_text()}"
        return found

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(timeout=30)
        self._reader.join(timeout=10)
        self._log_handle.close()
        return code


def _largest_part(home: Path) -> int:
    """The size of the biggest copy in progress in the store (0 if none)."""
    incoming = home / "blobs" / "incoming"
    sizes = [0]
    for path in incoming.glob("*.part") if incoming.is_dir() else []:
        with contextlib.suppress(FileNotFoundError):  # a finished copy leaves incoming/
            sizes.append(path.stat().st_size)
    return max(sizes)


@pytest.mark.usefixtures("udevd", "dock_tools")
def test_two_recorders_docked_at_once(station_env: dict[str, str], tmp_path: Path) -> None:
    assert run_cli(["init"], station_env).code == 0
    home = Path(station_env["EVIDENCE_HOME"])
    big = build_recorder_image(tmp_path, RecorderSpec("DSJ0101", "320101", "vfat", clips=2, big_file_mb=200))
    small = build_recorder_image(tmp_path, RecorderSpec("DSJ0102", "320102", "exfat", clips=2))
    before = {image.path: image.sha256() for image in (big, small)}

    dock = DockProcess([], station_env, tmp_path / "dock.log")
    try:
        dock.wait_for_log("listening to udev block events")
        with LoopDevice(big.path) as big_dev:
            # the second recorder is docked while the first one's big clip is being copied
            deadline = time.monotonic() + 60
            while not _largest_part(home) > 10 << 20:
                assert time.monotonic() < deadline, dock.log.read_text()
                time.sleep(0.005)
            with LoopDevice(small.path) as small_dev:
                first, second = dock.summaries(2)
    finally:
        code = dock.stop()
    assert code == 0, dock.log.read_text()

    # both pulled; the small recorder was not held up behind the big one
    assert (first["dock"]["key"], second["dock"]["key"]) == (small_dev, big_dev)
    by_serial = {s["device_serial"]: s for s in (first, second)}
    assert set(by_serial) == {"DSJ0101", "DSJ0102"}
    for image in (big, small):
        summary = by_serial[image.spec.serial]
        assert summary["outcome"] == "complete", summary
        assert summary["dock"]["source"] == "dock"
        assert summary["dock"]["mount_read_only"] is True
        assert summary["dock"]["volume"]["uuid"] == image.uuid
        # footage is stored as clips, the recorder's sidecars (DeviceInfo.txt) as attachments (issue 17)
        stored = {f["path"]: f["sha256"] for f in summary["files"] if f["status"] in ("ingested", "attached")}
        assert {p: stored[p] for p in image.files} == image.files
        assert [f["path"] for f in summary["files"] if f["status"] == "attached"] == ["DeviceInfo.txt"]
    small_start, small_end = (datetime.fromisoformat(first[k]) for k in ("started_at", "finished_at"))
    big_start, big_end = (datetime.fromisoformat(second[k]) for k in ("started_at", "finished_at"))
    assert big_start < small_start and small_end < big_end  # pulled side by side

    status = run_cli(["status", "--json"], station_env)
    assert status.code == 0, status.stderr
    data = json.loads(status.stdout)
    # exactly the recorders' footage: fusefat's volume-label entry is not a clip (see ingest/fat.py), nor
    # is a sidecar
    footage = [
        {path: size for path, size in image.sizes.items() if path != "DeviceInfo.txt"}
        for image in (big, small)
    ]
    assert data["clips"]["total"] == sum(len(sizes) for sizes in footage)
    assert data["clips"]["bytes"] == sum(sum(sizes.values()) for sizes in footage)
    assert data["transfers"] == 2
    verify = run_cli(["audit", "verify"], station_env)
    assert verify.code == 0, verify.stdout + verify.stderr
    assert {image.path: image.sha256() for image in (big, small)} == before
    assert not (home / "mnt").exists() or not any((home / "mnt").iterdir())


@pytest.mark.usefixtures("udevd", "dock_tools")
def test_dock_once_takes_the_recorders_already_docked(station_env: dict[str, str], tmp_path: Path) -> None:
    assert run_cli(["init"], station_env).code == 0
    image = build_recorder_image(tmp_path, RecorderSpec("DSJ0103", "320103", "exfat"))
    with LoopDevice(image.path) as devnode:
        done = run_cli(["dock", "--once", "--json"], station_env)
        again = run_cli(["dock", "--once", "--json"], station_env)
    assert done.code == 0, done.stderr
    (summary,) = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert summary["dock"]["key"] == devnode and summary["outcome"] == "complete"
    assert {f["path"]: f["sha256"] for f in summary["files"]} == image.files
    # each run of the command is a docking: the second one finds everything on record already
    assert again.code == 0, again.stderr
    (repeat,) = [json.loads(line) for line in again.stdout.splitlines() if line.strip()]
    assert repeat["outcome"] == "complete" and repeat["files_ingested"] == 0
    assert repeat["files_duplicate"] == len(image.files)


def test_drop_folder_is_pulled_once_quiet(station_env: dict[str, str], tmp_path: Path) -> None:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    assert run_cli(["init"], station_env).code == 0
    drop = tmp_path / "drop"
    drop.mkdir()
    # an upload already there when the dock starts: taken by --once
    early = {
        rel: sha256_of(p)
        for rel, p in stage_recorder_files(drop / "DSJ0201", RecorderSpec("DSJ0201", "330201")).items()
    }
    once = run_cli(["dock", "--watch", str(drop), "--settle", "0.2", "--once", "--json"], station_env)
    assert once.code == 0, once.stderr
    (summary,) = [json.loads(line) for line in once.stdout.splitlines() if line.strip()]
    assert summary["outcome"] == "complete" and summary["dock"]["source"] == "watch"
    assert summary["device_serial"] == "DSJ0201"
    assert {f["path"]: f["sha256"] for f in summary["files"]} == early

    # an upload that arrives file by file while the dock runs is pulled once, after it went quiet
    dock = DockProcess(["--watch", str(drop), "--settle", "1.5"], station_env, tmp_path / "watch.log")
    try:
        dock.wait_for_log("watching")
        staging = tmp_path / "staging"
        files = stage_recorder_files(staging, RecorderSpec("DSJ0202", "330202", clips=3))
        upload = drop / "DSJ0202"
        for rel, source in files.items():
            (upload / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, upload / rel)
            time.sleep(0.5)  # slower than the settle time in total, quicker than it per file
        last_write = time.time()
        (late,) = dock.summaries(1)
        time.sleep(2)  # nothing more comes for a folder that did not change
        assert dock.lines.empty()
    finally:
        code = dock.stop()
    assert code == 0, dock.log.read_text()
    assert late["outcome"] == "complete" and late["dock"]["source"] == "watch", late
    assert late["files_ingested"] + late["files_attached"] == len(files) == 4
    assert late["files_attached"] == 1  # DeviceInfo.txt: a sidecar, kept as an attachment (issue 17)
    assert {f["path"]: f["sha256"] for f in late["files"]} == {rel: sha256_of(p) for rel, p in files.items()}
    assert datetime.fromisoformat(late["started_at"]).timestamp() >= last_write + 1.0
    assert run_cli(["audit", "verify"], station_env).code == 0
    assert os.listdir(upload)  # the upload is left where it is
