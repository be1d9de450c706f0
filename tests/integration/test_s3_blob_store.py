"""The S3 blob store against a real Ceph radosgw, which enforces Object Lock (moto does not).

Every refusal asserted here is the server's: deletes and retention changes are sent with boto3
directly, and the purger's own refusals are proven to send no delete request at all.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from evidence_store.blobs.s3 import S3BlobStore, S3RetentionPurger, key_for, s3_client_config
from evidence_store.errors import (
    BlobMismatchError,
    BlobNotFoundError,
    ConfigurationError,
    ObjectLockedError,
    StoreError,
)
from evidence_store.settings import Settings
from tests.fixtures.radosgw import RadosgwInfo

pytestmark = pytest.mark.radosgw

MiB = 1024 * 1024
PART = 5 * MiB  # the smallest part size S3 allows, so a few MiB already go up as multipart


def utc_now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def client(radosgw: RadosgwInfo) -> Any:
    return boto3.session.Session().client(
        "s3",
        endpoint_url=radosgw.endpoint_url,
        region_name=radosgw.region,
        aws_access_key_id=radosgw.access_key_id,
        aws_secret_access_key=radosgw.secret_access_key,
        config=s3_client_config(),
    )


@pytest.fixture
def bucket() -> str:
    return f"evidence-test-{uuid.uuid4().hex[:16]}"


StoreFactory = Callable[..., S3BlobStore]


@pytest.fixture
def make_store(client: Any, bucket: str) -> StoreFactory:
    def make(
        *, lock_mode: str = "COMPLIANCE", clock: Callable[[], datetime] = utc_now, days: int = 1
    ) -> S3BlobStore:
        store = S3BlobStore(
            client,
            bucket,
            lock_mode=lock_mode,  # type: ignore[arg-type]
            default_retention_days=days,
            clock=clock,
            part_size=PART,
        )
        store.ensure_bucket()
        return store

    return make


@pytest.fixture
def store(make_store: StoreFactory) -> S3BlobStore:
    return make_store()


def short_lock_clock(seconds: float = 2.0) -> Callable[[], datetime]:
    """A clock one day minus `seconds` behind: with one day of default retention, a blob put through it
    is locked until only a couple of seconds from now (real time), so tests can watch the lock expire."""
    return lambda: utc_now() - timedelta(days=1) + timedelta(seconds=seconds)


def wait_until_past(moment: datetime) -> None:
    # radosgw runs on this machine, so its clock is ours; a little margin for whole-second rounding.
    while utc_now() <= moment + timedelta(milliseconds=500):
        time.sleep(0.2)


def versions(client: Any, bucket: str, key: str | None = None) -> tuple[list[str], list[str]]:
    """(object version ids, delete marker ids) in the bucket, for one key or all."""
    response = client.list_object_versions(Bucket=bucket, **({"Prefix": key} if key else {}))
    return (
        [v["VersionId"] for v in response.get("Versions", [])],
        [m["VersionId"] for m in response.get("DeleteMarkers", [])],
    )


class DeleteRecorder:
    """Records every delete request the client is about to send (``before-call``: the serialized
    request, just before signing and sending), as (operation, versionId in the query string)."""

    def __init__(self, client: Any) -> None:
        self.calls: list[tuple[str, str | None]] = []
        for operation in ("DeleteObject", "DeleteObjects"):
            client.meta.events.register(f"before-call.s3.{operation}", self._record)

    def _record(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.calls.append((model.name, params.get("query_string", {}).get("versionId")))


def assert_refused_by_object_lock(exc: pytest.ExceptionInfo[ClientError]) -> None:
    error = exc.value.response["Error"]
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert error["Code"] == "AccessDenied"
    assert error.get("Message") == "forbidden by object lock"


# -- writing and reading -----------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 3 * MiB + 123, 2 * PART + MiB + 7], ids=["empty", "single", "multipart"])
def test_put_open_round_trip_is_byte_identical_and_locked(
    store: S3BlobStore, client: Any, bucket: str, size: int
) -> None:
    data = os.urandom(size)
    before = utc_now()
    stored = store.put(io.BytesIO(data))
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert (stored.size, stored.created) == (size, True)

    with store.open(stored.sha256) as handle:
        assert handle.read() == data
    with store.open(stored.sha256) as handle:  # read(n) in pieces, as copy loops do
        pieces = []
        while piece := handle.read(MiB - 1):
            pieces.append(piece)
    assert b"".join(pieces) == data
    assert store.exists(stored.sha256)
    assert store.size(stored.sha256) == size

    head = client.head_object(Bucket=bucket, Key=key_for(stored.sha256))
    assert head["Metadata"]["sha256"] == stored.sha256
    # The lock is on the object itself, whatever the upload path: Ceph 16 ignores the lock headers of
    # CreateMultipartUpload, so for the multipart case this checks the store's PutObjectRetention.
    retention = client.get_object_retention(Bucket=bucket, Key=key_for(stored.sha256))["Retention"]
    assert retention["Mode"] == "COMPLIANCE"
    until = store.retain_until(stored.sha256)
    assert until is not None
    assert until == retention["RetainUntilDate"]
    assert until.microsecond == 0  # rounded up to a whole second, never down
    assert before + timedelta(days=1) <= until <= utc_now() + timedelta(days=1, seconds=1)


def test_lock_mode_is_the_configured_one(make_store: StoreFactory, client: Any, bucket: str) -> None:
    store = make_store(lock_mode="GOVERNANCE")
    small = store.put(io.BytesIO(b"governance"))
    large = store.put(io.BytesIO(os.urandom(PART + 1)))
    for sha256 in (small.sha256, large.sha256):
        retention = client.get_object_retention(Bucket=bucket, Key=key_for(sha256))["Retention"]
        assert retention["Mode"] == "GOVERNANCE"


@pytest.mark.parametrize("size", [1000, PART + 1], ids=["single", "multipart"])
def test_second_put_of_same_bytes_creates_nothing(
    store: S3BlobStore, client: Any, bucket: str, size: int
) -> None:
    data = os.urandom(size)
    first = store.put(io.BytesIO(data))
    until = store.retain_until(first.sha256)
    second = store.put(io.BytesIO(data))
    assert first.created is True
    assert second == type(second)(first.sha256, size, created=False)
    object_versions, markers = versions(client, bucket)
    assert len(object_versions) == 1
    assert markers == []
    assert store.retain_until(first.sha256) == until  # not re-locked or extended by a re-put


def test_expected_sha256_mismatch_stores_nothing(store: S3BlobStore, client: Any, bucket: str) -> None:
    data = b"what the device really sent"
    wrong = hashlib.sha256(b"what the manifest claimed").hexdigest()
    with pytest.raises(BlobMismatchError):
        store.put(io.BytesIO(data), expected_sha256=wrong)
    assert versions(client, bucket) == ([], [])
    assert not store.exists(hashlib.sha256(data).hexdigest())
    assert not store.exists(wrong)

    right = store.put(io.BytesIO(data), expected_sha256=hashlib.sha256(data).hexdigest())
    assert right.created


def test_missing_blob_errors(store: S3BlobStore) -> None:
    missing = hashlib.sha256(b"never stored").hexdigest()
    assert not store.exists(missing)
    with pytest.raises(BlobNotFoundError):
        store.open(missing)
    with pytest.raises(BlobNotFoundError):
        store.size(missing)
    with pytest.raises(BlobNotFoundError):
        store.retain_until(missing)


def test_missing_bucket_is_one_clear_store_error(client: Any) -> None:
    store = S3BlobStore(
        client, f"never-created-{uuid.uuid4().hex[:8]}", lock_mode="COMPLIANCE",
        default_retention_days=1, clock=utc_now,
    )  # fmt: skip
    with pytest.raises(StoreError, match="does not exist"):
        store.put(io.BytesIO(b"x"))


def test_from_settings_creates_the_bucket_with_object_lock(
    radosgw: RadosgwInfo, client: Any, bucket: str, tmp_path: Any
) -> None:
    settings = Settings(
        home=tmp_path,
        blob_store="s3",
        s3_endpoint_url=radosgw.endpoint_url,
        s3_bucket=bucket,
        s3_region=radosgw.region,
        s3_access_key_id=radosgw.access_key_id,
        s3_secret_access_key=radosgw.secret_access_key,
        s3_lock_mode="GOVERNANCE",
        s3_default_retention_days=3,
    )
    store = S3BlobStore.from_settings(settings, utc_now)
    again = S3BlobStore.from_settings(settings, utc_now)  # the bucket exists now: fine
    assert client.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"] == {
        "ObjectLockEnabled": "Enabled"
    }
    blob = store.put(io.BytesIO(b"configured"))
    assert again.exists(blob.sha256)
    retention = client.get_object_retention(Bucket=bucket, Key=key_for(blob.sha256))["Retention"]
    assert retention["Mode"] == "GOVERNANCE"
    assert retention["RetainUntilDate"] > utc_now() + timedelta(days=3) - timedelta(minutes=1)


def test_a_bucket_without_object_lock_is_refused(client: Any, bucket: str) -> None:
    client.create_bucket(Bucket=bucket)
    store = S3BlobStore(client, bucket, lock_mode="COMPLIANCE", default_retention_days=1, clock=utc_now)
    with pytest.raises(ConfigurationError, match="does not have Object Lock enabled"):
        store.ensure_bucket()


def test_rehash_and_iter_blobs(store: S3BlobStore, client: Any, bucket: str) -> None:
    stored = [store.put(io.BytesIO(data)) for data in (b"", b"one", os.urandom(PART + 10))]
    client.put_object(Bucket=bucket, Key="not-a-blob/readme.txt", Body=b"ignored")
    for blob in stored:
        assert store.rehash(blob.sha256) == blob.sha256
    assert sorted((b.sha256, b.size) for b in store.iter_blobs()) == sorted(
        (b.sha256, b.size) for b in stored
    )


# -- what the server enforces --------------------------------------------------------------------


@pytest.mark.parametrize("size", [100, PART + 1], ids=["single", "multipart"])
def test_server_refuses_to_delete_a_locked_version(
    store: S3BlobStore, client: Any, bucket: str, size: int
) -> None:
    data = os.urandom(size)
    blob = store.put(io.BytesIO(data))
    key = key_for(blob.sha256)
    version_id = client.head_object(Bucket=bucket, Key=key)["VersionId"]

    with pytest.raises(ClientError) as refused:
        client.delete_object(Bucket=bucket, Key=key, VersionId=version_id)
    assert_refused_by_object_lock(refused)
    with store.open(blob.sha256) as handle:
        assert handle.read() == data


def test_server_refuses_to_shorten_compliance_retention(store: S3BlobStore, client: Any, bucket: str) -> None:
    blob = store.put(io.BytesIO(b"compliance"))
    key = key_for(blob.sha256)
    until = store.retain_until(blob.sha256)
    assert until is not None

    with pytest.raises(ClientError) as refused:
        client.put_object_retention(
            Bucket=bucket,
            Key=key,
            Retention={"Mode": "COMPLIANCE", "RetainUntilDate": until - timedelta(hours=1)},
        )
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert "shortens an existing retention period" in refused.value.response["Error"]["Message"]
    assert store.retain_until(blob.sha256) == until


def test_extend_retention_never_shortens_and_does_extend(
    store: S3BlobStore, client: Any, bucket: str
) -> None:
    blob = store.put(io.BytesIO(b"to be kept longer"))
    original = store.retain_until(blob.sha256)
    assert original is not None

    assert store.extend_retention(blob.sha256, original - timedelta(days=1)) == original
    assert store.extend_retention(blob.sha256, original) == original
    assert store.retain_until(blob.sha256) == original

    later = (original + timedelta(days=30)).replace(microsecond=0)
    assert store.extend_retention(blob.sha256, later) == later
    assert store.retain_until(blob.sha256) == later
    retention = client.get_object_retention(Bucket=bucket, Key=key_for(blob.sha256))["Retention"]
    assert (retention["Mode"], retention["RetainUntilDate"]) == ("COMPLIANCE", later)

    # And now the server holds it to the new date.
    with pytest.raises(ClientError) as refused:
        client.put_object_retention(
            Bucket=bucket,
            Key=key_for(blob.sha256),
            Retention={"Mode": "COMPLIANCE", "RetainUntilDate": original},
        )
    assert refused.value.response["Error"]["Code"] == "AccessDenied"


def test_legal_hold_blocks_deletion_after_retention_has_passed(
    make_store: StoreFactory, client: Any, bucket: str
) -> None:
    # COMPLIANCE retention that ends in a couple of seconds: once it has passed, the legal hold is the
    # only thing that can stop the delete, so the refusal below is the hold's.
    store = make_store(clock=short_lock_clock())
    blob = store.put(io.BytesIO(b"under investigation"))
    key = key_for(blob.sha256)
    version_id = client.head_object(Bucket=bucket, Key=key)["VersionId"]
    store.set_legal_hold(blob.sha256, True)
    assert store.lock_state(blob.sha256).legal_hold is True
    until = store.retain_until(blob.sha256)
    assert until is not None
    wait_until_past(until)

    with pytest.raises(ClientError) as refused:
        client.delete_object(Bucket=bucket, Key=key, VersionId=version_id)
    assert_refused_by_object_lock(refused)
    assert store.exists(blob.sha256)

    store.set_legal_hold(blob.sha256, False)
    assert store.lock_state(blob.sha256).legal_hold is False
    client.delete_object(Bucket=bucket, Key=key, VersionId=version_id)  # now the server allows it
    assert not store.exists(blob.sha256)


# -- the retention purger --------------------------------------------------------------------------


def test_purger_refuses_a_blob_still_under_retention_without_sending_a_delete(
    store: S3BlobStore, client: Any
) -> None:
    blob = store.put(io.BytesIO(b"still retained"))
    deletes = DeleteRecorder(client)
    with pytest.raises(ObjectLockedError, match="locked"):
        S3RetentionPurger(store, utc_now).purge(blob.sha256, run_id=1)
    assert deletes.calls == []
    assert store.exists(blob.sha256)


def test_purger_trusts_its_clock_for_retention(store: S3BlobStore, client: Any) -> None:
    """With a clock a day and a half ahead, the purger believes the lock has passed and sends the
    delete; the server (whose clock is real) refuses it, and that refusal is an ObjectLockedError too."""
    blob = store.put(io.BytesIO(b"clock skew"))
    deletes = DeleteRecorder(client)
    ahead = S3RetentionPurger(store, lambda: utc_now() + timedelta(days=1, hours=12))
    with pytest.raises(ObjectLockedError, match="forbidden by object lock"):
        ahead.purge(blob.sha256, run_id=1)
    assert [name for name, _ in deletes.calls] == ["DeleteObject"]
    assert store.exists(blob.sha256)


def test_purger_refuses_a_blob_under_legal_hold_without_sending_a_delete(
    make_store: StoreFactory, client: Any, bucket: str
) -> None:
    store = make_store(clock=short_lock_clock())
    blob = store.put(io.BytesIO(b"held"))
    store.set_legal_hold(blob.sha256, True)
    until = store.retain_until(blob.sha256)
    assert until is not None
    wait_until_past(until)
    purger = S3RetentionPurger(store, utc_now)

    deletes = DeleteRecorder(client)
    with pytest.raises(ObjectLockedError, match="legal hold"):
        purger.purge(blob.sha256, run_id=7)
    assert deletes.calls == []
    assert store.exists(blob.sha256)

    store.set_legal_hold(blob.sha256, False)
    assert purger.purge(blob.sha256, run_id=8) is True
    assert versions(client, bucket, key_for(blob.sha256)) == ([], [])


def test_purger_deletes_every_version_once_retention_has_passed(
    make_store: StoreFactory, client: Any, bucket: str
) -> None:
    store = make_store(clock=short_lock_clock(seconds=5))
    data = os.urandom(PART + 1)  # multipart: its lock is the one the store sets after completing
    blob = store.put(io.BytesIO(data))
    key = key_for(blob.sha256)
    # A second version of the same bytes (two writers racing past the exists check) and a delete
    # marker on top (a delete without a version id): the purge must leave none of them behind.
    until = store.retain_until(blob.sha256)
    assert until is not None
    client.put_object(
        Bucket=bucket, Key=key, Body=data, ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until,
        ContentMD5=base64.b64encode(hashlib.md5(data).digest()).decode(),
    )  # fmt: skip
    client.delete_object(Bucket=bucket, Key=key)
    object_versions, markers = versions(client, bucket, key)
    assert (len(object_versions), len(markers)) == (2, 1)

    purger = S3RetentionPurger(store, utc_now)
    with pytest.raises(ObjectLockedError):  # not yet
        purger.purge(blob.sha256, run_id=1)
    assert versions(client, bucket, key) == (object_versions, markers)

    wait_until_past(until)
    deletes = DeleteRecorder(client)
    assert purger.purge(blob.sha256, run_id=2) is True
    assert sorted(deletes.calls) == sorted(("DeleteObject", v) for v in object_versions + markers)
    assert versions(client, bucket, key) == ([], [])
    assert not store.exists(blob.sha256)
    assert purger.purge(blob.sha256, run_id=3) is False
