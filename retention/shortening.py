"""Authorising a shorter retention date (R9, R10): recorded with a reason, audited, then honoured.

A clip's decided earliest-delete date is its floor: a later run never lets it go earlier on its own,
even when a category period is lowered in the settings or a case file's period is changed from 30 to
10 years (the run keeps the longer date and reports "shortening needs approval"). An approver records
an authorisation here, for one clip, for the clips whose date came from one case's period, or for the
clips whose date came from one rule; the next real run applies it (each lowered date audited), never
below 6 months after the recording ended, and marks it spent.
"""

from __future__ import annotations

import getpass
from typing import Any

from sqlalchemy import select

from evidence_store.bootstrap import Station
from evidence_store.db.tables import cases, clips, retention_shortenings, users
from evidence_store.domain.model import ClipStatus
from evidence_store.errors import InputError, NotFoundError
from retention.policy import Rule

AUTHORISER_ROLE = "approver"  # the head of the body's delegate, who approves evidence use (R12)
# The rules whose dated floors may be shortened rule-wide. A permanent keep's floor
# (`evidence:permanent_case_file`) is shortened case by case or clip by clip only; the holds, an open
# case and an unknown recording time give no date at all.
SHORTENABLE_RULES = (Rule.NON_EVIDENCE.value, Rule.EVIDENCE_CASE_FILE.value)


class ShorteningRefused(InputError):
    """The authorisation was not recorded (no scope, no reason, unknown target, not an approver)."""


def authorise_shortening(
    station: Station,
    *,
    clip_id: int | None = None,
    case_number: str | None = None,
    rule: str | None = None,
    reason: str,
    user: str,
) -> int:
    """Record (and audit) a permission for the next run to honour shorter dates in one scope."""
    if sum(x is not None for x in (clip_id, case_number, rule)) != 1:
        raise ShorteningRefused("name exactly one of a clip, a case or a rule")
    if not reason.strip():
        raise ShorteningRefused("a reason is required (R10: never shortened without an audited reason)")
    if rule is not None and rule not in SHORTENABLE_RULES:
        raise ShorteningRefused(
            f"rule {rule!r} gives no date to shorten (one of {', '.join(SHORTENABLE_RULES)})"
        )
    with station.transaction() as session:
        role = session.execute(select(users.c.role, users.c.active).where(users.c.username == user)).first()
        if role is None or not role.active or role.role != AUTHORISER_ROLE:
            raise ShorteningRefused(f"user {user!r} is not an active {AUTHORISER_ROLE} of this station")
        case_id = None
        if case_number is not None:
            case_id = session.scalar(select(cases.c.id).where(cases.c.number == case_number))
            if case_id is None:
                raise NotFoundError(f"no case {case_number}")
        if clip_id is not None:
            status = session.scalar(select(clips.c.status).where(clips.c.id == clip_id))
            if status is None or status == ClipStatus.DELETED:
                raise NotFoundError(f"no clip {clip_id}")
        inserted = session.connection().execute(
            retention_shortenings.insert().values(
                clip_id=clip_id,
                case_id=case_id,
                rule=rule,
                reason=reason.strip(),
                authorised_by=user,
                authorised_at=station.clock(),
                clips_shortened=0,
            )
        )
        authorisation_id = int(inserted.inserted_primary_key[0])  # type: ignore[index]
        scope: dict[str, Any] = (
            {"clip_id": clip_id}
            if clip_id is not None
            else {"case_id": case_id, "case_number": case_number}
            if case_number is not None
            else {"rule": rule}
        )
        station.audit.record(
            session,
            actor=user,
            action="retention.shortening_authorised",
            object_type="retention_shortening",
            object_id=authorisation_id,
            details={**scope, "reason": reason.strip(), "os_user": getpass.getuser()},
        )
        return authorisation_id


def list_shortenings(station: Station, *, limit: int = 50) -> list[dict[str, Any]]:
    with station.connect() as connection:
        rows = connection.execute(
            select(retention_shortenings, cases.c.number.label("case_number"))
            .outerjoin(cases, cases.c.id == retention_shortenings.c.case_id)
            .order_by(retention_shortenings.c.id.desc())
            .limit(limit)
        ).all()
    return [
        {
            "id": r.id,
            "clip_id": r.clip_id,
            "case_number": r.case_number,
            "rule": r.rule,
            "reason": r.reason,
            "authorised_by": r.authorised_by,
            "authorised_at": r.authorised_at.isoformat(),
            "applied_run_id": r.applied_run_id,
            "applied_at": r.applied_at.isoformat() if r.applied_at else None,
            "clips_shortened": r.clips_shortened,
        }
        for r in rows
    ]
