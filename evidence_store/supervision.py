"""Supervision by random sampling (R16), the writing side: make a draw, assign and review its items.

How a draw picks its items is `evidence_store.domain.sampling`; the population and the lists are
`evidence_store.queries.supervision`. While an item is open its clip (or every clip linked to its case)
is under review and held from retention: `evidence_store.review_holds.clips_under_review`.
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import Connection, insert, select, update

from evidence_store.accounts import user_from_row
from evidence_store.bootstrap import Station
from evidence_store.db.ids import inserted_id
from evidence_store.db.tables import supervision_draws, supervision_items, users
from evidence_store.domain.access import (
    AccessRefused,
    Permission,
    User,
    hidden_object,
    may_review,
    may_see,
    role_has,
)
from evidence_store.domain.sampling import (
    DONE,
    OPEN,
    DrawRequest,
    SupervisionConflict,
    check_draw,
    check_review,
    draw_sample,
    fingerprint,
)
from evidence_store.queries.supervision import population
from evidence_store.queries.visibility import item_facts


def _reviewer_id(connection: Connection, username: str) -> int | None:
    if not username:
        return None
    row = connection.execute(select(users).where(users.c.username == username)).first()
    if row is None or not row.active:
        raise SupervisionConflict(f"no active user {username}")
    if not role_has(row.role, Permission.SUPERVISION_REVIEW):
        raise SupervisionConflict(f"user {username} does not review (role {row.role})")
    return int(row.id)


def create_draw(station: Station, request: DrawRequest, user: User, *, source: str) -> int:
    """Draw a seeded random sample of clips or cases and record it with its proof (R16); the draw's id."""
    seed = request.seed if request.seed is not None else secrets.randbits(63)
    check_draw(request, seed)
    now = station.clock()
    with station.transaction() as session:
        connection = session.connection()
        reviewer_id = _reviewer_id(connection, request.reviewer)
        ids = population(connection, request, user)
        sample = draw_sample(ids, request.size, seed)
        draw_id = inserted_id(
            connection.execute(
                insert(supervision_draws).values(
                    kind=request.kind,
                    seed=seed,
                    params=request.params(),
                    population=len(ids),
                    population_sha256=fingerprint(ids),
                    sample_size=len(sample),
                    drawn_by=user.actor,
                    drawn_at=now,
                    note=request.note[:2000],
                )
            )
        )
        if sample:
            column = "clip_id" if request.kind == "clip" else "case_id"
            connection.execute(
                insert(supervision_items),
                [
                    {
                        "draw_id": draw_id,
                        column: item,
                        "reviewer_id": reviewer_id,
                        "status": OPEN,
                        "notes": "",
                        "created_at": now,
                        "assigned_at": now if reviewer_id else None,
                    }
                    for item in sample
                ],
            )
        station.audit.record(
            session,
            actor=user.actor,
            action="supervision.drawn",
            object_type="supervision_draw",
            object_id=draw_id,
            details={
                "kind": request.kind,
                "seed": seed,
                "params": request.params(),
                "population": len(ids),
                "population_sha256": fingerprint(ids),
                "sample": sample,
                "reviewer": request.reviewer or None,
            },
            source=source,
        )
    return int(draw_id)


def _item_row(connection: Connection, item_id: int, user: User) -> Any:
    """The draw item, if it exists and the user may see it (R13, R16); else the same refusal (404)."""
    row = connection.execute(select(supervision_items).where(supervision_items.c.id == item_id)).first()
    facts = item_facts(connection, item_id) if row is not None else None
    if row is None or facts is None or not may_see(user, facts):
        raise hidden_object("supervision_item", item_id, missing=row is None)
    return row


def _sees_item(connection: Connection, user_id: int, item_id: int) -> bool:
    row = connection.execute(select(users).where(users.c.id == user_id)).one()
    facts = item_facts(connection, item_id)
    return facts is not None and may_see(user_from_row(row), facts)


def assign(station: Station, item_id: int, reviewer: str, user: User, *, source: str) -> None:
    """Give an open review item to a reviewer (R16)."""
    with station.transaction() as session:
        connection = session.connection()
        item = _item_row(connection, item_id, user)
        if item.status != OPEN:
            raise SupervisionConflict("this review is closed")
        reviewer_id = _reviewer_id(connection, reviewer)
        if reviewer_id is not None and not _sees_item(connection, reviewer_id, item_id):
            raise SupervisionConflict(f"user {reviewer} may not see this item (R13)")
        connection.execute(
            update(supervision_items)
            .where(supervision_items.c.id == item_id)
            .values(reviewer_id=reviewer_id, assigned_at=station.clock())
        )
        station.audit.record(
            session,
            actor=user.actor,
            action="supervision.assigned",
            object_type="supervision_item",
            object_id=item_id,
            details={"reviewer": reviewer, "draw": item.draw_id},
            source=source,
        )


def review(station: Station, item_id: int, outcome: str, notes: str, user: User, *, source: str) -> None:
    """Record the outcome of an open review item (R16); `AccessRefused` when it is someone else's (R11)."""
    check_review(outcome, notes)
    with station.transaction() as session:
        connection = session.connection()
        item = _item_row(connection, item_id, user)
        if item.status != OPEN:
            raise SupervisionConflict("this review is already closed")
        if not may_review(user, item.reviewer_id):
            raise AccessRefused(
                "assigned to another reviewer",
                permission=Permission.SUPERVISION_REVIEW,
                object_type="supervision_item",
                object_id=item_id,
            )
        now = station.clock()
        connection.execute(
            update(supervision_items)
            .where(supervision_items.c.id == item_id)
            .values(
                status=DONE,
                outcome=outcome,
                notes=notes[:10_000],
                reviewed_at=now,
                reviewer_id=item.reviewer_id or user.id,
                assigned_at=item.assigned_at or now,
            )
        )
        object_type, object_id = (
            ("clip", item.clip_id) if item.clip_id is not None else ("case", item.case_id)
        )
        station.audit.record(
            session,
            actor=user.actor,
            action="supervision.reviewed",
            object_type=object_type,
            object_id=object_id,
            details={"item": item_id, "draw": item.draw_id, "outcome": outcome, "notes": notes[:2000]},
            source=source,
        )
