"""The audit chain rules (R3, R10, R17) over plain events, with a real Ed25519 key in memory."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from evidence_store.domain.audit_chain import (
    GENESIS_HASH,
    AuditCheckpoint,
    AuditEvent,
    _canonical,
    build_checkpoint,
    build_event,
    canonical_bytes,
    chain_hash,
    verify_chain,
)
from tests.keys import verify_with

KEY = Ed25519PrivateKey.generate()
OTHER_KEY = Ed25519PrivateKey.generate()
T0 = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


def make_chain(n: int, *, checkpoint_every: int = 0) -> tuple[list[AuditEvent], list[AuditCheckpoint]]:
    events: list[AuditEvent] = []
    checkpoints: list[AuditCheckpoint] = []
    for i in range(n):
        prev = (events[-1].seq, events[-1].hash) if events else None
        event = build_event(
            prev=prev,
            at=T0 + timedelta(seconds=i),
            actor="cli:custodian",
            action="clip.viewed",
            object_type="clip",
            object_id=str(i),
            source="station:test",
            details={"n": i, "名": "检查"},
            sign=KEY.sign,
        )
        events.append(event)
        if checkpoint_every and event.seq % checkpoint_every == 0:
            checkpoints.append(
                build_checkpoint(
                    seq=event.seq, head_hash=event.hash, at=T0, key_fingerprint="k", sign=KEY.sign
                )
            )
    return events, checkpoints


def test_an_untouched_chain_verifies() -> None:
    events, checkpoints = make_chain(25, checkpoint_every=10)
    verdict = verify_chain(events, checkpoints, verify_with(KEY))
    assert verdict.ok, verdict.problems
    assert verdict.events_checked == 25
    assert verdict.head_seq == 25
    assert verdict.checkpoints_checked == 2
    # checkpoints vouch for 1..20; only the 5 events after the last checkpoint need their own signature
    assert verdict.signatures_checked == 5


def test_the_first_event_links_to_genesis_and_hash_covers_content() -> None:
    events, _ = make_chain(2)
    assert events[0].prev_hash == GENESIS_HASH
    assert events[1].prev_hash == events[0].hash
    assert events[0].hash == chain_hash(GENESIS_HASH, canonical_bytes(events[0]))


def test_an_edited_event_is_named() -> None:
    events, checkpoints = make_chain(30, checkpoint_every=10)
    events[16] = dataclasses.replace(events[16], details='{"n":999}')
    verdict = verify_chain(events, checkpoints, verify_with(KEY))
    assert not verdict.ok
    assert verdict.first_problem is not None
    assert verdict.first_problem.seq == 17
    assert "altered" in verdict.first_problem.reason


def test_an_edit_with_a_recomputed_hash_is_caught_by_signature_and_named() -> None:
    events, checkpoints = make_chain(30, checkpoint_every=10)
    forged = dataclasses.replace(events[16], actor="someone-else")
    forged.hash = chain_hash(forged.prev_hash, canonical_bytes(forged))
    events[16] = forged
    verdict = verify_chain(events, checkpoints, verify_with(KEY))
    assert verdict.first_problem is not None
    assert verdict.first_problem.seq == 17
    assert "rewritten" in verdict.first_problem.reason


def test_a_fully_recomputed_chain_fails_on_the_checkpoint_signatures() -> None:
    events, checkpoints = make_chain(20, checkpoint_every=10)
    # An attacker without the station key rewrites event 3 and re-chains and re-signs everything with
    # their own key: the checkpoint (signed by the station) no longer matches.
    rebuilt: list[AuditEvent] = []
    for event in events:
        changed = dataclasses.replace(event, actor="forger") if event.seq == 3 else event
        prev_hash = rebuilt[-1].hash if rebuilt else GENESIS_HASH
        changed = dataclasses.replace(changed, prev_hash=prev_hash)
        changed.hash = chain_hash(prev_hash, canonical_bytes(changed))
        changed.signature = OTHER_KEY.sign(b"audit-event:" + bytes.fromhex(changed.hash))
        rebuilt.append(changed)
    verdict = verify_chain(rebuilt, checkpoints, verify_with(KEY))
    assert not verdict.ok
    assert any("checkpoint" in p.reason for p in verdict.problems)


def test_a_deleted_event_is_named() -> None:
    events, checkpoints = make_chain(15, checkpoint_every=10)
    del events[6]
    verdict = verify_chain(events, checkpoints, verify_with(KEY))
    assert verdict.first_problem is not None
    assert verdict.first_problem.seq == 7
    assert "missing" in verdict.first_problem.reason


def test_swapped_events_are_named() -> None:
    events, checkpoints = make_chain(15, checkpoint_every=10)
    events[4], events[5] = events[5], events[4]
    verdict = verify_chain(events, checkpoints, verify_with(KEY))
    assert verdict.first_problem is not None
    assert verdict.first_problem.seq == 5


def test_an_inserted_event_is_caught() -> None:
    events, checkpoints = make_chain(12, checkpoint_every=10)
    intruder = build_event(
        prev=(events[10].seq, events[10].hash),
        at=T0,
        actor="x",
        action="clip.deleted",
        object_type="clip",
        object_id="1",
        source="s",
        details=None,
        sign=OTHER_KEY.sign,
    )
    events.insert(11, intruder)
    verdict = verify_chain(events, checkpoints, verify_with(KEY))
    assert not verdict.ok
    assert verdict.first_problem is not None
    assert verdict.first_problem.seq == 12


def test_truncating_below_a_checkpoint_is_caught() -> None:
    events, checkpoints = make_chain(20, checkpoint_every=10)
    verdict = verify_chain(events[:15], checkpoints, verify_with(KEY))
    assert not verdict.ok
    assert "deleted from its end" in verdict.problems[-1].reason


def test_a_forged_tail_event_fails_its_signature() -> None:
    events, checkpoints = make_chain(12, checkpoint_every=10)
    tail = build_event(
        prev=(events[-1].seq, events[-1].hash),
        at=T0,
        actor="x",
        action="a",
        object_type="clip",
        object_id="1",
        source="s",
        details=None,
        sign=OTHER_KEY.sign,
    )
    verdict = verify_chain([*events, tail], checkpoints, verify_with(KEY))
    assert verdict.first_problem is not None
    assert verdict.first_problem.seq == 13
    assert "signature" in verdict.first_problem.reason


def test_all_signatures_mode_checks_every_event() -> None:
    events, checkpoints = make_chain(25, checkpoint_every=10)
    verdict = verify_chain(events, checkpoints, verify_with(KEY), all_signatures=True)
    assert verdict.ok
    assert verdict.signatures_checked == 25


def test_canonical_form_is_stable_text() -> None:
    event = build_event(
        prev=None,
        at=T0,
        actor="a",
        action="b",
        object_type="c",
        object_id="1",
        source="s",
        details={"z": 1, "a": "检查"},
        sign=KEY.sign,
    )
    assert event.at == "2026-11-24T08:00:00.000000Z"
    assert event.details == '{"a":"检查","z":1}'
    assert (
        canonical_bytes(event)
        == '[1,"2026-11-24T08:00:00.000000Z","a","b","c","1","s","{\\"a\\":\\"检查\\",\\"z\\":1}"]'.encode()
    )


@given(
    seq=st.integers(min_value=0, max_value=2**62),
    fields=st.lists(st.text(), min_size=7, max_size=7),
)
def test_the_fast_canonical_form_is_byte_for_byte_json_dumps(seq: int, fields: list[str]) -> None:
    """The hashed form must never change: the direct assembly equals json.dumps for any text."""
    import json

    expected = json.dumps([seq, *fields], separators=(",", ":"), ensure_ascii=False).encode()
    assert _canonical(seq, *fields) == expected
