"""Which clips are under supervisory review (R16): the retention run holds them (R9, R10) until the review
closes. Two kinds of review hold: an open item of a 抽查 draw (its clip, or the clips linked to its case),
and a compliance flag a supervisor has put under review (its clip, or the clips linked to its document).
An open flag on its own holds nothing (issue 17): only a review that can still act on it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select, union

from evidence_store.db.tables import clip_links, compliance_flags, flag_reviews, supervision_items

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


def flag_review_query(clip_ids: list[int], *, between: tuple[int, int] | None = None) -> Any:
    """SELECT clip_id of the given clips (or of every clip in `between`) that a compliance flag under
    an open review is about: the flag names the clip, or names a document the clip is linked to."""

    def chosen(column: Any) -> Any:
        return column.between(*between) if between is not None else column.in_(clip_ids)

    reviewed = flag_reviews.c.closed_at.is_(None)
    direct = (
        select(compliance_flags.c.clip_id.label("clip_id"))
        .join(flag_reviews, flag_reviews.c.flag_id == compliance_flags.c.id)
        .where(reviewed, chosen(compliance_flags.c.clip_id))
    )
    via_document = (
        select(clip_links.c.clip_id.label("clip_id"))
        .join(compliance_flags, compliance_flags.c.document_id == clip_links.c.document_id)
        .join(flag_reviews, flag_reviews.c.flag_id == compliance_flags.c.id)
        .where(reviewed, clip_links.c.removed_at.is_(None), chosen(clip_links.c.clip_id))
    )
    return union(direct, via_document)


def clips_with_flag_under_review(
    connection: Connection, clip_ids: list[int], *, between: tuple[int, int] | None = None
) -> set[int]:
    if not clip_ids and between is None:
        return set()
    return {int(row[0]) for row in connection.execute(flag_review_query(clip_ids, between=between))}
