"""Which clips are under supervisory review (R16): the retention run holds them (R9, R10)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select, union

from evidence_store.db.tables import clip_links, supervision_items

OPEN = "open"


def under_review_query(clip_ids: list[int], *, between: tuple[int, int] | None = None) -> Any:
    """SELECT clip_id of the given clips that are under review: an open supervision item names the
    clip, or names a case the clip is (actively) linked to. `between` (lowest, highest id) asks about
    every clip in that id range instead (the retention run's batches: no long IN list to build)."""

    def chosen(column: Any) -> Any:
        return column.between(*between) if between is not None else column.in_(clip_ids)

    direct = select(supervision_items.c.clip_id.label("clip_id")).where(
        supervision_items.c.status == OPEN, chosen(supervision_items.c.clip_id)
    )
    via_case = (
        select(clip_links.c.clip_id.label("clip_id"))
        .join(supervision_items, supervision_items.c.case_id == clip_links.c.case_id)
        .where(
            supervision_items.c.status == OPEN,
            clip_links.c.removed_at.is_(None),
            chosen(clip_links.c.clip_id),
        )
    )
    return union(direct, via_case)


def clips_under_review(
    connection: Connection, clip_ids: list[int], *, between: tuple[int, int] | None = None
) -> set[int]:
    if not clip_ids and between is None:
        return set()
    query = under_review_query(clip_ids, between=between)
    return {int(row[0]) for row in connection.execute(query)}
