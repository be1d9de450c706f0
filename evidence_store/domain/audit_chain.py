"""The tamper-evident audit chain (R3, R10, R17), as pure functions.

Each event is serialised canonically and chained: ``hash = sha256(prev_hash + "\\n" + canonical)``.
Each event hash is signed with the station key, and every so often a checkpoint signs the head of the
chain. Because an event hash commits to every event before it, one valid checkpoint signature vouches
for the whole chain up to that point; `verify_chain` therefore re-hashes every event but only checks the
signatures of checkpoints and of events after the last checkpoint (or every signature on request).

Signing and signature checking are passed in as functions, so this module needs no key material.
"""

from __future__ import annotations

import hashlib
import json
import json.encoder
import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

GENESIS_HASH = "0" * 64

Verifier = Callable[[bytes, bytes], bool]  # (message, signature) -> valid


class AuditRecord(Protocol):
    """What the chain needs of a stored event (a database row or an `AuditEvent`)."""

    @property
    def seq(self) -> int: ...
    @property
    def at(self) -> str: ...
    @property
    def actor(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def object_type(self) -> str: ...
    @property
    def object_id(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def details(self) -> str: ...
    @property
    def prev_hash(self) -> str: ...
    @property
    def hash(self) -> str: ...
    @property
    def signature(self) -> bytes: ...


@dataclass(eq=False, kw_only=True)
class AuditEvent:
    """One append-only audit event: who did what to which object, when, and from where."""

    seq: int
    at: str  # canonical UTC time text, part of the hashed form
    actor: str
    action: str
    object_type: str
    object_id: str
    source: str
    details: str  # canonical JSON text, part of the hashed form
    prev_hash: str
    hash: str
    signature: bytes


@dataclass(eq=False, kw_only=True)
class AuditCheckpoint:
    """A signature over the chain head at `seq`, vouching for every event up to it."""

    id: int | None = None
    seq: int
    head_hash: str
    at: str
    key_fingerprint: str
    signature: bytes


def format_time(moment: datetime) -> str:
    """The one text form of a time inside the chain: UTC, microseconds, `Z`."""
    if moment.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_details(details: dict[str, Any] | None) -> str:
    """Details as canonical JSON (sorted keys, no spaces, UTF-8 kept) so the hash is reproducible."""
    return json.dumps(details or {}, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def canonical_bytes(record: AuditRecord | AuditEvent) -> bytes:
    """The exact bytes an event's hash covers."""
    return _canonical(
        record.seq,
        record.at,
        record.actor,
        record.action,
        record.object_type,
        record.object_id,
        record.source,
        record.details,
    )


# The function json.dumps(..., ensure_ascii=False) escapes each string with (the C one when available).
_json_string = json.encoder.encode_basestring


def _canonical(
    seq: Any, at: Any, actor: Any, action: Any, object_type: Any, object_id: Any, source: Any, details: Any
) -> bytes:
    """``json.dumps([seq, at, actor, action, object_type, object_id, source, details],
    separators=(",", ":"), ensure_ascii=False).encode()``: the hashed form, which must never change.

    When `seq` is an int and the rest are strings (always, for events built here or read from the
    database) the same text is assembled directly, as json's encoder does it (int repr, json's own
    string escaping, commas), in about half the time; anything else goes through json.dumps itself.
    """
    if type(seq) is int:
        try:
            return (
                f"[{int.__repr__(seq)},{_json_string(at)},{_json_string(actor)},{_json_string(action)},"
                f"{_json_string(object_type)},{_json_string(object_id)},{_json_string(source)},"
                f"{_json_string(details)}]"
            ).encode()
        except TypeError:  # a field that is not a string: json decides how it looks
            pass
    return json.dumps(
        [seq, at, actor, action, object_type, object_id, source, details],
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()


def chain_hash(prev_hash: str, canonical: bytes) -> str:
    """R3: the hash that links an event to everything before it."""
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical).hexdigest()


def signed_message_for_event(event_hash: str) -> bytes:
    return b"audit-event:" + bytes.fromhex(event_hash)


def signed_message_for_checkpoint(seq: int, head_hash: str, at: str) -> bytes:
    return f"audit-checkpoint:{seq}:{head_hash}:{at}".encode()


def build_event(
    *,
    prev: tuple[int, str] | None,
    at: datetime,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    source: str,
    details: dict[str, Any] | None,
    sign: Callable[[bytes], bytes],
) -> AuditEvent:
    """Make the next event of the chain after `prev` (its seq and hash; None for the first event)."""
    prev_seq, prev_hash = prev if prev is not None else (0, GENESIS_HASH)
    event = AuditEvent(
        seq=prev_seq + 1,
        at=format_time(at),
        actor=actor,
        action=action,
        object_type=object_type,
        object_id=object_id,
        source=source,
        details=canonical_details(details),
        prev_hash=prev_hash,
        hash="",
        signature=b"",
    )
    event.hash = chain_hash(prev_hash, canonical_bytes(event))
    event.signature = sign(signed_message_for_event(event.hash))
    return event


def build_checkpoint(
    *, seq: int, head_hash: str, at: datetime, key_fingerprint: str, sign: Callable[[bytes], bytes]
) -> AuditCheckpoint:
    at_text = format_time(at)
    return AuditCheckpoint(
        seq=seq,
        head_hash=head_hash,
        at=at_text,
        key_fingerprint=key_fingerprint,
        signature=sign(signed_message_for_checkpoint(seq, head_hash, at_text)),
    )


@dataclass
class ChainProblem:
    seq: int
    reason: str


@dataclass
class ChainVerdict:
    """The result of checking the audit chain; `first_problem` names the first bad event."""

    events_checked: int = 0
    checkpoints_checked: int = 0
    signatures_checked: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS_HASH
    problems: list[ChainProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_problem(self) -> ChainProblem | None:
        return min(self.problems, key=lambda p: p.seq) if self.problems else None


# An event as stored: its fields in this order (`verify_stored_chain` takes rows selected this way).
STORED_FIELDS = (
    "seq",
    "at",
    "actor",
    "action",
    "object_type",
    "object_id",
    "source",
    "details",
    "prev_hash",
    "hash",
    "signature",
)
_SEQ, _HASH, _SIGNATURE = 0, 9, 10
_stored_fields = operator.attrgetter(*STORED_FIELDS)


def verify_chain(
    events: Iterable[AuditRecord],
    checkpoints: Iterable[AuditCheckpoint],
    verify_signature: Verifier,
    *,
    all_signatures: bool = False,
    max_problems: int = 20,
) -> ChainVerdict:
    """R3/R10/R17: detect an edited, deleted, inserted or reordered audit event.

    `events` must come in stored order (by seq). Every event is re-hashed and its link to the previous
    one checked; seqs must run 1, 2, 3... without gaps. Checkpoint signatures are checked and must match
    the event hash at their seq. Event signatures are checked after the last checkpoint, around every
    break (to name the event that was rewritten), and everywhere if `all_signatures`.
    """
    return verify_stored_chain(
        map(_stored_fields, events),
        checkpoints,
        verify_signature,
        all_signatures=all_signatures,
        max_problems=max_problems,
    )


def verify_stored_chain(
    rows: Iterable[Sequence[Any]],
    checkpoints: Iterable[AuditCheckpoint],
    verify_signature: Verifier,
    *,
    all_signatures: bool = False,
    max_problems: int = 20,
) -> ChainVerdict:
    """`verify_chain` over events given as sequences of their `STORED_FIELDS` in that order (database
    rows selected so): the same checks and verdict, without an attribute lookup per field, which was
    most of the cost of verifying a long log."""
    verdict = ChainVerdict()
    checkpoint_by_seq = {cp.seq: cp for cp in checkpoints}
    last_checkpoint_seq = max(checkpoint_by_seq, default=0)
    for cp in checkpoint_by_seq.values():
        verdict.checkpoints_checked += 1
        if not verify_signature(signed_message_for_checkpoint(cp.seq, cp.head_hash, cp.at), cp.signature):
            verdict.problems.append(ChainProblem(cp.seq, f"checkpoint at event {cp.seq} has a bad signature"))

    problems = verdict.problems
    sha256 = hashlib.sha256
    expected_seq = 1
    prev_hash = GENESIS_HASH
    prev_row: Sequence[Any] | None = None
    events_checked = signatures_checked = 0
    for row in rows:
        if len(problems) >= max_problems:
            break
        (
            seq,
            at,
            actor,
            action,
            object_type,
            object_id,
            source,
            details,
            row_prev_hash,
            row_hash,
            signature,
        ) = row
        events_checked += 1
        if seq != expected_seq:
            what = "missing" if seq > expected_seq else "out of order or duplicated"
            problems.append(
                ChainProblem(expected_seq, f"event {expected_seq} is {what} (found event {seq} in its place)")
            )
        canonical = _canonical(seq, at, actor, action, object_type, object_id, source, details)
        recomputed = sha256(row_prev_hash.encode() + b"\n" + canonical).hexdigest()  # chain_hash, inlined
        if recomputed != row_hash:
            problems.append(
                ChainProblem(seq, f"event {seq} was altered: its content no longer matches its hash")
            )
        elif row_prev_hash != prev_hash:
            problems.append(_explain_broken_link(seq, prev_row, verify_signature))
        if all_signatures or seq > last_checkpoint_seq:
            signatures_checked += 1
            if not verify_signature(signed_message_for_event(row_hash), signature):
                problems.append(ChainProblem(seq, f"event {seq} has a bad signature"))
        checkpoint = checkpoint_by_seq.get(seq)
        if checkpoint is not None and checkpoint.head_hash != row_hash:
            problems.append(
                ChainProblem(seq, f"event {seq} differs from the signed checkpoint at that point")
            )
        expected_seq = seq + 1
        prev_hash = row_hash
        prev_row = row
    verdict.events_checked = events_checked
    verdict.signatures_checked = signatures_checked
    if prev_row is not None:
        verdict.head_seq = prev_row[_SEQ]
        verdict.head_hash = prev_hash
    if last_checkpoint_seq > verdict.head_seq:
        verdict.problems.append(
            ChainProblem(
                verdict.head_seq + 1,
                f"the log ends at event {verdict.head_seq} but a signed checkpoint vouches for event "
                f"{last_checkpoint_seq}: events were deleted from its end",
            )
        )
    return verdict


def _explain_broken_link(
    seq: int, prev_row: Sequence[Any] | None, verify_signature: Verifier
) -> ChainProblem:
    # A link breaks either because this event was moved/inserted, or because the previous event was
    # rewritten together with its hash; the previous event's signature tells which.
    if prev_row is not None and not verify_signature(
        signed_message_for_event(prev_row[_HASH]), prev_row[_SIGNATURE]
    ):
        prev_seq = prev_row[_SEQ]
        return ChainProblem(prev_seq, f"event {prev_seq} was rewritten: its hash is not the one signed")
    return ChainProblem(seq, f"event {seq} does not follow event {seq - 1}: inserted or reordered")
