"""Store-and-forward, as pure rules (issue 18, R1, R3, R10).

A station that cannot reach its backend (database or object store) docks into its **spool**: a local
journal (a SQLite database of the same schema, whose audit chain is signed entry by entry with the
station's own enrolled Ed25519 key) and a local store. When the backend is back the station forwards
each spooled transfer into it, and the spooled journal entries enter the one audit chain **quoted**:
the backend's `spool.forwarded` event carries every journal entry of the transfer as it was written
(seq, original time, actor, action, object, details, previous hash, hash, signature, signer), so
`audit verify` can re-hash each quoted entry and check its signature against the key the chain
enrolled for that station, at its original time (`quoted_entry_problems`).

Here the rules, over plain values, with `now` passed in:

- which journal entries a quote carries and whether a quoted entry is genuine (`JournalEntry`,
  `quoted_entry_problems`);
- when a spooled copy may be freed (`may_free`): only once the backend holds it durably and the
  configured local keep has passed;
- how full the spool is and whether the station may still clear recorders (`spool_level`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from evidence_store.domain.audit_chain import (
    KeyLookup,
    canonical_bytes,
    chain_hash,
    signed_message_for_event,
    signer_problem,
)

# the backend event that brings one spooled transfer, quoting its journal entries
FORWARDED_ACTION = "spool.forwarded"
# the key under which the backend's own events of a forwarded transfer name the entry they stand for
SPOOLED_KEY = "spooled"


@dataclass(frozen=True, kw_only=True)
class JournalEntry:
    """One signed entry of a station's spool journal, as it was written (its audit chain's event)."""

    seq: int
    at: str  # canonical UTC text: the original time
    actor: str
    action: str
    object_type: str
    object_id: str
    source: str
    details: str  # canonical JSON text, as hashed
    prev_hash: str
    hash: str
    signature: bytes
    key_fingerprint: str

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> JournalEntry:
        """From a row of the chain's `STORED_FIELDS` in their order."""
        seq, at, actor, action, object_type, object_id, source, details, prev, hash_, sig, fp = row
        return cls(
            seq=int(seq),
            at=str(at),
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=str(object_id),
            source=source,
            details=details,
            prev_hash=prev,
            hash=hash_,
            signature=bytes(sig),
            key_fingerprint=fp or "",
        )

    def quote(self) -> dict[str, Any]:
        """The entry as the backend's `spool.forwarded` event carries it (signature in hex)."""
        return {
            "seq": self.seq,
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "object_type": self.object_type,
            "object_id": self.object_id,
            "source": self.source,
            "details": self.details,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
            "signature": self.signature.hex(),
            "key_fingerprint": self.key_fingerprint,
        }

    @classmethod
    def from_quote(cls, quoted: Mapping[str, Any]) -> JournalEntry:
        return cls(
            seq=int(quoted["seq"]),
            at=str(quoted["at"]),
            actor=str(quoted["actor"]),
            action=str(quoted["action"]),
            object_type=str(quoted["object_type"]),
            object_id=str(quoted["object_id"]),
            source=str(quoted["source"]),
            details=str(quoted["details"]),
            prev_hash=str(quoted["prev_hash"]),
            hash=str(quoted["hash"]),
            signature=bytes.fromhex(str(quoted["signature"])),
            key_fingerprint=str(quoted["key_fingerprint"]),
        )

    def pointer(self) -> dict[str, Any]:
        """What a backend event standing for this entry says of it: its journal seq, hash, time."""
        return {"seq": self.seq, "hash": self.hash, "at": self.at, "action": self.action}


def entry_hash_matches(entry: JournalEntry) -> bool:
    """Whether the entry's content still hashes (with its previous hash) to the hash it was signed as."""
    return chain_hash(entry.prev_hash, canonical_bytes(entry)) == entry.hash


def quoted_entry_problems(
    quoted: Iterable[Mapping[str, Any]],
    *,
    forward_seq: int,
    forwarder_fingerprint: str,
    keys: KeyLookup,
) -> list[str]:
    """Why the journal entries a `spool.forwarded` event (at `forward_seq`, signed by
    `forwarder_fingerprint`) quotes are not genuine, or [] when they are (R3, R17, issue 18).

    Each entry must re-hash to its hash, carry a valid signature of its signer, be signed by the
    station that forwards it (a station forwards only its own spool), by a key the chain had approved
    before the forward and had not revoked at the entry's original time, and the entries must come in
    journal order."""
    problems: list[str] = []
    previous_seq = 0
    for raw in quoted:
        what = f"spooled entry {raw.get('seq')} quoted by event {forward_seq}"
        try:
            entry = JournalEntry.from_quote(raw)
        except (KeyError, ValueError, TypeError):
            problems.append(f"{what} is not a journal entry")
            continue
        if entry.seq <= previous_seq:
            problems.append(f"{what} is out of journal order")
        previous_seq = entry.seq
        if not entry_hash_matches(entry):
            problems.append(f"{what} was altered: its content no longer matches its hash")
            continue
        if entry.key_fingerprint != forwarder_fingerprint:
            problems.append(f"{what} was signed by another station's key than the one forwarding it")
            continue
        key = keys(entry.key_fingerprint)
        refused = signer_problem(key, entry.key_fingerprint, forward_seq, entry.at, what)
        if refused is not None or key is None:
            problems.append(refused or f"{what} has an untrusted signer")
            continue
        if not key.verify(signed_message_for_event(entry.hash), entry.signature):
            problems.append(f"{what} has a bad signature")
    return problems


def may_free(*, forwarded_at: datetime | None, backend_holds: bool, keep: timedelta, now: datetime) -> bool:
    """Whether a spooled copy may be freed: only once it was forwarded (the backend's transaction
    committed), the backend's store still holds the bytes, and the local keep has passed (R10)."""
    if forwarded_at is None or not backend_holds:
        return False
    return now >= forwarded_at + keep


@dataclass(frozen=True)
class SpoolLevel:
    """How full the spool is, and what follows from it."""

    held_bytes: int
    high_water_bytes: int

    @property
    def over_high_water(self) -> bool:
        return self.held_bytes >= self.high_water_bytes

    @property
    def may_clear_recorders(self) -> bool:
        """Above the high-water mark the station stops clearing recorders (deleting verified files
        from them): what the spool holds is then the only station copy. It never stops pulling."""
        return not self.over_high_water

    @property
    def share(self) -> float:
        if self.high_water_bytes <= 0:
            return 1.0
        return self.held_bytes / self.high_water_bytes

    def describe(self) -> str:
        state = "over its high-water mark: recorders are not cleared" if self.over_high_water else "ok"
        return (
            f"spool holds {self.held_bytes:,} bytes of {self.high_water_bytes:,} "
            f"({self.share:.0%} of the high-water mark): {state}"
        )


def reported_depth(
    held_bytes: int | None,
    high_water_bytes: int | None,
    transfers_waiting: int | None,
    clips_waiting: int | None,
    reported_at: Any,
) -> dict[str, Any] | None:
    """A station's spool depth as it last reported it to the backend (issue 18: a filling spool is
    visible from every host), None if it never did; `reported_at` is passed through as given."""
    if reported_at is None:
        return None
    level = spool_level(int(held_bytes or 0), int(high_water_bytes or 0))
    return {
        "held_bytes": level.held_bytes,
        "high_water_bytes": level.high_water_bytes,
        "over_high_water": level.over_high_water,
        "transfers_waiting": int(transfers_waiting or 0),
        "clips_waiting": int(clips_waiting or 0),
        "reported_at": reported_at,
    }


def spool_level(held_bytes: int, high_water_bytes: int) -> SpoolLevel:
    return SpoolLevel(max(0, held_bytes), max(0, high_water_bytes))
