"""The local content-addressed store: byte-identical round trips, write-once, read-only, no partial blobs."""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import random
import stat
from pathlib import Path

import pytest

from evidence_store.blobs.local import LocalBlobStore
from evidence_store.errors import BlobMismatchError, BlobNotFoundError, StoreError
from evidence_store.ports import BlobListing


def payload(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


def test_round_trip_is_byte_identical(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "store")
    data = payload(5 * 1024 * 1024 + 3)
    stored = store.put(io.BytesIO(data))
    assert stored.created
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.size == len(data)
    with store.open(stored.sha256) as handle:
        assert handle.read() == data
    assert store.rehash(stored.sha256) == stored.sha256


def test_a_second_write_of_the_same_bytes_stores_nothing_new(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "store")
    data = payload(100_000)
    first = store.put(io.BytesIO(data))
    before = os.stat(store.path_for(first.sha256))
    second = store.put(io.BytesIO(data))
    assert not second.created
    assert second.sha256 == first.sha256
    after = os.stat(store.path_for(first.sha256))
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)
    assert len(list(store.iter_blobs())) == 1
    assert store.stale_incoming() == []


def test_blobs_are_read_only_and_nothing_is_left_in_incoming(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "store")
    stored = store.put(io.BytesIO(b"evidence"))
    mode = store.path_for(stored.sha256).stat().st_mode
    assert not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert store.stale_incoming() == []


def test_an_expected_hash_that_does_not_match_stores_nothing(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "store")
    with pytest.raises(BlobMismatchError):
        store.put(io.BytesIO(b"actual bytes"), expected_sha256="0" * 64)
    assert list(store.iter_blobs()) == []
    assert store.stale_incoming() == []


def test_a_failed_read_stores_nothing(tmp_path: Path) -> None:
    class Unreadable(io.RawIOBase):
        def __init__(self) -> None:
            self.calls = 0

        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            self.calls += 1
            if self.calls > 2:
                raise OSError(5, "Input/output error")
            return b"x" * 1000

    store = LocalBlobStore(tmp_path / "store")
    with pytest.raises(OSError, match="Input/output"):
        store.put(Unreadable())  # type: ignore[arg-type]
    assert list(store.iter_blobs()) == []
    assert store.stale_incoming() == []


def test_missing_blob_is_a_clear_error(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "store")
    with pytest.raises(BlobNotFoundError):
        store.open("a" * 64)
    assert not store.exists("a" * 64)


def test_unwritable_store_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError):
        LocalBlobStore(blocker / "store")


def test_a_large_write_through_flush_behind_and_direct_io_is_byte_identical(tmp_path: Path) -> None:
    """Past the first 8 MiB the store writes with O_DIRECT and flushes behind: every byte must survive,
    including an unaligned tail."""
    store = LocalBlobStore(tmp_path / "store")
    data = payload(40 * 1024 * 1024 + 4097, seed=3)
    stored = store.put(io.BytesIO(data))
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    with store.open(stored.sha256) as handle:
        assert handle.read() == data
    assert store.rehash(stored.sha256) == stored.sha256


@pytest.mark.parametrize("damage", ["zeroed", "truncated"])
def test_a_blob_that_lost_its_bytes_is_replaced_by_the_next_verified_copy(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A blob left by a crash or a failed flush before it went on record may hold zeros or nothing
    (delayed allocation): writing the same bytes again must not take it for the good copy."""
    store = LocalBlobStore(tmp_path / "store")
    data = payload(300_000, seed=7)
    first = store.put(io.BytesIO(data), durable=False)
    path = store.path_for(first.sha256)
    os.chmod(path, 0o600)
    path.write_bytes(bytes(len(data)) if damage == "zeroed" else b"")
    os.chmod(path, 0o444)
    again = store.put(io.BytesIO(data))
    assert again.created  # the damaged blob did not count as the bytes already stored
    assert f"blob {first.sha256} in the store did not hold its bytes" in caplog.text
    assert store.rehash(first.sha256) == first.sha256
    assert path.read_bytes() == data
    assert not path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert store.stale_incoming() == []


def test_a_failed_flush_is_an_error_not_a_silent_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """syncfs(2) failing (EIO from the disk) must reach the caller: the docking then records nothing
    of the batch whose bytes may be lost. sync(2), which reports no error, is no fallback for it."""
    import ctypes
    import errno

    from evidence_store.blobs import local

    store = LocalBlobStore(tmp_path / "store")
    store.sync()  # the real syncfs succeeds

    class FailingLibc:
        def syncfs(self, fd: int) -> int:
            ctypes.set_errno(errno.EIO)
            return -1

    synced: list[bool] = []
    monkeypatch.setattr(local, "_LIBC", FailingLibc())
    monkeypatch.setattr(os, "sync", lambda: synced.append(True))
    with pytest.raises(OSError) as raised:
        store.sync()
    assert raised.value.errno == errno.EIO
    assert synced == []


def test_a_chunk_the_kernel_refuses_without_the_page_cache_is_written_through_it(tmp_path: Path) -> None:
    """O_DIRECT needs block-aligned buffers: a chunk from an unaligned buffer (a plain bytes object, a
    source without `readinto`) is refused with EINVAL; the writer must then write it, and every later
    chunk, through the page cache, losing no byte."""
    from evidence_store.blobs.hashing_copy import FileWriter

    target = tmp_path / "out"
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        writer = FileWriter(fd, flush_behind=True, direct=True)
        assert writer.may_go_direct  # ext4 takes O_DIRECT: the refusal below is the buffer's
        backing = bytearray(payload(3 * 4096 + 1, seed=3))
        unaligned = memoryview(backing)[1:]  # 3 whole blocks, one byte off any alignment
        writer.write(unaligned)
        writer.write(memoryview(b"tail bytes"))
        assert not writer.direct and not writer.may_go_direct
        os.fsync(fd)
    finally:
        os.close(fd)
    assert target.read_bytes() == bytes(backing[1:]) + b"tail bytes"


def cold_file(path: Path, data: bytes) -> Path:
    """`data` in a file on disk, dropped from the page cache (as a docked recorder's clip is)."""
    path.write_bytes(data)
    drop_cached(path)
    return path


def drop_cached(path: Path) -> None:
    """A file on disk out of the page cache: written out (fsync), then dropped."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def spy_direct(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each copy read its source with O_DIRECT (issue 21's read-ahead path)."""
    from evidence_store.blobs import hashing_copy

    seen: list[bool] = []
    original = hashing_copy._Chunks._read_direct

    def read_direct(self: hashing_copy._Chunks) -> None:
        original(self)
        seen.append(self.direct)

    monkeypatch.setattr(hashing_copy._Chunks, "_read_direct", read_direct)
    return seen


def test_a_cold_file_read_ahead_with_o_direct_is_byte_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 21: a cold source is read with O_DIRECT by a thread ahead of the hashing; every byte must
    survive, the unaligned tail too (the kernel refuses it without the page cache: read through it),
    and the source's descriptor gets its flags back."""
    seen = spy_direct(monkeypatch)
    data = payload(12 * 1024 * 1024 + 4099, seed=5)
    source = cold_file(tmp_path / "clip.MP4", data)
    store = LocalBlobStore(tmp_path / "store", chunk_size=1024 * 1024, read_ahead=True)
    with source.open("rb", buffering=0) as handle:
        flags = fcntl.fcntl(handle.fileno(), fcntl.F_GETFL)
        stored = store.put(handle)
        assert fcntl.fcntl(handle.fileno(), fcntl.F_GETFL) == flags
    assert seen == [True]
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.size == len(data)
    with store.open(stored.sha256) as handle:
        assert handle.read() == data


def test_a_cached_or_small_file_is_read_through_the_page_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = spy_direct(monkeypatch)
    store = LocalBlobStore(tmp_path / "store", chunk_size=1024 * 1024, read_ahead=True)
    warm = tmp_path / "warm.MP4"
    warm.write_bytes(payload(6 * 1024 * 1024, seed=6))
    small = cold_file(tmp_path / "small.JPG", payload(1024 * 1024, seed=7))
    for path in (warm, small):
        with path.open("rb", buffering=0) as handle:
            assert store.put(handle).sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert seen == [False, False]


def test_a_read_error_ahead_of_the_hashing_stores_nothing_and_is_raised_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A recorder pulled mid-copy: the reader thread's error reaches the caller unchanged."""
    seen = spy_direct(monkeypatch)
    source = cold_file(tmp_path / "clip.MP4", payload(8 * 1024 * 1024, seed=8))

    class Failing(io.FileIO):
        reads = 0

        def readinto(self, buffer):  # type: ignore[no-untyped-def,override]
            Failing.reads += 1
            if Failing.reads == 4:
                raise OSError(5, "Input/output error")
            return super().readinto(buffer)

    store = LocalBlobStore(tmp_path / "store", chunk_size=1024 * 1024, read_ahead=True)
    with Failing(source, "rb") as handle, pytest.raises(OSError, match="Input/output"):
        store.put(handle)  # type: ignore[arg-type]
    assert seen == [True]
    assert list(store.iter_blobs()) == []
    assert store.stale_incoming() == []


def test_the_stations_store_reads_with_o_direct_only_when_the_setting_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`store_direct_reads` (EVIDENCE_STORE_DIRECT_READS): off by default, since the O_DIRECT
    read-ahead lost to the page cache on an idle disk (issue 21, bench/RESULTS.md); on, a cold source
    is read with it."""
    from evidence_store.bootstrap import make_blob_store, system_clock
    from evidence_store.settings import load_settings

    seen = spy_direct(monkeypatch)
    data = payload(12 * 1024 * 1024, seed=9)
    for env, expected in (({}, False), ({"EVIDENCE_STORE_DIRECT_READS": "true"}, True)):
        settings = load_settings({"EVIDENCE_HOME": str(tmp_path / f"home-{expected}"), **env})
        assert settings.store_direct_reads is expected
        store = make_blob_store(settings, system_clock)
        source = cold_file(tmp_path / f"clip-{expected}.MP4", data)
        with source.open("rb", buffering=0) as handle:
            assert store.put(handle).sha256 == hashlib.sha256(data).hexdigest()
    assert seen == [True]  # the first store never tried O_DIRECT; the second read the cold file with it


def test_a_durable_write_makes_the_new_directories_of_its_path_durable_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fsync of a file and of its directory does not make a directory created for it durable: the
    entry naming that directory is in its parent, which needs its own fsync (POSIX; ext4's journal
    happens to cover it, other filesystems need not). A blob whose fan-out directories are new has
    each one's parent synced; a blob that finds them in place syncs only its own directory."""
    from evidence_store.blobs import local

    synced: list[Path] = []
    real = local._fsync_dir

    def recording(path: Path) -> None:
        synced.append(Path(path))
        real(path)

    monkeypatch.setattr(local, "_fsync_dir", recording)
    store = LocalBlobStore(tmp_path / "store")
    first = store.put(io.BytesIO(b"the first blob"))
    final = store.path_for(first.sha256)
    fan_out, top = final.parent, final.parent.parent
    blobs = top.parent
    assert set(synced) >= {blobs, top, fan_out}

    # its directories in place: only its own directory is synced
    second = b"the second blob"
    second_dir = store.path_for(hashlib.sha256(second).hexdigest()).parent
    second_dir.mkdir(parents=True, exist_ok=True)
    synced.clear()
    store.put(io.BytesIO(second))
    assert synced.count(second_dir) == 1 and blobs not in synced and second_dir.parent not in synced

    # its first level in place, the second new: the first level is synced (it names the new one)
    third = b"the third blob"
    third_dir = store.path_for(hashlib.sha256(third).hexdigest()).parent
    third_dir.parent.mkdir(exist_ok=True)
    assert not third_dir.exists()
    synced.clear()
    store.put(io.BytesIO(third))
    assert third_dir.parent in synced and third_dir in synced and blobs not in synced

    # a write that is not durable (the ingest's batches, which syncfs the whole store) syncs nothing
    synced.clear()
    batch = store.put(io.BytesIO(b"a batch's blob"), durable=False)
    with store.open(batch.sha256) as handle:
        assert handle.read() == b"a batch's blob"
    assert synced == []


@pytest.mark.parametrize("failure", ["a file in the way", "disk full"])
def test_a_fan_out_directory_that_cannot_be_made_stores_nothing_and_the_next_write_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    """Making the blob's directories fails (a file where a directory should be, ENOSPC from mkdir): a
    StoreError, no blob and no temp file left; once the cause is gone the same bytes store."""
    store = LocalBlobStore(tmp_path / "store")
    data = b"footage whose directory cannot be made"
    sha256 = hashlib.sha256(data).hexdigest()
    top = store.path_for(sha256).parent.parent
    if failure == "a file in the way":
        top.write_bytes(b"not a directory")
    else:
        real_mkdir = Path.mkdir

        def full(self: Path, *args: object, **kwargs: object) -> None:
            if self == top:
                raise OSError(28, "No space left on device")
            real_mkdir(self, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(Path, "mkdir", full)
    with pytest.raises(StoreError, match=f"storing blob {sha256} failed"):
        store.put(io.BytesIO(data))
    assert not store.exists(sha256)
    assert list(store.iter_blobs()) == []
    assert store.stale_incoming() == []
    if failure == "a file in the way":
        top.unlink()
    else:
        monkeypatch.undo()
    stored = store.put(io.BytesIO(data))
    assert stored.created and stored.sha256 == sha256
    with store.open(sha256) as handle:
        assert handle.read() == data


def test_only_blobs_at_their_address_are_listed(tmp_path: Path) -> None:
    """A stray file where a fan-out directory belongs, a name that is not a digest, a blob under
    another address or a symlink are not blobs: the listing (which `evidence scrub` walks) leaves them
    out instead of failing on them."""
    store = LocalBlobStore(tmp_path / "store")
    stored = store.put(io.BytesIO(b"the one blob"))
    fan_out = store.path_for(stored.sha256).parent
    blobs = fan_out.parent.parent
    (blobs / "zz").write_bytes(b"a stray file at the first level")
    (fan_out.parent / "yy").write_bytes(b"a stray file at the second level")
    (fan_out / "notes.txt").write_bytes(b"not a digest")
    other = hashlib.sha256(b"elsewhere").hexdigest()
    if other[:4] == stored.sha256[:4]:  # pragma: no cover - a 1 in 65,536 chance
        other = hashlib.sha256(b"elsewhere, again").hexdigest()
    (fan_out / other).write_bytes(b"elsewhere")  # a digest name under another address
    (fan_out / (stored.sha256[:4] + "0" * 60)).symlink_to(store.path_for(stored.sha256))  # its address
    assert list(store.iter_blobs()) == [BlobListing(stored.sha256, len(b"the one blob"))]
