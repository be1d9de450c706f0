"""Signed checkpoints anchored outside the database (file, S3 under Object Lock, RFC 3161 token):
checkpoints and events deleted with SQL are caught; a restored backup is reported as such (R3, R10)."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest
from sqlalchemy import delete, select

from evidence_store.audit_anchoring import ANCHOR_FILE, S3_PREFIX
from evidence_store.blobs.s3 import S3BlobStore
from evidence_store.bootstrap import Station, initialise
from evidence_store.db.tables import audit_checkpoints, audit_events
from evidence_store.settings import load_settings
from tests.conftest import run_cli
from tests.fixtures.radosgw import RadosgwInfo
from tests.fixtures.tsa import LocalTsa
from tests.integration.test_audit_log import record_events


def verify(env: dict[str, str]) -> tuple[int, dict]:
    result = run_cli(["audit", "verify", "--json"], env)
    return result.code, json.loads(result.stdout)


def test_untouched_station_verifies_with_its_anchors(station: Station, station_env: dict[str, str]) -> None:
    record_events(station, 54)  # 55 events: checkpoints (and anchors) at 10..50
    code, report = verify(station_env)
    assert code == 0, report
    assert report["anchors"]["anchors_checked"] == 5
    assert report["anchors"]["newest_anchored_seq"] == 50
    lines = (Path(station_env["EVIDENCE_HOME"]) / ANCHOR_FILE).read_text().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [10, 20, 30, 40, 50]


def test_checkpoints_and_tail_deleted_together_are_caught(
    station: Station, station_env: dict[str, str]
) -> None:
    record_events(station, 59)  # 60 events
    with station.engine.begin() as conn:
        conn.execute(delete(audit_events).where(audit_events.c.seq > 40))
        conn.execute(delete(audit_checkpoints))
    code, report = verify(station_env)
    assert code == 1
    reasons = [p["reason"] for p in report["anchors"]["problems"]]
    assert any("checkpoint at event 40 was removed" in r for r in reasons), reasons
    assert any("vouches for event 60" in r and "deleted" in r for r in reasons), reasons
    assert report["anchors"]["restored_from_backup"] is False
    human = run_cli(["audit", "verify"], station_env)
    assert human.code == 1
    assert "DISAGREES WITH ITS ANCHORS" in human.stderr


def test_checkpoints_deleted_alone_are_caught(station: Station, station_env: dict[str, str]) -> None:
    record_events(station, 24)
    with station.engine.begin() as conn:
        conn.execute(delete(audit_checkpoints).where(audit_checkpoints.c.seq == 20))
    code, report = verify(station_env)
    assert code == 1
    assert [p["seq"] for p in report["anchors"]["problems"]] == [20]


def test_an_older_backup_restored_is_reported_as_such(
    station: Station, station_env: dict[str, str], database_url: str
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("the backup is a copy of the SQLite file")
    record_events(station, 29)  # 30 events, checkpoints 10, 20, 30
    db_path = Path(database_url.removeprefix("sqlite:///"))
    station.engine.dispose()
    backup = db_path.with_suffix(".backup")
    shutil.copy(db_path, backup)
    record_events(station, 15)  # 45: anchored 40
    station.engine.dispose()
    shutil.copy(backup, db_path)
    for suffix in ("-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    code, report = verify(station_env)
    assert code == 1
    assert report["anchors"]["restored_from_backup"] is True
    assert report["problems"] == []  # no event is blamed
    human = run_cli(["audit", "verify"], station_env)
    assert "database is behind its anchors: restored from a backup?" in human.stderr
    assert "first bad event" not in human.stderr


def test_a_rolled_back_checkpoint_is_not_anchored(station: Station, station_env: dict[str, str]) -> None:
    record_events(station, 8)  # 9 events
    with pytest.raises(RuntimeError), station.transaction() as session:
        station.audit.record(session, actor="t", action="x", object_type="t", object_id=1)  # seq 10
        raise RuntimeError("rolled back")
    assert not (Path(station_env["EVIDENCE_HOME"]) / ANCHOR_FILE).exists()
    record_events(station, 1)
    code, report = verify(station_env)
    assert code == 0, report
    assert report["anchors"]["anchors_checked"] == 1


@pytest.mark.radosgw
def test_anchors_in_s3_under_object_lock_with_a_tsa_token(
    radosgw: RadosgwInfo, local_tsa: LocalTsa, station_env: dict[str, str], tmp_path: Path
) -> None:
    ca_file = tmp_path / "tsa-ca.pem"
    ca_file.write_bytes(local_tsa.ca_cert_pem)
    env = {
        **station_env,
        "EVIDENCE_BLOB_STORE": "s3",
        "EVIDENCE_S3_ENDPOINT_URL": radosgw.endpoint_url,
        "EVIDENCE_S3_BUCKET": f"anchors-{uuid.uuid4().hex[:12]}",
        "EVIDENCE_S3_ACCESS_KEY_ID": radosgw.access_key_id,
        "EVIDENCE_S3_SECRET_ACCESS_KEY": radosgw.secret_access_key,
        "EVIDENCE_S3_REGION": radosgw.region,
        "EVIDENCE_TSA_URL": local_tsa.url,
        "EVIDENCE_TSA_CA_FILE": str(ca_file),
    }
    station, _ = initialise(load_settings(env))
    try:
        record_events(station, 29)
        store = station.blobs
        assert isinstance(store, S3BlobStore)
        listed = store.client.list_objects_v2(Bucket=store.bucket, Prefix=S3_PREFIX)["Contents"]
        keys = sorted(item["Key"] for item in listed)
        assert len(keys) == 3
        lock = store.client.get_object_retention(Bucket=store.bucket, Key=keys[0])["Retention"]
        assert lock["Mode"] == "COMPLIANCE"
        code, report = verify(env)
        assert code == 0, report
        assert report["anchors"]["anchors_checked"] == 6  # file and bucket
        assert report["anchors"]["timestamps_checked"] == 6
        # the anchor file removed too: the bucket still vouches for the deleted tail
        (Path(env["EVIDENCE_HOME"]) / ANCHOR_FILE).unlink()
        with station.engine.begin() as conn:
            conn.execute(delete(audit_events).where(audit_events.c.seq > 15))
            conn.execute(delete(audit_checkpoints))
        code, report = verify(env)
        assert code == 1
        assert any("s3" in p["reason"] for p in report["anchors"]["problems"])
    finally:
        station.close()


def test_the_end_cut_consistently_reads_as_a_restore_on_both_backends(
    station: Station, station_env: dict[str, str]
) -> None:
    """What a restore looks like from inside the database (the file copy above is SQLite only): the
    log and its checkpoints end earlier than the anchors, and everything before agrees."""
    record_events(station, 44)  # 45 events, anchors at 10..40
    with station.engine.begin() as conn:
        conn.execute(delete(audit_events).where(audit_events.c.seq > 33))
        conn.execute(delete(audit_checkpoints).where(audit_checkpoints.c.seq > 33))
    code, report = verify(station_env)
    assert code == 1
    assert report["anchors"]["restored_from_backup"] is True
    assert report["first_bad_event"] is None


def test_an_anchor_that_cannot_be_written_leaves_the_checkpoint_and_is_made_again(
    station: Station, station_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    # the anchor file cannot be written (here: a directory stands at its path; a full disk fails the
    # same write): the checkpoint is committed all the same, the failure is logged, verify says which
    # checkpoints no anchor vouches for, and `audit checkpoint` anchors the head again
    anchor_file = Path(station_env["EVIDENCE_HOME"]) / ANCHOR_FILE
    anchor_file.mkdir()
    with caplog.at_level("WARNING", logger="evidence_store.audit_anchoring"):
        record_events(station, 24)  # checkpoints at 10 and 20
    assert [m for m in caplog.messages if "not anchored" in m], caplog.messages
    with station.engine.connect() as conn:
        assert sorted(conn.scalars(select(audit_checkpoints.c.seq))) == [10, 20]
    anchor_file.rmdir()

    code, report = verify(station_env)
    assert code == 0, report
    assert report["anchors"]["anchors_checked"] == 0
    assert report["anchors"]["notes"], report["anchors"]

    again = run_cli(["audit", "checkpoint"], station_env)
    assert again.code == 0, again.stderr
    code, report = verify(station_env)
    assert code == 0, report
    assert report["anchors"]["anchors_checked"] == 1
    assert report["anchors"]["newest_anchored_seq"] == 25
