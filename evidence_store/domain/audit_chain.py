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
from collections.abc import Callable, Iterable, Iterator
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
    return json.dumps(
        [
            record.seq,
            record.at,
            record.actor,
            record.action,
            record.object_type,
            record.object_id,
            record.source,
            record.details,
        ],
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
    verdict = ChainVerdict()
    checkpoint_by_seq = {cp.seq: cp for cp in checkpoints}
    last_checkpoint_seq = max(checkpoint_by_seq, default=0)
    for cp in checkpoint_by_seq.values():
        verdict.checkpoints_checked += 1
        if not verify_signature(signed_message_for_checkpoint(cp.seq, cp.head_hash, cp.at), cp.signature):
            verdict.problems.append(ChainProblem(cp.seq, f"checkpoint at event {cp.seq} has a bad signature"))

    expected_seq = 1
    prev_hash = GENESIS_HASH
    prev_event: AuditRecord | None = None
    for event in _bounded(events, verdict, max_problems):
        verdict.events_checked += 1
        if event.seq != expected_seq:
            what = "missing" if event.seq > expected_seq else "out of order or duplicated"
            verdict.problems.append(
                ChainProblem(
                    expected_seq, f"event {expected_seq} is {what} (found event {event.seq} in its place)"
                )
            )
        recomputed = chain_hash(event.prev_hash, canonical_bytes(event))
        if recomputed != event.hash:
            verdict.problems.append(
                ChainProblem(
                    event.seq, f"event {event.seq} was altered: its content no longer matches its hash"
                )
            )
        elif event.prev_hash != prev_hash:
            verdict.problems.append(_explain_broken_link(event, prev_event, verify_signature))
        check_signature = all_signatures or event.seq > last_checkpoint_seq
        if check_signature:
            verdict.signatures_checked += 1
            if not verify_signature(signed_message_for_event(event.hash), event.signature):
                verdict.problems.append(ChainProblem(event.seq, f"event {event.seq} has a bad signature"))
        checkpoint = checkpoint_by_seq.get(event.seq)
        if checkpoint is not None and checkpoint.head_hash != event.hash:
            verdict.problems.append(
                ChainProblem(event.seq, f"event {event.seq} differs from the signed checkpoint at that point")
            )
        expected_seq = event.seq + 1
        prev_hash = event.hash
        prev_event = event
        verdict.head_seq = event.seq
        verdict.head_hash = event.hash
    if last_checkpoint_seq > verdict.head_seq:
        verdict.problems.append(
            ChainProblem(
                verdict.head_seq + 1,
                f"the log ends at event {verdict.head_seq} but a signed checkpoint vouches for event "
                f"{last_checkpoint_seq}: events were deleted from its end",
            )
        )
    return verdict


def _bounded(
    events: Iterable[AuditRecord], verdict: ChainVerdict, max_problems: int
) -> Iterator[AuditRecord]:
    for event in events:
        if len(verdict.problems) >= max_problems:
            return
        yield event


def _explain_broken_link(
    event: AuditRecord, prev_event: AuditRecord | None, verify_signature: Verifier
) -> ChainProblem:
    # A link breaks either because this event was moved/inserted, or because the previous event was
    # rewritten together with its hash; the previous event's signature tells which.
    if prev_event is not None and not verify_signature(
        signed_message_for_event(prev_event.hash), prev_event.signature
    ):
        return ChainProblem(
            prev_event.seq, f"event {prev_event.seq} was rewritten: its hash is not the one signed"
        )
    return ChainProblem(
        event.seq, f"event {event.seq} does not follow event {event.seq - 1}: inserted or reordered"
    )
