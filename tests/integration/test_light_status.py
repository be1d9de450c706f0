"""Issue 21 item 3: `evidence status` and `evidence stations list` on a SQLite station read with the
standard library's sqlite3 (`evidence_store.sqlite_status`), and say exactly what the SQLAlchemy path
says: the same values of the same types, the same errors, and none of the heavy libraries loaded."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from evidence_store import sqlite_status
from evidence_store.bootstrap import Station, initialise, open_station
from evidence_store.db.tables import disclosure_applications, dock_stations, stations, transfers
from evidence_store.domain.disclosure import ApplicationKind, ApplicationState
from evidence_store.domain.model import ClipStatus, TransferOutcome, TransferSource
from evidence_store.errors import ConfigurationError
from evidence_store.settings import Settings, load_settings
from evidence_store.stations import list_stations
from evidence_store.status import describe
from tests.conftest import REPO
from tests.factories import add_case, add_clip_row

# what a light command must not load (the web, the workers, the ingest, the database toolkit, the store
# and media libraries)
HEAVY = (
    "sqlalchemy",
    "alembic",
    "av",
    "boto3",
    "botocore",
    "fastapi",
    "uvicorn",
    "starlette",
    "dramatiq",
    "redis",
    "web",
    "workers",
    "ingest",
    "retention",
)

LOADED_AFTER = """
import sys
from entrypoints.cli import main
try:
    main({argv!r})
except SystemExit as exc:
    code = exc.code
heavy = {heavy!r}
print(" ".join(sorted({{n.split(".")[0] for n in sys.modules if n.split(".")[0] in heavy}})), file=sys.stderr)
sys.exit(code)
"""


@pytest.fixture
def sqlite_env(tmp_path: Path) -> dict[str, str]:
    return {
        "EVIDENCE_HOME": str(tmp_path / "home"),
        "EVIDENCE_DATABASE_URL": f"sqlite:///{tmp_path / 'evidence.db'}",
        "EVIDENCE_STATION_NAME": "dock-a",
        "EVIDENCE_PROCESSING_QUEUE": "none",
    }


@pytest.fixture
def populated(sqlite_env: dict[str, str]) -> Iterator[tuple[Station, Settings]]:
    """A SQLite station holding some of everything `status` reports: clips of several statuses,
    cases, transfers (two still running), enrolled stations in every standing (one that reported its
    spool), parties' applications (one overdue), a scrub."""
    settings = load_settings(sqlite_env)
    station, _ = initialise(settings)
    for n, status in enumerate([ClipStatus.READY, ClipStatus.READY, ClipStatus.FAILED, ClipStatus.INGESTED]):
        add_clip_row(station, f"clip-{n}", status=status, size=1000 + n)
    add_case(station, "2026-001")
    now = datetime(2026, 12, 5, 1, 2, 3, 456789, tzinfo=UTC)
    with station.transaction() as session:
        for name, approved, revoked, seen in (
            ("dock-b", True, now - timedelta(days=1), now),  # revoked, seen
            ("dock-c", False, None, None),  # awaiting approval
            ("dock-d", True, None, now.replace(microsecond=0)),  # whole seconds
        ):
            session.execute(
                stations.insert().values(
                    name=name,
                    unit="U1",
                    public_key="PEM",
                    fingerprint=name * 8,
                    enrolled_at=now - timedelta(days=3),
                    enrolled_by="test",
                    approved=approved,
                    approved_at=now - timedelta(days=2) if approved else None,
                    approved_by="admin" if approved else None,
                    revoked_at=revoked,
                    revoked_by="admin" if revoked else None,
                    last_seen=seen,
                    version="1.2.3",
                    refused_at=now if revoked else None,
                    refused_action="transfer.started" if revoked else None,
                    spool_held_bytes=5_000_000_000 if approved and not revoked else None,
                    spool_high_water_bytes=4_000_000_000 if approved and not revoked else None,
                    spool_transfers_waiting=3 if approved and not revoked else None,
                    spool_clips_waiting=17 if approved and not revoked else None,
                    spool_reported_at=now if approved and not revoked else None,
                )
            )
        real_now = datetime.now(UTC)
        for received, state in (
            (real_now - timedelta(days=30), ApplicationState.RECEIVED),  # overdue
            (real_now - timedelta(days=29), ApplicationState.RECEIVED),  # overdue, newer
            (real_now - timedelta(days=2), ApplicationState.RECEIVED),  # within its days
            (real_now - timedelta(days=40), ApplicationState.REFUSED),  # answered
        ):
            session.execute(
                disclosure_applications.insert().values(
                    party_name="张三",
                    id_document_type="resident_id",
                    id_document_number="210200199001011234",
                    kind=ApplicationKind.COPY,
                    purpose="复制",
                    clip_ids=[],
                    received_at=received,
                    recorded_by="cust",
                    recorded_at=received,
                    state=state,
                )
            )
        dock = session.execute(
            dock_stations.insert().values(name="dock-b", unit="", location="")
        ).inserted_primary_key[0]
        for outcome in (TransferOutcome.RUNNING, TransferOutcome.RUNNING, TransferOutcome.COMPLETE):
            session.execute(
                transfers.insert().values(
                    source=TransferSource.DOCK,
                    dock_station_id=dock,
                    started_at=now,
                    outcome=outcome,
                    problems=[],
                )
            )
        station.audit.record(
            session,
            actor="system",
            action="store.scrubbed",
            object_type="store",
            object_id="local",
            details={"ok": True, "counts": {"checked": 4}},
        )
    yield station, settings
    station.close()


def test_status_reads_the_same_with_sqlite3_as_with_sqlalchemy(populated) -> None:
    station, settings = populated
    light = sqlite_status.reader_for(settings)
    assert light is not None
    fast, full = sqlite_status.describe(light), describe(station)
    assert fast == full
    # the same types too: the JSON and the text `status` prints are made from these values
    assert json.dumps(fast, default=str) == json.dumps(full, default=str)
    assert repr(fast) == repr(full)
    assert fast["clips"]["by_status"] == {"ready": 2, "failed": 1, "ingested": 1}
    assert {s["name"]: s["bays_in_use"] for s in fast["stations"]}["dock-b"] == 2
    assert fast["last_scrub"]["ok"] is True
    assert fast["disclosures_overdue"]["count"] == 2  # the two received 29 and 30 days ago
    spools = {s["name"]: s["spool"] for s in fast["stations"]}
    assert spools["dock-c"] is None and spools["dock-d"]["over_high_water"] is True


def test_the_station_list_reads_the_same_with_sqlite3_as_with_sqlalchemy(populated) -> None:
    station, settings = populated
    light = sqlite_status.reader_for(settings)
    assert light is not None
    with light.snapshot() as connection:
        fast = sqlite_status.list_stations(connection)
    with station.connect() as connection:
        full = list_stations(connection)
    assert fast == full
    assert repr(fast) == repr(full)
    assert len(fast) == 4


def test_status_and_stations_list_print_what_they_printed(populated, sqlite_env, monkeypatch) -> None:
    """The commands' output through the light path equals their output through SQLAlchemy's."""
    from entrypoints.cli import cli

    outputs = {}
    for path in ("light", "full"):
        if path == "full":
            monkeypatch.setattr(sqlite_status, "reader_for", lambda settings: None)
        for argv in (["status", "--json"], ["status"], ["stations", "list"], ["stations", "list", "--json"]):
            result = CliRunner().invoke(cli, argv, env=sqlite_env, catch_exceptions=False)
            assert result.exit_code == 0, result.output
            outputs[path, " ".join(argv)] = result.output
    for argv in ("status --json", "status", "stations list", "stations list --json"):
        assert outputs["light", argv] == outputs["full", argv], argv


@pytest.mark.parametrize("breakage", ["no home", "no schema", "old schema", "no key", "open key"])
def test_a_station_that_cannot_open_fails_the_same_way(sqlite_env, tmp_path: Path, breakage: str) -> None:
    settings = load_settings(sqlite_env)
    if breakage != "no home":
        initialise(settings)[0].close()
    database = tmp_path / "evidence.db"
    if breakage == "no schema":
        database.unlink()
    elif breakage == "old schema":
        import sqlite3

        with sqlite3.connect(database) as connection:
            connection.execute("UPDATE alembic_version SET version_num = '0007_spool'")
    elif breakage == "no key":
        (settings.keys_dir / "station-ed25519.pem").unlink()
    elif breakage == "open key":
        (settings.keys_dir / "station-ed25519.pem").chmod(0o644)
    with pytest.raises(ConfigurationError) as full:
        open_station(settings)
    with pytest.raises(ConfigurationError) as fast:
        sqlite_status.reader_for(settings)
    assert (type(fast.value), str(fast.value)) == (type(full.value), str(full.value))


def test_other_stations_take_the_sqlalchemy_path(sqlite_env, tmp_path: Path) -> None:
    settings = load_settings(sqlite_env)
    initialise(settings)[0].close()
    assert sqlite_status.reader_for(settings) is not None
    assert sqlite_status.reader_for(settings.model_copy(update={"blob_store": "s3"})) is None
    postgres = settings.model_copy(update={"database_url": "postgresql://u@localhost/evidence"})
    assert sqlite_status.reader_for(postgres) is None


@pytest.mark.parametrize("argv", [["status", "--json"], ["status"], ["stations", "list", "--json"]])
def test_a_light_command_loads_no_heavy_library(sqlite_env, argv: list[str]) -> None:
    initialise(load_settings(sqlite_env))[0].close()
    child = subprocess.run(
        [sys.executable, "-c", LOADED_AFTER.format(argv=argv, heavy=HEAVY)],
        cwd=REPO,
        env={**sqlite_env, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    assert child.stderr.strip().splitlines()[-1:] in ([], [""]), child.stderr
