"""Scrub finds altered, missing and orphan blobs; a crash between bytes and row leaves no bytes-less clip."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap

from sqlalchemy import func, select

from evidence_store.blobs.local import LocalBlobStore
from evidence_store.bootstrap import Station
from evidence_store.db.tables import clips
from tests.conftest import REPO, run_cli
from tests.factories import store_clip


def store(station: Station, data: bytes, name: str = "A001_0001_20261124080000_0001.MP4") -> str:
    return store_clip(station, data, original_name=name).sha256


def flip_one_byte(path: os.PathLike[str], offset: int) -> None:
    os.chmod(path, 0o644)
    with open(path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0x01]))
    os.chmod(path, 0o444)


def test_a_clean_store_scrubs_ok(station: Station, station_env: dict[str, str]) -> None:
    for seed in range(3):
        store(station, random.Random(seed).randbytes(200_000), name=f"clip{seed}.MP4")
    result = run_cli(["scrub", "--json"], station_env)
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert report["blobs_checked"] == 3
    assert report["records_checked"] == 3
    assert report["altered"] == report["missing"] == report["orphans"] == []


def test_a_flipped_byte_is_reported_with_its_sha256(station: Station, station_env: dict[str, str]) -> None:
    good = store(station, random.Random(1).randbytes(300_000), name="good.MP4")
    bad = store(station, random.Random(2).randbytes(300_000), name="bad.MP4")
    assert isinstance(station.blobs, LocalBlobStore)
    flip_one_byte(station.blobs.path_for(bad), 123_456)
    result = run_cli(["scrub", "--json"], station_env)
    assert result.code == 1
    report = json.loads(result.stdout)
    assert [f["sha256"] for f in report["altered"]] == [bad]
    assert good not in result.stdout.replace(f'"sha256": "{bad}"', "")
    human = run_cli(["scrub"], station_env)
    assert human.code == 1
    assert f"ALTERED  {bad}" in human.stderr
    # the scrub result is itself on the audit record
    log = json.loads(run_cli(["audit", "log", "--json", "--object", "store:local"], station_env).stdout)
    assert log["events"][0]["action"] == "store.scrubbed"
    assert log["events"][0]["details"]["altered"] == [bad]


def test_a_missing_blob_is_reported(station: Station, station_env: dict[str, str]) -> None:
    gone = store(station, b"footage that will vanish")
    assert isinstance(station.blobs, LocalBlobStore)
    station.blobs.path_for(gone).unlink()
    result = run_cli(["scrub", "--json"], station_env)
    assert result.code == 1
    assert [f["sha256"] for f in json.loads(result.stdout)["missing"]] == [gone]


def test_a_duplicate_original_is_recorded_once(station: Station) -> None:
    data = b"the same file docked twice"
    first = store(station, data)
    second = store(station, data, name="renamed.MP4")
    assert first == second
    with station.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(clips)) == 1


CRASH_SCRIPT = textwrap.dedent(
    """
    import io, os, signal, sys
    from datetime import datetime
    from sqlalchemy.orm import Session
    from evidence_store.bootstrap import open_station
    from evidence_store.originals import store_original
    from evidence_store.settings import load_settings
    from tests.factories import clip_maker

    station = open_station(load_settings())

    def die(*args, **kwargs):
        # the bytes are in the store; the process dies before the row commits
        os.kill(os.getpid(), signal.SIGKILL)

    Session.commit = die
    from sqlalchemy.orm import SessionTransaction
    SessionTransaction.commit = die
    with station.transaction() as session:
        store_original(
            source=io.BytesIO(sys.argv[1].encode() * 1000), blobs=station.blobs, session=session,
            audit=station.audit, clock=station.clock, actor="crash-test",
            make_clip=clip_maker(original_name="crash.MP4"),
        )
    print("NOT KILLED")
    """
)


def test_a_crash_between_bytes_and_row_leaves_an_orphan_never_a_clip_without_bytes(
    station: Station, station_env: dict[str, str]
) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CRASH_SCRIPT, "crash-payload"],
        env=station_env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == -9, proc.stdout + proc.stderr
    with station.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(clips)) == 0
    blobs = list(station.blobs.iter_blobs())
    assert len(blobs) == 1
    result = run_cli(["scrub", "--json"], station_env)
    report = json.loads(result.stdout)
    assert [f["sha256"] for f in report["orphans"]] == [blobs[0].sha256]
    assert report["missing"] == []
    assert result.code == 0  # an orphan is reported, but nothing on record was lost
    # the audit chain is intact: the killed transaction's event never landed
    assert run_cli(["audit", "verify"], station_env).code == 0
    # docking the same file again adopts the orphan blob as the clip's bytes
    sha = store(station, b"crash-payload" * 1000, name="crash.MP4")
    assert sha == blobs[0].sha256
    assert json.loads(run_cli(["scrub", "--json"], station_env).stdout)["orphans"] == []
