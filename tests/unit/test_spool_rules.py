"""Store-and-forward as pure rules (issue 18, R1, R3, R10): a spool journal entry quoted into the one
chain is checked against the forwarding station's enrolled key at its original time; a spooled copy is
freed only once the backend holds it and the local keep has passed; above the high-water mark the
station stops clearing recorders. Plain values in memory."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from evidence_store.domain.audit_chain import SignerKey, build_event, format_time
from evidence_store.domain.spool import (
    JournalEntry,
    entry_hash_matches,
    may_free,
    quoted_entry_problems,
    spool_level,
)
from tests.keys import verify_with

T0 = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)
A = Ed25519PrivateKey.generate()
B = Ed25519PrivateKey.generate()


def fp(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def journal(key: Ed25519PrivateKey, count: int = 3) -> list[JournalEntry]:
    """A spool journal of `count` entries signed by `key`, one a minute from T0."""
    entries: list[JournalEntry] = []
    prev: tuple[int, str] | None = None
    for i in range(count):
        event = build_event(
            prev=prev,
            at=T0 + timedelta(minutes=i),
            actor="cli:officer",
            action="clip.stored",
            object_type="clip",
            object_id=str(i + 1),
            source="station:dock-1",
            details={"sha256": f"{i:064x}", "size": 10 + i},
            sign=key.sign,
            key_fingerprint=fp(key),
        )
        prev = (event.seq, event.hash)
        entries.append(
            JournalEntry.from_row(
                [
                    event.seq,
                    event.at,
                    event.actor,
                    event.action,
                    event.object_type,
                    event.object_id,
                    event.source,
                    event.details,
                    event.prev_hash,
                    event.hash,
                    event.signature,
                    event.key_fingerprint,
                ]
            )
        )
    return entries


def keyring(**trust: object) -> dict[str, SignerKey]:
    return {fp(A): SignerKey(fingerprint=fp(A), verify=verify_with(A), name="dock-1", **trust)}  # type: ignore[arg-type]


def check(entries: list[JournalEntry], *, forwarder: str | None = None, **trust: object) -> list[str]:
    return quoted_entry_problems(
        [e.quote() for e in entries],
        forward_seq=50,
        forwarder_fingerprint=forwarder or fp(A),
        keys=keyring(**trust).get,
    )


def test_a_quoted_entry_round_trips_and_verifies() -> None:
    entries = journal(A)
    assert all(entry_hash_matches(e) for e in entries)
    assert [JournalEntry.from_quote(e.quote()) for e in entries] == entries
    assert check(entries) == []


def test_an_altered_quoted_entry_is_named() -> None:
    entries = journal(A)
    entries[1] = dataclasses.replace(entries[1], details=entries[1].details.replace('"size":11', '"size":12'))
    problems = check(entries)
    assert len(problems) == 1 and "spooled entry 2 quoted by event 50 was altered" in problems[0]


def test_an_original_time_moved_is_an_alteration() -> None:
    entries = journal(A)
    entries[0] = dataclasses.replace(entries[0], at=format_time(T0 - timedelta(days=1)))
    assert "was altered" in check(entries)[0]


def test_a_bad_signature_is_named() -> None:
    entries = journal(A)
    entries[2] = dataclasses.replace(
        entries[2], signature=B.sign(b"audit-event:" + bytes.fromhex(entries[2].hash))
    )
    assert check(entries) == ["spooled entry 3 quoted by event 50 has a bad signature"]


def test_a_key_never_enrolled_cannot_vouch_for_its_spool() -> None:
    entries = journal(B)
    problems = check(entries, forwarder=fp(B))
    assert problems and all("never approved for a station" in p for p in problems)


def test_a_station_forwards_only_its_own_spool() -> None:
    problems = check(journal(A), forwarder=fp(B))
    assert problems and all("another station's key" in p for p in problems)


def test_entries_signed_after_the_revocation_fail_and_those_before_stay_valid() -> None:
    entries = journal(A, 3)
    revoked_from = format_time(T0 + timedelta(minutes=1))  # entry 2 (T0+1 min) and later
    problems = check(entries, revoked_from=revoked_from)
    assert [p.split(" quoted")[0] for p in problems] == ["spooled entry 2", "spooled entry 3"]
    assert all("after its revocation" in p for p in problems)


def test_entries_out_of_journal_order_are_named() -> None:
    entries = journal(A)
    problems = check([entries[1], entries[0], entries[2]])
    assert problems == ["spooled entry 1 quoted by event 50 is out of journal order"]


def test_a_quote_that_is_not_an_entry_is_named() -> None:
    problems = quoted_entry_problems(
        [{"seq": 1}], forward_seq=7, forwarder_fingerprint=fp(A), keys=keyring().get
    )
    assert problems == ["spooled entry 1 quoted by event 7 is not a journal entry"]


# -- what may be freed ------------------------------------------------------------------------------


def test_a_copy_not_forwarded_is_never_freed() -> None:
    assert not may_free(forwarded_at=None, backend_holds=True, keep=timedelta(0), now=T0)


def test_a_copy_the_backend_does_not_hold_is_never_freed() -> None:
    assert not may_free(forwarded_at=T0, backend_holds=False, keep=timedelta(0), now=T0 + timedelta(days=9))


def test_a_forwarded_copy_is_kept_for_the_local_keep_then_freed() -> None:
    keep = timedelta(hours=24)
    assert not may_free(forwarded_at=T0, backend_holds=True, keep=keep, now=T0 + keep - timedelta(seconds=1))
    assert may_free(forwarded_at=T0, backend_holds=True, keep=keep, now=T0 + keep)
    assert may_free(forwarded_at=T0, backend_holds=True, keep=timedelta(0), now=T0)


# -- the high-water mark ----------------------------------------------------------------------------


def test_below_the_high_water_mark_recorders_are_cleared() -> None:
    level = spool_level(999, 1000)
    assert not level.over_high_water and level.may_clear_recorders
    assert "ok" in level.describe()


def test_at_or_over_the_high_water_mark_recorders_are_not_cleared() -> None:
    for held in (1000, 5000):
        level = spool_level(held, 1000)
        assert level.over_high_water and not level.may_clear_recorders
        assert "recorders are not cleared" in level.describe()


def test_a_zero_high_water_mark_never_clears_from_the_spool() -> None:
    assert not spool_level(0, 0).may_clear_recorders
