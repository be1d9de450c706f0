"""The `BlobStore` port's contract, held by the in-memory fake the unit tier uses and by the local store
it stands in for: write once under the sha256, a mismatch stores nothing, a missing blob is an error."""

from __future__ import annotations

import hashlib
import io
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from evidence_store.blobs.local import LocalBlobStore
from evidence_store.errors import BlobMismatchError, BlobNotFoundError
from evidence_store.ports import BlobStore
from tests.fakes import InMemoryBlobStore


@contextmanager
def memory_store() -> Iterator[BlobStore]:
    yield InMemoryBlobStore()


@contextmanager
def local_store() -> Iterator[BlobStore]:
    with tempfile.TemporaryDirectory() as directory:
        yield LocalBlobStore(Path(directory) / "blobs")


STORES = pytest.mark.parametrize("opened", [memory_store, local_store], ids=["memory", "local"])
Opened = Callable[[], AbstractContextManager[BlobStore]]
DATA = b"original bytes " * 5000
SHA = hashlib.sha256(DATA).hexdigest()


@STORES
def test_a_blob_is_stored_once_under_its_sha256(opened: Opened) -> None:
    with opened() as store:
        assert isinstance(store, BlobStore)
        first = store.put(io.BytesIO(DATA))
        again = store.put(io.BytesIO(DATA), expected_sha256=SHA)
        assert (first.sha256, first.size, first.created) == (SHA, len(DATA), True)
        assert (again.sha256, again.created) == (SHA, False)
        assert store.exists(SHA) and store.size(SHA) == len(DATA)
        with store.open(SHA) as handle:
            assert handle.read() == DATA
        assert store.rehash(SHA) == SHA
        assert [(b.sha256, b.size) for b in store.iter_blobs()] == [(SHA, len(DATA))]


@STORES
def test_bytes_that_do_not_match_the_expected_sha256_are_not_stored(opened: Opened) -> None:
    with opened() as store:
        with pytest.raises(BlobMismatchError):
            store.put(io.BytesIO(DATA), expected_sha256="0" * 64)
        assert not store.exists(SHA)
        assert list(store.iter_blobs()) == []


@STORES
def test_a_missing_blob_is_an_error_not_an_empty_file(opened: Opened) -> None:
    with opened() as store:
        assert not store.exists(SHA)
        with pytest.raises(BlobNotFoundError):
            store.open(SHA)
        with pytest.raises(BlobNotFoundError):
            store.size(SHA)


@STORES
def test_a_write_not_yet_durable_is_made_so_by_sync(opened: Opened) -> None:
    with opened() as store:
        stored = store.put(io.BytesIO(DATA), durable=False)
        store.sync()
        assert store.exists(stored.sha256)
