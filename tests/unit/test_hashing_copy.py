"""Known-answer tests for the one-pass hashing copy (no files: in-memory streams)."""

from __future__ import annotations

import hashlib
import io
import random

import pytest

from evidence_store.blobs import hashing_copy
from evidence_store.blobs.hashing_copy import copy_hashing, hash_stream
from evidence_store.blobs.local import check_sha256

# NIST FIPS 180-2 known answers
ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
MILLION_A = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"


@pytest.mark.parametrize(("data", "digest"), [(b"abc", ABC), (b"", EMPTY), (b"a" * 1_000_000, MILLION_A)])
def test_known_answers(data: bytes, digest: str) -> None:
    sink = bytearray()
    result = copy_hashing(io.BytesIO(data), sink.extend, chunk_size=4096)
    assert result.sha256 == digest
    assert result.size == len(data)
    assert bytes(sink) == data
    assert hash_stream(io.BytesIO(data)).sha256 == digest


def test_copy_keeps_every_byte_in_order_across_chunks() -> None:
    data = random.Random(7).randbytes(3 * 1024 * 1024 + 17)
    sink = bytearray()
    result = copy_hashing(io.BytesIO(data), sink.extend, chunk_size=65536, queue_depth=2)
    assert bytes(sink) == data
    assert result.sha256 == hashlib.sha256(data).hexdigest()


def test_a_failing_writer_stops_the_copy_and_raises() -> None:
    def broken(_view: memoryview) -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        copy_hashing(io.BytesIO(b"x" * 100_000), broken, chunk_size=1000)


@pytest.mark.parametrize("bad", ["../../etc/passwd", "ABC", "g" * 64, "a" * 63, "/" + "a" * 63])
def test_only_hex_digests_become_paths(bad: str) -> None:
    with pytest.raises(ValueError, match="not a sha256"):
        check_sha256(bad)


def test_reused_buffers_copy_every_byte_in_order() -> None:
    """With pooled buffers the writer sees each chunk before its buffer is reused."""
    data = random.Random(11).randbytes(5 * 65536 + 123)
    sink = bytearray()
    result = copy_hashing(io.BytesIO(data), sink.extend, chunk_size=65536, queue_depth=2, reuse_buffers=True)
    assert bytes(sink) == data
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.size == len(data)


class _FailingSource(io.RawIOBase):
    """A source whose reads fail (EIO) once `fail_after` bytes have been read."""

    def __init__(self, data: bytes, fail_after: int) -> None:
        self._data = io.BytesIO(data)
        self._fail_after = fail_after

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._data.tell() >= self._fail_after:
            raise OSError(5, "Input/output error")
        return self._data.readinto(buffer)


def test_kept_buffers_serve_the_next_copy_and_survive_failed_ones() -> None:
    """A thread's buffers go from copy to copy, also after a copy whose writer or source failed,
    and never carry bytes of one copy into the next."""
    chunk = 65536
    seen: list[set[int]] = []
    alive: list[object] = []  # every buffer seen stays alive: a new one cannot take an old one's id

    def copy(data: bytes) -> bytes:
        sink = bytearray()
        buffers: set[int] = set()

        def write(view: memoryview) -> None:
            alive.append(view.obj)
            buffers.add(id(view.obj))
            sink.extend(view)

        result = copy_hashing(io.BytesIO(data), write, chunk_size=chunk, queue_depth=2, reuse_buffers=True)
        assert result.sha256 == hashlib.sha256(data).hexdigest()
        seen.append(buffers)
        return bytes(sink)

    rng = random.Random(13)
    first = rng.randbytes(6 * chunk + 5)
    assert copy(first) == first

    def broken(_view: memoryview) -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        copy_hashing(io.BytesIO(first), broken, chunk_size=chunk, queue_depth=2, reuse_buffers=True)
    with pytest.raises(OSError, match="Input/output error"):
        copy_hashing(
            _FailingSource(first, 3 * chunk),
            bytearray().extend,
            chunk_size=chunk,
            queue_depth=2,
            reuse_buffers=True,
        )

    second = rng.randbytes(5 * chunk + 1)  # shorter: the end of `first` must not leak into it
    assert copy(second) == second
    # The kept buffers serve the next copy: it reuses the first copy's buffers, and however many of
    # the pool (queue_depth + 2) each copy happened to need, the thread never holds more than one pool
    # across all its copies (a copy needs a new buffer only while fewer than the pool are kept).
    kept = {id(buffer) for buffer in hashing_copy._kept_buffers.by_size[chunk]}
    alive.extend(hashing_copy._kept_buffers.by_size[chunk])
    assert seen[1] & seen[0]
    assert len(seen[0] | seen[1] | kept) <= 2 + 2
