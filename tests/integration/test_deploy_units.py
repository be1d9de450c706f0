"""The deploy folder as an administrator installs it: units that systemd accepts, commands that exist,
example settings the station accepts (deploy/office/README.md)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from evidence_store.settings import load_settings
from tests.conftest import REPO, run_cli
from tests.fixtures.services import require

UNITS = sorted((REPO / "deploy" / "systemd").iterdir())
ENV_EXAMPLES = sorted((REPO / "deploy" / "office").glob("*.env.example"))
INSTALLED_COMMAND = "/opt/evidence/.venv/bin/evidence"


def _exec_start(unit: Path) -> str:
    match = re.search(r"^ExecStart=(.*)$", unit.read_text(), re.MULTILINE)
    assert match, f"{unit.name} has no ExecStart"
    return match.group(1)


def test_every_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    require(analyze is not None, "systemd-analyze is missing (Debian package systemd)")
    assert analyze is not None
    # The units name the installed program; verify them against this checkout's, which exists here.
    names = []
    for unit in UNITS:
        name = unit.name.replace("@.service", "@sdb1.service")
        (tmp_path / name).write_text(
            unit.read_text().replace(INSTALLED_COMMAND, str(Path(sys.executable).parent / "evidence"))
        )
        names.append(f"./{name}")
    result = subprocess.run(
        [analyze, "verify", *names], check=False, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    # systemd-analyze exits 0 on some warnings; a unit it could not read or parse is named on stderr.
    assert not [line for line in result.stderr.splitlines() if "evidence" in line], result.stderr


@pytest.mark.parametrize(
    "unit", [u for u in UNITS if "ExecStart=" + INSTALLED_COMMAND in u.read_text()], ids=lambda u: u.name
)
def test_each_unit_runs_an_evidence_command_that_exists(unit: Path) -> None:
    commands = [_exec_start(unit)]
    commands += re.findall(r"^ExecStartPre=(.*)$", unit.read_text(), re.MULTILINE)
    for command in commands:
        words = command.split()
        assert words[0] == INSTALLED_COMMAND
        subcommand = [w for w in words[1:] if not w.startswith("-")]
        result = run_cli([*subcommand, "--help"], env={"PATH": "/usr/bin:/bin"})
        assert result.code == 0, (
            f"{unit.name}: `evidence {' '.join(subcommand)}` does not exist: {result.stderr}"
        )


def test_the_nightly_run_relinks_before_it_decides_what_to_keep() -> None:
    unit = (REPO / "deploy" / "systemd" / "evidence-retention.service").read_text()
    assert re.search(r"^ExecStartPre=\S+ cases relink\b", unit, re.MULTILINE)


@pytest.mark.parametrize("example", ENV_EXAMPLES, ids=lambda p: p.name)
def test_each_example_env_file_is_accepted_by_the_settings(example: Path, tmp_path: Path) -> None:
    values = {}
    for line in example.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    assert values, f"{example.name} sets nothing"
    values["EVIDENCE_HOME"] = str(tmp_path / "home")  # never read a real /var/lib/evidence/evidence.toml
    settings = load_settings(values)  # an unknown or misspelt key raises ConfigurationError
    assert settings.database_url.startswith("postgresql")
    assert settings.blob_store == "s3"


def test_the_office_layout_names_an_example_for_each_role() -> None:
    layout = (REPO / "deploy" / "office" / "README.md").read_text()
    for example in ENV_EXAMPLES:
        assert example.name in layout
    for unit in ("evidence-dock.service", "evidence-worker.service", "evidence-web.service"):
        assert unit in layout and (REPO / "deploy" / "systemd" / unit).exists()
