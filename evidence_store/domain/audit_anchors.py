"""Checkpoints anchored outside the database, and what comparing them with the stored log says (R3, R10).

A checkpoint signs the head of the audit chain; the same signed statement is also written where it
cannot be rewritten together with the database (an append-only file in the station home, an object
under Object Lock, an RFC 3161 time-stamp over the head). A checkpoint row or events deleted from the
database therefore still leave their anchor behind. Pure functions: the anchors and the facts of the
stored log are passed in.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from evidence_store.domain.audit_chain import (
    KeyLookup,
    Verifier,
    signed_message_for_checkpoint,
    signer_problem,
    single_key,
)

RESTORED_FROM_BACKUP = "database is behind its anchors: restored from a backup?"


@dataclass(frozen=True)
class Anchor:
    """One signed checkpoint as written outside the database, with where it was read from."""

    seq: int
    head_hash: str
    at: str
    key_fingerprint: str
    signature: bytes
    place: str = ""  # "file", "s3": where this copy was read
    timestamp: dict[str, Any] | None = None  # the RFC 3161 token over the head, as `timestamp_fields`

    def line(self) -> str:
        """The one-line JSON form written to the anchor file and the anchor object."""
        data: dict[str, Any] = {
            "seq": self.seq,
            "head_hash": self.head_hash,
            "at": self.at,
            "key_fingerprint": self.key_fingerprint,
            "signature": self.signature.hex(),
        }
        if self.timestamp is not None:
            data["timestamp"] = self.timestamp
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    @classmethod
    def parse(cls, text: str, place: str) -> Anchor:
        """An anchor from its line; a malformed one raises ValueError."""
        data = json.loads(text)
        try:
            return cls(
                seq=int(data["seq"]),
                head_hash=str(data["head_hash"]),
                at=str(data["at"]),
                key_fingerprint=str(data["key_fingerprint"]),
                signature=bytes.fromhex(data["signature"]),
                place=place,
                timestamp=data.get("timestamp"),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not an anchor: missing {exc}") from exc


@dataclass
class AnchorProblem:
    seq: int
    reason: str


@dataclass
class AnchorVerdict:
    """What the anchors say about the stored log: problems (each fails `audit verify`), notes (not)."""

    anchors_checked: int = 0
    newest_anchored_seq: int = 0
    timestamps_checked: int = 0
    behind_backup: bool = False  # the stored log is a consistent but older state than its anchors
    problems: list[AnchorProblem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def compare_anchors(
    anchors: Iterable[Anchor],
    *,
    head_seq: int,
    event_hashes: Mapping[int, str],
    checkpoint_hashes: Mapping[int, str],
    verify_signature: Verifier,
    key_fingerprint: str,
    keys: KeyLookup | None = None,
) -> AnchorVerdict:
    """R3/R10: the anchored checkpoints against the stored log.

    `event_hashes` maps each anchored seq present in the database to its stored event hash;
    `checkpoint_hashes` maps each stored checkpoint's seq to its head hash; `head_seq` is the last
    stored event. An anchor whose signature fails is itself reported and otherwise ignored (anyone who
    can write the file could add lines, but not sign them). Below the stored head, every anchor must
    match the stored event and still have its checkpoint row. An anchor beyond the head means events
    are missing from the end: when everything below the head agrees with the anchors, the database is
    an older but consistent state (a restore from a backup) and said so, not blamed on one event.
    Several stations sharing one store anchor their own checkpoints there (issue 18): with `keys`, an
    anchor signed by any station's key the chain approved and had not revoked at its time is trusted.
    """
    verdict = AnchorVerdict()
    if keys is None:
        keys = single_key(verify_signature, key_fingerprint)
    by_seq = _trusted_anchors(anchors, verdict, keys)
    if not by_seq:
        if checkpoint_hashes:
            verdict.notes.append("no checkpoint is anchored outside the database yet")
        return verdict
    newest = max(by_seq)
    verdict.newest_anchored_seq = newest
    below_head_problems = 0
    for seq in sorted(by_seq):
        if seq > head_seq:
            break
        anchor = by_seq[seq]
        stored = event_hashes.get(seq)
        if stored is None:
            verdict.problems.append(
                AnchorProblem(seq, f"event {seq}, anchored outside the database, is missing")
            )
            below_head_problems += 1
        elif stored != anchor.head_hash:
            verdict.problems.append(
                AnchorProblem(seq, f"event {seq} differs from its checkpoint anchored in {anchor.place}")
            )
            below_head_problems += 1
        if checkpoint_hashes.get(seq) != anchor.head_hash:
            verdict.problems.append(
                AnchorProblem(
                    seq,
                    f"the signed checkpoint at event {seq} was removed from the database "
                    f"(its anchor in {anchor.place} remains)",
                )
            )
            below_head_problems += 1
    if newest > head_seq:
        if below_head_problems == 0:
            verdict.behind_backup = True
            verdict.problems.append(
                AnchorProblem(
                    head_seq + 1,
                    f"{RESTORED_FROM_BACKUP} the log ends at event {head_seq} but a checkpoint anchored "
                    f"in {by_seq[newest].place} at {by_seq[newest].at} vouches for event {newest}",
                )
            )
        else:
            verdict.problems.append(
                AnchorProblem(
                    head_seq + 1,
                    f"the log ends at event {head_seq} but a checkpoint anchored in {by_seq[newest].place} "
                    f"vouches for event {newest}: events and checkpoints were deleted",
                )
            )
    unanchored = sorted(seq for seq in checkpoint_hashes if seq > newest)
    if unanchored:
        verdict.notes.append(
            f"{len(unanchored)} checkpoint(s) after event {newest} are not anchored outside the database yet"
        )
    return verdict


def _trusted_anchors(anchors: Iterable[Anchor], verdict: AnchorVerdict, keys: KeyLookup) -> dict[int, Anchor]:
    """The anchors signed by a trusted station key, by seq; the others and disagreeing copies reported."""
    by_seq: dict[int, Anchor] = {}
    for anchor in anchors:
        verdict.anchors_checked += 1
        message = signed_message_for_checkpoint(anchor.seq, anchor.head_hash, anchor.at)
        key = keys(anchor.key_fingerprint) if anchor.key_fingerprint else None
        if (
            key is None
            or signer_problem(key, anchor.key_fingerprint, anchor.seq, anchor.at, "") is not None
            or not key.verify(message, anchor.signature)
        ):
            verdict.problems.append(
                AnchorProblem(
                    anchor.seq,
                    f"the anchor of event {anchor.seq} in {anchor.place} is not signed by this station's key",
                )
            )
            continue
        seen = by_seq.get(anchor.seq)
        if seen is not None and seen.head_hash != anchor.head_hash:
            verdict.problems.append(
                AnchorProblem(
                    anchor.seq,
                    f"the anchors of event {anchor.seq} in {seen.place} and {anchor.place} disagree",
                )
            )
        by_seq.setdefault(anchor.seq, anchor)
    return by_seq
