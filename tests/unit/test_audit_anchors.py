"""compare_anchors: the anchored checkpoints against the stored log (R3, R10)."""

from __future__ import annotations

import hashlib

from evidence_store.domain.audit_anchors import RESTORED_FROM_BACKUP, Anchor, compare_anchors
from evidence_store.domain.audit_chain import signed_message_for_checkpoint

FINGERPRINT = "f" * 64


def sign(message: bytes) -> bytes:
    return hashlib.sha256(b"key" + message).digest()


def verify(message: bytes, signature: bytes) -> bool:
    return sign(message) == signature


def head(seq: int) -> str:
    return hashlib.sha256(str(seq).encode()).hexdigest()


def anchor(seq: int, head_hash: str | None = None, place: str = "file") -> Anchor:
    head_hash = head_hash or head(seq)
    at = "2026-12-04T10:00:00.000000Z"
    return Anchor(
        seq=seq,
        head_hash=head_hash,
        at=at,
        key_fingerprint=FINGERPRINT,
        signature=sign(signed_message_for_checkpoint(seq, head_hash, at)),
        place=place,
    )


def compare(anchors: list[Anchor], head_seq: int, checkpoints: list[int] | None = None):  # type: ignore[no-untyped-def]
    stored = {a.seq: head(a.seq) for a in anchors if a.seq <= head_seq}
    cps = checkpoints if checkpoints is not None else [a.seq for a in anchors if a.seq <= head_seq]
    return compare_anchors(
        anchors,
        head_seq=head_seq,
        event_hashes=stored,
        checkpoint_hashes={seq: head(seq) for seq in cps},
        verify_signature=verify,
        key_fingerprint=FINGERPRINT,
    )


def test_matching_anchors_are_clean() -> None:
    verdict = compare([anchor(10), anchor(20)], head_seq=25)
    assert verdict.ok and verdict.newest_anchored_seq == 20 and verdict.anchors_checked == 2


def test_removed_checkpoints_and_tail_are_problems_not_a_backup() -> None:
    verdict = compare([anchor(10), anchor(20), anchor(30)], head_seq=25, checkpoints=[])
    assert not verdict.ok and not verdict.behind_backup
    reasons = [p.reason for p in verdict.problems]
    assert any("checkpoint at event 10 was removed" in r for r in reasons)
    assert any("vouches for event 30" in r for r in reasons)


def test_a_consistent_older_state_is_a_restored_backup() -> None:
    verdict = compare([anchor(10), anchor(20), anchor(30)], head_seq=25)
    assert verdict.behind_backup
    (problem,) = verdict.problems
    assert problem.reason.startswith(RESTORED_FROM_BACKUP)


def test_a_rewritten_event_and_a_forged_anchor_are_named() -> None:
    forged = Anchor(
        seq=40, head_hash=head(40), at="x", key_fingerprint=FINGERPRINT, signature=b"no", place="file"
    )
    verdict = compare_anchors(
        [anchor(10), forged],
        head_seq=45,
        event_hashes={10: "0" * 64},
        checkpoint_hashes={10: head(10)},
        verify_signature=verify,
        key_fingerprint=FINGERPRINT,
    )
    reasons = sorted(p.reason for p in verdict.problems)
    assert any("event 10 differs" in r for r in reasons)
    assert any("event 40" in r and "not signed" in r for r in reasons)


def test_unanchored_newer_checkpoints_are_a_note() -> None:
    verdict = compare([anchor(10)], head_seq=25, checkpoints=[10, 20])
    assert verdict.ok
    assert verdict.notes and "not anchored" in verdict.notes[0]


def test_an_anchor_line_round_trips() -> None:
    original = anchor(10)
    assert Anchor.parse(original.line(), "file") == original
