"""A compliance flag put under a supervisor's review (R16), the writing side: open and close, audited.

An open flag holds nothing from retention on its own (a late handover, R1, is a fact about the past);
while a supervisor has one under review, the clips it is about are held (`evidence_store.review_holds`)
until the review closes (R8, R9). Only a user with the review permission of 抽查 opens or closes one.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, update

from evidence_store.bootstrap import Station
from evidence_store.db.ids import inserted_id
from evidence_store.db.tables import compliance_flags, flag_reviews, users
from evidence_store.domain.access import Permission, role_has
from evidence_store.errors import ConflictError, InputError, NotFoundError, NotPermittedError


class FlagReviewRefused(InputError):
    """A review without a reason, or of a flag that cannot be reviewed."""


def _check_reviewer(connection: Any, username: str) -> None:
    row = connection.execute(select(users.c.role, users.c.active).where(users.c.username == username)).first()
    if row is None or not row.active or not role_has(row.role, Permission.SUPERVISION_REVIEW):
        raise NotPermittedError(
            f"user {username!r} does not review (R16: a supervisor puts flags under review)"
        )


def open_flag_review(station: Station, flag_id: int, *, reason: str, user: str) -> int:
    """Put flag `flag_id` under review: its clips are held until `close_flag_review` (R16); the id."""
    if not reason.strip():
        raise FlagReviewRefused("a review needs a reason (kept in the audit log)")
    with station.transaction() as session:
        connection = session.connection()
        _check_reviewer(connection, user)
        flag = connection.execute(select(compliance_flags).where(compliance_flags.c.id == flag_id)).first()
        if flag is None:
            raise NotFoundError(f"no compliance flag {flag_id}")
        already = connection.scalar(
            select(flag_reviews.c.id).where(
                flag_reviews.c.flag_id == flag_id, flag_reviews.c.closed_at.is_(None)
            )
        )
        if already is not None:
            raise ConflictError(f"flag {flag_id} is already under review ({already})")
        review_id = inserted_id(
            connection.execute(
                insert(flag_reviews).values(
                    flag_id=flag_id, opened_by=user, opened_at=station.clock(), reason=reason[:2000]
                )
            )
        )
        station.audit.record(
            session,
            actor=user,
            action="flag_review.opened",
            object_type="compliance_flag",
            object_id=flag_id,
            details={
                "review_id": review_id,
                "kind": flag.kind,
                "clip_id": flag.clip_id,
                "document_id": flag.document_id,
                "reason": reason[:2000],
            },
        )
    return int(review_id)


def close_flag_review(station: Station, review_id: int, *, outcome: str, user: str) -> None:
    """Close a flag review with its outcome: the hold it put on the flag's clips ends (R16)."""
    if not outcome.strip():
        raise FlagReviewRefused("closing a review needs its outcome (kept in the audit log)")
    with station.transaction() as session:
        connection = session.connection()
        _check_reviewer(connection, user)
        row = connection.execute(select(flag_reviews).where(flag_reviews.c.id == review_id)).first()
        if row is None:
            raise NotFoundError(f"no flag review {review_id}")
        if row.closed_at is not None:
            raise ConflictError(f"flag review {review_id} is already closed")
        connection.execute(
            update(flag_reviews)
            .where(flag_reviews.c.id == review_id)
            .values(closed_by=user, closed_at=station.clock(), outcome=outcome[:2000])
        )
        station.audit.record(
            session,
            actor=user,
            action="flag_review.closed",
            object_type="compliance_flag",
            object_id=row.flag_id,
            details={"review_id": review_id, "outcome": outcome[:2000]},
        )


def open_flag_reviews(station: Station) -> list[dict[str, Any]]:
    """The reviews not yet closed, oldest first, with the flag each is about."""
    with station.connect() as connection:
        rows = connection.execute(
            select(
                flag_reviews.c.id,
                flag_reviews.c.flag_id,
                flag_reviews.c.opened_by,
                flag_reviews.c.opened_at,
                flag_reviews.c.reason,
                compliance_flags.c.kind,
                compliance_flags.c.clip_id,
                compliance_flags.c.document_id,
            )
            .join(compliance_flags, compliance_flags.c.id == flag_reviews.c.flag_id)
            .where(flag_reviews.c.closed_at.is_(None))
            .order_by(flag_reviews.c.id)
        ).all()
    return [
        {
            "review_id": r.id,
            "flag_id": r.flag_id,
            "kind": r.kind,
            "clip_id": r.clip_id,
            "document_id": r.document_id,
            "opened_by": r.opened_by,
            "opened_at": r.opened_at.isoformat(),
            "reason": r.reason,
        }
        for r in rows
    ]
