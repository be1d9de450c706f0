"""Supervision by random sampling (R16) and the retention hold it implies.

A draw selects the population (clips or cases matching period, unit, officer, category, and visible
to the supervisor drawing), orders it by id, and takes `random.Random(seed).sample(ids, n)`. The seed,
the parameters, the population size and the sha256 of the population's id list are stored with the
draw, so `redraw` proves later that the same seed over the same population gives the same sample.

While an item is open its clip (or every clip linked to its case) is under review and must be held
from retention: `evidence_store.review_holds.clips_under_review` is that query for the retention run.
"""

from __future__ import annotations

import hashlib
import random
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, Select, func, insert, select, update

from evidence_store.bootstrap import Station
from evidence_store.db.tables import (
    cases,
    clip_links,
    clips,
    officers,
    supervision_draws,
    supervision_items,
    users,
)
from evidence_store.domain.model import CaseCategory, ClipStatus
from evidence_store.errors import EvidenceError
from evidence_store.review_holds import clips_under_review, under_review_query  # noqa: F401 - re-exported
from web.access import PERMISSIONS, Permission, Role, User, visible_case_clause, visible_clip_clause
from web.dbutil import inserted_id

MAX_SAMPLE = 1000
OPEN = "open"
DONE = "done"
OUTCOMES = ("pass", "issues")


class SupervisionError(EvidenceError):
    pass


@dataclass
class DrawRequest:
    kind: Literal["clip", "case"]
    size: int
    period_from: datetime | None = None
    period_to: datetime | None = None
    unit: str = ""
    officer: str = ""  # officer number
    category: str = ""  # CaseCategory value
    seed: int | None = None
    reviewer: str = ""  # user name of the reviewer every item is assigned to
    note: str = ""

    def params(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("seed", "size", "note", "reviewer"):
            data.pop(key)
        for key in ("period_from", "period_to"):
            data[key] = data[key].isoformat() if data[key] else None
        return data


def _population_query(connection: Connection, request: DrawRequest, user: User) -> Select[Any]:
    if request.kind == "clip":
        query = select(clips.c.id).where(clips.c.status != ClipStatus.DELETED, visible_clip_clause(user))
        if request.period_from is not None:
            query = query.where(clips.c.utc_start >= request.period_from)
        if request.period_to is not None:
            query = query.where(clips.c.utc_start < request.period_to)
        if request.unit:
            query = query.where(
                clips.c.officer_id.in_(select(officers.c.id).where(officers.c.unit == request.unit))
            )
        if request.officer:
            query = query.where(
                clips.c.officer_id.in_(
                    select(officers.c.id).where(officers.c.badge_number == request.officer)
                )
            )
        if request.category:
            query = query.where(
                clips.c.id.in_(
                    select(clip_links.c.clip_id)
                    .join(cases, cases.c.id == clip_links.c.case_id)
                    .where(
                        cases.c.category == CaseCategory(request.category), clip_links.c.removed_at.is_(None)
                    )
                )
            )
        return query.order_by(clips.c.id)
    query = select(cases.c.id, cases.c.officer_ids).where(visible_case_clause(user))
    if request.period_from is not None:
        query = query.where(cases.c.opened_at >= request.period_from)
    if request.period_to is not None:
        query = query.where(cases.c.opened_at < request.period_to)
    if request.unit:
        query = query.where(cases.c.unit == request.unit)
    if request.category:
        query = query.where(cases.c.category == CaseCategory(request.category))
    return query.order_by(cases.c.id)


def population(connection: Connection, request: DrawRequest, user: User) -> list[int]:
    if request.category:
        try:
            CaseCategory(request.category)
        except ValueError as exc:
            raise SupervisionError(f"unknown case category {request.category!r}") from exc
    rows = connection.execute(_population_query(connection, request, user)).all()
    if request.kind == "case" and request.officer:
        officer_id = connection.scalar(
            select(officers.c.id).where(officers.c.badge_number == request.officer)
        )
        return [r.id for r in rows if officer_id is not None and officer_id in (r.officer_ids or [])]
    return [r.id for r in rows]


def fingerprint(ids: list[int]) -> str:
    return hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()


def draw_sample(ids: list[int], size: int, seed: int) -> list[int]:
    """The reproducible sample: the same seed over the same (sorted) population gives the same ids."""
    # a seeded PRNG is the point: anyone can redraw; the seed itself comes from `secrets`
    return sorted(random.Random(seed).sample(sorted(ids), min(size, len(ids))))  # noqa: S311


def _reviewer_id(connection: Connection, username: str) -> int | None:
    if not username:
        return None
    row = connection.execute(select(users).where(users.c.username == username)).first()
    if row is None or not row.active:
        raise SupervisionError(f"no active user {username}")
    if Permission.SUPERVISION_REVIEW not in _permissions(row.role):
        raise SupervisionError(f"user {username} does not review (role {row.role})")
    return int(row.id)


def _permissions(role: str) -> frozenset[Permission]:
    return PERMISSIONS[Role(role)]


def create_draw(station: Station, request: DrawRequest, user: User, *, source: str) -> int:
    if request.kind not in ("clip", "case"):
        raise SupervisionError("a draw samples clips or cases")
    if not 1 <= request.size <= MAX_SAMPLE:
        raise SupervisionError(f"a sample has 1 to {MAX_SAMPLE} items")
    seed = request.seed if request.seed is not None else secrets.randbits(63)
    if not 0 <= seed < 2**63:
        raise SupervisionError("the seed is a number between 0 and 2^63-1")
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


def redraw(connection: Connection, draw_id: int, user: User) -> dict[str, Any]:
    """Recompute a draw from its seed and parameters; say whether population and sample still match."""
    draw = connection.execute(select(supervision_draws).where(supervision_draws.c.id == draw_id)).first()
    if draw is None:
        raise SupervisionError(f"no draw {draw_id}")
    params = dict(draw.params)
    for key in ("period_from", "period_to"):
        params[key] = datetime.fromisoformat(params[key]) if params.get(key) else None
    request = DrawRequest(size=draw.sample_size, seed=draw.seed, **params)
    ids = population(connection, request, user)
    sample = draw_sample(ids, draw.sample_size, draw.seed)
    column = supervision_items.c.clip_id if draw.kind == "clip" else supervision_items.c.case_id
    stored = sorted(connection.scalars(select(column).where(supervision_items.c.draw_id == draw_id)))
    return {
        "population_matches": fingerprint(ids) == draw.population_sha256,
        "sample_matches": sample == stored,
        "sample": sample,
    }


def _item_row(connection: Connection, item_id: int) -> Any:
    row = connection.execute(select(supervision_items).where(supervision_items.c.id == item_id)).first()
    if row is None:
        raise SupervisionError(f"no review item {item_id}")
    return row


def assign(station: Station, item_id: int, reviewer: str, user: User, *, source: str) -> None:
    with station.transaction() as session:
        connection = session.connection()
        item = _item_row(connection, item_id)
        if item.status != OPEN:
            raise SupervisionError("this review is closed")
        reviewer_id = _reviewer_id(connection, reviewer)
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


def may_review(item: Any, user: User) -> bool:
    if not user.can(Permission.SUPERVISION_REVIEW):
        return False
    return item.reviewer_id is None or item.reviewer_id == user.id


def review(station: Station, item_id: int, outcome: str, notes: str, user: User, *, source: str) -> None:
    if outcome not in OUTCOMES:
        raise SupervisionError(f"the outcome is one of {', '.join(OUTCOMES)}")
    if outcome == "issues" and not notes.strip():
        raise SupervisionError("describe the issues found")
    with station.transaction() as session:
        connection = session.connection()
        item = _item_row(connection, item_id)
        if item.status != OPEN:
            raise SupervisionError("this review is already closed")
        if not may_review(item, user):
            raise PermissionError("assigned to another reviewer")
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


def list_draws(connection: Connection, limit: int = 50) -> list[dict[str, Any]]:
    rows = connection.execute(
        select(supervision_draws).order_by(supervision_draws.c.id.desc()).limit(limit)
    ).all()
    open_counts: dict[Any, Any] = {
        k: v
        for k, v in connection.execute(
            select(supervision_items.c.draw_id, func.count())
            .where(supervision_items.c.status == OPEN)
            .group_by(supervision_items.c.draw_id)
        )
    }
    return [{**_draw(r), "open_items": int(open_counts.get(r.id, 0))} for r in rows]


def _draw(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "seed": row.seed,
        "params": row.params,
        "population": row.population,
        "population_sha256": row.population_sha256,
        "sample_size": row.sample_size,
        "drawn_by": row.drawn_by,
        "drawn_at": row.drawn_at,
        "note": row.note,
    }


def _items(connection: Connection, *where: Any) -> list[dict[str, Any]]:
    rows = connection.execute(
        select(
            supervision_items,
            users.c.username.label("reviewer"),
            clips.c.original_name,
            cases.c.number.label("case_number"),
        )
        .outerjoin(users, users.c.id == supervision_items.c.reviewer_id)
        .outerjoin(clips, clips.c.id == supervision_items.c.clip_id)
        .outerjoin(cases, cases.c.id == supervision_items.c.case_id)
        .where(*where)
        .order_by(supervision_items.c.id)
    ).all()
    return [
        {
            "id": r.id,
            "draw_id": r.draw_id,
            "clip_id": r.clip_id,
            "case_id": r.case_id,
            "label": r.original_name if r.clip_id is not None else r.case_number,
            "reviewer": r.reviewer,
            "reviewer_id": r.reviewer_id,
            "status": r.status,
            "outcome": r.outcome,
            "notes": r.notes,
            "created_at": r.created_at,
            "reviewed_at": r.reviewed_at,
        }
        for r in rows
    ]


def get_draw(connection: Connection, draw_id: int) -> dict[str, Any] | None:
    row = connection.execute(select(supervision_draws).where(supervision_draws.c.id == draw_id)).first()
    if row is None:
        return None
    return {**_draw(row), "items": _items(connection, supervision_items.c.draw_id == draw_id)}


def items_for(connection: Connection, user: User) -> list[dict[str, Any]]:
    """Open reviews assigned to this user (or to nobody yet)."""
    return _items(
        connection,
        supervision_items.c.status == OPEN,
        (supervision_items.c.reviewer_id == user.id) | supervision_items.c.reviewer_id.is_(None),
    )


def reviewers(connection: Connection) -> list[str]:
    roles = [r.value for r in Role if Permission.SUPERVISION_REVIEW in _permissions(r.value)]
    return list(
        connection.scalars(
            select(users.c.username)
            .where(users.c.role.in_(roles), users.c.active.is_(True))
            .order_by(users.c.username)
        )
    )


# -- the retention hold -------------------------------------------------------------------------------
