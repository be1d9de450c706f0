"""The audit log service: appends chained, signed events inside the caller's transaction and verifies
the stored log (R3, R10, R17). The chain rules themselves live in `domain.audit_chain`."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from itertools import chain
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import Connection, Engine, event, select, text
from sqlalchemy.orm import Session

from evidence_store.db.engine import read_only
from evidence_store.db.tables import audit_checkpoints, audit_events
from evidence_store.domain.audit_chain import (
    STORED_FIELDS,
    AuditCheckpoint,
    AuditEvent,
    ChainProblem,
    ChainVerdict,
    KeyLookup,
    build_checkpoint,
    build_event,
    verify_stored_chain,
)
from evidence_store.domain.spool import FORWARDED_ACTION, quoted_entry_problems
from evidence_store.errors import StationNotTrustedError
from evidence_store.keys import PublicKey, StationKey
from evidence_store.ports import Clock
from evidence_store.station_trust import check_writer, load_keyring, note_refusal

if TYPE_CHECKING:
    from evidence_store.audit_anchoring import Anchoring

# Any constant works; it names the one PostgreSQL advisory lock that serialises appends to the chain.
_PG_AUDIT_LOCK = 0x6576_6964_656E  # "eviden"
VERIFY_BATCH = 20_000
_HEAD_KEY = "evidence.audit_head"
_PENDING_ANCHORS_KEY = "evidence.pending_anchors"


class _Head(NamedTuple):
    seq: int
    hash: str


class AuditLog:
    def __init__(
        self,
        key: StationKey,
        clock: Clock,
        *,
        checkpoint_interval: int,
        source: str,
        anchoring: Anchoring | None = None,
    ) -> None:
        self.key = key
        self.clock = clock
        self.checkpoint_interval = checkpoint_interval
        self.source = source
        self.anchoring = anchoring

    def record(
        self,
        session: Session,
        *,
        actor: str,
        action: str,
        object_type: str,
        object_id: str | int,
        details: dict[str, Any] | None = None,
        source: str | None = None,
        flush: bool = True,
    ) -> AuditEvent:
        """Append one event in the session's transaction; it commits (or rolls back) with the change
        it describes, so the log never claims something that did not happen. The head is carried in
        the session between appends, so several appends in one transaction need no flush between them."""
        head = self._head(session, action)
        event = build_event(
            prev=(head.seq, head.hash) if head else None,
            at=self.clock(),
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=str(object_id),
            source=source or self.source,
            details=details,
            sign=self.key.sign,
            key_fingerprint=self.key.fingerprint,
        )
        session.add(event)
        if event.seq % self.checkpoint_interval == 0:
            checkpoint = self._checkpoint(event.seq, event.hash)
            session.add(checkpoint)
            self._anchor_after_commit(session, checkpoint)
        if flush:  # callers appending many events in one transaction flush once at the end
            session.flush()
        session.info[_HEAD_KEY] = (session.get_transaction(), _Head(event.seq, event.hash))
        return event

    def _head(self, session: Session, action: str) -> _Head | None:
        """The chain head, read once per transaction under the append lock and then carried along;
        a station not approved to write is refused here, before it appends anything."""
        cached = session.info.get(_HEAD_KEY)
        transaction = session.get_transaction()
        if cached is not None and cached[0] is transaction and transaction is not None:
            return cached[1]  # type: ignore[no-any-return]
        self.lock(session)
        self._check_writer(session, action)
        session.flush()
        row = session.execute(
            select(audit_events.c.seq, audit_events.c.hash).order_by(audit_events.c.seq.desc()).limit(1)
        ).first()
        return _Head(row.seq, row.hash) if row else None

    def lock(self, session: Session) -> None:
        """Serialise appends to the one chain that every station shares (issue 18): whoever holds
        this lock reads the head and appends after it. PostgreSQL: a transaction-scoped advisory
        lock; SQLite: every writing transaction begins IMMEDIATE (db.engine), which is the lock."""
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_AUDIT_LOCK})

    def _check_writer(self, session: Session, action: str) -> None:
        now = self.clock()
        try:
            check_writer(session, self.key.fingerprint, now)
        except StationNotTrustedError as refused:
            note_refusal(session, self.key.fingerprint, now, action, str(refused))
            raise

    def checkpoint_now(self, session: Session) -> AuditCheckpoint | None:
        """Sign the current head (e.g. before a backup or for external anchoring)."""
        self.lock(session)  # another station may be appending: sign a head nobody is moving
        self._check_writer(session, "audit.checkpoint")
        head = session.execute(
            select(audit_events.c.seq, audit_events.c.hash).order_by(audit_events.c.seq.desc()).limit(1)
        ).first()
        if head is None:
            return None
        existing = session.scalar(select(audit_checkpoints.c.id).where(audit_checkpoints.c.seq == head.seq))
        if existing is not None:
            stored = session.get(AuditCheckpoint, existing)
            if stored is not None:  # anchored again: a place that failed before gets it now
                self._anchor_after_commit(session, stored)
            return stored
        checkpoint = self._checkpoint(head.seq, head.hash)
        session.add(checkpoint)
        session.flush()
        self._anchor_after_commit(session, checkpoint)
        return checkpoint

    def _anchor_after_commit(self, session: Session, checkpoint: AuditCheckpoint) -> None:
        """Anchor the checkpoint outside the database once its transaction has committed: an anchor
        must never vouch for a head that was rolled back."""
        if self.anchoring is None:
            return
        pending: list[AuditCheckpoint] | None = session.info.get(_PENDING_ANCHORS_KEY)
        if pending is None:
            pending = session.info[_PENDING_ANCHORS_KEY] = []
            anchoring = self.anchoring

            def committed(done: Session) -> None:
                for item in done.info.pop(_PENDING_ANCHORS_KEY, []):
                    anchoring.anchor(item)

            def rolled_back(done: Session) -> None:
                done.info.pop(_PENDING_ANCHORS_KEY, None)

            event.listen(session, "after_commit", committed, once=True)
            event.listen(session, "after_rollback", rolled_back, once=True)
        pending.append(checkpoint)

    def _checkpoint(self, seq: int, head_hash: str) -> AuditCheckpoint:
        return build_checkpoint(
            seq=seq,
            head_hash=head_hash,
            at=self.clock(),
            key_fingerprint=self.key.fingerprint,
            sign=self.key.sign,
        )


def _stream_events(connection: Connection) -> Iterator[Sequence[Any]]:
    """Every stored event in seq order, as rows of the `STORED_FIELDS`, streamed in batches."""
    columns = [audit_events.c[name] for name in STORED_FIELDS]
    result = connection.execution_options(stream_results=True, yield_per=VERIFY_BATCH).execute(
        select(*columns).order_by(audit_events.c.seq)
    )
    return chain.from_iterable(result.partitions())


def load_checkpoints(connection: Connection) -> list[AuditCheckpoint]:
    rows = connection.execute(select(audit_checkpoints).order_by(audit_checkpoints.c.seq)).all()
    return [
        AuditCheckpoint(
            id=row.id,
            seq=row.seq,
            head_hash=row.head_hash,
            at=row.at,
            key_fingerprint=row.key_fingerprint,
            signature=bytes(row.signature),
        )
        for row in rows
    ]


def verify_audit_log(engine: Engine, public_key: PublicKey, *, all_signatures: bool = False) -> ChainVerdict:
    """Re-hash every stored event and check the signatures that vouch for them, each against the key
    of the station that signed it, as the chain's own station events approve and revoke them (R17,
    issue 18); `public_key` (this station's) signs it all when the chain names no station."""
    with engine.connect() as plain:
        connection = read_only(plain)
        checkpoints = load_checkpoints(connection)
        keyring = load_keyring(connection, public_key)
        verdict = verify_stored_chain(
            _stream_events(connection),
            checkpoints,
            keys=keyring.lookup,
            all_signatures=all_signatures,
        )
        verdict.problems.extend(_spooled_entry_problems(connection, keyring.lookup))
    verdict.problems.extend(keyring.problems)
    return verdict


def _spooled_entry_problems(connection: Connection, keys: KeyLookup) -> list[ChainProblem]:
    """Store-and-forward (issue 18): every journal entry a `spool.forwarded` event quotes must be
    genuine, signed at its original time by the forwarding station's enrolled key (`domain.spool`)."""
    problems: list[ChainProblem] = []
    rows = connection.execute(
        select(audit_events.c.seq, audit_events.c.details, audit_events.c.key_fingerprint)
        .where(audit_events.c.action == FORWARDED_ACTION)
        .order_by(audit_events.c.seq)
    )
    for row in rows:
        try:
            entries = json.loads(row.details).get("entries", [])
        except (ValueError, AttributeError):
            problems.append(ChainProblem(row.seq, f"event {row.seq} quotes no readable spooled entries"))
            continue
        found = quoted_entry_problems(
            entries, forward_seq=row.seq, forwarder_fingerprint=row.key_fingerprint, keys=keys
        )
        problems.extend(ChainProblem(row.seq, why) for why in found)
    return problems
