"""One chain written by several stations (issue 18): every event names the key that signed it, and the
chain is checked against a key lookup (fingerprint -> enrolled key, its approval and its revocation)
instead of one key (R3, R10, R17). Pure: plain events and keys in memory."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from evidence_store.domain.audit_chain import (
    AuditCheckpoint,
    AuditEvent,
    SignerKey,
    build_checkpoint,
    build_event,
    canonical_bytes,
    chain_hash,
    format_time,
    verify_chain,
)
from evidence_store.domain.stations import (
    STATION_APPROVED,
    STATION_REVOKED,
    KeyEvent,
    build_keyring,
    station_state,
)
from tests.keys import verify_with

T0 = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
A = Ed25519PrivateKey.generate()
B = Ed25519PrivateKey.generate()
C = Ed25519PrivateKey.generate()


def raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fp(key: Ed25519PrivateKey) -> str:
    return hashlib.sha256(raw(key)).hexdigest()


def signer(key: Ed25519PrivateKey, name: str, **trust) -> SignerKey:
    return SignerKey(fingerprint=fp(key), verify=verify_with(key), name=name, **trust)


def chain(
    writers: list[Ed25519PrivateKey | None], *, checkpoint_every: int = 0
) -> tuple[list[AuditEvent], list[AuditCheckpoint]]:
    """Event i (seq i+1, at T0 + i minutes) signed by writers[i]; None: an event from before events named
    their signer (no fingerprint, signed by A)."""
    events: list[AuditEvent] = []
    checkpoints: list[AuditCheckpoint] = []
    for i, writer in enumerate(writers):
        key = writer or A
        event = build_event(
            prev=(events[-1].seq, events[-1].hash) if events else None,
            at=T0 + timedelta(minutes=i),
            actor="cli:custodian",
            action="clip.viewed",
            object_type="clip",
            object_id=str(i),
            source="station:test",
            details={"i": i},
            key_fingerprint=fp(writer) if writer is not None else "",
            sign=key.sign,
        )
        events.append(event)
        if checkpoint_every and event.seq % checkpoint_every == 0:
            checkpoints.append(
                build_checkpoint(
                    seq=event.seq,
                    head_hash=event.hash,
                    at=T0 + timedelta(minutes=i),
                    key_fingerprint=fp(key),
                    sign=key.sign,
                )
            )
    return events, checkpoints


def lookup(*keys: SignerKey, legacy: SignerKey | None = None):
    by_fingerprint = {k.fingerprint: k for k in keys}
    if legacy is not None:
        by_fingerprint[""] = legacy
    return by_fingerprint.get


def test_events_of_two_stations_verify_each_against_its_own_key() -> None:
    events, checkpoints = chain([A, B, A, B, B, A, B], checkpoint_every=3)
    keys = lookup(signer(A, "dock-a"), signer(B, "dock-b"))
    verdict = verify_chain(events, checkpoints, keys=keys, all_signatures=True)
    assert verdict.ok, verdict.problems
    assert (verdict.signatures_checked, verdict.checkpoints_checked) == (7, 2)
    assert verify_chain(events, checkpoints, keys=keys).ok  # default: checkpoints vouch for 1..6


def test_one_key_for_everything_still_fails_on_the_other_stations_events() -> None:
    """The bug of issue 18: checked against one station's key, the other's signatures look forged."""
    events, checkpoints = chain([A, B, A, B], checkpoint_every=2)
    verdict = verify_chain(events, checkpoints, verify_with(A))
    assert not verdict.ok


def test_the_signer_is_covered_by_the_hash() -> None:
    events, checkpoints = chain([A, B, A])
    keys = lookup(signer(A, "dock-a"), signer(B, "dock-b"))
    # naming another enrolled station as the signer is an edit of the event
    events[1] = dataclasses.replace(events[1], key_fingerprint=fp(A))
    verdict = verify_chain(events, checkpoints, keys=keys)
    assert verdict.first_problem is not None and verdict.first_problem.seq == 2
    assert "altered" in verdict.first_problem.reason


def test_removing_the_signer_is_an_edit_too() -> None:
    events, checkpoints = chain([A, A, A])
    keys = lookup(signer(A, "dock-a"), legacy=signer(A, "dock-a"))
    events[2] = dataclasses.replace(events[2], key_fingerprint="")
    verdict = verify_chain(events, checkpoints, keys=keys)
    assert verdict.first_problem is not None and verdict.first_problem.seq == 3
    assert "altered" in verdict.first_problem.reason


def test_an_event_without_a_signer_keeps_its_old_hashed_form_and_verifies_with_the_legacy_key() -> None:
    events, checkpoints = chain([None, None, A, B], checkpoint_every=2)
    old = events[0]
    assert canonical_bytes(old) == (
        f'[1,"{old.at}","cli:custodian","clip.viewed","clip","0","station:test","{{\\"i\\":0}}"]'.encode()
    )
    assert events[2].hash == chain_hash(events[1].hash, canonical_bytes(events[2]))
    assert canonical_bytes(events[2]).endswith(f',"{fp(A)}"]'.encode())
    keys = lookup(signer(A, "dock-a"), signer(B, "dock-b"), legacy=signer(A, "dock-a"))
    assert verify_chain(events, checkpoints, keys=keys, all_signatures=True).ok
    # without a legacy key, an event that names no signer names no enrolled key
    verdict = verify_chain(events, checkpoints, keys=lookup(signer(A, "dock-a"), signer(B, "dock-b")))
    assert verdict.first_problem is not None and verdict.first_problem.seq == 1


def test_an_event_signed_by_a_key_never_enrolled_is_named() -> None:
    events, checkpoints = chain([A, A, C, A], checkpoint_every=4)
    verdict = verify_chain(events, checkpoints, keys=lookup(signer(A, "dock-a")))
    assert [p.seq for p in verdict.problems] == [3]
    assert "event 3 was signed by another key" in verdict.problems[0].reason
    assert "never approved" in verdict.problems[0].reason
    assert fp(C)[:16] in verdict.problems[0].reason


def test_a_checkpoint_signed_by_a_key_never_enrolled_is_named() -> None:
    events, checkpoints = chain([A, A, C, C], checkpoint_every=2)
    verdict = verify_chain(events, checkpoints, keys=lookup(signer(A, "dock-a")))
    reasons = [p.reason for p in verdict.problems]
    assert "checkpoint at event 4 was signed by another key" in " ".join(reasons)


def test_revocation_from_a_time_keeps_what_was_signed_before() -> None:
    events, checkpoints = chain([A, B, A, B, A, B, A], checkpoint_every=2)
    revoked_from = format_time(T0 + timedelta(minutes=3))  # event 4 (B) was signed at that time
    keys = lookup(signer(A, "dock-a"), signer(B, "dock-b", revoked_from=revoked_from))
    verdict = verify_chain(events, checkpoints, keys=keys)
    assert verdict.first_problem is not None and verdict.first_problem.seq == 4
    assert "event 4 was signed by station dock-b's key after its revocation" in verdict.first_problem.reason
    # event 2 (B, before) is valid; events 4 and 6 (B, after) and B's checkpoints after are not
    assert {p.seq for p in verdict.problems} == {4, 6}
    assert not any(p.seq == 2 for p in verdict.problems)


def test_an_event_backdated_after_its_keys_revocation_is_caught_by_its_place_in_the_chain() -> None:
    events, checkpoints = chain([A, B, A, A])
    # the revocation is recorded at event 3; a thief with B's key appends event 5 dated before it
    keys = lookup(
        signer(A, "dock-a"),
        signer(B, "dock-b", revoked_from=format_time(T0 + timedelta(minutes=2)), revoked_after_seq=3),
    )
    thief = build_event(
        prev=(events[-1].seq, events[-1].hash),
        at=T0,
        actor="x",
        action="clip.viewed",
        object_type="clip",
        object_id="1",
        source="s",
        details={},
        key_fingerprint=fp(B),
        sign=B.sign,
    )
    verdict = verify_chain([*events, thief], checkpoints, keys=keys)
    assert [p.seq for p in verdict.problems] == [5]
    assert "revocation" in verdict.problems[0].reason


def test_a_key_signing_before_its_approval_is_named() -> None:
    events, checkpoints = chain([A, B, A, B])
    keys = lookup(signer(A, "dock-a"), signer(B, "dock-b", trusted_from_seq=3))
    verdict = verify_chain(events, checkpoints, keys=keys)
    assert [p.seq for p in verdict.problems] == [2]
    assert "before it was approved" in verdict.problems[0].reason


# -- the keyring, as the chain's own station events state it -----------------------------------------


def pem(key: Ed25519PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def load(text: str) -> tuple[str, object]:
    public = serialization.load_pem_public_key(text.encode())
    digest = hashlib.sha256(
        public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    ).hexdigest()

    def verify(message: bytes, signature: bytes) -> bool:
        try:
            public.verify(signature, message)  # type: ignore[union-attr]
        except InvalidSignature:
            return False
        return True

    return digest, verify


def approval(seq: int, by: Ed25519PrivateKey | None, key: Ed25519PrivateKey, name: str) -> KeyEvent:
    return KeyEvent(
        seq=seq,
        at=format_time(T0 + timedelta(minutes=seq)),
        signer=fp(by) if by is not None else "",
        action=STATION_APPROVED,
        details={"fingerprint": fp(key), "public_key": pem(key), "name": name},
    )


def test_the_first_station_approves_itself_and_then_approves_the_others() -> None:
    keyring = build_keyring(
        [approval(3, A, A, "dock-a"), approval(7, A, B, "dock-b")], load_public_key=load, fallback=None
    )
    assert not keyring.problems
    a, b = keyring.lookup(fp(A)), keyring.lookup(fp(B))
    assert a is not None and (a.name, a.trusted_from_seq) == ("dock-a", 0)
    assert b is not None and (b.name, b.trusted_from_seq) == ("dock-b", 7)
    assert keyring.lookup("") is a  # events from before events named their signer: the first station
    assert keyring.lookup(fp(C)) is None


def test_a_station_cannot_approve_itself_once_trust_is_bootstrapped() -> None:
    keyring = build_keyring(
        [approval(1, A, A, "dock-a"), approval(5, C, C, "intruder")], load_public_key=load, fallback=None
    )
    assert keyring.lookup(fp(C)) is None
    assert [p.seq for p in keyring.problems] == [5]
    assert "not signed by an approved station" in keyring.problems[0].reason


def test_an_approval_whose_key_does_not_match_its_fingerprint_is_refused() -> None:
    bad = approval(5, A, B, "dock-b")
    bad = dataclasses.replace(bad, details={**bad.details, "fingerprint": fp(C)})
    keyring = build_keyring([approval(1, A, A, "dock-a"), bad], load_public_key=load, fallback=None)
    assert keyring.lookup(fp(B)) is None and keyring.lookup(fp(C)) is None
    assert [p.seq for p in keyring.problems] == [5]


def test_a_revocation_sets_the_time_and_the_place_in_the_chain() -> None:
    revoked_from = format_time(T0 + timedelta(minutes=8))
    revocation = KeyEvent(
        seq=9,
        at=format_time(T0 + timedelta(minutes=9)),
        signer=fp(A),
        action=STATION_REVOKED,
        details={"fingerprint": fp(B), "revoked_from": revoked_from},
    )
    keyring = build_keyring(
        [approval(1, A, A, "dock-a"), approval(4, A, B, "dock-b"), revocation],
        load_public_key=load,
        fallback=None,
    )
    b = keyring.lookup(fp(B))
    assert b is not None and (b.revoked_from, b.revoked_after_seq) == (revoked_from, 9)


def test_without_station_events_the_local_key_signs_everything() -> None:
    local = signer(A, "this station")
    keyring = build_keyring([], load_public_key=load, fallback=local)
    assert keyring.lookup(fp(A)) is local and keyring.lookup("") is local
    assert keyring.lookup(fp(B)) is None


def test_a_station_stands_revoked_approved_or_waiting() -> None:
    assert station_state(approved=True, revoked=False) == "approved"
    assert station_state(approved=False, revoked=False) == "waiting"
    # a revoked key is revoked whether or not it was ever approved
    assert station_state(approved=True, revoked=True) == "revoked"
    assert station_state(approved=False, revoked=True) == "revoked"
