"""A pull on the fake station (R2, R3): every new file becomes a clip, no byte written is left unsynced,
the new clips are offered to the processing queue once, and a second pull of the same volume offers
nothing."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from sqlalchemy import select

from evidence_store.db.tables import clips
from evidence_store.domain.model import TransferSource
from ingest.pull import PullRequest, pull
from ingest.service import choose_profile
from tests.fakes import FakeStation, fake_station

NAMES = ["a.mp4", "b.mp4", "c.mp4"]


def pull_volume(station: FakeStation, volume: Path) -> list[str]:
    profile, facts = choose_profile(station, volume, "generic")
    request = PullRequest(
        root=volume, profile=profile, source=TransferSource.IMPORT, volume=facts, device_serial="D9"
    )
    summary = pull(station, request, station.queue)
    return sorted(f.path for f in summary.files if f.status == "ingested")


def test_new_clips_are_synced_recorded_and_offered_once() -> None:
    station = fake_station()
    with tempfile.TemporaryDirectory() as directory:
        volume = Path(directory)
        for i, name in enumerate(NAMES):
            (volume / name).write_bytes(os.urandom(10_000 + i))
        assert pull_volume(station, volume) == NAMES
        assert station.blobs.unsynced == set()  # every write made durable (batches are synced)
        with station.engine.connect() as connection:
            recorded = sorted(connection.scalars(select(clips.c.id)))
        assert len(recorded) == 3
        assert station.queue.offered == [recorded]

        assert pull_volume(station, volume) == []  # the same files again: known, nothing new
        assert station.queue.offered == [recorded]
