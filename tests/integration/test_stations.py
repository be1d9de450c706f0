"""Several docking stations, each with its own key, sharing one database and one store (issue 18).

Each station has its own EVIDENCE_HOME (hence its own Ed25519 key). The first one initialised on a fresh
database enrols and approves itself; a second one asks to be enrolled and writes nothing until an
approved station approves it. Every event names the key that signed it, so `audit verify` run on either
station checks each event against its writer's enrolled key (R3, R17).
"""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from evidence_store.accounts import create_user
from evidence_store.bootstrap import Station, initialise
from evidence_store.db.tables import audit_checkpoints, audit_events, stations
from evidence_store.domain.audit_chain import build_event
from evidence_store.errors import StationNotTrustedError
from evidence_store.export.package import build_package
from evidence_store.export.verify import verify_package
from evidence_store.export.workflow import approve_export, request_export
from evidence_store.settings import load_settings
from tests import factories
from tests.conftest import run_cli
from tests.fixtures.media import make_video
from tests.integration.retention_helpers import add_clip
from web.app import create_app


def env_for(base: dict[str, str], tmp_path: Path, name: str) -> dict[str, str]:
    """A station of its own (home, key, name) on the shared database and the shared store."""
    return {
        **base,
        "EVIDENCE_HOME": str(tmp_path / name),
        "EVIDENCE_STATION_NAME": name,
        "EVIDENCE_UNIT_NAME": "金普新区卫生健康监督所",
        "EVIDENCE_LOCAL_STORE_PATH": str(tmp_path / "shared-store"),
        # checkpoints often, so that both stations sign some of them
        "EVIDENCE_AUDIT_CHECKPOINT_INTERVAL": "5",
    }


def recorder(root: Path, serial: str, clips: int) -> Path:
    """A recorder volume as a folder, its clips unique to `serial`."""
    (root / "DCIM" / "100MEDIA").mkdir(parents=True)
    (root / "DeviceInfo.txt").write_text(f"Serial={serial}\nOfficer=310{serial[-3:]}\n", encoding="utf-8")
    for i in range(clips):
        make_video(
            root / f"DCIM/100MEDIA/{serial}_2026112409{i:02d}00_{i + 1:04d}.MP4", seconds=1, tag=serial
        )
    return root


def import_folder(env: dict[str, str], folder: Path) -> None:
    result = run_cli(["import", str(folder), "--json"], env, timeout=600)
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["outcome"] == "complete"


def verify(env: dict[str, str]) -> tuple[int, dict]:
    result = run_cli(["audit", "verify", "--json"], env)
    assert result.stdout, result.stderr
    return result.code, json.loads(result.stdout)


@pytest.fixture
def two_stations(station_env: dict[str, str], tmp_path: Path):
    """Station A (first on the database: enrolled and approved by `init`) and station B (a second
    home: `init` makes it ask for enrolment), on one database and one store."""
    env_a = env_for(station_env, tmp_path, "dock-a")
    env_b = env_for(station_env, tmp_path, "dock-b")
    a, _ = initialise(load_settings(env_a))
    b, created_b = initialise(load_settings(env_b))
    assert any("approve" in line for line in created_b), created_b
    yield a, env_a, b, env_b
    a.close()
    b.close()


def approve(env: dict[str, str], name: str) -> None:
    result = run_cli(["stations", "approve", name], env)
    assert result.code == 0, result.stderr


def test_two_stations_keep_one_chain_that_verifies_from_either(two_stations, tmp_path: Path) -> None:
    a, env_a, b, env_b = two_stations
    approve(env_a, "dock-b")
    for n, (env, serial) in enumerate([(env_a, "DSJA001"), (env_b, "DSJB001"), (env_a, "DSJA002")]):
        import_folder(env, recorder(tmp_path / f"volume-{n}", serial, clips=2))
    import_folder(env_b, recorder(tmp_path / "volume-3", "DSJB002", clips=2))

    for env in (env_a, env_b):
        code, report = verify(env)
        assert code == 0, report["problems"]
        assert report["ok"] is True
    with a.engine.connect() as connection:
        signers = set(connection.scalars(select(audit_events.c.key_fingerprint)))
        checkpoint_signers = set(connection.scalars(select(audit_checkpoints.c.key_fingerprint)))
    assert signers == {a.key.fingerprint, b.key.fingerprint}  # every event names its signer
    assert checkpoint_signers == {a.key.fingerprint, b.key.fingerprint}

    listed = run_cli(["stations", "list", "--json"], env_a)
    assert listed.code == 0, listed.stderr
    by_name = {s["name"]: s for s in json.loads(listed.stdout)["stations"]}
    assert by_name["dock-a"]["fingerprint"] == a.key.fingerprint
    assert by_name["dock-b"]["fingerprint"] == b.key.fingerprint
    assert by_name["dock-b"]["approved"] is True
    assert by_name["dock-b"]["approved_by"].startswith("cli:")
    assert by_name["dock-b"]["last_seen"] is not None

    status = run_cli(["status", "--json"], env_b)
    assert status.code == 0, status.stderr
    shown = {s["name"]: s for s in json.loads(status.stdout)["stations"]}
    assert set(shown) == {"dock-a", "dock-b"}
    assert shown["dock-b"]["fingerprint"] == b.key.fingerprint


def test_a_station_not_approved_is_refused_and_the_refusal_shows(two_stations, tmp_path: Path) -> None:
    a, env_a, b, env_b = two_stations
    with pytest.raises(StationNotTrustedError, match="not approved"), b.transaction() as session:
        b.audit.record(session, actor="test", action="clip.viewed", object_type="clip", object_id=1)
    result = run_cli(["import", str(recorder(tmp_path / "volume", "DSJB001", clips=1))], env_b)
    assert result.code == 2
    assert "not approved" in result.stderr and "stations approve dock-b" in result.stderr
    with a.engine.connect() as connection:
        row = connection.execute(select(stations).where(stations.c.name == "dock-b")).one()
        assert row.approved is False and row.refused_at is not None
        # nothing signed by the station that is not approved reached the chain
        assert b.key.fingerprint not in set(connection.scalars(select(audit_events.c.key_fingerprint)))
    code, report = verify(env_a)
    assert code == 0, report["problems"]
    # the web dashboard shows both stations and where each stands
    create_user(a, username="chief", password="a long station password", role="admin", actor="test")
    client = TestClient(create_app(a))
    token = client.get("/api/csrf").json()["csrf_token"]
    login = {"username": "chief", "password": "a long station password"}
    assert client.post("/api/login", json=login, headers={"X-CSRF-Token": token}).status_code == 200
    shown = {s["name"]: s for s in client.get("/api/dashboard").json()["stations"]}
    assert shown["dock-a"]["state"] == "approved" and shown["dock-a"]["last_seen"] is not None
    assert shown["dock-b"]["state"] == "waiting" and shown["dock-b"]["refused_at"] is not None
    assert shown["dock-b"]["fingerprint"] == b.key.fingerprint
    client.cookies.set("lang", "en")
    page = client.get("/dashboard").text
    assert "waiting for approval by an admin" in page and b.key.fingerprint[:16] in page


def forge_event(station: Station) -> int:
    """An event signed with `station`'s key and written straight into the database, as a thief holding
    the key (or a copy of the software that checks nothing) would; returns its seq."""
    with station.transaction() as session:
        head = session.execute(
            select(audit_events.c.seq, audit_events.c.hash).order_by(audit_events.c.seq.desc()).limit(1)
        ).one()
        event = build_event(
            prev=(head.seq, head.hash),
            at=station.clock(),
            actor="cli:thief",
            action="clip.viewed",
            object_type="clip",
            object_id="1",
            source="station:elsewhere",
            details={},
            key_fingerprint=station.key.fingerprint,
            sign=station.key.sign,
        )
        session.add(event)
    return event.seq


def head_seq(station: Station) -> int:
    with station.engine.connect() as connection:
        return connection.scalar(select(audit_events.c.seq).order_by(audit_events.c.seq.desc()).limit(1))


def test_events_signed_after_a_revocation_fail_and_those_before_stay_valid(two_stations, tmp_path) -> None:
    a, env_a, b, env_b = two_stations
    approve(env_a, "dock-b")
    import_folder(env_b, recorder(tmp_path / "before", "DSJB001", clips=1))
    last_before = head_seq(a)
    time.sleep(0.01)
    leaked_at = a.clock()  # dock-b's key leaked here: found out only later
    import_folder(env_b, recorder(tmp_path / "after", "DSJB002", clips=1))
    first_after = last_before + 1
    import_folder(env_a, recorder(tmp_path / "on-a", "DSJA001", clips=1))
    assert verify(env_a)[0] == 0

    result = run_cli(["stations", "revoke", "dock-b", "--from", leaked_at.isoformat()], env_a)
    assert result.code == 0, result.stderr
    for env in (env_a, env_b):
        code, report = verify(env)
        assert code == 1
        assert report["first_bad_event"] == first_after
        first = report["problems"][0]["reason"]
        assert f"event {first_after} " in first and "revocation" in first, first
        # what dock-b signed before the revocation time stays valid, and dock-a's events too
        assert all(p["seq"] >= first_after for p in report["problems"])
        with a.engine.connect() as connection:
            signed_by_b = set(
                connection.scalars(
                    select(audit_events.c.seq).where(audit_events.c.key_fingerprint == b.key.fingerprint)
                )
            )
        # (a checkpoint is signed by the writer of the event it is at: dock-b's own, here)
        assert {p["seq"] for p in report["problems"]} <= signed_by_b
    human = run_cli(["audit", "verify"], env_a)
    assert human.code == 1 and f"first bad event is {first_after}" in human.stderr

    # the revoked station is refused from then on; an event forced in with its key fails verify
    result = run_cli(["import", str(recorder(tmp_path / "refused", "DSJB003", clips=1))], env_b)
    assert result.code == 2 and "revoked" in result.stderr, result.stderr
    forged = forge_event(b)
    code, report = verify(env_a)
    assert code == 1 and any(p["seq"] == forged and "revocation" in p["reason"] for p in report["problems"])


def test_an_event_signed_by_a_key_never_enrolled_fails_verify(two_stations) -> None:
    _a, env_a, b, _env_b = two_stations
    forged = forge_event(b)  # dock-b asked for enrolment but was never approved
    code, report = verify(env_a)
    assert code == 1
    assert report["first_bad_event"] == forged
    assert "never approved" in report["problems"][0]["reason"]


def test_an_enrolment_request_is_approved_only_by_an_approved_station(two_stations) -> None:
    _a, env_a, _b, env_b = two_stations
    result = run_cli(["stations", "approve", "dock-b"], env_b)  # it cannot approve itself
    assert result.code == 2, result.stdout
    assert "not approved" in result.stderr
    listed = json.loads(run_cli(["stations", "list", "--json"], env_a).stdout)["stations"]
    assert {s["name"]: s["approved"] for s in listed} == {"dock-a": True, "dock-b": False}


def test_an_export_built_on_one_station_carries_the_keys_of_the_stations_it_quotes(
    two_stations, tmp_path: Path
) -> None:
    """A clip stored by dock-a, exported from dock-b: the package names dock-b (which signs it) and
    carries dock-a's key for the custody events dock-a signed; it verifies offline."""
    a, env_a, b, _env_b = two_stations
    approve(env_a, "dock-b")
    clip_id = add_clip(a, a.clock() - timedelta(days=1))
    for username, role in (("inv1", "investigator"), ("boss", "approver")):
        factories.add_user(b, username, role, unit="金普新区卫生健康监督所")
    request = request_export(b, user="inv1", items=[{"clip_id": clip_id}], purpose="court")
    assert request.id is not None
    approve_export(b, request.id, user="boss")
    result = build_package(b, request.id, user="inv1", out_dir=tmp_path / "out")

    manifest = json.loads((result.directory / "manifest.json").read_bytes())
    assert manifest["station"]["name"] == "dock-b"
    assert manifest["station"]["public_key_fingerprint"] == b.key.fingerprint
    assert (result.directory / "station-ed25519.pub.pem").read_bytes() == b.key.pem()
    custody = manifest["items"][0]["custody_events"]
    assert {e["key_fingerprint"] for e in custody} == {a.key.fingerprint}
    carried = manifest["trust"]["station_keys"]
    assert carried[a.key.fingerprint]["name"] == "dock-a"
    assert (result.directory / carried[a.key.fingerprint]["path"]).read_bytes() == a.key.pem()
    verdict = verify_package(result.directory)
    assert verdict.ok, verdict.problems
    checked = run_cli(["verify", str(result.zip_path), "--fingerprint", b.key.fingerprint], env_a)
    assert checked.code == 0, checked.stdout + checked.stderr


def test_concurrent_appends_from_two_stations_keep_one_chain(two_stations) -> None:
    """Both stations append at once: the append lock (PostgreSQL advisory lock, SQLite BEGIN IMMEDIATE)
    keeps one chain, without gaps or forks, that verifies from either station."""
    a, env_a, b, env_b = two_stations
    approve(env_a, "dock-b")
    failures: list[BaseException] = []

    def append(station: Station, n: int) -> None:
        try:
            for i in range(n):
                with station.transaction() as session:
                    station.audit.record(
                        session, actor="cli:custodian", action="clip.viewed", object_type="clip", object_id=i
                    )
        except BaseException as exc:  # reported by the test, not lost in the thread
            failures.append(exc)

    threads = [threading.Thread(target=append, args=(station, 40)) for station in (a, b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not failures, failures
    with a.engine.connect() as connection:
        rows = connection.execute(select(audit_events.c.seq, audit_events.c.key_fingerprint)).all()
    assert sorted(seq for seq, _ in rows) == list(range(1, len(rows) + 1))
    assert sum(1 for _, signer in rows if signer == b.key.fingerprint) >= 40
    for env in (env_a, env_b):
        code, report = verify(env)
        assert code == 0, report["problems"]


def test_bays_in_use_show_per_station_in_status_and_on_the_dashboard(two_stations) -> None:
    """Issue 18: each station's recorders being pulled now, counted from its running transfers."""
    from evidence_store.db.tables import dock_stations, transfers
    from evidence_store.domain.model import TransferOutcome, TransferSource

    a, env_a, _b, _env_b = two_stations
    approve(env_a, "dock-b")
    with a.transaction() as session:
        dock_ids = {
            name: session.execute(
                dock_stations.insert().values(name=name, unit="", location="")
            ).inserted_primary_key[0]
            for name in ("dock-a", "dock-b")
        }
        for name, outcome in (
            ("dock-b", TransferOutcome.RUNNING),
            ("dock-b", TransferOutcome.RUNNING),
            ("dock-b", TransferOutcome.COMPLETE),
            ("dock-a", TransferOutcome.INTERRUPTED),
        ):
            session.execute(
                transfers.insert().values(
                    source=TransferSource.DOCK,
                    dock_station_id=dock_ids[name],
                    started_at=a.clock(),
                    outcome=outcome,
                    problems=[],
                )
            )
    status = run_cli(["status", "--json"], env_a)
    assert status.code == 0, status.stderr
    bays = {s["name"]: s["bays_in_use"] for s in json.loads(status.stdout)["stations"]}
    assert bays == {"dock-a": 0, "dock-b": 2}
    listed = run_cli(["stations", "list"], env_a)
    assert "bays in use 2" in listed.stdout
    create_user(a, username="admin1", password="a long admin password", role="admin", unit="U1", actor="test")
    client = TestClient(create_app(a))
    token = client.get("/api/csrf").json()["csrf_token"]
    assert (
        client.post(
            "/api/login",
            json={"username": "admin1", "password": "a long admin password"},
            headers={"X-CSRF-Token": token},
        ).status_code
        == 200
    )
    shown = {s["name"]: s["bays_in_use"] for s in client.get("/api/dashboard").json()["stations"]}
    assert shown == {"dock-a": 0, "dock-b": 2}
