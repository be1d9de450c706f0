"""Certified export for real: the workflow and its refusals (audited), the retention hold, the package
(one read of each original, byte-identical copies, segments and disclosure copies with C2PA Content
Credentials, RFC 3161 tokens from a real TSA) and its offline verification, including tampering with
any file of it."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import struct
import subprocess
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from evidence_store.bootstrap import Station, initialise, open_station
from evidence_store.db.tables import audit_events, clips, export_requests
from evidence_store.domain.model import CaseCategory, ExportStatus, LinkOrigin
from evidence_store.errors import ConfigurationError, IntegrityError
from evidence_store.export.package import build_package
from evidence_store.export.verify import verify_package
from evidence_store.export.workflow import (
    ExportRefusedError,
    approve_export,
    authorise_build,
    reject_export,
    request_export,
)
from evidence_store.settings import load_settings
from ingest.transcode.segment import FfmpegCutter
from retention.policy import add_months
from retention.run import run_retention
from tests import factories
from tests.conftest import run_cli
from tests.fakes import FixedClock
from tests.fixtures.filesystems import mounted_xfs, used_bytes
from tests.fixtures.media import make_video, sha256_of
from tests.fixtures.services import require
from tests.fixtures.tsa import LocalTsa
from tests.integration.retention_helpers import add_clip

UNIT = "某市卫生健康综合监督执法支队"
NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


# ------------------------------------------------------------------ helpers (also used by the e2e suite)


def add_user(
    station: Station, username: str, role: str, *, active: bool = True, password_hash: str = "!"
) -> None:
    factories.add_user(station, username, role, unit=UNIT, active=active, password_hash=password_hash)


def add_people(station: Station, password_hash: str = "!") -> None:
    for username, role in (
        ("inv1", "investigator"),
        ("inv2", "investigator"),
        ("boss", "approver"),
        ("clerk", "custodian"),
    ):
        add_user(station, username, role, password_hash=password_hash)


def events(station: Station, action: str) -> list[dict]:
    with station.engine.connect() as connection:
        rows = connection.execute(
            select(audit_events).where(audit_events.c.action == action).order_by(audit_events.c.seq)
        ).all()
    return [{"actor": r.actor, "object_id": r.object_id, "details": json.loads(r.details)} for r in rows]


def open_files() -> list[str]:
    """What this process has open (Linux), e.g. "/x/.export-000001.zip.partial-1a2b (deleted)"."""
    names = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(FileNotFoundError):  # the descriptor listdir itself used
            names.append(os.readlink(f"/proc/self/fd/{fd}"))
    return names


def status_of(station: Station, request_id: int) -> str:
    with station.engine.connect() as connection:
        return str(
            connection.scalar(select(export_requests.c.status).where(export_requests.c.id == request_id))
        )


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
    env.update(
        {
            "EVIDENCE_HOME": str(home),
            "EVIDENCE_DATABASE_URL": f"sqlite:///{home / 'evidence.db'}",
            "EVIDENCE_STATION_NAME": "test-station",
            "EVIDENCE_UNIT_NAME": UNIT,
            "EVIDENCE_PROCESSING_QUEUE": "none",
            **extra,
        }
    )
    return env


def tsa_env(directory: Path, tsa: LocalTsa) -> dict[str, str]:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "tsa-ca.pem").write_bytes(tsa.ca_cert_pem)
    return {"EVIDENCE_TSA_URL": tsa.url, "EVIDENCE_TSA_CA_FILE": str(directory / "tsa-ca.pem")}


def ingest_video(env: dict[str, str], volume: Path, seconds: float = 6) -> None:
    assert run_cli(["init"], env).code == 0
    make_video(volume / "DSJ_20261124_101500.mp4", seconds=seconds, size="320x240", tag=str(volume))
    imported = run_cli(["import", str(volume), "--device", "DSJ7", "--officer", "310777"], env)
    assert imported.code == 0, imported.stderr
    processed = run_cli(["process"], env, timeout=600)
    assert processed.code == 0, processed.stderr


def add_case_with_document(station: Station, clip_id: int) -> str:
    number = "卫监罚〔2026〕17号"
    case_id = factories.add_case(
        station, number, title="某餐饮店未取得许可证经营案", category=CaseCategory.PUNISHMENT
    )
    document_id = factories.add_document(
        station,
        "DOC-17-1",
        case_id,
        kind="现场检查笔录",
        title="现场检查笔录",
        start=NOW - timedelta(hours=1),
        end=NOW,
        requires_video=True,
    )
    factories.add_link(
        station, clip_id, case_id, document_id=document_id, origin=LinkOrigin.MANUAL, is_evidence=True
    )
    return number


def flip_byte(path: Path, where: str) -> None:
    size = path.stat().st_size
    offset = {"first": 0, "middle": size // 2, "last": size - 1}[where]
    path.chmod(0o644)
    with path.open("r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0x01]))


# ------------------------------------------------------------------ the workflow


@pytest.fixture
def clocked(station_env: dict[str, str]) -> Iterator[tuple[Station, FixedClock]]:
    """A station whose clock the test moves (expiry), that may delete everything old (retention)."""
    clock = FixedClock(NOW)
    env = {**station_env, "EVIDENCE_UNIT_NAME": UNIT, "EVIDENCE_RETENTION_MAX_DELETE_SHARE": "1"}
    running, _ = initialise(load_settings(env), clock=clock)
    add_people(running)
    yield running, clock
    running.close()


def test_refusals_are_refused_and_audited(clocked: tuple[Station, FixedClock], tmp_path: Path) -> None:
    station, clock = clocked
    clip = add_clip(station, NOW - timedelta(days=3))
    out = tmp_path / "out"

    with pytest.raises(ExportRefusedError, match="role custodian, not investigator"):
        request_export(station, user="clerk", items=[{"clip_id": clip}], purpose="court")
    with pytest.raises(ExportRefusedError, match="no user 'nobody'"):
        request_export(station, user="nobody", items=[{"clip_id": clip}], purpose="court")
    request = request_export(
        station, user="inv1", items=[{"clip_id": clip}], purpose="court", recipient="法院"
    )
    assert request.id is not None and request.status is ExportStatus.PENDING

    # building before approval
    with pytest.raises(ExportRefusedError, match="not approved yet"):
        build_package(station, request.id, user="inv1", out_dir=out)
    # approving: only an approver, never the requester
    with pytest.raises(ExportRefusedError, match="not approver"):
        approve_export(station, request.id, user="inv2")
    approved = approve_export(station, request.id, user="boss", reason="同意")
    assert approved.valid_until == NOW + timedelta(days=7)  # export_validity_days default
    with pytest.raises(ExportRefusedError, match="approved, not pending"):
        reject_export(station, request.id, user="boss", reason="changed my mind")
    # building by another user
    with pytest.raises(ExportRefusedError, match=r"only the requester \(inv1\)"):
        build_package(station, request.id, user="inv2", out_dir=out)
    assert status_of(station, request.id) == "approved"
    assert not out.exists() or not any(out.iterdir())

    # after rejection
    rejected = request_export(station, user="inv1", items=[{"clip_id": clip}], purpose="review")
    assert rejected.id is not None
    reject_export(station, rejected.id, user="boss", reason="用途不明确")
    with pytest.raises(ExportRefusedError, match="rejected by boss: 用途不明确"):
        build_package(station, rejected.id, user="inv1", out_dir=out)

    # after expiry (the clock moves past valid_until)
    clock.now = NOW + timedelta(days=7, seconds=1)
    with pytest.raises(ExportRefusedError, match="approval expired"):
        build_package(station, request.id, user="inv1", out_dir=out)
    assert status_of(station, request.id) == "expired"
    with pytest.raises(ExportRefusedError, match="approval expired"):
        authorise_build(station, request.id, user="inv1")

    refused = events(station, "export.refused")
    steps = [(e["actor"], e["details"]["step"], e["object_id"]) for e in refused]
    assert steps == [
        ("clerk", "request", "-"),
        ("nobody", "request", "-"),
        ("inv1", "build", str(request.id)),
        ("inv2", "approve", str(request.id)),
        ("boss", "reject", str(request.id)),
        ("inv2", "build", str(request.id)),
        ("inv1", "build", str(rejected.id)),
        ("inv1", "build", str(request.id)),
        ("inv1", "build", str(request.id)),
    ]
    assert [e["object_id"] for e in events(station, "export.expired")] == [str(request.id)]
    assert [e["actor"] for e in events(station, "export.requested")] == ["inv1", "inv1"]
    assert [e["actor"] for e in events(station, "export.approved")] == ["boss"]
    assert [e["details"]["reason"] for e in events(station, "export.rejected")] == ["用途不明确"]
    assert events(station, "export.built") == []
    assert run_cli(["audit", "verify"], _env_of(station)).code == 0


def _env_of(station: Station) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
    env["EVIDENCE_HOME"] = str(station.settings.home)
    env["EVIDENCE_DATABASE_URL"] = station.settings.effective_database_url
    return env


def test_a_pending_export_holds_its_clip_from_the_retention_run(clocked: tuple[Station, FixedClock]) -> None:
    station, _clock = clocked
    long_ago = add_months(NOW, -12)
    pending = add_clip(station, long_ago)
    approved = add_clip(station, long_ago)
    rejected = add_clip(station, long_ago)
    free = add_clip(station, long_ago)
    request_export(station, user="inv1", items=[{"clip_id": pending}], purpose="court")
    to_approve = request_export(station, user="inv1", items=[{"clip_id": approved}], purpose="court")
    to_reject = request_export(station, user="inv1", items=[{"clip_id": rejected}], purpose="court")
    assert to_approve.id and to_reject.id
    approve_export(station, to_approve.id, user="boss")
    reject_export(station, to_reject.id, user="boss", reason="no")

    report = run_retention(station, NOW)

    with station.engine.connect() as connection:
        statuses = {r.id: str(r.status) for r in connection.execute(select(clips.c.id, clips.c.status))}
    assert statuses[free] == "deleted"  # the control: old, unlinked, free to go
    assert statuses[rejected] == "deleted"  # a rejected request holds nothing
    assert statuses[pending] != "deleted"
    assert statuses[approved] != "deleted"
    assert report.deleted == 2
    for clip_id in (pending, approved):
        with station.engine.connect() as connection:
            sha = connection.scalar(select(clips.c.sha256).where(clips.c.id == clip_id))
        assert station.blobs.rehash(sha) == sha


# ------------------------------------------------------------------ the package, service level


def test_a_package_of_originals_verifies_and_the_store_is_untouched(
    clocked: tuple[Station, FixedClock], tmp_path: Path
) -> None:
    station, _clock = clocked
    first = add_clip(station, NOW - timedelta(days=2), size=3 * 1024 * 1024 + 17)
    second = add_clip(station, NOW - timedelta(days=1), size=1000)
    request = request_export(
        station,
        user="inv1",
        items=[{"clip_id": first}, {"clip_id": second}],
        purpose="court",
        recipient="法院",
    )
    assert request.id is not None
    approve_export(station, request.id, user="boss")
    with station.engine.connect() as connection:
        hashes = dict(connection.execute(select(clips.c.id, clips.c.sha256)).tuples().all())

    result = build_package(station, request.id, user="inv1", out_dir=tmp_path / "out")

    assert result.directory == tmp_path / "out" / f"export-{request.id:06d}"
    assert result.zip_path is not None and result.zip_path.is_file()
    for clip_id in (first, second):
        copy = next((result.directory / "originals").glob(f"{hashes[clip_id]}.*"))
        assert sha256_of(copy) == hashes[clip_id]
        assert station.blobs.rehash(hashes[clip_id]) == hashes[clip_id]
    verdict = verify_package(result.directory)
    assert verdict.ok, verdict.problems
    assert verify_package(result.zip_path).ok
    assert not list((tmp_path / "out").glob(".*"))  # no partial files left
    assert status_of(station, request.id) == "built"
    built = events(station, "export.built")
    assert len(built) == 1 and built[0]["details"]["manifest_sha256"] == result.manifest_sha256
    assert result.manifest_sha256 == sha256_of(result.directory / "manifest.json")
    assert sorted(int(e["object_id"]) for e in events(station, "clip.exported")) == sorted([first, second])
    # once only
    with pytest.raises(ExportRefusedError, match="already built"):
        build_package(station, request.id, user="inv1", out_dir=tmp_path / "again")
    manifest = json.loads((result.directory / "manifest.json").read_bytes())
    assert manifest["producing_unit"] == UNIT
    assert manifest["export"]["approved_by"] == "boss" and manifest["export"]["extracted_by"] == "inv1"
    assert [e["action"] for e in manifest["export"]["events"]] == ["export.requested", "export.approved"]
    assert manifest["items"][0]["custody_events"][0]["action"] == "clip.stored"


def test_large_originals_are_aligned_in_the_zip_and_standard_unzip_accepts_it(
    clocked: tuple[Station, FixedClock], tmp_path: Path
) -> None:
    """Originals past the first 8 MiB go to the directory and the zip with O_DIRECT; the zip entry's
    data is padded to a 4 KiB boundary in its local header only, and stays a plain, valid zip."""
    require(shutil.which("unzip") is not None, "unzip is not installed")
    station, _clock = clocked
    sizes = [21 * 1024 * 1024 + 4095, 17 * 1024 * 1024]  # an odd tail, and a whole number of chunks
    ids = [add_clip(station, NOW - timedelta(days=2 + n), size=size) for n, size in enumerate(sizes)]
    request = request_export(station, user="inv1", items=[{"clip_id": i} for i in ids], purpose="court")
    assert request.id is not None
    approve_export(station, request.id, user="boss")
    result = build_package(station, request.id, user="inv1", out_dir=tmp_path / "out")
    assert result.zip_path is not None

    tested = subprocess.run(
        ["unzip", "-t", str(result.zip_path)], check=False, capture_output=True, text=True
    )
    assert tested.returncode == 0 and "No errors detected" in tested.stdout, tested.stdout + tested.stderr
    raw = result.zip_path.read_bytes()
    with zipfile.ZipFile(result.zip_path) as archive:
        originals = [m for m in archive.infolist() if "/originals/" in m.filename]
        assert len(originals) == 2
        for member in originals:
            assert member.extra == b""  # no padding in the central directory
            name_length, extra_length = struct.unpack("<HH", raw[member.header_offset + 26 :][:4])
            data_at = member.header_offset + 30 + name_length + extra_length
            assert data_at % 4096 == 0
            on_disk = result.directory / member.filename.split("/", 1)[1]
            assert raw[data_at : data_at + member.file_size] == on_disk.read_bytes()
            assert archive.read(member) == on_disk.read_bytes()  # CRC-32 checked by zipfile too
    assert verify_package(result.zip_path).ok
    assert verify_package(result.directory).ok


def build_fails_for_a_full_disk(station: Station, request_id: int, out: Path) -> None:
    """The build fails with ENOSPC, leaves no partial file and no open descriptor, records
    `export.build_failed`, and the request stays approved."""
    with pytest.raises(OSError) as full:
        build_package(station, request_id, user="inv1", out_dir=out)
    assert full.value.errno == errno.ENOSPC
    assert list(out.iterdir()) == []
    assert not [name for name in open_files() if str(out) in name]
    assert status_of(station, request_id) == "approved"
    [failed] = events(station, "export.build_failed")
    assert "No space left on device" in json.dumps(failed["details"])


def test_a_segment_asked_of_a_build_with_no_cutter_wired_fails_cleanly(
    clocked: tuple[Station, FixedClock], tmp_path: Path
) -> None:
    """`build_package` cuts segments only through the DerivativeCutter the entry layer wires; without
    one, a request that asks for a segment fails in one clear line and leaves nothing behind."""
    station, _clock = clocked
    clip = add_clip(station, NOW - timedelta(days=1), size=1000)
    request = request_export(
        station,
        user="inv1",
        items=[{"clip_id": clip, "start_s": 0.0, "end_s": 1.0}],
        purpose="court",
        recipient="法院",
    )
    assert request.id is not None
    approve_export(station, request.id, user="boss")
    out = tmp_path / "out"
    with pytest.raises(ConfigurationError, match="no derivative cutter"):
        build_package(station, request.id, user="inv1", out_dir=out)
    assert list(out.iterdir()) == []
    assert status_of(station, request.id) == "approved"
    [failed] = events(station, "export.build_failed")
    assert "no derivative cutter" in json.dumps(failed["details"])


@pytest.mark.parametrize("failing", ["zip", "directory"])
def test_a_disk_that_fills_up_during_the_build_leaves_nothing_and_the_build_can_be_retried(
    clocked: tuple[Station, FixedClock], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    """ENOSPC from every write past the first MiB of the zip, or of the directory's copy of an
    original: the build fails with that error, leaves no partial files (and no open descriptor), records
    `export.build_failed`, and the request stays approved so it can be built once there is room."""
    from evidence_store.export import zip_writer

    station, _clock = clocked
    clip = add_clip(station, NOW - timedelta(days=2), size=9 * 1024 * 1024)
    request = request_export(station, user="inv1", items=[{"clip_id": clip}], purpose="court")
    assert request.id is not None
    approve_export(station, request.id, user="boss")

    room = [1024 * 1024]

    def take(size: int) -> None:
        if size > room[0]:
            room[0] = 0  # full: every later write fails too (the zip's headers, its central directory)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        room[0] -= size

    if failing == "zip":
        sink_write = zip_writer.ZipSink.write

        def write_to_zip(sink: Any, data: Any) -> int:
            take(memoryview(data).nbytes)
            return sink_write(sink, data)

        monkeypatch.setattr(zip_writer.ZipSink, "write", write_to_zip)
    else:
        real_write_all = zip_writer.write_all

        def write_all(fd: int, **options: Any) -> Callable[[memoryview], None]:
            write = real_write_all(fd, **options)

            def write_or_fail(view: memoryview) -> None:
                take(view.nbytes)
                write(view)

            return write_or_fail

        monkeypatch.setattr(zip_writer, "write_all", write_all)

    out = tmp_path / "out"
    build_fails_for_a_full_disk(station, request.id, out)

    monkeypatch.undo()
    result = build_package(station, request.id, user="inv1", out_dir=out)
    assert status_of(station, request.id) == "built"
    assert verify_package(result.directory).ok and result.zip_path is not None
    assert verify_package(result.zip_path).ok


def test_an_original_that_no_longer_matches_its_hash_is_not_exported(
    clocked: tuple[Station, FixedClock], tmp_path: Path
) -> None:
    station, _clock = clocked
    if station.settings.blob_store != "local":
        pytest.skip("damages a blob file of the local store")
    clip = add_clip(station, NOW - timedelta(days=2), size=5 * 1024 * 1024)
    request = request_export(station, user="inv1", items=[{"clip_id": clip}], purpose="court")
    assert request.id is not None
    approve_export(station, request.id, user="boss")
    with station.engine.connect() as connection:
        sha = connection.scalar(select(clips.c.sha256).where(clips.c.id == clip))
    blob = next(p for p in station.settings.effective_store_path.rglob(sha) if p.is_file())
    flip_byte(blob, "middle")

    with pytest.raises(IntegrityError, match="the store is damaged"):
        build_package(station, request.id, user="inv1", out_dir=tmp_path / "out")
    assert not any((tmp_path / "out").iterdir())
    assert status_of(station, request.id) == "approved"
    assert [e["object_id"] for e in events(station, "export.build_failed")] == [str(request.id)]


# ------------------------------------------------------------------ a filesystem that shares blocks


@pytest.fixture
def xfs_mount(tmp_path: Path) -> Iterator[Path]:
    with mounted_xfs(tmp_path / "xfs.img", tmp_path / "xfs") as mount:
        yield mount


def build_two_originals(station: Station, out_dir: Path) -> tuple[Any, dict[str, bytes], int]:
    """An approved request of two originals (one with an odd tail) built into `out_dir`: the result,
    each original's bytes by its path inside the package, and their total size."""
    sizes = [21 * 1024 * 1024 + 4095, 1000]
    ids = [add_clip(station, NOW - timedelta(days=2 + n), size=size) for n, size in enumerate(sizes)]
    request = request_export(station, user="inv1", items=[{"clip_id": i} for i in ids], purpose="court")
    assert request.id is not None
    approve_export(station, request.id, user="boss")
    result = build_package(station, request.id, user="inv1", out_dir=out_dir)
    originals = {
        f"originals/{path.name}": path.read_bytes() for path in (result.directory / "originals").iterdir()
    }
    return result, originals, sum(sizes)


def assert_zip_holds(zip_path: Path, originals: dict[str, bytes]) -> None:
    tested = subprocess.run(["unzip", "-t", str(zip_path)], check=False, capture_output=True, text=True)
    assert tested.returncode == 0 and "No errors detected" in tested.stdout, tested.stdout + tested.stderr
    with zipfile.ZipFile(zip_path) as archive:
        for rel, data in originals.items():
            [member] = [m for m in archive.infolist() if m.filename.endswith(f"/{rel}")]
            assert archive.read(member) == data  # CRC-32 checked by zipfile too


def test_where_files_can_share_blocks_the_zip_holds_the_originals_without_a_second_copy(
    clocked: tuple[Station, FixedClock], xfs_mount: Path
) -> None:
    """On XFS with reflink the zip's originals are clones of the directory's copies: written once and
    stored once, yet two independent files (a change to one is not seen in the other)."""
    require(shutil.which("unzip") is not None, "unzip is not installed")
    station, _clock = clocked
    before = used_bytes(xfs_mount)

    result, originals, total = build_two_originals(station, xfs_mount / "exports")

    assert result.zip_path is not None
    assert result.zip_shared_bytes == total
    # one copy of the originals on disk, not two (the rest of the package is a few hundred KiB)
    assert used_bytes(xfs_mount) - before < 1.3 * total
    assert verify_package(result.directory).ok and verify_package(result.zip_path).ok
    assert_zip_holds(result.zip_path, originals)
    [built] = events(station, "export.built")
    assert built["details"]["zip_shared_bytes"] == total

    # independent files: a byte changed in the directory's copy leaves the zip's as it was
    big = max(originals, key=lambda rel: len(originals[rel]))
    copy = result.directory / big
    copy.chmod(0o644)
    flip_byte(copy, "middle")
    assert not verify_package(result.directory).ok
    assert verify_package(result.zip_path).ok
    assert_zip_holds(result.zip_path, originals)


def test_the_probe_tells_filesystems_that_share_blocks_from_those_that_do_not(xfs_mount: Path) -> None:
    """XFS with reflink can; tmpfs cannot (no remap at all); the probe leaves no file behind."""
    from evidence_store.blobs.reflink import can_share_blocks

    require(Path("/dev/shm").is_dir() and os.access("/dev/shm", os.W_OK), "no writable /dev/shm (tmpfs)")
    with tempfile.TemporaryDirectory(dir="/dev/shm") as shm:
        assert not can_share_blocks(Path(shm))
        assert list(Path(shm).iterdir()) == []
    assert can_share_blocks(xfs_mount)
    assert [p.name for p in xfs_mount.iterdir()] == []


def test_a_clone_refused_after_the_probe_is_copied_into_the_zip_instead(
    clocked: tuple[Station, FixedClock], xfs_mount: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The filesystem said it could share blocks, then refused a range (a block size above 4 KiB, a
    full quota): the kernel copies the range instead, and the zip is whole."""
    from evidence_store.export import zip_writer

    require(shutil.which("unzip") is not None, "unzip is not installed")
    station, _clock = clocked
    refused: list[int] = []

    def refuse(_source: int, _target: int, length: int, _at: int) -> None:
        refused.append(length)
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))

    monkeypatch.setattr(zip_writer, "clone_range", refuse)

    result, originals, total = build_two_originals(station, xfs_mount / "exports")

    assert sorted(refused) == sorted(len(data) for data in originals.values())
    assert result.zip_path is not None and result.zip_shared_bytes == 0
    assert verify_package(result.directory).ok and verify_package(result.zip_path).ok
    assert_zip_holds(result.zip_path, originals)
    assert sum(len(data) for data in originals.values()) == total


def test_a_full_disk_while_the_zip_takes_its_range_leaves_nothing_and_the_build_can_be_retried(
    clocked: tuple[Station, FixedClock], xfs_mount: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The clone refused (a full quota) and the kernel copy that stands in for it failing with ENOSPC:
    the build fails with that error, leaves no partial file, records `export.build_failed`, and the
    request stays approved; once there is room the same request builds and shares its blocks."""
    from evidence_store.export import zip_writer

    station, _clock = clocked
    clip = add_clip(station, NOW - timedelta(days=2), size=9 * 1024 * 1024 + 5)
    request = request_export(station, user="inv1", items=[{"clip_id": clip}], purpose="court")
    assert request.id is not None
    approve_export(station, request.id, user="boss")

    def no_room(*_args: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(zip_writer, "clone_range", no_room)
    monkeypatch.setattr(zip_writer, "copy_range", no_room)
    out = xfs_mount / "exports"
    build_fails_for_a_full_disk(station, request.id, out)

    monkeypatch.undo()
    result = build_package(station, request.id, user="inv1", out_dir=out)
    assert result.zip_path is not None and result.zip_shared_bytes == 9 * 1024 * 1024 + 5
    assert verify_package(result.directory).ok and verify_package(result.zip_path).ok


# ------------------------------------------------------------------ a full package, tampered with


@pytest.fixture(scope="module")
def full_package(tmp_path_factory: pytest.TempPathFactory, local_tsa: LocalTsa) -> dict[str, object]:
    """A package with an RFC 3161 token, an exact segment, a keyframe segment and a disclosure copy."""
    shutil.which("ffmpeg") or pytest.skip("ffmpeg is not installed")
    base = tmp_path_factory.mktemp("export")
    env = cli_env(base / "home", **tsa_env(base / "tsa", local_tsa))
    ingest_video(env, base / "volume")
    station = open_station(load_settings(env))
    try:
        add_people(station)
        with station.engine.connect() as connection:
            clip_id, sha = connection.execute(select(clips.c.id, clips.c.sha256)).one()
        case_number = add_case_with_document(station, clip_id)
        request = request_export(
            station,
            user="inv1",
            items=[
                {"clip_id": clip_id},
                {"clip_id": clip_id, "start_s": 1.0, "end_s": 3.5, "cut": "exact"},
                {"clip_id": clip_id, "start_s": 2.0, "end_s": 4.0, "cut": "keyframe", "disclosure": True},
            ],
            purpose="提交人民法院作为证据",
            recipient="某区人民法院",
            case_number=case_number,
        )
        assert request.id is not None
        approve_export(station, request.id, user="boss", reason="同意提取")
        result = build_package(station, request.id, user="inv1", out_dir=base / "out", cutter=FfmpegCutter())
        assert station.blobs.rehash(sha) == sha
    finally:
        station.close()
    return {"dir": result.directory, "zip": result.zip_path, "sha": sha, "env": env, "case": case_number}


def test_the_full_package_verifies(full_package: dict[str, object]) -> None:
    directory = Path(str(full_package["dir"]))
    verdict = verify_package(directory)
    assert verdict.ok, [f"{p.file}: {p.check}: {p.detail}" for p in verdict.problems]
    checks = {(f.check, f.file.split("/")[0]) for f in verdict.findings}
    assert ("C2PA", "derivatives") in checks and ("time-stamp", "timestamps") in checks
    assert ("station signature", "manifest.json.sig") in checks
    manifest = json.loads((directory / "manifest.json").read_bytes())
    kinds = [(d["kind"], d["cut"]) for item in manifest["items"] for d in item["derivatives"]]
    assert kinds == [("segment", "exact"), ("segment", "keyframe"), ("disclosure", "exact")]
    assert manifest["items"][1]["derivatives"][0]["arguments"][:6] == [
        "-nostdin",
        "-y",
        "-loglevel",
        "error",
        "-ss",
        "1",
    ]
    assert "-c" in manifest["items"][2]["derivatives"][0]["arguments"]  # the keyframe cut copies streams
    assert manifest["items"][0]["timestamps"][0]["kind"] == "rfc3161"
    assert manifest["trust"]["tsa_ca"] == "trust/tsa-ca.pem"
    assert manifest["case"]["title"] == "某餐饮店未取得许可证经营案"
    assert manifest["items"][0]["clip"]["documents"][0]["external_id"] == "DOC-17-1"
    assert manifest["items"][0]["clip"]["producer"]["badge_number"] == "310777"
    assert manifest["items"][0]["clip"]["device"]["serial"] == "DSJ7"
    disclosure = manifest["items"][2]["derivatives"][1]
    assert (
        "DISCLOSURE COPY" in disclosure["overlay_text"] and "卫监罚〔2026〕17号" in disclosure["overlay_text"]
    )
    # the derivatives really are what they say: a 2.5 s exact cut
    probe = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
            str(directory / manifest["items"][1]["derivatives"][0]["path"]),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert abs(float(probe.stdout) - 2.5) < 0.2
    note = (directory / "note.html").read_text("utf-8")
    for text in (
        "提取人",
        "Extracted by",
        "制作单位",
        UNIT,
        "卫监罚〔2026〕17号",
        "某区人民法院",
        "boss",
        "关键帧",
    ):
        assert text in note
    assert verify_package(Path(str(full_package["zip"]))).ok


def _package_files(directory: Path) -> dict[str, str]:
    manifest = json.loads((directory / "manifest.json").read_bytes())
    item = manifest["items"]
    return {
        "original": item[0]["original"]["path"],
        "segment": item[1]["derivatives"][0]["path"],
        "keyframe segment": item[2]["derivatives"][0]["path"],
        "disclosure copy": item[2]["derivatives"][1]["path"],
        "token": item[0]["timestamps"][0]["path"],
        "manifest": "manifest.json",
        "signature": "manifest.json.sig",
        "sums": "SHA256SUMS",
        "note html": "note.html",
        "note pdf": "note.pdf",
        "public key": "station-ed25519.pub.pem",
        "tsa ca": "trust/tsa-ca.pem",
        "c2pa ca": "trust/c2pa-ca.pem",
    }


TAMPERED = [
    "original",
    "segment",
    "keyframe segment",
    "disclosure copy",
    "token",
    "manifest",
    "signature",
    "sums",
    "note html",
    "note pdf",
    "public key",
    "tsa ca",
    "c2pa ca",
]


@pytest.mark.parametrize("field", ["hash", "seq", "signature"])
def test_a_custody_event_missing_a_field_is_named_malformed_not_a_crash(
    full_package: dict[str, object], tmp_path: Path, field: str
) -> None:
    """What a flipped byte did to "hash" in one CI run ("hasi"): verify said KeyError and stopped."""
    copy = tmp_path / "package"
    shutil.copytree(Path(str(full_package["dir"])), copy)
    manifest_path = copy / "manifest.json"
    manifest = json.loads(manifest_path.read_bytes())
    event = manifest["items"][0]["custody_events"][0]
    event[field[:-1] + chr(ord(field[-1]) ^ 1)] = event.pop(field)
    manifest["items"][0]["custody_events"].append("not an event")
    manifest_path.chmod(0o644)
    manifest_path.write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")

    verdict = verify_package(copy)

    assert not verdict.ok
    malformed = [p.detail for p in verdict.problems if p.check == "custody event"]
    assert any(field in detail for detail in malformed), verdict.problems
    assert len(malformed) >= 2  # the renamed field and the string where an event was


def _manifest_paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key of the manifest's objects and the first element of its lists, three levels deep."""
    if isinstance(value, dict):
        for name, inner in value.items():
            yield (*prefix, name)
            if len(prefix) < 3:
                yield from _manifest_paths(inner, (*prefix, name))
    elif isinstance(value, list) and value:
        yield (*prefix, 0)
        if len(prefix) < 3:
            yield from _manifest_paths(value[0], (*prefix, 0))


def test_a_manifest_of_any_wrong_shape_fails_verification_and_never_crashes(
    full_package: dict[str, object], tmp_path: Path
) -> None:
    """A tampered manifest can hold a string, a number, null, a list or an object where anything else
    was: at 24 such places verify stopped with a traceback (AttributeError, TypeError) until it was
    made to say "malformed manifest". Every place, every wrong value: a failed verdict, no exception."""
    source = Path(str(full_package["dir"]))
    original = json.loads((source / "manifest.json").read_bytes())
    copy = tmp_path / "package"
    shutil.copytree(source, copy)
    manifest_path = copy / "manifest.json"
    manifest_path.chmod(0o644)
    tried = 0
    for path in _manifest_paths(original):
        for wrong in ("x", 7, None, [], {}):
            manifest = json.loads(json.dumps(original))
            parent = manifest
            for step in path[:-1]:
                parent = parent[step]
            if parent[path[-1]] == wrong:
                continue
            parent[path[-1]] = wrong
            manifest_path.write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")

            verdict = verify_package(copy)

            assert not verdict.ok, (path, wrong)
            tried += 1
    assert tried > 200  # the walk reached the items, their originals, time-stamps and custody events


@pytest.mark.parametrize("where", ["first", "middle", "last"])
@pytest.mark.parametrize("which", TAMPERED)
def test_one_flipped_byte_anywhere_fails_verification_and_says_where(
    full_package: dict[str, object], tmp_path: Path, which: str, where: str
) -> None:
    copy = tmp_path / "package"
    shutil.copytree(Path(str(full_package["dir"])), copy)
    rel = _package_files(copy)[which]
    flip_byte(copy / rel, where)

    verdict = verify_package(copy)

    assert not verdict.ok
    named = {p.file for p in verdict.problems}
    if which == "sums":
        assert any(p.check == "SHA256SUMS" or p.file == "SHA256SUMS" for p in verdict.problems), (
            verdict.problems
        )
    elif which == "signature":
        assert named == {"manifest.json.sig"}, verdict.problems
    else:
        assert rel in named, verdict.problems
    # GNU sha256sum catches every file but the two it does not list
    checked = subprocess.run(
        ["sha256sum", "--strict", "--quiet", "-c", "SHA256SUMS"], cwd=copy, capture_output=True, check=False
    )
    assert (checked.returncode != 0) == (which != "signature")
    if which not in ("sums", "signature"):
        assert rel.encode() in checked.stdout


def test_a_flipped_byte_in_the_zip_is_found(full_package: dict[str, object], tmp_path: Path) -> None:
    zipped = tmp_path / "package.zip"
    shutil.copy(Path(str(full_package["zip"])), zipped)
    data = bytearray(zipped.read_bytes())
    sha = str(full_package["sha"])
    start = data.find(f"originals/{sha}".encode())
    assert start > 0
    data[start + 4096] ^= 0x01  # inside the stored original, past its local header
    zipped.write_bytes(bytes(data))
    verdict = verify_package(zipped)
    assert not verdict.ok
    assert any(p.file.startswith(f"originals/{sha}") for p in verdict.problems), verdict.problems


def test_the_store_is_byte_identical_after_everything(full_package: dict[str, object]) -> None:
    env = full_package["env"]
    assert isinstance(env, dict)
    station = open_station(load_settings(env))
    try:
        sha = str(full_package["sha"])
        assert station.blobs.rehash(sha) == sha
        with station.blobs.open(sha) as handle:
            assert hashlib.sha256(handle.read()).hexdigest() == sha
    finally:
        station.close()
    scrub = run_cli(["scrub"], env)
    assert scrub.code == 0, scrub.stdout + scrub.stderr
    assert run_cli(["audit", "verify"], env).code == 0
