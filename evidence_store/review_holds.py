"""Which clips are under supervisory review (R16): the retention run holds them (R9, R10)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select, union

from evidence_store.db.tables import clip_links, supervision_items

OPEN = "open"


def under_review_query(clip_ids: list[int]) -> Any:
    """SELECT clip_id of the given clips that are under review: an open supervision item names the
    clip, or names a case the clip is (actively) linked to."""
    direct = select(supervision_items.c.clip_id.label("clip_id")).where(
        supervision_items.c.status == OPEN, supervision_items.c.clip_id.in_(clip_ids)
    )
    via_case = (
        select(clip_links.c.clip_id.label("clip_id"))
        .join(supervision_items, supervision_items.c.case_id == clip_links.c.case_id)
        .where(
            supervision_items.c.status == OPEN,
            clip_links.c.removed_at.is_(None),
            clip_links.c.clip_id.in_(clip_ids),
        )
    )
    return union(direct, via_case)


def clips_under_review(connection: Connection, clip_ids: list[int]) -> set[int]:
    if not clip_ids:
        return set()
    return {int(row[0]) for row in connection.execute(under_review_query(clip_ids))}
