"""Whether this station may write, and which keys may have signed the chain (R3, R17, issue 18).

Several stations share one database and one store, each with its own key. A station writes nothing
(every change carries its audit event) unless its key is enrolled and approved in `stations` and not
revoked; a refused write is logged and noted on the station's row once its transaction has rolled back.
`audit verify` does not trust that table: `load_keyring` reads the approvals and revocations from the
chain (`domain.stations`).
"""

from __future__ import annotations

import functools
import json
import logging
from datetime import datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from sqlalchemy import Connection, event, select, update
from sqlalchemy.orm import Session

from evidence_store.db.tables import audit_events, stations
from evidence_store.domain.audit_chain import SignerKey, Verifier
from evidence_store.domain.stations import KEY_ACTIONS, KeyEvent, Keyring, build_keyring
from evidence_store.errors import ConfigurationError, StationNotTrustedError
from evidence_store.keys import PublicKey

log = logging.getLogger(__name__)

# last_seen is written with an append at most this often: a row update per transaction would be churn
LAST_SEEN_EVERY = timedelta(minutes=1)


@functools.cache
def software_version() -> str:
    """The installed version of the code this process runs: read once, as the code loaded cannot change
    under a running process (and reading the package metadata costs ~1.5 ms, once per transaction)."""
    try:
        return version("bodycam-evidence")
    except PackageNotFoundError:  # run from a checkout, not installed
        return "unknown"


def refusal(row: Any | None, fingerprint: str, now: datetime, *, any_enrolled: bool) -> str | None:
    """Why the station of `row` (its `stations` row, None if its key is not enrolled) may not write
    now, or None if it may. With no station enrolled at all, the first one bootstraps trust."""
    if row is None:
        if not any_enrolled:
            return None
        return (
            f"this station's key {fingerprint[:16]}… is not enrolled on this evidence store: run "
            "'evidence stations enrol' here, then 'evidence stations approve NAME' on an approved station"
        )
    if row.revoked_at is not None and row.revoked_at <= now:
        return (
            f"station {row.name}'s key {fingerprint[:16]}… was revoked from {row.revoked_at.isoformat()}: "
            "it may not write to this evidence store any more"
        )
    if not row.approved:
        return (
            f"station {row.name} (key {fingerprint[:16]}…) is enrolled but not approved to write to this "
            f"evidence store: run 'evidence stations approve {row.name}' on an approved station"
        )
    return None


def check_writer(session: Session, fingerprint: str, now: datetime) -> None:
    """R17: refuse (StationNotTrustedError) a write by a key not enrolled, not approved or revoked;
    else note the station as seen. Called under the audit append lock, once per transaction."""
    row = session.execute(
        select(
            stations.c.id,
            stations.c.name,
            stations.c.approved,
            stations.c.revoked_at,
            stations.c.last_seen,
            stations.c.version,
        ).where(stations.c.fingerprint == fingerprint)
    ).first()
    any_enrolled = row is not None or session.scalar(select(stations.c.id).limit(1)) is not None
    why = refusal(row, fingerprint, now, any_enrolled=any_enrolled)
    if why is not None:
        raise StationNotTrustedError(why)
    current = software_version()
    if row is not None and (
        row.last_seen is None or now - row.last_seen >= LAST_SEEN_EVERY or row.version != current
    ):
        session.execute(
            update(stations).where(stations.c.id == row.id).values(last_seen=now, version=current)
        )


def note_refusal(session: Session, fingerprint: str, now: datetime, action: str, why: str) -> None:
    """Log a refused write now, and note it on the station's row once the refused transaction has
    rolled back (its own write would roll back with it; on SQLite it holds the only write lock)."""
    log.warning("refused %s: %s", action, why)
    bind = session.get_bind()

    def rolled_back(_session: Session) -> None:
        try:
            with bind.engine.begin() as connection:
                connection.execute(
                    update(stations)
                    .where(stations.c.fingerprint == fingerprint)
                    .values(refused_at=now, refused_action=action[:100], last_seen=now)
                )
        except Exception:  # noting the refusal must never hide the refusal itself
            log.exception("could not note the refused write on the station's row")

    event.listen(session, "after_rollback", rolled_back, once=True)


def load_keyring(connection: Connection, local_key: PublicKey) -> Keyring:
    """The keys that may have signed the chain, from its own station events; `local_key` signs it all
    when the chain states no station (a single station from before stations existed)."""
    rows = connection.execute(
        select(
            audit_events.c.seq,
            audit_events.c.at,
            audit_events.c.key_fingerprint,
            audit_events.c.action,
            audit_events.c.details,
        )
        .where(audit_events.c.action.in_(KEY_ACTIONS))
        .order_by(audit_events.c.seq)
    )
    events = [
        KeyEvent(
            seq=row.seq,
            at=row.at,
            signer=row.key_fingerprint,
            action=row.action,
            details=_details(row.details),
        )
        for row in rows
    ]
    fallback = SignerKey(
        fingerprint=local_key.fingerprint, verify=local_key.verify, public_key=local_key.pem().decode()
    )
    return build_keyring(events, load_public_key=_load_public_key, fallback=fallback)


def _details(text: str) -> dict[str, Any]:
    try:
        details = json.loads(text)
    except ValueError:
        return {}  # an edited event: the chain check names it
    return details if isinstance(details, dict) else {}


def _load_public_key(pem: str) -> tuple[str, Verifier]:
    try:
        key = PublicKey.from_pem(pem.encode())
    except (ConfigurationError, ValueError, TypeError) as exc:
        raise ValueError(f"its public key cannot be read ({exc})") from exc
    return key.fingerprint, key.verify
