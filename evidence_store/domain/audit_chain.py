"""The tamper-evident audit chain (R3, R10, R17), as pure functions.

Each event is serialised canonically and chained: ``hash = sha256(prev_hash + "\\n" + canonical)``.
Each event hash is signed with the station key, and every so often a checkpoint signs the head of the
chain. Because an event hash commits to every event before it, one valid checkpoint signature vouches
for the whole chain up to that point; `verify_chain` therefore re-hashes every event but only checks the
signatures of checkpoints and of events after the last checkpoint (or every signature on request).

Several stations may append to one chain (issue 18). Each event names the key that signed it
(`key_fingerprint`, covered by its hash) and each checkpoint the key that signed it; verification is
given a key lookup (fingerprint -> `SignerKey`: its verifier, from which event it is trusted and from
when it is revoked) instead of one verifier. Events written before events named their signer carry an
empty fingerprint and keep their old hashed form, so existing chains verify unchanged; the lookup maps
the empty fingerprint to the key that wrote them (the first station, see `domain.stations`).

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
    @property
    def key_fingerprint(self) -> str: ...


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
    # the key that signed it; "" for events written before events named their signer (hashed without it)
    key_fingerprint: str = ""


@dataclass(eq=False, kw_only=True)
class AuditCheckpoint:
    """A signature over the chain head at `seq`, vouching for every event up to it."""

    id: int | None = None
    seq: int
    head_hash: str
    at: str
    key_fingerprint: str
    signature: bytes


@dataclass(frozen=True, kw_only=True)
class SignerKey:
    """A key the chain may be signed with, as its station was enrolled (R17, issue 18)."""

    fingerprint: str
    verify: Verifier
    name: str = ""
    public_key: str = ""  # PEM, so that an export can carry the key of each station it quotes
    # the event that approved the key: anything it signed before that event is not trusted
    trusted_from_seq: int = 0
    # canonical time text: anything it signed at or after this time is not trusted
    revoked_from: str | None = None
    # the event that recorded the revocation: nothing after it may be signed by the key, whatever time
    # it claims (a thief holding the key could date an event before `revoked_from`)
    revoked_after_seq: int | None = None

    @property
    def label(self) -> str:
        return f"station {self.name}'s key" if self.name else f"key {self.fingerprint[:16]}"


# fingerprint ("" for an event that names no signer) -> the enrolled key, or None for a key never approved
KeyLookup = Callable[[str], SignerKey | None]


def single_key(verify_signature: Verifier, fingerprint: str | None = None) -> KeyLookup:
    """The lookup of a one-key chain: `verify_signature` for every signer (or only for `fingerprint`
    and for events that name none, when it is given)."""
    key = SignerKey(fingerprint=fingerprint or "", verify=verify_signature)
    if fingerprint is None:
        return lambda _fingerprint: key
    return {fingerprint: key, "": key}.get


def signer_problem(key: SignerKey | None, fingerprint: str, seq: int, at: str, what: str) -> str | None:
    """R17: why `key` may not have signed `what` (an event or a checkpoint at `seq`, made at `at`), or
    None when it may."""
    if key is None:
        named = f" ({fingerprint[:16]}…)" if fingerprint else " (it names no signer)"
        return f"{what} was signed by another key{named}, never approved for a station"
    if seq < key.trusted_from_seq:
        return f"{what} was signed by {key.label} before it was approved (at event {key.trusted_from_seq})"
    if _revoked(key, seq, at):
        return f"{what} was signed by {key.label} after its revocation from {key.revoked_from}"
    return None


def _revoked(key: SignerKey, seq: int, at: str) -> bool:
    # canonical times are fixed-width UTC text: comparing the text compares the times
    if key.revoked_from is None:
        return False
    return at >= key.revoked_from or (key.revoked_after_seq is not None and seq > key.revoked_after_seq)


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
        record.key_fingerprint,
    )


# The function json.dumps(..., ensure_ascii=False) escapes each string with (the C one when available).
_json_string = json.encoder.encode_basestring


def _canonical(
    seq: Any,
    at: Any,
    actor: Any,
    action: Any,
    object_type: Any,
    object_id: Any,
    source: Any,
    details: Any,
    key_fingerprint: Any = "",
) -> bytes:
    """``json.dumps([seq, at, actor, action, object_type, object_id, source, details],
    separators=(",", ":"), ensure_ascii=False).encode()``: the hashed form, which must never change.
    An event that names its signer has the fingerprint as a ninth element, so the hash covers who
    signed it; one that names none (written before events did) keeps the eight-element form.

    When `seq` is an int and the rest are strings (always, for events built here or read from the
    database) the same text is assembled directly, as json's encoder does it (int repr, json's own
    string escaping, commas), in about half the time; anything else goes through json.dumps itself.
    """
    if type(seq) is int:
        try:
            signer = f",{_json_string(key_fingerprint)}" if key_fingerprint else ""
            return (
                f"[{int.__repr__(seq)},{_json_string(at)},{_json_string(actor)},{_json_string(action)},"
                f"{_json_string(object_type)},{_json_string(object_id)},{_json_string(source)},"
                f"{_json_string(details)}{signer}]"
            ).encode()
        except TypeError:  # a field that is not a string: json decides how it looks
            pass
    fields = [seq, at, actor, action, object_type, object_id, source, details]
    if key_fingerprint:
        fields.append(key_fingerprint)
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()


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
    key_fingerprint: str = "",
) -> AuditEvent:
    """Make the next event of the chain after `prev` (its seq and hash; None for the first event),
    naming `key_fingerprint` (the key of `sign`) as its signer (R3, R17)."""
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
        key_fingerprint=key_fingerprint,
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
    "key_fingerprint",
)
_SEQ, _AT, _HASH, _SIGNATURE, _SIGNER = 0, 1, 9, 10, 11
_stored_fields = operator.attrgetter(*STORED_FIELDS)


def verify_chain(
    events: Iterable[AuditRecord],
    checkpoints: Iterable[AuditCheckpoint],
    verify_signature: Verifier | None = None,
    *,
    keys: KeyLookup | None = None,
    all_signatures: bool = False,
    max_problems: int = 20,
) -> ChainVerdict:
    """R3/R10/R17: detect an edited, deleted, inserted or reordered audit event, and one signed by a key
    that was not approved or was revoked at that point (issue 18).

    `events` must come in stored order (by seq). Every event is re-hashed and its link to the previous
    one checked; seqs must run 1, 2, 3... without gaps. Every event's and checkpoint's signer must be an
    approved, unrevoked key of `keys` (or every signature is checked with `verify_signature`, the one-key
    form). Checkpoint signatures are checked and must match the event hash at their seq. Event
    signatures are checked after the last checkpoint, around every break (to name the event that was
    rewritten), and everywhere if `all_signatures`.
    """
    return verify_stored_chain(
        map(_stored_fields, events),
        checkpoints,
        verify_signature,
        keys=keys,
        all_signatures=all_signatures,
        max_problems=max_problems,
    )


def verify_stored_chain(
    rows: Iterable[Sequence[Any]],
    checkpoints: Iterable[AuditCheckpoint],
    verify_signature: Verifier | None = None,
    *,
    keys: KeyLookup | None = None,
    all_signatures: bool = False,
    max_problems: int = 20,
) -> ChainVerdict:
    """`verify_chain` over events given as sequences of their `STORED_FIELDS` in that order (database
    rows selected so): the same checks and verdict, without an attribute lookup per field, which was
    most of the cost of verifying a long log."""
    keys = _lookup(verify_signature, keys)
    verdict = ChainVerdict()
    checkpoint_by_seq = {cp.seq: cp for cp in checkpoints}
    last_checkpoint_seq = max(checkpoint_by_seq, default=0)
    _check_checkpoints(checkpoint_by_seq.values(), keys, verdict)

    problems = verdict.problems
    sha256 = hashlib.sha256
    expected_seq = 1
    prev_hash = GENESIS_HASH
    prev_row: Sequence[Any] | None = None
    events_checked = signatures_checked = 0
    # consecutive events are mostly signed by one station: look its key up once per run of them
    signer_fingerprint: str | None = None
    signer: SignerKey | None = None
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
            fingerprint,
        ) = row
        events_checked += 1
        if seq != expected_seq:
            what = "missing" if seq > expected_seq else "out of order or duplicated"
            problems.append(
                ChainProblem(expected_seq, f"event {expected_seq} is {what} (found event {seq} in its place)")
            )
        canonical = _canonical(seq, at, actor, action, object_type, object_id, source, details, fingerprint)
        recomputed = sha256(row_prev_hash.encode() + b"\n" + canonical).hexdigest()  # chain_hash, inlined
        if recomputed != row_hash:
            problems.append(
                ChainProblem(seq, f"event {seq} was altered: its content no longer matches its hash")
            )
        elif row_prev_hash != prev_hash:
            problems.append(_explain_broken_link(seq, prev_row, keys))
        if fingerprint != signer_fingerprint:
            signer_fingerprint, signer = fingerprint, keys(fingerprint)
        if signer is None or seq < signer.trusted_from_seq or _revoked(signer, seq, at):
            refused = signer_problem(signer, fingerprint, seq, at, f"event {seq}")
            problems.append(ChainProblem(seq, refused or f"event {seq} has an untrusted signer"))
        elif all_signatures or seq > last_checkpoint_seq:
            signatures_checked += 1
            if not signer.verify(signed_message_for_event(row_hash), signature):
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
    _check_end(verdict, last_checkpoint_seq)
    return verdict


def _lookup(verify_signature: Verifier | None, keys: KeyLookup | None) -> KeyLookup:
    if keys is not None:
        return keys
    if verify_signature is None:
        raise TypeError("verifying the chain needs verify_signature or keys")
    return single_key(verify_signature)


def _check_end(verdict: ChainVerdict, last_checkpoint_seq: int) -> None:
    if last_checkpoint_seq > verdict.head_seq:
        verdict.problems.append(
            ChainProblem(
                verdict.head_seq + 1,
                f"the log ends at event {verdict.head_seq} but a signed checkpoint vouches for event "
                f"{last_checkpoint_seq}: events were deleted from its end",
            )
        )


def _check_checkpoints(
    checkpoints: Iterable[AuditCheckpoint], keys: KeyLookup, verdict: ChainVerdict
) -> None:
    """Each checkpoint must be signed, validly, by a key approved and not revoked at that point."""
    for cp in checkpoints:
        verdict.checkpoints_checked += 1
        what = f"checkpoint at event {cp.seq}"
        key = keys(cp.key_fingerprint)
        refused = signer_problem(key, cp.key_fingerprint, cp.seq, cp.at, what)
        if refused is not None:
            verdict.problems.append(ChainProblem(cp.seq, refused))
        elif key is not None and not key.verify(
            signed_message_for_checkpoint(cp.seq, cp.head_hash, cp.at), cp.signature
        ):
            verdict.problems.append(ChainProblem(cp.seq, f"{what} has a bad signature"))


def _explain_broken_link(seq: int, prev_row: Sequence[Any] | None, keys: KeyLookup) -> ChainProblem:
    # A link breaks either because this event was moved/inserted, or because the previous event was
    # rewritten together with its hash; the previous event's signature tells which.
    if prev_row is not None:
        key = keys(prev_row[_SIGNER])
        if key is None or not key.verify(signed_message_for_event(prev_row[_HASH]), prev_row[_SIGNATURE]):
            prev_seq = prev_row[_SEQ]
            return ChainProblem(prev_seq, f"event {prev_seq} was rewritten: its hash is not the one signed")
    return ChainProblem(seq, f"event {seq} does not follow event {seq - 1}: inserted or reordered")
