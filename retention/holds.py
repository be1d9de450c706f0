"""Legal holds on clips and cases (R9, R10): placing and releasing them, audited."""

from __future__ import annotations

from sqlalchemy import select

from evidence_store.bootstrap import Station
from evidence_store.db.tables import cases
from evidence_store.domain.model import Clip, LegalHold
from evidence_store.domain.record_facts import FACTS_KEY, row_fact
from evidence_store.errors import NotFoundError


def place_hold(
    station: Station, *, clip_id: int | None, case_number: str | None, reason: str, actor: str
) -> int:
    with station.transaction() as session:
        case_id = None
        if case_number is not None:
            case_id = session.scalar(select(cases.c.id).where(cases.c.number == case_number))
            if case_id is None:
                raise NotFoundError(f"no case {case_number}")
        if clip_id is not None and session.get(Clip, clip_id) is None:
            raise NotFoundError(f"no clip {clip_id}")
        hold = LegalHold(
            clip_id=clip_id, case_id=case_id, reason=reason, placed_by=actor, placed_at=station.clock()
        )
        session.add(hold)
        session.flush()
        station.audit.record(
            session,
            actor=actor,
            action="hold.placed",
            object_type="clip" if clip_id else "case",
            object_id=clip_id if clip_id is not None else case_number or "",
            details={
                "hold_id": hold.id,
                "reason": reason,
                FACTS_KEY: [row_fact("legal_holds", hold.id or 0, hold, new=True)],
            },
        )
        return hold.id or 0


def release_hold(station: Station, hold_id: int, *, reason: str, actor: str) -> None:
    with station.transaction() as session:
        hold = session.get(LegalHold, hold_id)
        if hold is None or hold.released_at is not None:
            raise NotFoundError(f"no active hold {hold_id}")
        hold.released_at = station.clock()
        hold.released_by = actor
        station.audit.record(
            session,
            actor=actor,
            action="hold.released",
            object_type="clip" if hold.clip_id else "case",
            object_id=hold.clip_id if hold.clip_id is not None else hold.case_id or 0,
            details={
                "hold_id": hold_id,
                "reason": reason,
                FACTS_KEY: [row_fact("legal_holds", hold_id, hold, new=False, fields=("released_at",))],
            },
        )
