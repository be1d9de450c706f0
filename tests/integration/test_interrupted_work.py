"""`evidence import` killed with SIGKILL mid-copy: the next start closes the transfer as interrupted
(audited, with what it had recorded), removes the copy's temp file, and the next import completes;
the audit log and the store stay clean (R2, R10)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select

from evidence_store.bootstrap import Station
from evidence_store.db.tables import audit_events, transfers
from evidence_store.domain.model import TransferOutcome
from tests.conftest import REPO, run_cli

KILLS = 5
MB = 1024 * 1024


def fill_folder(root: Path, rng: random.Random) -> None:
    root.mkdir(parents=True)
    block = rng.randbytes(MB)
    for i in range(rng.randint(2, 4)):
        size = rng.randint(3 * MB, 24 * MB)
        with (root / f"clip{i}.mp4").open("wb") as handle:
            handle.write(f"{root.name}-{i}".encode())  # every file its own bytes
            for _ in range(size // MB):
                handle.write(block)


def incoming(env: dict[str, str]) -> Path:
    return Path(env["EVIDENCE_HOME"]) / "blobs" / "incoming"


def kill_mid_copy(env: dict[str, str], folder: Path, rng: random.Random) -> None:
    """Start an import and SIGKILL it at a random moment while a copy is under way."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "entrypoints",
            "import",
            str(folder),
            "--device",
            "CAM-K",
            "--officer",
            "310999",
        ],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not list(incoming(env).glob("*.part")):
        assert proc.poll() is None, "the import ended before any copy was seen"
        assert time.monotonic() < deadline
        time.sleep(0.002)
    time.sleep(rng.uniform(0, 0.25))
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_sigkill_of_import_at_random_points_is_closed_at_the_next_start(
    station: Station, station_env: dict[str, str], tmp_path: Path
) -> None:
    rng = random.Random(int(os.environ.get("EVIDENCE_TEST_SEED", "15")))
    closed = rounds = 0
    while closed < KILLS and rounds < 2 * KILLS:  # a kill may land just after the transfer ended
        round_ = rounds = rounds + 1
        folder = tmp_path / f"recorder{round_}"
        fill_folder(folder, rng)
        kill_mid_copy(station_env, folder, rng)
        with station.engine.connect() as conn:
            left_running = conn.scalars(
                select(transfers.c.id).where(transfers.c.outcome == TransferOutcome.RUNNING)
            ).all()
        parts_left = list(incoming(station_env).glob("*.part"))
        result = run_cli(
            ["import", str(folder), "--device", "CAM-K", "--officer", "310999", "--json"], station_env
        )
        assert result.code == 0, result.stderr
        assert json.loads(result.stdout)["outcome"] == "complete"
        assert list(incoming(station_env).glob("*.part")) == []
        for name in parts_left:
            assert f"removed {name.name}" in result.stderr
        with station.engine.connect() as conn:
            for transfer_id in left_running:
                row = conn.execute(select(transfers).where(transfers.c.id == transfer_id)).one()
                assert row.outcome is TransferOutcome.INTERRUPTED
                assert row.finished_at is not None
                assert f"transfer {transfer_id} was left running" in result.stderr
                event = conn.execute(
                    select(audit_events.c.details).where(
                        audit_events.c.action == "transfer.interrupted",
                        audit_events.c.object_id == str(transfer_id),
                    )
                ).scalar_one()
                details = json.loads(event)
                assert details["files_ingested"] == len(details["clips"])
                assert details["owner"]["pid"] > 0
                closed += 1
            assert (
                conn.scalars(
                    select(transfers.c.id).where(transfers.c.outcome == TransferOutcome.RUNNING)
                ).all()
                == []
            )
    assert closed == KILLS  # each kill left a running transfer, and each was closed
    assert run_cli(["audit", "verify"], station_env).code == 0
    scrub = run_cli(["scrub"], station_env)
    assert scrub.code == 0, scrub.stdout + scrub.stderr


def test_a_transfer_of_a_live_process_and_its_temp_file_are_left_alone(
    station: Station, station_env: dict[str, str], tmp_path: Path
) -> None:
    """A second start while an import is copying must not close its transfer nor take its file."""
    folder = tmp_path / "recorder"
    fill_folder(folder, random.Random(7))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "entrypoints",
            "import",
            str(folder),
            "--device",
            "CAM-L",
            "--officer",
            "310998",
        ],
        env=station_env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while not list(incoming(station_env).glob("*.part")):
            assert proc.poll() is None
            time.sleep(0.002)
        os.kill(proc.pid, signal.SIGSTOP)  # hold it mid-copy
        result = run_cli(["scrub"], station_env)
        assert "was left running" not in result.stderr
        assert "removed" not in result.stderr
        assert list(incoming(station_env).glob("*.part"))
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        assert proc.wait(timeout=120) == 0
