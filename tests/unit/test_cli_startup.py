"""The `evidence` command starts fast: `--help` and the root command load none of the heavy libraries
the commands use (they are imported inside the commands that need them), and every command is
registered in one place, `entrypoints.cli`."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

HEAVY = ("sqlalchemy", "alembic", "av", "boto3", "fastapi", "uvicorn", "dramatiq", "cryptography")

LOADED = """
import sys
import entrypoints.cli
print(" ".join(sorted(name for name in sys.modules if name.split(".")[0] in {heavy})))
"""


def test_the_root_command_loads_no_heavy_library() -> None:
    child = subprocess.run(
        [sys.executable, "-c", LOADED.format(heavy=set(HEAVY))],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.split() == []


def test_every_command_is_registered_on_the_root() -> None:
    from entrypoints.cli import cli

    assert set(cli.commands) == {
        "audit",
        "cases",
        "clips",
        "disclosure",
        "dock",
        "export",
        "flags",
        "hold",
        "import",
        "init",
        "jobs",
        "process",
        "redact",
        "report",
        "retention",
        "spool",
        "scrub",
        "station",
        "stations",
        "status",
        "users",
        "verify",
        "web",
        "worker",
    }
