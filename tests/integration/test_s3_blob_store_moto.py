"""Fast checks of the S3 blob store on moto (no server): round trip, dedupe, mismatch.

moto does not enforce Object Lock, so everything about locks is tested against a real radosgw in
test_s3_blob_store.py.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from evidence_store.blobs.s3 import S3BlobStore, key_for, s3_client_config
from evidence_store.errors import BlobMismatchError, BlobNotFoundError

MiB = 1024 * 1024
BUCKET = "evidence-moto"


@pytest.fixture
def client() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("s3", region_name="us-east-1", config=s3_client_config())


@pytest.fixture
def store(client: Any) -> S3BlobStore:
    store = S3BlobStore(
        client,
        BUCKET,
        lock_mode="COMPLIANCE",
        default_retention_days=184,
        clock=lambda: datetime.now(UTC),
        part_size=5 * MiB,
    )
    store.ensure_bucket()
    store.ensure_bucket()  # idempotent
    return store


def object_versions(client: Any) -> list[str]:
    return [v["VersionId"] for v in client.list_object_versions(Bucket=BUCKET).get("Versions", [])]


@pytest.mark.parametrize("size", [0, 1000, 11 * MiB + 3], ids=["empty", "single", "multipart"])
def test_round_trip(store: S3BlobStore, client: Any, size: int) -> None:
    data = os.urandom(size)
    stored = store.put(io.BytesIO(data))
    assert (stored.sha256, stored.size, stored.created) == (hashlib.sha256(data).hexdigest(), size, True)
    with store.open(stored.sha256) as handle:
        assert handle.read() == data
    assert store.size(stored.sha256) == size
    assert store.rehash(stored.sha256) == stored.sha256
    assert [(b.sha256, b.size) for b in store.iter_blobs()] == [(stored.sha256, size)]
    head = client.head_object(Bucket=BUCKET, Key=key_for(stored.sha256))
    assert head["Metadata"]["sha256"] == stored.sha256
    assert head["ObjectLockMode"] == "COMPLIANCE"


@pytest.mark.parametrize("size", [10, 6 * MiB], ids=["single", "multipart"])
def test_second_put_is_deduplicated(store: S3BlobStore, client: Any, size: int) -> None:
    data = os.urandom(size)
    first = store.put(io.BytesIO(data))
    second = store.put(io.BytesIO(data))
    assert first.created is True
    assert second.created is False
    assert second.sha256 == first.sha256
    assert len(object_versions(client)) == 1


def test_expected_sha256_mismatch_stores_nothing(store: S3BlobStore, client: Any) -> None:
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(BlobMismatchError):
        store.put(io.BytesIO(b"actual bytes"), expected_sha256=wrong)
    assert object_versions(client) == []
    with pytest.raises(BlobNotFoundError):
        store.open(wrong)


def test_put_is_durable_on_return_whatever_the_flag(store: S3BlobStore) -> None:
    stored = store.put(io.BytesIO(b"batched"), durable=False)
    store.sync()  # nothing to flush, but the batch protocol calls it
    assert store.exists(stored.sha256)


class FailingSource(io.RawIOBase):
    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        raise OSError(5, "Input/output error")


def test_an_error_reading_the_source_propagates_as_it_is(store: S3BlobStore, client: Any) -> None:
    with pytest.raises(OSError, match="Input/output error") as raised:
        store.put(FailingSource())  # type: ignore[arg-type]
    assert type(raised.value) is OSError
    assert object_versions(client) == []
