"""`evidence import` shows a progress bar on a terminal (files, bytes, speed) and nothing of it when
piped or with `--json` (issue 19). The terminal is a pseudo-terminal (`pty`)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli

BAR = "━"  # rich's bar


def a_volume(root: Path) -> None:
    (root / "DCIM").mkdir(parents=True)
    for i in range(4):
        (root / "DCIM" / f"clip{i}.mp4").write_bytes(os.urandom(2_000_000))


def run_on_a_terminal(args: list[str], env: dict[str, str], timeout: float = 300) -> tuple[int, str]:
    """Run `evidence ARGS` with stdin, stdout and stderr on a pseudo-terminal; (exit code, all output)."""
    main, child = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "entrypoints", *args],
        env={**env, "COLUMNS": "120", "TERM": "xterm"},
        cwd=REPO,
        stdin=child,
        stdout=child,
        stderr=child,
        close_fds=True,
    )
    os.close(child)
    output = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 0.5)
            if ready:
                try:
                    data = os.read(main, 65536)
                except OSError:  # EIO: the child's side is closed
                    break
                if not data:
                    break
                output += data
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=30)
    finally:
        os.close(main)
    return code, output.decode("utf-8", errors="replace")


@pytest.mark.usefixtures("station")  # initialised
def test_the_bar_is_drawn_on_a_terminal_and_not_when_piped(
    station_env: dict[str, str], tmp_path: Path
) -> None:
    first, second, third = tmp_path / "one", tmp_path / "two", tmp_path / "three"
    for volume in (first, second, third):
        a_volume(volume)
    code, shown = run_on_a_terminal(
        ["import", str(first), "--device", "D1", "--officer", "3101"], station_env
    )
    assert code == 0, shown
    assert BAR in shown and "4/4" in shown and "MiB" in shown, shown
    assert "transfer 1 COMPLETE" in shown
    # piped: the summary only
    piped = run_cli(["import", str(second), "--device", "D2", "--officer", "3101"], station_env, timeout=300)
    assert piped.code == 0, piped.stderr
    assert BAR not in piped.stdout + piped.stderr and "MiB" not in piped.stderr
    assert "COMPLETE" in piped.stdout
    # --json on a terminal: JSON only, no bar
    code, shown = run_on_a_terminal(
        ["import", str(third), "--device", "D3", "--officer", "3101", "--json"], station_env
    )
    assert code == 0 and BAR not in shown and '"outcome": "complete"' in shown, shown


@pytest.mark.usefixtures("station")  # initialised
def test_the_dock_draws_a_bar_per_upload_on_a_terminal_and_none_when_piped(
    station_env: dict[str, str], tmp_path: Path
) -> None:
    drop, quiet_drop = tmp_path / "drop", tmp_path / "quiet-drop"
    a_volume(drop / "DSJ0001")
    a_volume(quiet_drop / "DSJ0002")
    args = ["dock", "--once", "--settle", "0.5", "--watch"]
    code, shown = run_on_a_terminal([*args, str(drop)], station_env)
    assert code == 0, shown
    assert BAR in shown and "DSJ0001" in shown and "4/4" in shown, shown
    piped = run_cli([*args, str(quiet_drop)], station_env, timeout=300)
    assert piped.code == 0, piped.stderr
    assert BAR not in piped.stdout + piped.stderr and "COMPLETE" in piped.stdout
