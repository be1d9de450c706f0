"""A relink of everything reads the SQLite database file ahead (evidence_store/db/prewarm.py; issue 21
item 4, the cold `--full` relink): a child process reads the file into the page cache beside the
pass, only when it is large enough and fits in the available memory, and stops when the pass ends;
the connections keep their locks. PostgreSQL keeps its own buffers."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, insert

from evidence_store.bootstrap import Station
from evidence_store.cases import linking_service
from evidence_store.cases.linking_service import relink_all
from evidence_store.db import prewarm
from evidence_store.db.prewarm import database_files, prewarmed, worth_reading
from tests.integration.test_linking_and_flags import add_clip, case, doc, import_json
from tests.integration.test_local_blob_store import drop_cached

PAGE = 4096


def _sqlite_file(path: Path, megabytes: int) -> str:
    """A SQLite database of about `megabytes` MiB at `path` (WAL folded into the file)."""
    url = f"sqlite:///{path}"
    engine = create_engine(url)
    rows = Table("rows", MetaData(), Column("id", Integer, primary_key=True), Column("text", String))
    with engine.begin() as connection:
        connection.exec_driver_sql("PRAGMA journal_mode=WAL")
        rows.create(connection)
        text = "x" * 1000
        connection.execute(insert(rows), [{"text": text} for _ in range(megabytes * 1024)])
    with engine.begin() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return url


def _cached_pages(path: Path, samples: int = 64) -> int:
    """How many of `samples` pages spread over the file a read that may not wait for the disk gets."""
    size = path.stat().st_size
    fd = os.open(path, os.O_RDONLY)
    cached = 0
    try:
        for i in range(samples):
            offset = (size * i // samples) // PAGE * PAGE
            with contextlib.suppress(BlockingIOError):  # not cached
                cached += os.preadv(fd, [bytearray(PAGE)], offset, os.RWF_NOWAIT) > 0
    finally:
        os.close(fd)
    return cached


def test_a_cold_database_file_is_read_into_the_page_cache_beside_the_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prewarm, "MIN_BYTES", 0)
    path = tmp_path / "evidence.db"
    engine = create_engine(_sqlite_file(path, 24))
    drop_cached(path)
    if _cached_pages(path) > 8:
        pytest.skip(f"{tmp_path} keeps dropped pages cached (tmpfs?): nothing cold to read ahead")
    with engine.connect() as connection, prewarmed(connection) as warm:
        assert warm.files == [path]
        assert warm.wait(60), "the read ahead did not finish"
        assert warm.bytes_read == path.stat().st_size
    engine.dispose()
    assert not warm.reading
    assert _cached_pages(path) == 64


@pytest.mark.parametrize("ending", ["ends", "raises"])
def test_the_read_stops_when_the_pass_ends_or_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ending: str
) -> None:
    monkeypatch.setattr(prewarm, "MIN_BYTES", 0)
    path = tmp_path / "evidence.db"
    engine = create_engine(_sqlite_file(path, 24))
    drop_cached(path)
    with engine.connect() as connection:
        with contextlib.ExitStack() as failing:
            if ending == "raises":
                failing.enter_context(pytest.raises(RuntimeError, match="the pass failed"))
            with prewarmed(connection) as warm:
                assert warm.files == [path]
                if ending == "raises":
                    raise RuntimeError("the pass failed")
        assert not warm.reading
        assert warm.bytes_read in (0, path.stat().st_size)  # killed, or it had finished
    engine.dispose()


def test_reading_ahead_keeps_the_connections_locks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite's locks are POSIX record locks, dropped for the whole process when any descriptor of the
    file closes. Had the read closed one here, another process closing its last connection would
    take the database for unused, checkpoint it and delete the WAL under this one's open connection
    (the first version of the read ahead, a thread, did: the relink's later writes went astray)."""
    monkeypatch.setattr(prewarm, "MIN_BYTES", 0)
    path = tmp_path / "evidence.db"
    wal = path.with_name("evidence.db-wal")
    engine = create_engine(_sqlite_file(path, 2))
    with engine.connect() as connection:
        connection.exec_driver_sql("INSERT INTO rows (text) VALUES ('in the WAL')")
        connection.commit()
        assert wal.exists()
        with prewarmed(connection) as warm:
            assert warm.files == [path, wal]
            assert warm.wait(60)
        subprocess.run(
            [sys.executable, "-c", _OPEN_AND_CLOSE, str(path)], check=True, capture_output=True, timeout=60
        )
        assert wal.exists(), "another process found the database unused: this one had lost its locks"
        assert connection.exec_driver_sql("SELECT count(*) FROM rows WHERE text = 'in the WAL'").scalar() == 1
    engine.dispose()


_OPEN_AND_CLOSE = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1])
connection.execute("SELECT count(*) FROM rows").fetchone()
connection.close()
"""


def test_only_files_that_fit_in_the_available_memory_are_read(tmp_path: Path) -> None:
    file = tmp_path / "evidence.db"
    file.write_bytes(b"\0" * 1_000_000)
    assert worth_reading([file], available=4_000_000, share=0.5)
    assert worth_reading([file], available=4_000_000, share=0.5, smallest=1_000_000)
    assert not worth_reading([file], available=4_000_000, share=0.5, smallest=1_000_001)  # too small to pay
    assert not worth_reading([file], available=1_500_000, share=0.5)
    assert not worth_reading([file], available=None, share=0.5)  # unknown: not read
    assert not worth_reading([file], available=4_000_000, share=0)  # turned off
    assert not worth_reading([], available=4_000_000, share=0.5)
    assert not worth_reading([tmp_path / "gone.db"], available=4_000_000, share=0.5)


def test_the_share_of_memory_setting_turns_the_read_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "evidence.db"
    engine = create_engine(_sqlite_file(path, 1))
    monkeypatch.setattr(prewarm, "MAX_SHARE_OF_AVAILABLE_MEMORY", 0)
    with engine.connect() as connection, prewarmed(connection) as warm:
        assert warm.files == []
        assert warm.wait(0) and warm.bytes_read == 0
    engine.dispose()


def test_memory_databases_and_postgresql_have_no_file_to_read(station: Station) -> None:
    memory = create_engine("sqlite://")
    with memory.connect() as connection:
        assert database_files(connection) == []
    memory.dispose()
    with station.engine.connect() as connection:
        files = database_files(connection)
        if connection.dialect.name == "postgresql":
            assert files == []
        else:
            assert files and files[0].name == "evidence.db" and files[0].exists()


def test_a_relink_of_everything_reads_the_file_ahead_and_a_journal_relink_does_not(
    station: Station, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prewarm, "MIN_BYTES", 0)  # a test station's file is small
    import_json(station, tmp_path, "cases.json", [case("C-1", [doc("D-1", ["31001"], 0, 30)])])
    add_clip(station, "a.mp4", "31001", 0, 25)
    passes: list[prewarm.Prewarm] = []
    real = linking_service.prewarmed

    @contextlib.contextmanager
    def recording(connection):  # type: ignore[no-untyped-def]
        with real(connection) as warm:
            assert warm.wait(60)  # within the pass, so that what the child read is known
            passes.append(warm)
            yield warm

    monkeypatch.setattr(linking_service, "prewarmed", recording)
    assert relink_all(station).full  # the first relink reads everything
    assert not relink_all(station).full  # the journal names nothing
    assert relink_all(station, full=True).full
    assert len(passes) == 2
    for warm in passes:
        if station.engine.dialect.name == "sqlite":
            assert warm.files and warm.files[0].name == "evidence.db"
            assert warm.bytes_read >= warm.files[0].stat().st_size > 0  # the file, and its WAL if any
        else:
            assert warm.files == [] and warm.bytes_read == 0


def test_a_relink_goes_on_when_no_reader_can_start(
    station: Station, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prewarm, "MIN_BYTES", 0)
    monkeypatch.setattr(prewarm.sys, "executable", str(tmp_path / "no-such-python"))
    import_json(station, tmp_path, "cases.json", [case("C-1", [doc("D-1", ["31001"], 0, 30)])])
    add_clip(station, "a.mp4", "31001", 0, 25)
    with station.engine.connect() as connection, prewarmed(connection) as warm:
        assert not warm.reading and warm.wait(0) and warm.bytes_read == 0
    relinked = relink_all(station)
    assert relinked.full and relinked.added == 1


def test_a_file_that_went_is_skipped_and_the_others_are_read(tmp_path: Path) -> None:
    path = tmp_path / "evidence.db"
    create_engine(_sqlite_file(path, 1)).dispose()
    warm = prewarm.Prewarm([tmp_path / "gone.db", path])
    assert warm.wait(60)
    assert warm.bytes_read == path.stat().st_size
