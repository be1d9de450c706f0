"""Cold search (issue 21 item 5): a flag search reads its page from one range of the open flags of the
kind in their clips' order (`compliance_flags.clip_start`, written by the flag refresh, kept by
triggers), and finds exactly the clips the rule names: open flags of the kind, each clip once, in the
page order (clips without a start where the database sorts them), the user's visibility applied, pages
by cursor."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, insert, select, text, update

from evidence_store.bootstrap import Station
from evidence_store.db.tables import cases, clip_links, clips, compliance_flags, documents
from evidence_store.domain.access import Role, User
from evidence_store.domain.model import (
    CaseCategory,
    ClipStatus,
    ClockStatus,
    Confidentiality,
    LinkOrigin,
    MediaType,
    RetentionPeriod,
)
from evidence_store.queries.search import ClipQuery, build_query, search_clips

EPOCH = datetime(2026, 3, 1, tzinfo=UTC)
NOW = EPOCH + timedelta(days=1)
CUSTODIAN = User(id=1, username="c", display_name="", role=Role.CUSTODIAN, unit="甲")
HIDDEN = {3, 10, 11, 40}  # linked to a confidential case of another unit
CLIPS = 60


def _fill(station: Station) -> dict[int, datetime | None]:
    rng = random.Random(5)
    starts: dict[int, datetime | None] = {
        i: EPOCH + timedelta(minutes=rng.randrange(30)) for i in range(1, CLIPS + 1)
    }
    for unknown in (6, 7, 8, 21):
        starts[unknown] = None
    with station.engine.begin() as connection:
        connection.execute(
            insert(clips),
            [
                {
                    "sha256": f"{i:064x}",
                    "size": 1,
                    "media_type": MediaType.VIDEO,
                    "original_name": f"F{i}.MP4",
                    "utc_start": start,
                    "clock_status": ClockStatus.MEASURED,
                    "status": ClipStatus.READY,
                    "ingested_at": EPOCH,
                    "media_info": {},
                    "warnings": [],
                    "late_handover": i % 7 == 0,
                }
                for i, start in starts.items()
            ],
        )
        connection.execute(
            insert(cases),
            {
                "number": "乙-秘-1",
                "category": CaseCategory.INSPECTION,
                "unit": "乙",
                "officer_ids": [],
                "retention_period": RetentionPeriod.YEARS_10,
                "confidentiality": Confidentiality.PERSONAL_PRIVACY,
            },
        )
        connection.execute(
            insert(documents),
            [{"external_id": f"D{i}", "case_id": 1, "kind": "笔录", "officer_ids": []} for i in (1, 2)],
        )
        link: dict[str, Any] = {"case_id": 1, "origin": LinkOrigin.MANUAL, "created_at": NOW}
        connection.execute(insert(clip_links), [{**link, "clip_id": c} for c in sorted(HIDDEN)])
        flag: dict[str, Any] = {"details": {}, "opened_at": NOW, "updated_at": NOW}
        rows = [{**flag, "kind": "starts_late", "clip_id": c} for c in starts if c % 3 == 0 or c in (7, 8)]
        # one clip flagged twice over (two documents), one flag cleared, another kind elsewhere
        rows += [{**flag, "kind": "starts_late", "clip_id": 9, "document_id": d} for d in (1, 2)]
        rows += [{**flag, "kind": "starts_late", "clip_id": 13, "cleared_at": NOW}]
        rows += [{**flag, "kind": "coverage_gap", "clip_id": c} for c in (1, 2, 3, 5)]
        # with its clip's start, as the flag refresh writes every flag it opens
        connection.execute(
            insert(compliance_flags), [{**row, "clip_start": starts[row["clip_id"]]} for row in rows]
        )
    return starts


def _expected(
    connection: Connection, starts: dict[int, datetime | None], kind: str, user: User | None, query: ClipQuery
) -> list[int]:
    """The rule, in Python: clips with an open flag of the kind (a late handover: the clip's own
    fact), in the page order."""
    if kind == "late_handover":
        flagged = {clip for clip in starts if clip % 7 == 0}
    else:
        of_kind = [] if kind == "any" else [compliance_flags.c.kind == kind]
        flagged = set(
            connection.scalars(
                select(compliance_flags.c.clip_id).where(compliance_flags.c.cleared_at.is_(None), *of_kind)
            )
        )
    found = [c for c in flagged if user is None or c not in HIDDEN]
    if query.start_from is not None:
        found = [c for c in found if (s := starts[c]) is not None and s >= query.start_from]
    nulls_high = connection.dialect.name == "postgresql"
    low, high = datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)

    def key(clip: int) -> tuple[datetime, int]:
        start = starts[clip]
        return (start if start is not None else high if nulls_high else low, clip)

    return sorted(found, key=key, reverse=query.sort == "start_desc")


def _all_pages(station: Station, query: ClipQuery, user: User | None) -> list[int]:
    found: list[int] = []
    after: str | None = None
    for _ in range(30):
        with station.connect() as connection:
            page = search_clips(connection, ClipQuery(**{**query.__dict__, "limit": 4, "after": after}), user)
        found += [hit.id for hit in page.hits]
        if not page.has_next:
            return found
        after = page.next_after
    raise AssertionError("paging did not end")


def test_a_flag_search_finds_each_flagged_clip_once_in_order_page_by_page(station: Station) -> None:
    starts = _fill(station)
    for kind in ("starts_late", "coverage_gap", "late_handover", "any"):
        for sort in ("start_desc", "start_asc"):
            for start_from in (None, EPOCH + timedelta(minutes=12)):
                for user in (None, CUSTODIAN):
                    query = ClipQuery(flag=kind, sort=sort, start_from=start_from)  # type: ignore[arg-type]
                    with station.connect() as connection:
                        expected = _expected(connection, starts, kind, user, query)
                    assert _all_pages(station, query, user) == expected, (kind, sort, start_from, user)


@pytest.mark.parametrize(
    ("kind", "index"),
    [
        ("starts_late", "ix_compliance_flags_open_kind_start"),
        ("any", "ix_compliance_flags_open_start"),
        ("late_handover", "ix_clips_late_start_id"),
    ],
)
def test_a_flag_search_reads_its_page_from_one_index_range_in_order(
    station: Station, kind: str, index: str
) -> None:
    _fill(station)
    with station.connect() as connection:
        if connection.dialect.name == "postgresql":
            # a table of a few rows is read whole (or its few rows sorted) whatever its indexes; what
            # matters here is that the index answers the query in its order, as the planner chooses it
            # at 1M clips
            for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
                connection.execute(text(f"SET LOCAL {setting} = off"))
            # with the statistics a live station has (autovacuum), not a tie between the flag indexes
            connection.execute(text("ANALYZE compliance_flags"))
        plan = build_query(connection, ClipQuery(flag=kind), CUSTODIAN)
        assert plan is not None
        statement = plan.statement.limit(51).compile(connection, compile_kwargs={"literal_binds": True})
        explain = "EXPLAIN QUERY PLAN " if connection.dialect.name == "sqlite" else "EXPLAIN "
        found = " ".join(str(row) for row in connection.execute(text(explain + str(statement))))
    assert index in found, found
    if kind != "late_handover":
        assert "clips" not in found.replace("ix_compliance_flags", ""), found  # no row of clips walked
    assert "TEMP B-TREE FOR ORDER BY" not in found and "Sort " not in found, found  # no sort


def test_a_flags_copy_of_its_clips_start_follows_the_clip(station: Station) -> None:
    _fill(station)
    with station.engine.begin() as connection:
        moved = EPOCH - timedelta(days=3)
        connection.execute(update(clips).where(clips.c.id == 9).values(utc_start=moved))
        after = set(
            connection.scalars(select(compliance_flags.c.clip_start).where(compliance_flags.c.clip_id == 9))
        )
    assert after == {moved}
