"""The access rules of `evidence_store.domain.access` (R11, R13) as SQL conditions, so a query never
fetches what the user may not see, and the look-ups the pure predicates need."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, Connection, and_, exists, false, not_, or_, select

from evidence_store.db.tables import cases, clip_links, clips, export_requests
from evidence_store.domain.access import (
    CLEARANCE,
    Role,
    User,
    export_covers,
    original_download_allowed,
)
from evidence_store.domain.model import Confidentiality, ExportStatus

C = Confidentiality


def visible_case_clause(user: User) -> ColumnElement[bool]:
    """SQL form of `case_visible` (R13) over the `cases` table."""
    cleared = [level.value for level in CLEARANCE[user.role] if level is not C.NORMAL]
    own_unit: ColumnElement[bool] = (
        and_(cases.c.unit == user.unit, cases.c.confidentiality.in_(cleared))
        if user.unit and cleared
        else false()
    )
    return or_(cases.c.confidentiality == C.NORMAL.value, own_unit)


def visible_clip_clause(user: User) -> ColumnElement[bool]:
    """SQL form of `clip_visible_to` (R11, R13) over `clips`: the clips this user may see at all."""
    if not user.sees_footage:
        return false()
    hidden_case = (
        select(clip_links.c.id)
        .join(cases, cases.c.id == clip_links.c.case_id)
        .where(
            clip_links.c.clip_id == clips.c.id,
            clip_links.c.removed_at.is_(None),
            cases.c.confidentiality != C.NORMAL.value,
            not_(visible_case_clause(user)),
        )
    )
    condition: ColumnElement[bool] = not_(exists(hidden_case))
    if user.role is Role.OFFICER:
        own = clips.c.officer_id == user.officer_id if user.officer_id is not None else false()
        condition = and_(own, condition)
    return condition


def clip_visible(connection: Connection, user: User, clip_id: int) -> bool:
    """Whether the clip exists and is for this user (R11, R13)."""
    found = connection.scalar(select(clips.c.id).where(clips.c.id == clip_id, visible_clip_clause(user)))
    return found is not None


def approved_export_covers(connection: Connection, user: User, clip_id: int, now: datetime) -> bool:
    """Whether an approved (or built), unexpired export request of this user lists the clip (R12)."""
    rows = connection.execute(
        select(export_requests.c["items"], export_requests.c.valid_until).where(
            export_requests.c.status.in_([ExportStatus.APPROVED.value, ExportStatus.BUILT.value]),
            export_requests.c.requested_by.in_([user.username, user.actor]),
        )
    ).all()
    return export_covers(((items, valid_until) for items, valid_until in rows), clip_id, now)


def may_download_original(connection: Connection, user: User, clip_id: int, now: datetime) -> bool:
    """`original_download_allowed` (R11, R12), looking up the export requests only when it matters."""
    needs_export = user.role is Role.INVESTIGATOR
    covered = needs_export and approved_export_covers(connection, user, clip_id, now)
    return original_download_allowed(user, covered_by_export=covered)
