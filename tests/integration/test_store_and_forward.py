"""Store-and-forward (issue 18 item 3, R1, R3, R10): a station whose backend is really unreachable (the
database URL points at a port nothing listens on; the S3 endpoint refuses) keeps docking into its spool,
and forwards when the backend is back: each clip exactly once, its spooled journal entries quoted with
their original times and signatures, `audit verify` and `scrub` exit 0. A forward killed (SIGKILL) at
any of its named steps and retried delivers everything once and loses nothing. Runs on SQLite and
PostgreSQL (the backend that comes back is the test's database)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from evidence_store.accounts import create_user
from evidence_store.bootstrap import Station, open_spool, open_station
from evidence_store.db.tables import audit_events, clips, spool_forwards, transfers
from evidence_store.settings import load_settings
from ingest.spool import held_bytes, may_clear_recorders
from tests.conftest import REPO, CliResult, run_cli
from tests.fixtures.media import make_video, sha256_of
from tests.fixtures.radosgw import RadosgwInfo
from web.app import create_app

CLIPS = 3


def closed_port() -> int:
    """A port of 127.0.0.1 nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unreachable(env: dict[str, str]) -> dict[str, str]:
    """The same station with its database out of reach (connection refused)."""
    return {**env, "EVIDENCE_DATABASE_URL": f"postgresql://nobody@127.0.0.1:{closed_port()}/evidence"}


def recorder(root: Path, serial: str, count: int = CLIPS) -> dict[str, str]:
    """A recorder volume as a folder with `count` clips of their own bytes; returns path -> sha256."""
    (root / "DCIM" / "100MEDIA").mkdir(parents=True)
    (root / "DeviceInfo.txt").write_text(f"Serial={serial}\nOfficer=310{serial[-3:]}\n", encoding="utf-8")
    made = {}
    for i in range(count):
        path = root / f"DCIM/100MEDIA/{serial}_2026112409{i:02d}00_{i + 1:04d}.MP4"
        make_video(path, seconds=1, tag=f"{serial}-{i}-{uuid.uuid4().hex}")
        made[str(path.relative_to(root))] = sha256_of(path)
    return made


def cli_ok(args: list[str], env: dict[str, str]) -> CliResult:
    result = run_cli(args, env, timeout=600)
    assert result.code == 0, f"{args}: {result.stderr}"
    return result


def spooled_import(env: dict[str, str], folder: Path) -> dict:
    result = run_cli(["import", str(folder), "--json"], unreachable(env), timeout=600)
    assert result.code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["spooled"] is True and summary["outcome"] == "complete"
    assert "backend unreachable" in result.stderr
    return summary


def spool_status(env: dict[str, str]) -> dict:
    return json.loads(cli_ok(["spool", "status", "--json"], env).stdout)


def central_spool(env: dict[str, str]) -> dict:
    """This station's spool depth as the backend holds it (what other hosts see)."""
    (row,) = json.loads(cli_ok(["stations", "list", "--json"], env).stdout)["stations"]
    return dict(row["spool"])


def backend(env: dict[str, str]) -> Station:
    return open_station(load_settings(env))


def count(station: Station, table, *where) -> int:  # type: ignore[no-untyped-def]
    with station.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(table).where(*where)) or 0)


def assert_verified_and_scrubbed(env: dict[str, str]) -> None:
    verify = run_cli(["audit", "verify", "--json"], env)
    assert verify.code == 0, verify.stdout + verify.stderr
    scrub = run_cli(["scrub", "--json"], env)
    assert scrub.code == 0, scrub.stdout + scrub.stderr


def assert_delivered_once(env: dict[str, str], made: dict[str, str]) -> None:
    station = backend(env)
    try:
        with station.connect() as connection:
            hashes = list(connection.scalars(select(clips.c.sha256)))
        assert sorted(hashes) == sorted(made.values())  # every clip, each once
        assert count(station, transfers) == 1  # one transfer, never a second one for a retry
        assert count(station, spool_forwards) == 1
        assert count(station, audit_events, audit_events.c.action == "spool.forwarded") == 1
        assert count(station, audit_events, audit_events.c.action == "clip.stored") == len(made)
    finally:
        station.close()


@pytest.fixture
def env(station_env: dict[str, str], ffmpeg_available: None) -> dict[str, str]:
    cli_ok(["init"], station_env)
    return station_env


def test_an_unreachable_backend_spools_and_the_forward_delivers_each_clip_once(
    env: dict[str, str], tmp_path: Path
) -> None:
    made = recorder(tmp_path / "rec", "ZF0000101")
    summary = spooled_import(env, tmp_path / "rec")
    assert summary["files_ingested"] == CLIPS and summary["files_attached"] == 1

    station = backend(env)
    assert count(station, clips) == 0  # nothing reached the backend
    station.close()
    status = spool_status(env)
    assert status["clips_waiting"] == CLIPS and status["held_bytes"] > 0 and not status["over_high_water"]
    whole = json.loads(run_cli(["status", "--json"], unreachable(env)).stdout)
    assert whole["backend"].startswith("UNREACHABLE") and whole["spool"]["clips_waiting"] == CLIPS

    # the backend is back: forwarded, kept locally for the keep (24 h by default)
    report = json.loads(cli_ok(["spool", "forward", "--json"], env).stdout)
    assert [(f["clips"], f["attachments"], f["already"]) for f in report["forwarded"]] == [(CLIPS, 1, False)]
    assert report["freed"] == []
    assert_delivered_once(env, made)
    assert spool_status(env)["held_bytes"] > 0  # kept for the local keep

    # original times and signatures: the backend's rows keep the spool's times, and the forward event
    # quotes each journal entry exactly as the spool signed it
    spool = open_spool(load_settings(env))
    station = backend(env)
    try:
        with spool.connect() as connection:
            journal = {row.seq: row for row in connection.execute(select(audit_events)).all()}
            spooled_times = dict(
                connection.execute(select(clips.c.sha256, clips.c.ingested_at)).tuples().all()
            )
            spooled_start = connection.scalar(select(transfers.c.started_at))
        with station.connect() as connection:
            details = json.loads(
                connection.scalar(
                    select(audit_events.c.details).where(audit_events.c.action == "spool.forwarded")
                )
            )
            backend_times = dict(
                connection.execute(select(clips.c.sha256, clips.c.ingested_at)).tuples().all()
            )
            backend_start = connection.scalar(select(transfers.c.started_at))
        assert {k: v.replace(tzinfo=None) for k, v in backend_times.items()} == {
            k: v.replace(tzinfo=None) for k, v in spooled_times.items()
        }
        assert backend_start.replace(tzinfo=None) == spooled_start.replace(tzinfo=None)
        quoted = details["entries"]
        assert {q["action"] for q in quoted} >= {"transfer.started", "clip.stored", "transfer.finished"}
        assert sum(q["action"] == "clip.stored" for q in quoted) == CLIPS
        for q in quoted:
            original = journal[q["seq"]]
            assert (q["at"], q["hash"], q["signature"]) == (
                original.at,
                original.hash,
                bytes(original.signature).hex(),
            )
            assert q["key_fingerprint"] == station.key.fingerprint
    finally:
        spool.close()
        station.close()

    assert_verified_and_scrubbed(env)

    # forwarding again changes nothing; with the keep passed the spool frees its copies and is empty
    again = json.loads(
        cli_ok(["spool", "forward", "--json"], {**env, "EVIDENCE_SPOOL_KEEP_HOURS": "0"}).stdout
    )
    assert again["forwarded"] == [] and again["freed"] == [1]
    assert_delivered_once(env, made)
    status = spool_status(env)
    assert status["empty"] and status["held_bytes"] == 0 and status["transfers_forwarded"] == 1
    assert_verified_and_scrubbed(env)


def test_an_altered_quote_of_a_spooled_entry_fails_verification(env: dict[str, str], tmp_path: Path) -> None:
    """The quoted entries are checked: a forward event quoting an entry whose original time was moved
    (its hash no longer matches) is named by `audit verify`, even when the event is itself re-signed."""
    from evidence_store.audit import verify_audit_log
    from evidence_store.domain.audit_chain import canonical_details

    recorder(tmp_path / "rec", "ZF0000102", count=1)
    spooled_import(env, tmp_path / "rec")
    cli_ok(["spool", "forward"], env)
    station = backend(env)
    try:
        with station.begin() as connection:
            row = connection.execute(
                select(audit_events.c.seq, audit_events.c.details).where(
                    audit_events.c.action == "spool.forwarded"
                )
            ).one()
            details = json.loads(row.details)
            details["entries"][0]["at"] = "2020-01-01T00:00:00.000000Z"
            connection.execute(
                audit_events.update()
                .where(audit_events.c.seq == row.seq)
                .values(details=canonical_details(details))
            )
        verdict = verify_audit_log(station.engine, station.key)
        reasons = [p.reason for p in verdict.problems]
        assert any(f"quoted by event {row.seq} was altered" in r for r in reasons), reasons
    finally:
        station.close()


def test_a_spooled_copy_altered_in_the_spool_is_not_forwarded_and_stays(
    env: dict[str, str], tmp_path: Path
) -> None:
    """The receiving store re-hashes what it is sent: a spooled copy whose bytes changed in the spool
    is refused (nothing of its transfer is recorded), reported (exit 1) and kept in the spool."""
    made = recorder(tmp_path / "rec", "ZF0000107", count=1)
    spooled_import(env, tmp_path / "rec")
    spool = open_spool(load_settings(env))
    path = spool.blobs.path_for(next(iter(made.values())))  # type: ignore[attr-defined]
    spool.close()
    with open(path, "r+b") as handle:
        handle.write(b"X")
    result = run_cli(["spool", "forward", "--json"], env)
    assert result.code == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["forwarded"] == [] and "spooled transfer 1 not forwarded" in report["problems"][0]
    station = backend(env)
    try:
        assert count(station, clips) == 0 and count(station, spool_forwards) == 0
    finally:
        station.close()
    status = spool_status(env)
    assert status["clips_waiting"] == 1 and status["held_bytes"] > 0


# A forward that SIGKILLs itself when it reaches the named step (tests/… cut points of ingest.spool).
CUT = """
import os, signal, sys
from datetime import timedelta
from evidence_store.bootstrap import open_spool
from evidence_store.settings import load_settings
from ingest.spool import forward_spool, open_backend

cut = sys.argv[1]

def step(name):
    if name == cut:
        os.kill(os.getpid(), signal.SIGKILL)

settings = load_settings()
forward_spool(open_spool(settings), open_backend(settings), actor="test", keep=timedelta(0), step=step)
"""

CUT_POINTS = ["checked", "bytes.put:1", "bytes.synced", "before_commit", "committed", "noted", "freed:0"]


@pytest.mark.parametrize("cut", CUT_POINTS)
def test_a_forward_killed_at_any_step_then_retried_delivers_everything_once(
    env: dict[str, str], tmp_path: Path, cut: str
) -> None:
    made = recorder(tmp_path / "rec", "ZF0000103")
    spooled_import(env, tmp_path / "rec")
    keep_zero = {**env, "EVIDENCE_SPOOL_KEEP_HOURS": "0"}

    killed = subprocess.run(
        [sys.executable, "-c", CUT, cut],
        check=False,
        env=keep_zero,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert killed.returncode == -signal.SIGKILL, f"the forward never reached {cut}: {killed.stderr}"

    retry = json.loads(cli_ok(["spool", "forward", "--json"], keep_zero).stdout)
    already = cut in {"committed", "noted", "freed:0"}
    if cut in {"noted", "freed:0"}:
        assert retry["forwarded"] == []  # the spool had noted it before the cut
    else:
        assert [f["already"] for f in retry["forwarded"]] == [already]
    assert_delivered_once(env, made)
    status = spool_status(env)
    assert status["empty"] and status["held_bytes"] == 0, status
    assert_verified_and_scrubbed(env)


def test_a_spool_over_its_high_water_mark_keeps_what_it_pulled_and_clears_no_recorder(
    env: dict[str, str], tmp_path: Path
) -> None:
    full = {**env, "EVIDENCE_SPOOL_HIGH_WATER_BYTES": "1"}
    made = recorder(tmp_path / "rec", "ZF0000104")
    spooled_import(full, tmp_path / "rec")
    status = spool_status(full)
    assert status["over_high_water"] and not status["may_clear_recorders"]
    assert status["clips_waiting"] == CLIPS  # kept, all of it
    spool = open_spool(load_settings(full))
    try:
        allowed, why = may_clear_recorders(spool)
        assert not allowed and "recorders are not cleared" in why
        assert held_bytes(spool) >= sum(os.path.getsize(tmp_path / "rec" / p) for p in made)
    finally:
        spool.close()
    station = backend(full)
    try:
        assert may_clear_recorders(station) == (True, "")  # the backend is never "full" this way
        # the web dashboard (page and API) shows this host's filling spool
        create_user(station, username="chief", password="a long station password", role="admin", actor="t")
        client = TestClient(create_app(station))
        token = client.get("/api/csrf").json()["csrf_token"]
        login = {"username": "chief", "password": "a long station password"}
        assert client.post("/api/login", json=login, headers={"X-CSRF-Token": token}).status_code == 200
        shown = client.get("/api/dashboard").json()["spool"]
        assert shown["over_high_water"] and shown["clips_waiting"] == CLIPS
        assert 'id="spool" data-over-high-water="true"' in client.get("/dashboard").text
    finally:
        station.close()
    # forwarded but kept (the local keep): the station reports its depth to the backend, so every host's
    # `stations list`, `status` and dashboard show this station's filling spool, not only its own host
    cli_ok(["spool", "forward"], full)
    central = central_spool(full)
    assert central["held_bytes"] >= sum(os.path.getsize(tmp_path / "rec" / p) for p in made)
    assert central["over_high_water"] and central["transfers_waiting"] == 0 and central["reported_at"]
    station = backend(full)
    try:
        client = TestClient(create_app(station))
        token = client.get("/api/csrf").json()["csrf_token"]
        login = {"username": "chief", "password": "a long station password"}
        assert client.post("/api/login", json=login, headers={"X-CSRF-Token": token}).status_code == 200
        (row,) = client.get("/api/dashboard").json()["stations"]
        assert row["spool"]["over_high_water"] and row["spool"]["held_bytes"] == central["held_bytes"]
        assert 'class="spool" data-over-high-water="true"' in client.get("/dashboard").text
    finally:
        station.close()
    # once freed the spool is below the mark again, here and as the backend was told
    cli_ok(["spool", "forward"], {**full, "EVIDENCE_SPOOL_KEEP_HOURS": "0"})
    assert not spool_status(full)["over_high_water"]
    assert central_spool(full)["held_bytes"] == 0
    assert_delivered_once(full, made)


def test_a_revoked_station_cannot_forward_and_its_spool_keeps_everything(
    station_env: dict[str, str], tmp_path: Path, ffmpeg_available: None
) -> None:
    shared = {**station_env, "EVIDENCE_LOCAL_STORE_PATH": str(tmp_path / "shared-store")}
    env_a = {**shared, "EVIDENCE_HOME": str(tmp_path / "dock-a"), "EVIDENCE_STATION_NAME": "dock-a"}
    env_b = {**shared, "EVIDENCE_HOME": str(tmp_path / "dock-b"), "EVIDENCE_STATION_NAME": "dock-b"}
    cli_ok(["init"], env_a)
    cli_ok(["init"], env_b)  # asks to be enrolled
    cli_ok(["stations", "approve", "dock-b"], env_a)
    recorder(tmp_path / "rec", "ZF0000105")
    spooled_import(env_b, tmp_path / "rec")
    cli_ok(["stations", "revoke", "dock-b"], env_a)

    refused = run_cli(["spool", "forward"], env_b)
    assert refused.code == 2, refused.stderr
    assert "revoked" in refused.stderr
    status = spool_status(env_b)
    assert (
        status["clips_waiting"] == CLIPS and status["transfers_forwarded"] == 0 and status["held_bytes"] > 0
    )
    station = backend(env_a)
    try:
        assert count(station, clips) == 0 and count(station, spool_forwards) == 0
    finally:
        station.close()
    assert run_cli(["audit", "verify"], env_a).code == 0


def test_an_object_store_that_refuses_spools_and_the_forward_lands_under_object_lock(
    station_env: dict[str, str], tmp_path: Path, radosgw: RadosgwInfo, ffmpeg_available: None
) -> None:
    """The other half of the backend: the database answers, the S3 endpoint refuses (a closed port).
    The station spools; with radosgw back the forward puts each clip into the bucket (Object Lock),
    re-hashed there, once; verify and scrub exit 0."""
    env = {
        **station_env,
        "EVIDENCE_BLOB_STORE": "s3",
        "EVIDENCE_S3_ENDPOINT_URL": radosgw.endpoint_url,
        "EVIDENCE_S3_BUCKET": f"spool-{uuid.uuid4().hex[:12]}",
        "EVIDENCE_S3_ACCESS_KEY_ID": radosgw.access_key_id,
        "EVIDENCE_S3_SECRET_ACCESS_KEY": radosgw.secret_access_key,
        "EVIDENCE_S3_REGION": radosgw.region,
    }
    cli_ok(["init"], env)
    made = recorder(tmp_path / "rec", "ZF0000106")
    refused = {**env, "EVIDENCE_S3_ENDPOINT_URL": f"http://127.0.0.1:{closed_port()}"}
    result = run_cli(["import", str(tmp_path / "rec"), "--json"], refused, timeout=600)
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["spooled"] is True and "S3 at" in result.stderr

    report = json.loads(
        cli_ok(["spool", "forward", "--json"], {**env, "EVIDENCE_SPOOL_KEEP_HOURS": "0"}).stdout
    )
    assert [f["clips"] for f in report["forwarded"]] == [CLIPS] and report["freed"] == [1]
    assert_delivered_once(env, made)
    station = backend(env)
    try:
        for sha256 in made.values():
            assert station.blobs.rehash(sha256) == sha256
            assert station.blobs.retain_until(sha256) is not None  # type: ignore[attr-defined]
    finally:
        station.close()
    assert spool_status(env)["empty"]
    assert_verified_and_scrubbed(env)


def test_a_depth_report_that_fails_after_a_landed_forward_is_a_warning_not_a_failed_forward(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The backend drops between the forward's commit and the spool-depth report: what was forwarded
    has landed, so the one-shot forward reports it (no error) and says the depth was not reported."""
    import ingest.spool
    from entrypoints.cli.spool import _forward_once
    from evidence_store.errors import DatabaseUnavailableError

    made = recorder(tmp_path / "rec", "ZF0000111")
    spooled_import(env, tmp_path / "rec")

    def dropped(_spool: Station, _backend: Station) -> None:
        raise DatabaseUnavailableError("cannot reach database: server closed the connection unexpectedly")

    monkeypatch.setattr(ingest.spool, "report_depth", dropped)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with caplog.at_level("WARNING", logger="ingest.spool"):
        report = _forward_once(load_settings(env))
    assert [f["clips"] for f in report["forwarded"]] == [CLIPS] and report["problems"] == []
    assert "spool depth not reported" in caplog.text and "server closed the connection" in caplog.text
    assert_delivered_once(env, made)
