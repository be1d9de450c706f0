"""Issue 17, item 2: a recorder's sidecars (device-info file, logs, GPS tracks) are attachments of their
transfer or clip, never clips; they go with their footage; an older station's sidecar clips convert."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from evidence_store.attachments import link_to_clips, record_attachments
from evidence_store.bootstrap import Station, initialise
from evidence_store.db.tables import attachments, audit_events, clips
from evidence_store.domain.model import (
    Attachment,
    ClipStatus,
    MediaType,
    ProcessingJob,
    StoredTimestamp,
    Transfer,
    TransferOutcome,
    TransferSource,
)
from evidence_store.settings import load_settings
from retention.policy import add_months
from retention.run import run_retention
from tests import factories
from tests.conftest import run_cli
from tests.fixtures.media import make_video, sha256_of
from tests.fixtures.recorders import dock_tools  # noqa: F401  (fixture)

SERIAL, OFFICER = "DSJ0017", "310017"
NOW = datetime(2027, 6, 15, 4, 0, tzinfo=UTC)


def _clip_paths(station: Station) -> set[str]:
    with station.engine.connect() as connection:
        return set(connection.scalars(select(clips.c.device_path)))


def _attachments(station: Station) -> dict[str, object]:
    with station.engine.connect() as connection:
        return {row.device_path: row for row in connection.execute(select(attachments))}


def test_a_folder_import_keeps_sidecars_as_attachments_not_clips(
    station: Station, station_env: dict[str, str], tmp_path: Path
) -> None:
    volume = tmp_path / "volume"
    media = volume / "DCIM" / "100MEDIA"
    media.mkdir(parents=True)
    (volume / "DeviceInfo.txt").write_text(
        f"Serial={SERIAL}\nOfficer={OFFICER}\nTime=2026-11-24 16:01:30\n", encoding="utf-8"
    )
    first = f"{SERIAL}_{OFFICER}_20261124090000_0001"
    make_video(media / f"{first}.MP4", seconds=1)
    (media / f"{first}.gps").write_bytes(b"$GPRMC,090000,A,3854.0,N,12145.0,E*00\n")
    (volume / "LOG").mkdir()
    (volume / "LOG" / "recorder.log").write_bytes(b"2026-11-24 09:00:00 record start\n")

    result = run_cli(["import", str(volume), "--json"], station_env, timeout=600)
    assert result.code == 0, result.stderr
    summary = json.loads(result.stdout)

    sidecars = {"DeviceInfo.txt", f"DCIM/100MEDIA/{first}.gps", "LOG/recorder.log"}
    assert _clip_paths(station) == {f"DCIM/100MEDIA/{first}.MP4"}  # sidecars are not clips
    assert (summary["files_ingested"], summary["files_attached"]) == (1, 3)
    kept = _attachments(station)
    assert set(kept) == sidecars
    with station.engine.connect() as connection:
        clip_id = connection.scalar(select(clips.c.id))
        transfer_id = connection.scalar(select(clips.c.transfer_id))
    for path, row in kept.items():
        assert row.sha256 == sha256_of(volume / path)
        assert row.size == (volume / path).stat().st_size
        assert row.transfer_id == transfer_id
        assert row.device_mtime is not None
        with station.blobs.open(row.sha256) as handle:
            assert handle.read() == (volume / path).read_bytes()
    assert kept["DeviceInfo.txt"].kind == "device_info" and kept["DeviceInfo.txt"].clip_id is None
    assert kept[f"DCIM/100MEDIA/{first}.gps"].kind == "gps"
    assert kept[f"DCIM/100MEDIA/{first}.gps"].clip_id == clip_id  # the clip's own track
    assert kept["LOG/recorder.log"].kind == "log" and kept["LOG/recorder.log"].clip_id is None
    with station.sessions() as session:  # not offered for processing
        assert session.scalars(select(ProcessingJob)).all() == []

    # docking again: the unchanged sidecars are known, nothing becomes a clip
    again = json.loads(run_cli(["import", str(volume), "--json"], station_env, timeout=600).stdout)
    assert again["files_ingested"] == again["files_attached"] == 0
    assert _clip_paths(station) == {f"DCIM/100MEDIA/{first}.MP4"}
    assert len(_attachments(station)) == 3
    assert run_cli(["audit", "verify"], station_env).code == 0
    scrub = run_cli(["scrub", "--json"], station_env)
    assert scrub.code == 0 and json.loads(scrub.stdout)["orphans"] == []


def _transfer(station: Station) -> int:
    with station.transaction() as session:
        transfer = Transfer(
            source=TransferSource.DOCK, started_at=NOW - timedelta(days=400), outcome=TransferOutcome.COMPLETE
        )
        session.add(transfer)
        session.flush()
        assert transfer.id is not None
        return transfer.id


def _attach(station: Station, transfer_id: int, device_id: int, path: str, data: bytes, kind: str) -> None:
    stored = station.blobs.put(io.BytesIO(data))
    with station.transaction() as session:
        record_attachments(
            [
                (
                    Attachment(
                        transfer_id=transfer_id,
                        device_id=device_id,
                        kind=kind,
                        original_name=path.rsplit("/", 1)[-1],
                        device_path=path,
                        size=stored.size,
                        sha256=stored.sha256,
                        stored_at=station.clock(),
                    ),
                    stored.created,
                )
            ],
            store_name=station.blobs.name,
            session=session,
            audit=station.audit,
            actor="test",
        )


def test_sidecars_go_exactly_with_the_last_clip_they_describe(station_env: dict[str, str]) -> None:
    station, _ = initialise(load_settings({**station_env, "EVIDENCE_RETENTION_MAX_DELETE_SHARE": "1.0"}))
    try:
        transfer_id = _transfer(station)
        device_id = factories.add_device(station, "DSJ-RET")
        older_end = add_months(NOW, -6) - timedelta(days=1)  # due at NOW
        younger_end = add_months(NOW, -6) + timedelta(days=10)  # due ten days later
        factories.store_clip(
            station,
            b"older clip " * 100,
            utc_start=older_end,
            utc_end=older_end,
            status=ClipStatus.READY,
            transfer_id=transfer_id,
            device_id=device_id,
            device_path="DCIM/A_0001.MP4",
        )
        factories.store_clip(
            station,
            b"younger clip " * 100,
            utc_start=younger_end,
            utc_end=younger_end,
            status=ClipStatus.READY,
            transfer_id=transfer_id,
            device_id=device_id,
            device_path="DCIM/B_0002.MP4",
        )
        _attach(station, transfer_id, device_id, "DeviceInfo.txt", b"Serial=DSJ-RET\nTime=1\n", "device_info")
        _attach(station, transfer_id, device_id, "DCIM/A_0001.gps", b"$GPRMC track of A\n", "gps")
        with station.transaction() as session:
            assert link_to_clips(session, transfer_id=transfer_id, audit=station.audit, actor="t") == 1
        kept = _attachments(station)

        # the day before the older clip is due: everything stays
        report = run_retention(station, NOW - timedelta(days=2))
        assert report.deleted == 0 and report.attachments_deleted == 0
        assert all(row.deleted_at is None for row in _attachments(station).values())

        # the older clip goes, and its own GPS track with it; the transfer's device info stays
        report = run_retention(station, NOW)
        assert report.deleted == 1 and report.attachments_deleted == 1
        rows = _attachments(station)
        assert rows["DCIM/A_0001.gps"].deleted_at is not None
        assert not station.blobs.exists(kept["DCIM/A_0001.gps"].sha256)
        assert rows["DeviceInfo.txt"].deleted_at is None
        assert station.blobs.exists(kept["DeviceInfo.txt"].sha256)

        # two days before the last clip is due: the device info is still kept
        report = run_retention(station, NOW + timedelta(days=8))
        assert report.deleted == 0 and report.attachments_deleted == 0
        assert _attachments(station)["DeviceInfo.txt"].deleted_at is None

        # the last clip of the transfer goes: its device info goes in the same run
        report = run_retention(station, NOW + timedelta(days=12))
        assert report.deleted == 1 and report.attachments_deleted == 1
        assert _attachments(station)["DeviceInfo.txt"].deleted_at is not None
        assert not station.blobs.exists(kept["DeviceInfo.txt"].sha256)
        with station.engine.connect() as connection:
            events = connection.execute(
                select(audit_events.c.details).where(
                    audit_events.c.action == "attachment.deleted_by_retention"
                )
            ).all()
        assert len(events) == 2
        assert run_retention(station, NOW + timedelta(days=40)).attachments_deleted == 0  # idempotent
    finally:
        station.close()
    assert run_cli(["audit", "verify"], station_env).code == 0


def test_init_converts_sidecars_stored_as_clips(station: Station, station_env: dict[str, str]) -> None:
    """An older station stored DeviceInfo.txt as a clip; `evidence init` makes it an attachment."""
    transfer_id = _transfer(station)
    info = b"Serial=DSJ0001\nOfficer=310123\nTime=2026-11-24 16:01:30\n"
    old = factories.store_clip(
        station,
        info,
        media_type=MediaType.OTHER,
        original_name="DeviceInfo.txt",
        device_path="DeviceInfo.txt",
        transfer_id=transfer_id,
        status=ClipStatus.READY,
        media_info={"profile": "cn-standard", "sidecar": True},
    )
    video = factories.store_clip(station, b"a real clip" * 50, transfer_id=transfer_id)
    token = b"\x30\x82RFC3161 token bytes"
    with station.transaction() as session:
        session.add(
            ProcessingJob(
                clip_id=old.clip_id, step="timestamp", created_at=station.clock(), updated_at=station.clock()
            )
        )
        session.add(
            StoredTimestamp(
                clip_id=old.clip_id,
                sha256=old.sha256,
                kind="rfc3161",
                authority="test tsa",
                gen_time=NOW,
                serial="42",
                token=token,
                created_at=NOW,
            )
        )
    # a sidecar clip someone linked to a case stays a clip: a person decides
    linked = factories.store_clip(
        station,
        b"linked log",
        media_type=MediaType.OTHER,
        original_name="sys.log",
        device_path="LOG/sys.log",
        transfer_id=transfer_id,
        media_info={"sidecar": True},
    )
    factories.add_link(station, linked.clip_id, factories.add_case(station, "C-17"))

    result = run_cli(["init"], station_env)
    assert result.code == 0, result.stderr
    assert run_cli(["init"], station_env).code == 0  # idempotent

    with station.engine.connect() as connection:
        clip_ids = set(connection.scalars(select(clips.c.id)))
        rows = connection.execute(select(attachments)).all()
        events = connection.execute(
            select(audit_events.c.object_id, audit_events.c.details).where(
                audit_events.c.action == "attachment.converted_from_clip"
            )
        ).all()
    assert clip_ids == {video.clip_id, linked.clip_id}  # no clip row for the sidecar
    assert len(rows) == 1
    row = rows[0]
    assert (row.sha256, row.size, row.kind, row.transfer_id) == (
        hashlib.sha256(info).hexdigest(),
        len(info),
        "device_info",
        transfer_id,
    )
    assert row.former_clip_id == old.clip_id
    assert row.former_clip["processing_jobs"][0]["step"] == "timestamp"
    (kept_token,) = row.former_clip["timestamp_tokens"]  # the time-stamp over its hash is kept
    assert base64.b64decode(kept_token["token"]["base64"]) == token
    assert row.former_clip["clip"]["original_name"] == "DeviceInfo.txt"
    assert f"sidecar clip {linked.clip_id} left as a clip: linked to a case" in result.stdout
    assert station.blobs.rehash(row.sha256) == row.sha256  # the bytes are still there, unchanged
    assert len(events) == 1 and events[0].object_id == str(row.id)
    details = json.loads(events[0].details)
    assert details["sha256"] == row.sha256 and details["former_clip_id"] == old.clip_id
    assert run_cli(["audit", "verify"], station_env).code == 0
    scrub = run_cli(["scrub", "--json"], station_env)
    assert scrub.code == 0 and json.loads(scrub.stdout)["orphans"] == []


def test_init_leaves_a_sidecar_clip_whose_bytes_are_damaged_as_a_clip(
    station: Station, station_env: dict[str, str]
) -> None:
    """A sidecar clip whose stored bytes no longer hash to its sha256 is not converted: it stays a clip,
    `init` says why, and nothing of it is removed (scrub is where the damage is reported)."""
    transfer_id = _transfer(station)
    old = factories.store_clip(
        station,
        b"Serial=DSJ0001\n",
        media_type=MediaType.OTHER,
        original_name="DeviceInfo.txt",
        device_path="DeviceInfo.txt",
        transfer_id=transfer_id,
        status=ClipStatus.READY,
        media_info={"profile": "cn-standard", "sidecar": True},
    )
    blob = station.blobs.path_for(old.sha256)  # type: ignore[attr-defined]
    blob.chmod(0o600)
    blob.write_bytes(b"Serial=DSJ9999\n")  # a bit rot

    result = run_cli(["init"], station_env)

    assert result.code == 0, result.stderr
    assert f"sidecar clip {old.clip_id} left as a clip: its bytes in the store do not match" in result.stdout
    with station.engine.connect() as connection:
        assert old.clip_id in set(connection.scalars(select(clips.c.id)))
        assert connection.execute(select(attachments)).all() == []


@pytest.mark.parametrize("name", ["DeviceInfo.txt", "notes.TXT", "A_0001.nmea", "sys.log"])
def test_the_shipped_profiles_declare_sidecars(name: str) -> None:
    from ingest.devices.catalog import load_profiles

    for profile in load_profiles():
        assert profile.sidecar_kind(name) is not None, (profile.name, name)
        assert profile.sidecar_kind(name.rsplit(".", 1)[0] + ".MP4") is None


@pytest.mark.slow
@pytest.mark.usefixtures("dock_tools")
def test_a_pull_of_a_recorder_image_keeps_sidecars_as_attachments(station: Station, tmp_path: Path) -> None:
    from ingest.mount import ReadOnlyMount
    from ingest.pull import PullRequest, pull
    from ingest.service import choose_profile
    from tests.fixtures.recorders import LoopDevice, RecorderSpec, build_recorder_image

    extra = {
        "GPS/track_0001.nmea": (b"$GPGGA,090000,3854.0,N,12145.0,E,1,08*00\n", None),
        "LOG/SYSTEM.LOG": (b"boot ok\nrecord start\n", None),
    }
    image = build_recorder_image(
        tmp_path, RecorderSpec("DSJ1701", "311701", "vfat", clips=2, extra_files=extra)
    )
    mount_dir = station.settings.effective_mount_dir
    with LoopDevice(image.path) as devnode, ReadOnlyMount(devnode, "vfat", mount_dir) as root:
        profile, facts = choose_profile(station, root, None)
        summary = pull(
            station, PullRequest(root=root, profile=profile, source=TransferSource.DOCK, volume=facts)
        )
    assert summary.outcome is TransferOutcome.COMPLETE, summary.as_dict()
    sidecars = {"DeviceInfo.txt", "GPS/track_0001.nmea", "LOG/SYSTEM.LOG"}
    media = {p for p in image.files if p not in sidecars}
    assert len(media) == 2
    assert _clip_paths(station) == media  # the sidecars are no clips
    kept = _attachments(station)
    assert set(kept) == sidecars
    for path in sidecars:
        assert kept[path].sha256 == image.files[path]
        assert kept[path].transfer_id == summary.transfer_id
        assert station.blobs.exists(kept[path].sha256)
    assert {path: kept[path].kind for path in sidecars} == {
        "DeviceInfo.txt": "device_info",
        "GPS/track_0001.nmea": "gps",
        "LOG/SYSTEM.LOG": "log",
    }


def test_the_clip_page_lists_its_recorder_files_and_search_does_not(station: Station) -> None:
    from evidence_store.accounts import create_user
    from tests.integration.test_web_access import PASSWORD, client_for, login

    transfer_id = _transfer(station)
    device_id = factories.add_device(station, "DSJ-WEB")
    clip = factories.store_clip(
        station,
        b"web clip " * 64,
        transfer_id=transfer_id,
        device_id=device_id,
        device_path="DCIM/W_0001.MP4",
        utc_start=NOW,
        status=ClipStatus.READY,
    )
    info = b"Serial=DSJ-WEB\n"
    _attach(station, transfer_id, device_id, "DeviceInfo.txt", info, "device_info")
    create_user(station, username="custodian", password=PASSWORD, role="custodian", unit="", actor="test")
    client = client_for(station)
    login(client, "custodian")

    page = client.get(f"/clips/{clip.clip_id}")
    assert page.status_code == 200
    assert 'id="attachments"' in page.text
    assert "DeviceInfo.txt" in page.text and hashlib.sha256(info).hexdigest() in page.text
    detail = client.get(f"/api/clips/{clip.clip_id}").json()
    assert [(a["name"], a["size"], a["kind"]) for a in detail["attachments"]] == [
        ("DeviceInfo.txt", len(info), "device_info")
    ]
    hits = client.get("/api/clips").json()["items"]
    assert [hit["id"] for hit in hits] == [clip.clip_id]  # the sidecar is no search hit
