"""Bad configuration gives one clear line on stderr and exit 2; init is idempotent."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from evidence_store.db.migrate import head_revision
from tests.conftest import run_cli
from tests.fixtures.services import free_port


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
    env["EVIDENCE_HOME"] = str(tmp_path / "home")
    env.update(extra)
    return env


def assert_one_clear_line(stderr: str, *needles: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("evidence: error: "), stderr
    for needle in needles:
        assert needle in lines[0], stderr


def test_unknown_environment_key(tmp_path: Path) -> None:
    result = run_cli(["status"], clean_env(tmp_path, EVIDENCE_DATABSE_URL="sqlite://"))
    assert result.code == 2
    assert_one_clear_line(result.stderr, "unknown setting EVIDENCE_DATABSE_URL")


def test_unknown_key_in_the_toml_file(tmp_path: Path) -> None:
    config = tmp_path / "evidence.toml"
    config.write_text('station_name = "bay-1"\nblob_stor = "s3"\n')
    result = run_cli(["init"], clean_env(tmp_path, EVIDENCE_CONFIG=str(config)))
    assert result.code == 2
    assert_one_clear_line(result.stderr, "blob_stor", "unknown setting", str(config))


def test_invalid_value_names_the_key(tmp_path: Path) -> None:
    result = run_cli(["init"], clean_env(tmp_path, EVIDENCE_AUDIT_CHECKPOINT_INTERVAL="often"))
    assert result.code == 2
    assert_one_clear_line(result.stderr, "EVIDENCE_AUDIT_CHECKPOINT_INTERVAL")


def test_a_table_setting_from_the_environment_is_json(tmp_path: Path) -> None:
    from evidence_store.settings import load_settings

    env = clean_env(tmp_path, EVIDENCE_RETENTION_MONTHS_BY_CATEGORY='{"行政处罚": 12, "行政检查": 7}')
    assert load_settings(env).retention_months_by_category == {"行政处罚": 12, "行政检查": 7}
    below_floor = clean_env(tmp_path, EVIDENCE_RETENTION_MONTHS_BY_CATEGORY='{"行政处罚": 3}')
    refused = run_cli(["init"], below_floor)
    assert refused.code == 2
    assert_one_clear_line(refused.stderr, "EVIDENCE_RETENTION_MONTHS_BY_CATEGORY")
    not_json = run_cli(["init"], clean_env(tmp_path, EVIDENCE_RETENTION_MONTHS_BY_CATEGORY="行政处罚=12"))
    assert not_json.code == 2
    assert_one_clear_line(not_json.stderr, "EVIDENCE_RETENTION_MONTHS_BY_CATEGORY", "expected JSON")


def test_broken_toml_is_reported(tmp_path: Path) -> None:
    config = tmp_path / "evidence.toml"
    config.write_text("station_name = \n")
    result = run_cli(["init"], clean_env(tmp_path, EVIDENCE_CONFIG=str(config)))
    assert result.code == 2
    assert_one_clear_line(result.stderr, "not valid TOML")


@pytest.mark.parametrize("where", ["under-a-file", "in-proc"])
def test_unwritable_home(tmp_path: Path, where: str) -> None:
    if where == "under-a-file":
        blocker = tmp_path / "blocker"
        blocker.write_text("a file, not a directory")
        home = blocker / "home"
    else:
        home = Path("/proc/evidence-home")  # not writable, even for root
    result = run_cli(["init"], clean_env(tmp_path, EVIDENCE_HOME=str(home)))
    assert result.code == 2
    assert_one_clear_line(result.stderr, f"data directory {home} is not writable")


def test_unreachable_postgresql(tmp_path: Path) -> None:
    url = f"postgresql://evidence@127.0.0.1:{free_port()}/evidence"
    result = run_cli(["init"], clean_env(tmp_path, EVIDENCE_DATABASE_URL=url))
    assert result.code == 2
    assert_one_clear_line(result.stderr, "cannot reach database", "127.0.0.1")


def test_sqlite_in_a_missing_directory(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'e.db'}"
    result = run_cli(["init"], clean_env(tmp_path, EVIDENCE_DATABASE_URL=url))
    assert result.code == 2
    assert_one_clear_line(result.stderr, "cannot reach database")


def test_not_a_database_url(tmp_path: Path) -> None:
    result = run_cli(["init"], clean_env(tmp_path, EVIDENCE_DATABASE_URL="definitely not a url"))
    assert result.code == 2
    assert_one_clear_line(result.stderr, "database_url")


def test_s3_without_bucket(tmp_path: Path) -> None:
    result = run_cli(["init"], clean_env(tmp_path, EVIDENCE_BLOB_STORE="s3"))
    assert result.code == 2
    assert_one_clear_line(result.stderr, "s3_endpoint_url", "s3_bucket")


def test_commands_before_init_say_so(tmp_path: Path) -> None:
    result = run_cli(["status"], clean_env(tmp_path))
    assert result.code == 2
    assert_one_clear_line(result.stderr, "evidence init")


def test_usage_error_is_exit_2(tmp_path: Path) -> None:
    result = run_cli(["audit", "frobnicate"], clean_env(tmp_path))
    assert result.code == 2


def test_init_is_idempotent_and_keeps_the_key(station_env: dict[str, str]) -> None:
    first = run_cli(["init", "--json"], station_env)
    assert first.code == 0, first.stderr
    second = run_cli(["init", "--json"], station_env)
    assert second.code == 0, second.stderr
    a, b = json.loads(first.stdout), json.loads(second.stdout)
    assert "station key" in a["created"]
    assert b["created"] == []
    assert a["key_fingerprint"] == b["key_fingerprint"]
    key_file = Path(station_env["EVIDENCE_HOME"]) / "keys" / "station-ed25519.pem"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert oct(key_file.parent.stat().st_mode & 0o777) == "0o700"
    status = json.loads(run_cli(["status", "--json"], station_env).stdout)
    assert status["audit"]["head_seq"] == 1  # one init event, not one per call
    assert status["database"]["schema_revision"] == head_revision()


def test_a_key_readable_by_others_is_refused(station_env: dict[str, str]) -> None:
    assert run_cli(["init"], station_env).code == 0
    key_file = Path(station_env["EVIDENCE_HOME"]) / "keys" / "station-ed25519.pem"
    key_file.chmod(0o644)
    result = run_cli(["audit", "verify"], station_env)
    assert result.code == 2
    assert_one_clear_line(result.stderr, "chmod 600")


def test_init_warns_when_the_unit_name_is_empty(tmp_path: Path) -> None:
    """制作单位 is printed on every export note: an empty one is said at init, not found on a note."""
    empty = run_cli(["init"], clean_env(tmp_path))
    assert empty.code == 0, empty.stderr
    assert "warning: UNIT_NAME (制作单位" in empty.stderr and "EVIDENCE_UNIT_NAME" in empty.stderr
    as_json = run_cli(["init", "--json"], clean_env(tmp_path))
    assert any("UNIT_NAME" in w for w in json.loads(as_json.stdout)["warnings"])

    named = run_cli(["init", "--json"], clean_env(tmp_path, EVIDENCE_UNIT_NAME="金普新区卫生健康监督所"))
    assert named.code == 0 and "UNIT_NAME" not in named.stderr
    assert "warnings" not in json.loads(named.stdout)
