"""A running transfer's counters move while it runs (issue 19): the pull writes files and bytes to the
transfer's row during the copy, at most once a second; the totals listed at docking are in its
`transfer.started` event; the station's bays read them, and say "safe to unplug" only once the transfer
is complete and the dock released the recorder (R1, R10)."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path
from typing import Any

import pytest

import ingest.pull
from evidence_store.bootstrap import Station
from evidence_store.domain.dock_status import DockError, DockState, dock_error, dock_state, safe_to_unplug
from evidence_store.domain.model import RecordWarning, TransferOutcome, TransferSource
from evidence_store.queries.dock_status import station_bays
from ingest.pull import PullProgress, PullRequest, pull
from ingest.service import choose_profile
from ingest.transfer_record import release_transfer

FILES, SIZE = 6, 3 * 1024 * 1024 + 17  # each file takes a few reads of the copy (1 MiB chunks below)


def volume_with_files(root: Path) -> int:
    (root / "DCIM").mkdir(parents=True)
    for i in range(FILES):
        (root / "DCIM" / f"clip{i}.mp4").write_bytes(os.urandom(SIZE))
    return FILES * SIZE


def bays_now(station: Station) -> list[Any]:
    with station.connect() as connection:
        return station_bays(connection, station.clock())


def test_the_counters_move_during_the_run_and_safe_to_unplug_comes_last(
    station: Station, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    volume = tmp_path / "volume"
    total = volume_with_files(volume)
    monkeypatch.setattr(station.blobs, "chunk_size", 1024 * 1024, raising=False)
    # every tick writes (the once-a-second bound is the next test's)
    monkeypatch.setattr(ingest.pull, "progress_due", lambda *_a, **_k: True)
    seen: list[tuple[int, int, int, DockState, bool]] = []
    callbacks: list[tuple[int, int]] = []

    def watch(progress: PullProgress) -> None:
        callbacks.append((progress.files_done, progress.bytes_done))
        (bay,) = bays_now(station)
        seen.append(
            (
                bay.facts.files_seen,
                bay.facts.bytes_done,
                bay.facts.bytes_total or 0,
                dock_state(bay.facts),
                safe_to_unplug(bay.facts),
            )
        )

    profile, facts = choose_profile(station, volume, "generic")
    request = PullRequest(
        root=volume,
        profile=profile,
        source=TransferSource.DOCK,
        volume=facts,
        device_serial="DSJ-LIVE",
        officer_badge="310555",
        progress=watch,
    )
    summary = pull(station, request)
    assert summary.outcome is TransferOutcome.COMPLETE
    # told as each file is read, not only once it is done: bytes inside a file move
    assert any(done % SIZE for _files, done in callbacks)
    # the record moved while the transfer ran: bytes rising to the total, never "safe"
    progress = [bytes_done for _f, bytes_done, _t, _s, _safe in seen]
    assert progress == sorted(progress) and progress[0] < total and progress[-1] == total
    assert any(0 < b < total for b in progress)
    assert {state for *_x, state, _safe in seen} <= {DockState.COPYING, DockState.VERIFYING}
    assert DockState.COPYING in {state for *_x, state, _safe in seen}
    assert all(total_listed == total for _f, _b, total_listed, _s, _safe in seen)
    assert not any(safe for *_x, safe in seen)

    # finished and on the record, but the dock still holds the recorder: not yet
    (bay,) = bays_now(station)
    assert bay.facts.files_total == FILES and bay.facts.files_stored == FILES
    assert bay.device_serial == "DSJ-LIVE" and bay.officer_badge == "310555"
    assert dock_state(bay.facts) is DockState.RELEASING and not safe_to_unplug(bay.facts)
    release_transfer(station, "dock:test", summary.transfer_id, unmounted=True, problems=[])
    (bay,) = bays_now(station)
    assert dock_state(bay.facts) is DockState.DONE and safe_to_unplug(bay.facts)


def test_a_transfer_that_loses_files_is_never_safe(
    station: Station, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    volume = tmp_path / "volume"
    volume_with_files(volume)
    real = ingest.pull.copy_verified

    def clip2_unreadable(blobs: Any, dirfd: int, raw_name: bytes, *args: Any, **kwargs: Any) -> Any:
        if raw_name == b"clip2.mp4":
            raise OSError(errno.EACCES, "Permission denied")
        return real(blobs, dirfd, raw_name, *args, **kwargs)

    monkeypatch.setattr(ingest.pull, "copy_verified", clip2_unreadable)
    profile, facts = choose_profile(station, volume, "generic")
    request = PullRequest(
        root=volume, profile=profile, source=TransferSource.DOCK, volume=facts, device_serial="DSJ-BAD"
    )
    summary = pull(station, request)
    assert summary.outcome is TransferOutcome.PARTIAL
    release_transfer(station, "dock:test", summary.transfer_id, unmounted=True, problems=[])
    (bay,) = bays_now(station)
    assert dock_state(bay.facts) is DockState.ERROR and not safe_to_unplug(bay.facts)
    assert bay.facts.files_failed == 1 and bay.facts.files_stored == FILES - 1


def test_counters_are_written_at_most_once_a_second(
    station: Station, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    volume = tmp_path / "volume"
    (volume / "DCIM").mkdir(parents=True)
    for i in range(300):
        (volume / "DCIM" / f"clip{i:03d}.mp4").write_bytes(os.urandom(4096))
    writes: list[float] = []
    real = ingest.pull.record_progress

    def counted(*args: Any, **kwargs: Any) -> None:
        writes.append(time.monotonic())
        real(*args, **kwargs)

    monkeypatch.setattr(ingest.pull, "record_progress", counted)
    profile, facts = choose_profile(station, volume, "generic")
    started = time.monotonic()
    summary = pull(
        station,
        PullRequest(
            root=volume, profile=profile, source=TransferSource.IMPORT, volume=facts, device_serial="D"
        ),
    )
    elapsed = time.monotonic() - started
    assert summary.files_ingested == 300
    # once a second, plus one per batch put on the record (a batch is at least 200 files or 2 s)
    assert len(writes) <= elapsed + 1 + (elapsed / 2 + 2), (len(writes), elapsed)
    assert len(writes) < 300 / 10


def test_a_copy_in_doubt_is_never_safe(
    station: Station, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    volume = tmp_path / "volume"
    volume_with_files(volume)
    real = ingest.pull.copy_verified

    def clip1_kept_changing(
        blobs: Any, dirfd: int, raw_name: bytes, before: Any, warnings: Any, **kw: Any
    ) -> Any:
        result = real(blobs, dirfd, raw_name, before, warnings, **kw)
        if raw_name == b"clip1.mp4":
            warnings.append(RecordWarning("changed_during_copy", "changed during 3 copies"))
        return result

    monkeypatch.setattr(ingest.pull, "copy_verified", clip1_kept_changing)
    profile, facts = choose_profile(station, volume, "generic")
    request = PullRequest(
        root=volume, profile=profile, source=TransferSource.DOCK, volume=facts, device_serial="DSJ-DOUBT"
    )
    summary = pull(station, request)
    assert summary.outcome is TransferOutcome.COMPLETE
    release_transfer(station, "dock:test", summary.transfer_id, unmounted=True, problems=[])
    (bay,) = bays_now(station)
    assert bay.facts.files_in_doubt == 1
    assert dock_error(bay.facts) is DockError.COPY_IN_DOUBT and not safe_to_unplug(bay.facts)
