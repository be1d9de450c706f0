"""Fixtures shared by the integration and e2e suites (unit tests use none)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from evidence_store.bootstrap import Station

pytest_plugins = [
    "tests.fixtures.postgres",
    "tests.fixtures.radosgw",
    "tests.fixtures.media",
    "tests.fixtures.tsa",
    "tests.fixtures.redis",
]

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every test that touches the database runs on both backends."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'evidence.db'}"
    new_database: Callable[[], str] = request.getfixturevalue("postgres_database")
    return new_database()


@pytest.fixture
def station_env(tmp_path: Path, database_url: str) -> dict[str, str]:
    """Environment for a station with its own data directory and database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
    env.update(
        {
            "EVIDENCE_HOME": str(tmp_path / "home"),
            "EVIDENCE_DATABASE_URL": database_url,
            "EVIDENCE_STATION_NAME": "test-station",
            "EVIDENCE_AUDIT_CHECKPOINT_INTERVAL": "10",
            # tests that exercise the Redis queue opt in; the rest drain with `evidence process`
            "EVIDENCE_PROCESSING_QUEUE": "none",
        }
    )
    return env


@pytest.fixture
def station(station_env: dict[str, str]) -> Iterator[Station]:
    from evidence_store.bootstrap import initialise
    from evidence_store.settings import load_settings

    running, _ = initialise(load_settings(station_env))
    yield running
    running.close()


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


def run_cli(
    args: list[str], env: dict[str, str], timeout: float = 120, input: str | None = None
) -> CliResult:
    """Run the real `evidence` command in a child process, as a user would."""
    proc = subprocess.run(
        [sys.executable, "-m", "entrypoints", *args],
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        check=False,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)
