"""Which keys may sign the audit chain, as the chain itself states it (R3, R17, issue 18).

Several stations append to one chain, each with its own Ed25519 key. A station's key is trusted from the
`station.approved` event that names it (with its public key) on; that event must be signed by a station
already approved, except the very first approval in the chain, by which the first station approves
itself (the first station bootstraps trust). A `station.revoked` event withdraws a key from a time on.

The keyring is read from the chain rather than from the `stations` table: the table is a working list
that anyone with write access to the database could edit, while the chain's events are hashed, chained
and signed, so a station approved by editing the table is still "never approved" to `audit verify`.

Events written before events named their signer carry no fingerprint; they are taken as signed by the
first station's key (the station that ran `evidence init` when the database was migrated, whose key
wrote them). A chain with no station events at all (a single station from before stations existed)
is checked against the key of the station verifying it (`fallback`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from evidence_store.domain.audit_chain import ChainProblem, SignerKey, Verifier, signer_problem

STATION_INITIALISED = "station.initialised"
STATION_ENROLLED = "station.enrolled"
STATION_APPROVED = "station.approved"
STATION_REVOKED = "station.revoked"
# the events the keyring is built from
KEY_ACTIONS = (STATION_INITIALISED, STATION_APPROVED, STATION_REVOKED)
# The first station's `station.initialised` event states its own enrolment and approval under this key
# of its details ({"name", "unit", "fingerprint", "public_key"}), in the event that says it was set up.
FIRST_STATION_KEY = "first_station"

# PEM text -> (its fingerprint, a verifier); raises ValueError for text that is not a public key
PublicKeyLoader = Callable[[str], tuple[str, Verifier]]


@dataclass(frozen=True, kw_only=True)
class KeyEvent:
    """A station event of the chain, as the keyring needs it."""

    seq: int
    at: str  # canonical time text
    signer: str  # the fingerprint of the key that signed the event ("" if it names none)
    action: str
    details: Mapping[str, Any]


@dataclass
class Keyring:
    """The keys the chain may be signed with (a `KeyLookup` through `lookup`), and what was wrong with
    the station events it was built from."""

    keys: dict[str, SignerKey] = field(default_factory=dict)
    problems: list[ChainProblem] = field(default_factory=list)

    def lookup(self, fingerprint: str) -> SignerKey | None:
        return self.keys.get(fingerprint)


def station_state(*, approved: bool, revoked: bool) -> str:
    """Where an enrolled station stands (R3, R17): "revoked" (from a time on), "approved" (its key may
    write), or "waiting" (enrolled, not yet approved by an admin)."""
    if revoked:
        return "revoked"
    return "approved" if approved else "waiting"


def build_keyring(
    events: Iterable[KeyEvent], *, load_public_key: PublicKeyLoader, fallback: SignerKey | None
) -> Keyring:
    """R17: fold the chain's approvals and revocations, in chain order, into the keyring."""
    keyring = Keyring()
    bootstrapped = False
    for event in events:
        if event.action == STATION_INITIALISED:
            first = event.details.get(FIRST_STATION_KEY)
            if isinstance(first, Mapping) and not bootstrapped:
                bootstrapped = _approve(
                    keyring, replace(event, details=first), load_public_key, bootstrap=True
                )
        elif event.action == STATION_APPROVED:
            added = _approve(keyring, event, load_public_key, bootstrap=not bootstrapped)
            bootstrapped = bootstrapped or added
        elif event.action == STATION_REVOKED:
            _revoke(keyring, event)
    if not bootstrapped and fallback is not None:
        keyring.keys = {fallback.fingerprint: fallback, "": fallback}
    return keyring


def _approve(keyring: Keyring, event: KeyEvent, load: PublicKeyLoader, *, bootstrap: bool) -> bool:
    """Add the key an approval names; True if it was added."""
    details = event.details
    name = str(details.get("name", ""))
    try:
        fingerprint, verify = _load(details, load)
    except ValueError as exc:
        keyring.problems.append(ChainProblem(event.seq, f"event {event.seq} approves station {name}: {exc}"))
        return False
    if bootstrap:
        # the first station approves itself; it wrote the events from before events named their signer
        key = SignerKey(
            fingerprint=fingerprint,
            verify=verify,
            name=name,
            public_key=details["public_key"],
            trusted_from_seq=0,
        )
        keyring.keys[fingerprint] = key
        keyring.keys.setdefault("", key)
        return True
    approver = keyring.lookup(event.signer)
    if approver is None or signer_problem(approver, event.signer, event.seq, event.at, "") is not None:
        keyring.problems.append(
            ChainProblem(
                event.seq,
                f"event {event.seq} approves station {name} but is not signed by an approved station",
            )
        )
        return False
    if fingerprint in keyring.keys:
        return False  # approved already (or revoked: a revoked key stays revoked)
    keyring.keys[fingerprint] = SignerKey(
        fingerprint=fingerprint,
        verify=verify,
        name=name,
        public_key=details["public_key"],
        trusted_from_seq=event.seq,
    )
    return True


def _load(details: Mapping[str, Any], load: PublicKeyLoader) -> tuple[str, Verifier]:
    """The approved key, checked against the fingerprint the approval states."""
    pem = details.get("public_key")
    if not isinstance(pem, str) or not pem:
        raise ValueError("it carries no public key")
    stated = str(details.get("fingerprint", ""))
    fingerprint, verify = load(pem)
    if fingerprint != stated:
        raise ValueError(f"its public key has fingerprint {fingerprint[:16]}…, not {stated[:16]}…")
    return fingerprint, verify


def _revoke(keyring: Keyring, event: KeyEvent) -> None:
    fingerprint = str(event.details.get("fingerprint", ""))
    revoked_from = str(event.details.get("revoked_from", ""))
    key = keyring.lookup(fingerprint)
    revoker = keyring.lookup(event.signer)
    if key is None or not revoked_from:
        return  # revoking a key never approved changes nothing
    if revoker is None or signer_problem(revoker, event.signer, event.seq, event.at, "") is not None:
        keyring.problems.append(
            ChainProblem(
                event.seq, f"event {event.seq} revokes {key.label} but is not signed by an approved station"
            )
        )
        return
    if key.revoked_from is not None and key.revoked_from <= revoked_from:
        return  # revoked already, from an earlier time
    # nothing after the revocation event may be signed by the key, whatever time it claims; a revocation
    # from a time after the event (a retirement planned ahead) leaves the events until then alone
    after_seq = event.seq if revoked_from <= event.at else None
    revoked = replace(key, revoked_from=revoked_from, revoked_after_seq=after_seq)
    for name, held in list(keyring.keys.items()):
        if held is key:
            keyring.keys[name] = revoked
