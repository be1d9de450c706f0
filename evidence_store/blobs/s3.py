"""The S3 blob store: content-addressed objects under S3 Object Lock (WORM), and its retention purger.

Layout: ``sha256/ab/cd/<sha256>`` in one bucket created with Object Lock (which implies versioning).
A write hashes inline while spooling to a temporary file (memory stays bounded), then uploads only if
the key is not there yet, with ``ObjectLockMode``/``ObjectLockRetainUntilDate`` on the object itself,
``Content-MD5`` (verified by every S3, Ceph included) and ``x-amz-checksum-sha256`` (verified by AWS;
Ceph 16 ignores it and returns none, which is fine), and the sha256 in the object metadata. Blobs
larger than one part go up as a multipart upload (the same headers, per part for the checksums).

Nothing here deletes, except `S3RetentionPurger`, which first checks every version's retention and
legal hold against the clock and refuses (without sending any delete) while any of them still holds.

After every upload the lock of the new version is read back, and set with PutObjectRetention if the
server left it off: Ceph 16 silently ignores the lock headers of CreateMultipartUpload, so a multipart
blob would otherwise be stored unlocked. A write that died between the two steps leaves an unlocked
blob; the next `put` of the same bytes finds it and locks it.

Other Ceph 16 habits (tests/fixtures/radosgw.py runs a real one): the retain-until header loses its
fractional seconds (we round up to whole seconds, never locking for less than asked); If-None-Match
and x-amz-checksum-sha256 are ignored; "no retention / no legal hold" is the error code
``ObjectLockConfigurationNotFoundError`` (AWS: ``NoSuchObjectLockConfiguration``).
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import IO, TYPE_CHECKING, Any, BinaryIO, Literal, cast

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from evidence_store.blobs.hashing_copy import CHUNK_SIZE, copy_hashing, hash_stream, write_all
from evidence_store.blobs.local import check_sha256
from evidence_store.errors import (
    BlobMismatchError,
    BlobNotFoundError,
    ConfigurationError,
    EvidenceError,
    ObjectLockedError,
    StoreError,
)
from evidence_store.ports import BlobListing, Clock, StoredBlob

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer
    from botocore.response import StreamingBody
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

    from evidence_store.settings import Settings

log = logging.getLogger(__name__)

LockMode = Literal["COMPLIANCE", "GOVERNANCE"]

KEY_PREFIX = "sha256/"
MIN_PART_SIZE = 5 * 1024 * 1024  # S3's minimum for every part but the last
DEFAULT_PART_SIZE = 16 * 1024 * 1024
MAX_PARTS = 10_000

# Error codes meaning "no such object (version)".
_NOT_FOUND = {"404", "NoSuchKey", "NotFound", "NoSuchVersion"}
# Error codes meaning "this object has no retention / legal hold" (or "this bucket has no Object Lock").
# AWS says NoSuchObjectLockConfiguration; Ceph 16 says ObjectLockConfigurationNotFoundError.
_NO_LOCK = {"NoSuchObjectLockConfiguration", "ObjectLockConfigurationNotFoundError"}


def s3_client_config(
    *, max_attempts: int = 5, connect_timeout: float = 10, read_timeout: float = 60
) -> Config:
    """The botocore config every client for this store needs.

    boto3 >= 1.36 sends CRC32 checksums by default, with aws-chunked bodies that older servers (Ceph
    16 among them) reject; "when_required" restores the old behaviour. Path-style addressing works
    with any endpoint (no per-bucket DNS names needed). The timeouts bound how long a request waits on a
    dead link (botocore's defaults, 60 s each and 5 attempts, held a station's forward for minutes).
    """
    return Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        s3={"addressing_style": "path"},
        retries={"max_attempts": max_attempts, "mode": "standard"},
    )


def key_for(sha256: str) -> str:
    check_sha256(sha256)
    return f"{KEY_PREFIX}{sha256[:2]}/{sha256[2:4]}/{sha256}"


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: the store needs aware UTC times")
    return moment.astimezone(UTC)


def _whole_seconds_up(moment: datetime) -> datetime:
    """Round up to a whole second: S3 headers carry whole seconds (Ceph drops the fraction)."""
    if moment.microsecond:
        return moment.replace(microsecond=0) + timedelta(seconds=1)
    return moment


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _describe(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    code = error.get("Code") or "error"
    message = error.get("Message")
    return f"{code}{': ' + str(message) if message else ''} (HTTP {status})"


def _is_lock_refusal(exc: ClientError) -> bool:
    if _error_code(exc) != "AccessDenied":
        return False
    message = str(exc.response.get("Error", {}).get("Message") or "").lower()
    return any(word in message for word in ("object lock", "retention", "governance", "legal hold"))


@dataclass(frozen=True)
class ObjectLockState:
    """One object version's lock state, as the server reports it."""

    mode: str | None
    retain_until: datetime | None
    legal_hold: bool


class _BodyReader(io.RawIOBase):
    """A botocore StreamingBody as a raw stream, so `io.BufferedReader` makes it a normal binary file."""

    def __init__(self, body: StreamingBody, what: str) -> None:
        self._body = body
        self._what = what

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        try:
            data = self._body.read(len(view))
        except BotoCoreError as exc:
            raise StoreError(f"reading {self._what} from S3 failed: {exc}") from exc
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


class S3BlobStore:
    """A `LockableBlobStore` on an S3 bucket with Object Lock (AWS S3, Ceph radosgw, MinIO)."""

    name = "s3"

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        *,
        lock_mode: LockMode,
        default_retention_days: int,
        clock: Clock,
        part_size: int = DEFAULT_PART_SIZE,
        chunk_size: int = CHUNK_SIZE,
        spool_dir: str | None = None,
    ) -> None:
        if lock_mode not in ("COMPLIANCE", "GOVERNANCE"):
            raise ConfigurationError(f"S3 lock mode must be COMPLIANCE or GOVERNANCE, not {lock_mode!r}")
        if default_retention_days < 1:
            raise ConfigurationError("S3 default retention must be at least one day")
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part size {part_size} is below the S3 minimum of {MIN_PART_SIZE}")
        self.client = client
        self.bucket = bucket
        self.lock_mode: LockMode = lock_mode
        self.default_retention = timedelta(days=default_retention_days)
        self.clock = clock
        self.part_size = part_size
        self.chunk_size = chunk_size
        self.spool_dir = spool_dir

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock) -> S3BlobStore:
        """A store for the configured bucket, created (with Object Lock) if it does not exist yet."""
        try:
            client: S3Client = boto3.session.Session().client(
                "s3",
                endpoint_url=settings.s3_endpoint_url or None,
                region_name=settings.s3_region or None,
                aws_access_key_id=settings.s3_access_key_id or None,
                aws_secret_access_key=settings.s3_secret_access_key or None,
                config=s3_client_config(
                    max_attempts=settings.s3_max_attempts,
                    connect_timeout=settings.s3_connect_timeout_s,
                    read_timeout=settings.s3_read_timeout_s,
                ),
            )
        except (BotoCoreError, ValueError) as exc:
            raise ConfigurationError(
                f"cannot set up the S3 client for {settings.s3_endpoint_url}: {exc}"
            ) from exc
        store = cls(
            client,
            settings.s3_bucket,
            lock_mode=settings.s3_lock_mode,
            default_retention_days=settings.s3_default_retention_days,
            clock=clock,
        )
        store.ensure_bucket(region=settings.s3_region)
        return store

    # -- errors ---------------------------------------------------------------------------------

    @contextmanager
    def _errors(self, action: str, sha256: str | None = None) -> Iterator[None]:
        """Turn botocore failures into our errors, with one clear message and no traceback for users."""
        what = f"blob {sha256}" if sha256 else f"bucket {self.bucket}"
        try:
            yield
        except EvidenceError:
            raise
        except ClientError as exc:
            code = _error_code(exc)
            where = f"{what} in bucket {self.bucket}" if sha256 else what
            detail = f"S3 could not {action} {where}: {_describe(exc)}"
            if code in _NOT_FOUND and sha256:
                raise BlobNotFoundError(f"blob {sha256} is not in S3 bucket {self.bucket}") from exc
            if code == "NoSuchBucket":
                raise StoreError(f"S3 bucket {self.bucket} does not exist (run 'evidence init')") from exc
            if _is_lock_refusal(exc):
                raise ObjectLockedError(
                    f"S3 refused to {action} {what}: it is locked ({_describe(exc)})"
                ) from exc
            if code in {"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"}:
                raise StoreError(f"{detail}: the bytes were damaged in transit, nothing stored") from exc
            raise StoreError(detail) from exc
        except BotoCoreError as exc:
            endpoint = self.client.meta.endpoint_url
            raise StoreError(f"S3 at {endpoint} could not {action} {what}: {exc}") from exc

    # -- bucket ---------------------------------------------------------------------------------

    def ensure_bucket(self, *, region: str | None = None) -> None:
        """Create the bucket with Object Lock if it is missing (idempotent); refuse one without it."""
        with self._errors("look up"):
            try:
                self.client.head_bucket(Bucket=self.bucket)
                exists = True
            except ClientError as exc:
                if _error_code(exc) not in {"404", "NoSuchBucket", "NotFound"}:
                    raise
                exists = False
        if not exists:
            with self._errors("create"):
                try:
                    if region and region != "us-east-1":
                        self.client.create_bucket(
                            Bucket=self.bucket,
                            ObjectLockEnabledForBucket=True,
                            CreateBucketConfiguration={"LocationConstraint": region},  # type: ignore[typeddict-item]
                        )
                    else:
                        self.client.create_bucket(Bucket=self.bucket, ObjectLockEnabledForBucket=True)
                    log.info("created S3 bucket %s with Object Lock", self.bucket)
                except ClientError as exc:
                    if _error_code(exc) != "BucketAlreadyOwnedByYou":  # created meanwhile: fine
                        raise
        with self._errors("read the Object Lock configuration of"):
            try:
                lock = self.client.get_object_lock_configuration(Bucket=self.bucket)
                enabled = lock.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"
            except ClientError as exc:
                if _error_code(exc) not in _NO_LOCK:
                    raise
                enabled = False
        if not enabled:
            raise ConfigurationError(
                f"S3 bucket {self.bucket} does not have Object Lock enabled, so evidence in it would not "
                "be write-once; use a bucket created with Object Lock"
            )

    # -- writing --------------------------------------------------------------------------------

    def put(
        self, source: BinaryIO, *, expected_sha256: str | None = None, durable: bool = True
    ) -> StoredBlob:
        """Store `source` under its sha256. An error reading `source` propagates as it is; an error on
        the store's side is a `StoreError`. `durable` changes nothing here: S3 acknowledges a write
        only once it is stored, so every put is durable on return."""
        if expected_sha256 is not None:
            check_sha256(expected_sha256)
        try:
            spool = tempfile.TemporaryFile("w+b", buffering=0, dir=self.spool_dir)  # noqa: SIM115 - with below
        except OSError as exc:
            raise StoreError(f"cannot create a spool file for an S3 upload: {exc.strerror or exc}") from exc
        with spool:
            md5 = hashlib.md5(usedforsecurity=False)
            write = write_all(spool.fileno())

            def spool_chunk(view: memoryview) -> None:
                md5.update(view)
                try:
                    write(view)
                except OSError as exc:
                    raise StoreError(f"spooling a blob for S3 failed: {exc.strerror or exc}") from exc

            result = copy_hashing(source, spool_chunk, chunk_size=self.chunk_size)
            if expected_sha256 is not None and result.sha256 != expected_sha256:
                raise BlobMismatchError(
                    f"bytes read hash to {result.sha256}, expected {expected_sha256}: nothing stored"
                )
            until = _whole_seconds_up(_utc(self.clock()) + self.default_retention)
            existing = self._head_or_none(result.sha256)
            if existing is not None:
                if "ObjectLockRetainUntilDate" not in existing:
                    # Stored by a write that died before its lock was set: lock it now. An existing
                    # lock is left as it is (a re-put neither extends nor shortens it).
                    log.warning("blob %s was stored without Object Lock: locking it now", result.sha256)
                    self._ensure_locked(result.sha256, existing.get("VersionId"), until)
                return StoredBlob(result.sha256, result.size, created=False)
            spool.seek(0)
            if result.size <= self.part_size:
                created, version_id = self._put_single(spool, result.sha256, result.size, md5.digest(), until)
            else:
                created, version_id = self._put_multipart(spool, result.sha256, result.size, until)
            if not created:
                return StoredBlob(result.sha256, result.size, created=False)
            self._ensure_locked(result.sha256, version_id, until)
        return StoredBlob(result.sha256, result.size, created=True)

    def _lock_args(self, sha256: str, until: datetime) -> dict[str, Any]:
        return {
            "ObjectLockMode": self.lock_mode,
            "ObjectLockRetainUntilDate": until,
            "Metadata": {"sha256": sha256},
            "ContentType": "application/octet-stream",
        }

    def _retention(self, sha256: str, version_id: str | None) -> tuple[str | None, datetime | None]:
        """(mode, retain-until) of one version, (None, None) if it has no retention."""
        version: dict[str, Any] = {"VersionId": version_id} if version_id else {}
        with self._errors("read the retention of", sha256):
            try:
                response = self.client.get_object_retention(
                    Bucket=self.bucket, Key=key_for(sha256), **version
                )
            except ClientError as exc:
                if _error_code(exc) in _NO_LOCK:
                    return None, None
                raise
        retention = response.get("Retention", {})
        raw_until = retention.get("RetainUntilDate")
        return retention.get("Mode"), _utc(raw_until) if raw_until else None

    def _head_lock(self, sha256: str, version_id: str | None) -> tuple[str | None, datetime | None]:
        """(mode, retain-until) as HEAD reports them (one request; absent without the permission to read
        retention, which then reads as "not locked" and makes the write fail rather than pass)."""
        head = self._head(sha256, version_id)
        raw_until = head.get("ObjectLockRetainUntilDate")
        return head.get("ObjectLockMode"), _utc(raw_until) if raw_until else None

    def _ensure_locked(self, sha256: str, version_id: str | None, until: datetime) -> None:
        """Make sure the version just written is locked until `until`; set it if the server did not."""
        mode, current = self._head_lock(sha256, version_id)
        if current is not None and current >= until:
            return
        log.info("S3 stored blob %s without its lock (multipart on Ceph): setting it now", sha256)
        version: dict[str, Any] = {"VersionId": version_id} if version_id else {}
        with self._errors("lock", sha256):
            self.client.put_object_retention(
                Bucket=self.bucket,
                Key=key_for(sha256),
                Retention={"Mode": cast(LockMode, mode or self.lock_mode), "RetainUntilDate": until},
                **version,
            )
        mode, current = self._head_lock(sha256, version_id)
        if current is None or current < until:
            raise StoreError(
                f"S3 bucket {self.bucket} did not lock blob {sha256} until {until.isoformat()} "
                f"(it reports {current.isoformat() if current else 'no retention'}): check its Object Lock"
            )

    def _put_single(
        self, spool: IO[bytes], sha256: str, size: int, md5: bytes, until: datetime
    ) -> tuple[bool, str | None]:
        key = key_for(sha256)
        with self._errors("upload", sha256):
            try:
                response = self.client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=spool,
                    ContentLength=size,
                    ContentMD5=_b64(md5),
                    ChecksumSHA256=_b64(bytes.fromhex(sha256)),
                    # Refuse to replace an existing object where the server supports conditional
                    # writes (AWS does; Ceph 16 ignores it, so the exists() check above is what counts).
                    IfNoneMatch="*",
                    **self._lock_args(sha256, until),
                )
            except ClientError as exc:
                if _error_code(exc) in {"PreconditionFailed", "412"}:
                    return False, None  # written meanwhile by someone else: same bytes, same address
                raise
        returned = response.get("ChecksumSHA256")
        if returned and returned != _b64(bytes.fromhex(sha256)):
            raise StoreError(f"S3 stored blob {sha256} with sha256 {returned} (base64): not what was sent")
        return True, response.get("VersionId")

    def _put_multipart(
        self, spool: IO[bytes], sha256: str, size: int, until: datetime
    ) -> tuple[bool, str | None]:
        key = key_for(sha256)
        part_size = max(self.part_size, -(-size // MAX_PARTS))
        with self._errors("start a multipart upload of", sha256):
            upload_id = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=key, ChecksumAlgorithm="SHA256", **self._lock_args(sha256, until)
            )["UploadId"]
        completed = False
        try:
            parts: list[CompletedPartTypeDef] = []
            number = 1
            while data := spool.read(part_size):
                part_sha = _b64(hashlib.sha256(data).digest())
                with self._errors(f"upload part {number} of", sha256):
                    etag = self.client.upload_part(
                        Bucket=self.bucket,
                        Key=key,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=data,
                        ContentMD5=_b64(hashlib.md5(data, usedforsecurity=False).digest()),
                        ChecksumSHA256=part_sha,
                    )["ETag"]
                parts.append({"PartNumber": number, "ETag": etag, "ChecksumSHA256": part_sha})
                number += 1
            with self._errors("complete the multipart upload of", sha256):
                try:
                    response = self.client.complete_multipart_upload(
                        Bucket=self.bucket,
                        Key=key,
                        UploadId=upload_id,
                        MultipartUpload={"Parts": parts},
                        IfNoneMatch="*",
                    )
                except ClientError as exc:
                    if _error_code(exc) in {"PreconditionFailed", "412"}:
                        return False, None
                    raise
            completed = True
            return True, response.get("VersionId")
        finally:
            if not completed:
                self._abort(key, upload_id)

    def _abort(self, key: str, upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except (ClientError, BotoCoreError) as exc:  # the original failure matters more
            log.warning("could not abort multipart upload %s of %s: %s", upload_id, key, exc)

    def sync(self) -> None:
        """Nothing to flush: every put is durable once S3 has acknowledged it."""

    # -- reading --------------------------------------------------------------------------------

    def open(self, sha256: str) -> BinaryIO:
        with self._errors("read", sha256):
            body = self.client.get_object(Bucket=self.bucket, Key=key_for(sha256))["Body"]
        return io.BufferedReader(_BodyReader(body, f"blob {sha256}"), buffer_size=self.chunk_size)

    def _head(self, sha256: str, version_id: str | None = None) -> dict[str, Any]:
        with self._errors("look up", sha256):
            if version_id is None:
                return cast(dict[str, Any], self.client.head_object(Bucket=self.bucket, Key=key_for(sha256)))
            return cast(
                dict[str, Any],
                self.client.head_object(Bucket=self.bucket, Key=key_for(sha256), VersionId=version_id),
            )

    def _head_or_none(self, sha256: str) -> dict[str, Any] | None:
        try:
            return self._head(sha256)
        except BlobNotFoundError:
            return None

    def exists(self, sha256: str) -> bool:
        """Whether the blob's current version is there (a delete marker on top reads as absent)."""
        return self._head_or_none(sha256) is not None

    def size(self, sha256: str) -> int:
        return int(self._head(sha256)["ContentLength"])

    def rehash(self, sha256: str) -> str:
        with self.open(sha256) as handle:
            try:
                return hash_stream(handle, self.chunk_size).sha256
            except OSError as exc:
                raise StoreError(f"reading blob {sha256} from S3 failed: {exc}") from exc

    def iter_blobs(self) -> Iterator[BlobListing]:
        paginator = self.client.get_paginator("list_objects_v2")
        with self._errors("list"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=KEY_PREFIX):
                for item in page.get("Contents", []):
                    key = item.get("Key", "")
                    name = key.rsplit("/", 1)[-1]
                    try:
                        if key != key_for(name):
                            continue
                    except ValueError:
                        continue  # not one of ours
                    yield BlobListing(name, int(item.get("Size", 0)))

    # -- locks ----------------------------------------------------------------------------------

    def lock_state(self, sha256: str, version_id: str | None = None) -> ObjectLockState:
        """Retention and legal hold of the current version (or of `version_id`), asked explicitly.

        HEAD would also report them, but AWS silently leaves them out without the GetObjectRetention
        and GetObjectLegalHold permissions; asking directly turns a missing permission into an error.
        """
        key = key_for(sha256)
        version: dict[str, Any] = {"VersionId": version_id} if version_id else {}
        mode, until = self._retention(sha256, version_id)
        with self._errors("read the legal hold of", sha256):
            try:
                hold = self.client.get_object_legal_hold(Bucket=self.bucket, Key=key, **version)
                legal_hold = hold.get("LegalHold", {}).get("Status") == "ON"
            except ClientError as exc:
                if _error_code(exc) not in _NO_LOCK:
                    raise
                legal_hold = False
        return ObjectLockState(mode, until, legal_hold)

    def retain_until(self, sha256: str) -> datetime | None:
        return self.lock_state(sha256).retain_until

    def extend_retention(self, sha256: str, until: datetime) -> datetime:
        until = _utc(until)
        current = self.lock_state(sha256)
        if current.retain_until is not None and current.retain_until >= until:
            return current.retain_until
        # Keep the object's mode: a GOVERNANCE lock cannot become COMPLIANCE without a bypass.
        mode = cast(LockMode, current.mode or self.lock_mode)
        with self._errors("extend the retention of", sha256):
            self.client.put_object_retention(
                Bucket=self.bucket,
                Key=key_for(sha256),
                Retention={"Mode": mode, "RetainUntilDate": until},
            )
        return self.retain_until(sha256) or until

    def set_legal_hold(self, sha256: str, on: bool) -> None:
        with self._errors("set the legal hold of" if on else "release the legal hold of", sha256):
            self.client.put_object_legal_hold(
                Bucket=self.bucket, Key=key_for(sha256), LegalHold={"Status": "ON" if on else "OFF"}
            )


class S3RetentionPurger:
    """Deletes every version of a blob for the retention run only (R9, R10), and only when unlocked."""

    def __init__(self, store: S3BlobStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    def purge(self, sha256: str, *, run_id: int) -> bool:
        store = self.store
        key = key_for(sha256)
        versions: list[str] = []
        markers: list[str] = []
        paginator = store.client.get_paginator("list_object_versions")
        with store._errors("list the versions of", sha256):
            for page in paginator.paginate(Bucket=store.bucket, Prefix=key):
                versions += [v["VersionId"] for v in page.get("Versions", []) if v.get("Key") == key]
                markers += [m["VersionId"] for m in page.get("DeleteMarkers", []) if m.get("Key") == key]
        # Check every version before deleting any: a refusal must leave the blob whole.
        now = _utc(self.clock())
        for version_id in versions:
            lock = store.lock_state(sha256, version_id)
            if lock.legal_hold:
                raise ObjectLockedError(
                    f"blob {sha256} is under legal hold (version {version_id}): not purged"
                )
            if lock.retain_until is not None and lock.retain_until > now:
                raise ObjectLockedError(
                    f"blob {sha256} is locked ({lock.mode}) until {lock.retain_until.isoformat()} "
                    f"(version {version_id}): not purged"
                )
        for version_id in versions + markers:
            with store._errors("delete", sha256):
                store.client.delete_object(Bucket=store.bucket, Key=key, VersionId=version_id)
        if versions:
            log.info("retention run %s purged blob %s (%d versions)", run_id, sha256, len(versions))
        return bool(versions)
