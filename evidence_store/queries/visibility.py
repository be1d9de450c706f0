"""The visibility rule of `evidence_store.domain.access` (R11, R13, R16, R17) as SQL conditions, so a
list never fetches what the user may not see, and the look-ups of an object's `Facts`, so a service
acting on one object asks the pure rule (`may_see`). tests/integration/test_web_access.py checks that
both forms agree on every clip, case, document, draw item and audit entry of a station."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, String, and_, cast, exists, false, not_, or_, select

from evidence_store.db.tables import (
    audit_events,
    cases,
    clip_links,
    clips,
    documents,
    export_requests,
    supervision_items,
)
from evidence_store.domain.access import (
    CLEARANCE,
    Facts,
    Kind,
    Role,
    User,
    export_covers,
    may_see,
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


def _hidden_by_link(user: User, column: Any = None) -> Any:
    """The clips with an active link to a case hidden from the user (R13), as `column` (the clip id)."""
    return (
        select(column if column is not None else clip_links.c.clip_id)
        .join(cases, cases.c.id == clip_links.c.case_id)
        .where(
            clip_links.c.removed_at.is_(None),
            cases.c.confidentiality != C.NORMAL.value,
            not_(visible_case_clause(user)),
        )
    )


def cleared_clip_clause(user: User) -> ColumnElement[bool]:
    """SQL form of `may_see` for a clip named in an oversight list (an audit entry, a dashboard row) over
    `clips`: no active link to a case hidden from the user (R13, R17)."""
    return not_(exists(_hidden_by_link(user).where(clip_links.c.clip_id == clips.c.id)))


def visible_clip_clause(user: User) -> ColumnElement[bool]:
    """SQL form of `clip_visible_to` (R11, R13) over `clips`: the clips this user may see at all."""
    if not user.sees_footage:
        return false()
    condition = cleared_clip_clause(user)
    if user.role is Role.OFFICER:
        own = clips.c.officer_id == user.officer_id if user.officer_id is not None else false()
        condition = and_(own, condition)
    return condition


def visible_document_clause(user: User) -> ColumnElement[bool]:
    """SQL form of `may_see` for documents: those of a case visible to the user (R13)."""
    return documents.c.case_id.in_(select(cases.c.id).where(visible_case_clause(user)))


def visible_item_clause(user: User) -> ColumnElement[bool]:
    """SQL form of `may_see` for supervision draw items: the clip or case sampled is visible (R13, R16)."""
    return or_(
        and_(
            supervision_items.c.clip_id.is_not(None),
            supervision_items.c.clip_id.in_(select(clips.c.id).where(visible_clip_clause(user))),
        ),
        and_(
            supervision_items.c.case_id.is_not(None),
            supervision_items.c.case_id.in_(select(cases.c.id).where(visible_case_clause(user))),
        ),
    )


def _as_text(column: Any) -> Any:
    return cast(column, String)


def visible_audit_clause(user: User) -> ColumnElement[bool]:
    """SQL form of `may_see` for audit entries (R13, R17): an entry about a clip, case, document, draw item
    or export request is left out when that object is confidential to the user."""
    hidden_cases = select(cases.c.id).where(not_(visible_case_clause(user)))
    hidden_case = select(_as_text(cases.c.id)).where(not_(visible_case_clause(user)))
    hidden_clip = _hidden_by_link(user, _as_text(clip_links.c.clip_id))
    hidden_document = select(_as_text(documents.c.id)).where(documents.c.case_id.in_(hidden_cases))
    hidden_item = select(_as_text(supervision_items.c.id)).where(
        or_(
            supervision_items.c.clip_id.in_(_hidden_by_link(user)),
            supervision_items.c.case_id.in_(hidden_cases),
        )
    )
    hidden_export = select(_as_text(export_requests.c.id)).where(export_requests.c.case_id.in_(hidden_cases))
    about = audit_events.c.object_type
    return not_(
        or_(
            and_(about == "case", audit_events.c.object_id.in_(hidden_case)),
            and_(about == "clip", audit_events.c.object_id.in_(hidden_clip)),
            and_(about == "document", audit_events.c.object_id.in_(hidden_document)),
            and_(about == "supervision_item", audit_events.c.object_id.in_(hidden_item)),
            and_(about == "export", audit_events.c.object_id.in_(hidden_export)),
        )
    )


# -- the facts of one object, for the pure rule -------------------------------------------------------


def _case_pairs(connection: Connection, case_ids: list[int]) -> tuple[tuple[str, str], ...]:
    if not case_ids:
        return ()
    rows = connection.execute(
        select(cases.c.unit, cases.c.confidentiality).where(cases.c.id.in_(case_ids)).order_by(cases.c.id)
    ).all()
    return tuple((str(unit), str(level)) for unit, level in rows)


def case_facts(connection: Connection, case_id: int, kind: Kind = Kind.CASE) -> Facts | None:
    """The `Facts` of a case, or None when there is no such case."""
    found = _case_pairs(connection, [case_id])
    return Facts(kind, found) if found else None


def clip_facts(connection: Connection, clip_id: int, kind: Kind = Kind.CLIP) -> Facts | None:
    """The `Facts` of a clip (its officer and every case it is actively linked to), or None."""
    recorded_by = connection.execute(select(clips.c.officer_id).where(clips.c.id == clip_id)).first()
    if recorded_by is None:
        return None
    linked = list(
        connection.scalars(
            select(clip_links.c.case_id).where(
                clip_links.c.clip_id == clip_id, clip_links.c.removed_at.is_(None)
            )
        )
    )
    return Facts(kind, _case_pairs(connection, linked), footage=True, recorded_by=recorded_by[0])


def document_facts(connection: Connection, document_id: int, kind: Kind = Kind.DOCUMENT) -> Facts | None:
    """The `Facts` of a document (those of its case), or None."""
    case_id = connection.scalar(select(documents.c.case_id).where(documents.c.id == document_id))
    return None if case_id is None else case_facts(connection, int(case_id), kind)


def item_facts(connection: Connection, item_id: int, kind: Kind = Kind.DRAW_ITEM) -> Facts | None:
    """The `Facts` of a supervision draw item (those of its clip or case), or None."""
    row = connection.execute(
        select(supervision_items.c.clip_id, supervision_items.c.case_id).where(
            supervision_items.c.id == item_id
        )
    ).first()
    if row is None:
        return None
    if row.clip_id is not None:
        return clip_facts(connection, int(row.clip_id), kind)
    return case_facts(connection, int(row.case_id), kind)


def audit_entry_facts(connection: Connection, object_type: str, object_id: str) -> Facts:
    """The `Facts` of an audit entry: those of the object it is about (a clip, case, document, draw item
    or export request; anything else belongs to no case)."""
    plain = Facts(Kind.AUDIT_ENTRY)
    if not object_id.isdigit():
        return plain
    number = int(object_id)
    found: Facts | None = None
    if object_type == "case":
        found = case_facts(connection, number, Kind.AUDIT_ENTRY)
    elif object_type == "clip":
        found = clip_facts(connection, number, Kind.AUDIT_ENTRY)
    elif object_type == "document":
        found = document_facts(connection, number, Kind.AUDIT_ENTRY)
    elif object_type == "supervision_item":
        found = item_facts(connection, number, Kind.AUDIT_ENTRY)
    elif object_type == "export":
        case_id = connection.scalar(select(export_requests.c.case_id).where(export_requests.c.id == number))
        found = case_facts(connection, int(case_id), Kind.AUDIT_ENTRY) if case_id is not None else None
    return found or plain


def sees(user: User, facts: Facts | None) -> bool:
    """`may_see` of an object whose facts were looked up (None: there is no such object)."""
    return facts is not None and may_see(user, facts)


def clip_visible(connection: Connection, user: User, clip_id: int) -> bool:
    """Whether the clip exists and is for this user (R11, R13)."""
    return sees(user, clip_facts(connection, clip_id))


def hidden_among(
    connection: Connection, user: User, clip_ids: list[int], case_id: int | None = None
) -> list[int]:
    """The case (its id first, when it is hidden) and the clips among `clip_ids` that the user may not
    see: what an export request naming them shows, and what the user may not request, decide or build
    (R11, R13). An export request is visible only when this is empty."""
    hidden = [] if case_id is None or sees(user, case_facts(connection, case_id)) else [case_id]
    return hidden + [c for c in clip_ids if not sees(user, clip_facts(connection, c))]


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
