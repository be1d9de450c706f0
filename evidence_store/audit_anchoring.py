"""Writing signed checkpoints outside the database, and reading them back for `audit verify` (R3, R10).

Places: an append-only file in the station home (one JSON line per checkpoint, fsynced), and where the
store is an S3 bucket, one small object per checkpoint under `anchors/` with Object Lock. Where a
time-stamping authority is configured, each anchor carries an RFC 3161 token over the head hash. The
comparison itself is `domain.audit_anchors.compare_anchors`.
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Engine, select

from evidence_store.db.engine import read_only
from evidence_store.db.tables import audit_checkpoints, audit_events
from evidence_store.domain.audit_anchors import Anchor, AnchorProblem, AnchorVerdict, compare_anchors
from evidence_store.domain.audit_chain import AuditCheckpoint
from evidence_store.errors import ConfigurationError, EvidenceError, StoreError
from evidence_store.keys import PublicKey
from evidence_store.station_trust import load_keyring

if TYPE_CHECKING:
    from evidence_store.blobs.s3 import S3BlobStore
    from evidence_store.ports import Clock
    from evidence_store.settings import Settings
    from evidence_store.timestamping import TimestampAuthority

log = logging.getLogger(__name__)

ANCHOR_FILE = "audit-anchors.jsonl"
S3_PREFIX = "anchors/"
# Anchors vouch for the log for as long as it is kept: the lock outlasts any retention period (R9).
S3_ANCHOR_RETENTION = timedelta(days=365 * 30)


class AnchorPlace(Protocol):
    name: str

    def write(self, anchor: Anchor) -> None: ...

    def read(self) -> list[Anchor]: ...


class AnchorFile:
    """The append-only anchor file: lines are only ever appended (O_APPEND), each fsynced."""

    name = "file"

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, anchor: Anchor) -> None:
        created = not self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        try:
            os.write(fd, (anchor.line() + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            dir_fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def read(self) -> list[Anchor]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        anchors = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                anchors.append(Anchor.parse(line, f"{self.path.name} line {number}"))
            except ValueError as exc:
                raise _Unreadable(f"{self.path} line {number} is not an anchor: {exc}") from exc
        return anchors


class _Unreadable(StoreError):
    """An anchor place holds something that is not an anchor."""


class S3Anchors:
    """One object per checkpoint under `anchors/` in the store's bucket, under Object Lock."""

    name = "s3"

    def __init__(self, store: S3BlobStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    def write(self, anchor: Anchor) -> None:
        client = self.store.client
        with self.store._errors("anchor"):  # the store's translation of botocore errors
            client.put_object(
                Bucket=self.store.bucket,
                Key=f"{S3_PREFIX}{anchor.seq:012d}-{anchor.head_hash}.json",
                Body=anchor.line().encode(),
                ObjectLockMode=self.store.lock_mode,
                ObjectLockRetainUntilDate=self.clock() + S3_ANCHOR_RETENTION,
            )

    def read(self) -> list[Anchor]:
        client = self.store.client
        anchors = []
        with self.store._errors("list anchors"):
            paginator = client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.store.bucket, Prefix=S3_PREFIX):
                for item in page.get("Contents", []):
                    key = item.get("Key", "")
                    body = client.get_object(Bucket=self.store.bucket, Key=key)["Body"].read()
                    try:
                        anchors.append(Anchor.parse(body.decode(), f"s3 {key}"))
                    except (ValueError, UnicodeDecodeError) as exc:
                        raise _Unreadable(f"S3 object {key} is not an anchor: {exc}") from exc
        return anchors


class Anchoring:
    """Writes each committed checkpoint to every anchor place, time-stamped where a TSA is set."""

    def __init__(self, places: Sequence[AnchorPlace], authority: Callable[[], TimestampAuthority | None]):
        self.places = list(places)
        self._authority = authority

    def anchor(self, checkpoint: AuditCheckpoint) -> None:
        """Anchor one checkpoint. It is already committed: a place that fails is logged, not raised,
        and `audit verify` notes the checkpoint as not anchored (`audit checkpoint` anchors it again)."""
        timestamp = None
        try:
            authority = self._authority()
            if authority is not None:
                timestamp = timestamp_fields(authority.stamp(checkpoint.head_hash))
        except (EvidenceError, OSError) as exc:  # the checkpoint is committed; say why it has no token
            log.warning("no time-stamp over the audit head at event %s: %s", checkpoint.seq, exc)
        anchor = Anchor(
            seq=checkpoint.seq,
            head_hash=checkpoint.head_hash,
            at=checkpoint.at,
            key_fingerprint=checkpoint.key_fingerprint,
            signature=checkpoint.signature,
            timestamp=timestamp,
        )
        for place in self.places:
            try:
                place.write(anchor)
            except (EvidenceError, OSError) as exc:  # committed already: logged, noted by verify
                log.warning("checkpoint at event %s not anchored in %s: %s", checkpoint.seq, place.name, exc)

    def read(self) -> list[Anchor]:
        return [anchor for place in self.places for anchor in place.read()]


def timestamp_fields(token: Any) -> dict[str, Any]:
    return {
        "kind": token.kind,
        "authority": token.authority,
        "gen_time": token.gen_time.isoformat(),
        "serial": token.serial,
        "token": base64.b64encode(token.token).decode("ascii"),
    }


def anchoring_for(settings: Settings, store: Any, clock: Clock) -> Anchoring:
    """The station's anchor places: the file always, the bucket when the store is S3; the TSA when set."""
    places: list[AnchorPlace] = [AnchorFile(settings.home / ANCHOR_FILE)]
    if getattr(store, "name", "") == "s3":  # by name: importing boto3 here would slow every start
        places.append(S3Anchors(store, clock))

    def authority() -> TimestampAuthority | None:
        if not settings.tsa_url:
            return None
        from evidence_store.timestamping import Rfc3161Authority  # lazy: only where a TSA is set

        ca, tsa_cert = _tsa_certificates(settings)
        return Rfc3161Authority(settings.tsa_url, ca_certs=ca, tsa_cert=tsa_cert)

    return Anchoring(places, authority)


def _tsa_certificates(settings: Settings) -> tuple[list[bytes], bytes | None]:
    try:
        ca = [settings.tsa_ca_file.read_bytes()] if settings.tsa_ca_file else []
        tsa_cert = settings.tsa_cert_file.read_bytes() if settings.tsa_cert_file else None
    except OSError as exc:
        raise ConfigurationError(f"cannot read the TSA certificates: {exc}") from exc
    return ca, tsa_cert


def verify_anchors(
    engine: Engine, public_key: PublicKey, anchoring: Anchoring | None, settings: Settings
) -> AnchorVerdict:
    """The `anchors` sub-check of `audit verify`: the anchored checkpoints against the stored log,
    and each anchor's time-stamp token against its head hash."""
    anchors = anchoring.read() if anchoring is not None else []
    with engine.connect() as plain:
        connection = read_only(plain)
        head_seq = connection.scalar(select(audit_events.c.seq).order_by(audit_events.c.seq.desc()).limit(1))
        seqs = sorted({a.seq for a in anchors})
        event_hashes: dict[int, str] = {}
        for start in range(0, len(seqs), 500):
            chunk = seqs[start : start + 500]
            event_hashes.update(
                connection.execute(
                    select(audit_events.c.seq, audit_events.c.hash).where(audit_events.c.seq.in_(chunk))
                )
                .tuples()
                .all()
            )
        checkpoint_hashes = dict(
            connection.execute(select(audit_checkpoints.c.seq, audit_checkpoints.c.head_hash)).tuples().all()
        )
        # stations sharing one store anchor their own checkpoints there: any key the chain trusts
        keyring = load_keyring(connection, public_key)
    verdict = compare_anchors(
        anchors,
        head_seq=head_seq or 0,
        event_hashes=event_hashes,
        checkpoint_hashes=checkpoint_hashes,
        verify_signature=public_key.verify,
        key_fingerprint=public_key.fingerprint,
        keys=keyring.lookup,
    )
    _check_timestamps(anchors, verdict, settings)
    return verdict


def _check_timestamps(anchors: list[Anchor], verdict: AnchorVerdict, settings: Settings) -> None:
    from evidence_store.timestamping import TimestampToken, verify_token  # lazy: asn1/cms only here

    stamped = [a for a in anchors if a.timestamp]
    if not stamped:
        return
    ca, tsa_cert = _tsa_certificates(settings) if settings.tsa_ca_file else ([], None)
    if not ca:
        verdict.notes.append("anchors carry RFC 3161 time-stamps, but no tsa_ca_file is set to check them")
        return
    for anchor in stamped:
        fields = anchor.timestamp or {}
        token = TimestampToken(
            kind=fields["kind"],
            sha256=anchor.head_hash,
            token=base64.b64decode(fields["token"]),
            authority=fields["authority"],
            gen_time=datetime.fromisoformat(fields["gen_time"]),
            serial=fields["serial"],
        )
        result = verify_token(token, anchor.head_hash, ca_certs=ca, tsa_cert=tsa_cert)
        verdict.timestamps_checked += 1
        if not result.ok:
            verdict.problems.append(
                AnchorProblem(
                    anchor.seq,
                    f"the time-stamp on the anchor of event {anchor.seq} in "
                    f"{anchor.place} does not hold: {result.reason}",
                )
            )
