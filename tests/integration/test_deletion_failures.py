"""Deleting verified copies from a recorder when something goes wrong (ingest.deletion.delete_verified):
an unlink that fails, a stored copy that cannot be read, a recorder that goes away. The recorder's
volume is a plain folder here (the mounts are covered in test_dock_recorder_files.py); each time
the file stays, the log says why, and `files_deleted` counts only what went (R1, R3, R10)."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import pytest
from sqlalchemy import select

from evidence_store.bootstrap import Station
from evidence_store.db.tables import transfers
from evidence_store.domain.model import TransferSource
from ingest import deletion
from ingest.deletion import DeletionReport, copied_file, delete_verified, plan_deletions, protected_paths
from ingest.pull import PullRequest, TransferSummary, pull
from ingest.service import choose_profile
from tests.integration.ingest_helpers import deletion_events

NAMES = ["a.mp4", "b.mp4", "c.mp4"]


def pulled(station: Station, volume: Path) -> TransferSummary:
    volume.mkdir()
    for i, name in enumerate(NAMES):
        (volume / name).write_bytes(os.urandom(10_000 + i))
    profile, facts = choose_profile(station, volume, "generic")
    request = PullRequest(
        root=volume, profile=profile, source=TransferSource.IMPORT, volume=facts, device_serial="D9"
    )
    summary = pull(station, request)
    assert sorted(f.path for f in summary.files if f.status == "ingested") == NAMES
    return summary


def delete(
    station: Station, volume: Path, summary: TransferSummary, cancelled: threading.Event | None = None
) -> DeletionReport:
    profile, _ = choose_profile(station, volume, "generic")
    decisions = plan_deletions(
        [copied_file(f) for f in summary.files], outcome=summary.outcome, protected=protected_paths(profile)
    )
    assert [d.file.path for d in decisions if d.delete] == NAMES
    return delete_verified(
        station,
        volume,
        decisions,
        transfer_id=summary.transfer_id,
        device_serial="D9",
        actor="test",
        cancelled=cancelled,
    )


def events(station: Station) -> list[tuple[str, str, str | None]]:
    return [
        (action, str(d["path"]), str(d["error"]) if "error" in d else None)
        for action, d in deletion_events(station)
    ]


def files_deleted(station: Station, transfer_id: int) -> int:
    with station.engine.connect() as connection:
        return int(
            connection.scalar(select(transfers.c.files_deleted).where(transfers.c.id == transfer_id)) or 0
        )


def test_an_unlink_that_fails_keeps_the_file_and_is_audited(
    station: Station, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    volume = tmp_path / "volume"
    summary = pulled(station, volume)
    real_unlink = deletion._unlink

    def eio_on_b(root_fd: int, path: str) -> None:
        if path == "b.mp4":
            raise OSError(errno.EIO, "Input/output error")
        real_unlink(root_fd, path)

    monkeypatch.setattr(deletion, "_unlink", eio_on_b)
    report = delete(station, volume, summary)

    assert [f.path for f in report.deleted] == ["a.mp4", "c.mp4"]
    assert report.kept == [("b.mp4", "deleting failed: Input/output error (errno 5)")]
    assert report.problems == ["cannot delete b.mp4 from the recorder: Input/output error (errno 5)"]
    assert sorted(p.name for p in volume.iterdir()) == ["b.mp4"]
    assert events(station) == [
        ("device_file.deleting", "a.mp4", None),
        ("device_file.deleting", "b.mp4", None),
        ("device_file.deleting", "c.mp4", None),
        ("device_file.deleted", "a.mp4", None),
        ("device_file.deleted", "c.mp4", None),
        ("device_file.delete_failed", "b.mp4", "Input/output error (errno 5)"),
    ]
    assert files_deleted(station, summary.transfer_id) == 2


def test_a_stored_copy_that_cannot_be_read_keeps_the_file(station: Station, tmp_path: Path) -> None:
    volume = tmp_path / "volume"
    summary = pulled(station, volume)
    lost = next(f for f in summary.files if f.path == "a.mp4")
    assert lost.sha256 is not None
    station.blobs.path_for(lost.sha256).unlink()  # type: ignore[attr-defined]

    report = delete(station, volume, summary)

    assert [f.path for f in report.deleted] == ["b.mp4", "c.mp4"]
    ((path, why),) = report.kept
    assert path == "a.mp4" and why.startswith("the stored copy cannot be read"), why
    assert sorted(p.name for p in volume.iterdir()) == ["a.mp4"]
    assert [(a, p) for a, p, _ in events(station)] == [
        ("device_file.deleting", "b.mp4"),
        ("device_file.deleting", "c.mp4"),
        ("device_file.deleted", "b.mp4"),
        ("device_file.deleted", "c.mp4"),
    ]
    assert files_deleted(station, summary.transfer_id) == 2


def test_a_recorder_that_went_away_has_nothing_deleted(station: Station, tmp_path: Path) -> None:
    volume = tmp_path / "volume"
    summary = pulled(station, volume)
    gone = threading.Event()
    gone.set()

    report = delete(station, volume, summary, cancelled=gone)

    assert report.deleted == []
    assert report.problems == ["the recorder went away: deleting stopped"]
    assert sorted(p.name for p in volume.iterdir()) == NAMES
    assert events(station) == []
    assert files_deleted(station, summary.transfer_id) == 0
