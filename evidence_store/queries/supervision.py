"""Supervision read side (R16): a draw's population, the redraw check, the lists of draws and of review
items, the users who review."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Select, func, select

from evidence_store.db.tables import (
    cases,
    clip_links,
    clips,
    officers,
    supervision_draws,
    supervision_items,
    users,
)
from evidence_store.domain.access import Permission, User, roles_with
from evidence_store.domain.model import CaseCategory, ClipStatus
from evidence_store.domain.sampling import (
    OPEN,
    DrawRequest,
    SupervisionNotFound,
    check_category,
    draw_sample,
    fingerprint,
    stored_request,
)
from evidence_store.queries.visibility import visible_case_clause, visible_clip_clause, visible_item_clause


def _clip_population(request: DrawRequest, user: User) -> Select[Any]:
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
            clips.c.officer_id.in_(select(officers.c.id).where(officers.c.badge_number == request.officer))
        )
    if request.category:
        query = query.where(
            clips.c.id.in_(
                select(clip_links.c.clip_id)
                .join(cases, cases.c.id == clip_links.c.case_id)
                .where(cases.c.category == CaseCategory(request.category), clip_links.c.removed_at.is_(None))
            )
        )
    return query.order_by(clips.c.id)


def _case_population(request: DrawRequest, user: User) -> Select[Any]:
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
    """The ids a draw samples from (R16), in id order: what matches and what the drawing user may see."""
    check_category(request.category)
    if request.kind == "clip":
        return list(connection.scalars(_clip_population(request, user)))
    rows = connection.execute(_case_population(request, user)).all()
    if request.officer:
        officer_id = connection.scalar(
            select(officers.c.id).where(officers.c.badge_number == request.officer)
        )
        return [r.id for r in rows if officer_id is not None and officer_id in (r.officer_ids or [])]
    return [r.id for r in rows]


def redraw(connection: Connection, draw_id: int, user: User) -> dict[str, Any]:
    """Recompute a draw from its seed and parameters; say whether population and sample still match (R16)."""
    draw = connection.execute(select(supervision_draws).where(supervision_draws.c.id == draw_id)).first()
    if draw is None:
        raise SupervisionNotFound(f"no draw {draw_id}")
    request = stored_request(dict(draw.params), draw.sample_size, draw.seed)
    ids = population(connection, request, user)
    sample = draw_sample(ids, draw.sample_size, draw.seed)
    column = supervision_items.c.clip_id if draw.kind == "clip" else supervision_items.c.case_id
    stored = sorted(connection.scalars(select(column).where(supervision_items.c.draw_id == draw_id)))
    return {
        "population_matches": fingerprint(ids) == draw.population_sha256,
        "sample_matches": sample == stored,
        "sample": sample,
    }


def list_draws(connection: Connection, user: User, limit: int = 50) -> list[dict[str, Any]]:
    """The newest draws, each with its number of open items the user may see (R13, R16)."""
    rows = connection.execute(
        select(supervision_draws).order_by(supervision_draws.c.id.desc()).limit(limit)
    ).all()
    open_counts: dict[Any, Any] = {
        k: v
        for k, v in connection.execute(
            select(supervision_items.c.draw_id, func.count())
            .where(supervision_items.c.status == OPEN, visible_item_clause(user))
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


def _items(connection: Connection, user: User, *where: Any) -> list[dict[str, Any]]:
    """The draw items the user may see (R13, R16) among those matching `where`."""
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
        .where(visible_item_clause(user), *where)
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


def get_draw(connection: Connection, draw_id: int, user: User) -> dict[str, Any] | None:
    """A draw with the items the user may see and how many it has that are hidden from them (R13, R16),
    or None."""
    row = connection.execute(select(supervision_draws).where(supervision_draws.c.id == draw_id)).first()
    if row is None:
        return None
    items = _items(connection, user, supervision_items.c.draw_id == draw_id)
    total = connection.scalar(
        select(func.count()).select_from(supervision_items).where(supervision_items.c.draw_id == draw_id)
    )
    return {**_draw(row), "items": items, "hidden_items": int(total or 0) - len(items)}


def items_for(connection: Connection, user: User) -> list[dict[str, Any]]:
    """Open reviews assigned to this user (or to nobody yet) that the user may see (R13, R16)."""
    return _items(
        connection,
        user,
        supervision_items.c.status == OPEN,
        (supervision_items.c.reviewer_id == user.id) | supervision_items.c.reviewer_id.is_(None),
    )


def reviewers(connection: Connection) -> list[str]:
    """The active users whose role reviews (R11, R16)."""
    roles = [r.value for r in roles_with(Permission.SUPERVISION_REVIEW)]
    return list(
        connection.scalars(
            select(users.c.username)
            .where(users.c.role.in_(roles), users.c.active.is_(True))
            .order_by(users.c.username)
        )
    )
