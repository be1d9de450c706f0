"""Annual statistics (R18), per unit and month of the station's time zone.

* cases: opened in the month, by category (unit: the case's unit)
* documents: documents dated (start) in the month (unit: their case's unit)
* footage hours: recorded footage starting in the month (unit: the recording officer's unit)
* coverage: documents that need video (R7) dated in the month; those with footage = an active link to
  at least one clip; rate = with footage / needing video
* exports: export requests built in the month (unit: the case's unit)
* deletions: clips deleted by the retention run in the month (tombstones; unit: the officer's unit)
Grouping is done in SQL. On SQLite the month is taken at the zone's offset on 1 January of the year
(exact for zones without daylight saving time, such as Asia/Shanghai).
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Connection, Integer, and_, cast, exists, func, select, type_coerce
from sqlalchemy import String as SAString

from evidence_store.db.tables import (
    cases,
    clip_links,
    clips,
    documents,
    export_requests,
    officers,
    tombstones,
)
from evidence_store.domain.model import CaseCategory, ExportStatus

CATEGORIES = [c.value for c in CaseCategory]
TOTAL = "total"


def year_bounds(year: int, zone: str) -> tuple[datetime, datetime]:
    tz = ZoneInfo(zone)
    start = datetime(year, 1, 1, tzinfo=tz).astimezone(UTC)
    end = datetime(year + 1, 1, 1, tzinfo=tz).astimezone(UTC)
    return start, end


def _month(connection: Connection, column: Any, year: int, zone: str) -> ColumnElement[Any]:
    if connection.dialect.name == "postgresql":
        return cast(func.extract("month", func.timezone(zone, column)), Integer)
    offset = ZoneInfo(zone).utcoffset(datetime(year, 1, 1))
    seconds = int(offset.total_seconds()) if offset is not None else 0
    return cast(func.strftime("%m", type_coerce(column, SAString), f"{seconds:+d} seconds"), Integer)


def annual_statistics(connection: Connection, year: int, zone: str) -> dict[str, Any]:
    start, end = year_bounds(year, zone)
    cells: dict[tuple[str, int], dict[str, Any]] = defaultdict(_empty)

    month = _month(connection, cases.c.opened_at, year, zone)
    for unit, m, category, n in connection.execute(
        select(cases.c.unit, month, cases.c.category, func.count())
        .where(cases.c.opened_at >= start, cases.c.opened_at < end)
        .group_by(cases.c.unit, month, cases.c.category)
    ):
        cells[(unit, int(m))]["cases"][str(category)] += n

    month = _month(connection, documents.c.start, year, zone)
    has_footage = exists(
        select(clip_links.c.id).where(
            clip_links.c.document_id == documents.c.id, clip_links.c.removed_at.is_(None)
        )
    )
    for unit, m, n, needing, covered in connection.execute(
        select(
            cases.c.unit,
            month,
            func.count(),
            func.sum(cast(documents.c.requires_video, Integer)),
            func.sum(cast(and_(documents.c.requires_video, has_footage), Integer)),
        )
        .join(cases, cases.c.id == documents.c.case_id)
        .where(documents.c.start >= start, documents.c.start < end)
        .group_by(cases.c.unit, month)
    ):
        cell = cells[(unit, int(m))]
        cell["documents"] += n
        cell["documents_needing_video"] += int(needing or 0)
        cell["documents_with_footage"] += int(covered or 0)

    month = _month(connection, clips.c.utc_start, year, zone)
    for unit, m, seconds in connection.execute(
        select(officers.c.unit, month, func.sum(clips.c.duration_s))
        .select_from(clips)
        .outerjoin(officers, officers.c.id == clips.c.officer_id)
        .where(clips.c.utc_start >= start, clips.c.utc_start < end)
        .group_by(officers.c.unit, month)
    ):
        cells[(unit or "", int(m))]["footage_hours"] += float(seconds or 0) / 3600

    month = _month(connection, export_requests.c.built_at, year, zone)
    for unit, m, n in connection.execute(
        select(cases.c.unit, month, func.count())
        .select_from(export_requests)
        .outerjoin(cases, cases.c.id == export_requests.c.case_id)
        .where(
            export_requests.c.built_at >= start,
            export_requests.c.built_at < end,
            export_requests.c.status.in_([ExportStatus.BUILT.value, ExportStatus.EXPIRED.value]),
        )
        .group_by(cases.c.unit, month)
    ):
        cells[(unit or "", int(m))]["exports"] += n

    month = _month(connection, tombstones.c.deleted_at, year, zone)
    for unit, m, n in connection.execute(
        select(officers.c.unit, month, func.count())
        .select_from(tombstones)
        .outerjoin(officers, officers.c.id == tombstones.c.officer_id)
        .where(tombstones.c.deleted_at >= start, tombstones.c.deleted_at < end)
        .group_by(officers.c.unit, month)
    ):
        cells[(unit or "", int(m))]["deletions"] += n

    rows = []
    totals: dict[str, dict[str, Any]] = defaultdict(_empty)
    for (unit, m), cell in sorted(cells.items()):
        rows.append(_row(unit, str(m), cell))
        _add(totals[unit], cell)
    for unit, cell in sorted(totals.items()):
        rows.append(_row(unit, TOTAL, cell))
    return {"year": year, "timezone": zone, "categories": CATEGORIES, "rows": rows}


def _empty() -> dict[str, Any]:
    return {
        "cases": defaultdict(int),
        "documents": 0,
        "footage_hours": 0.0,
        "documents_needing_video": 0,
        "documents_with_footage": 0,
        "exports": 0,
        "deletions": 0,
    }


def _add(total: dict[str, Any], cell: dict[str, Any]) -> None:
    for category, n in cell["cases"].items():
        total["cases"][category] += n
    for key in ("documents", "footage_hours", "documents_needing_video", "documents_with_footage", "exports"):
        total[key] += cell[key]
    total["deletions"] += cell["deletions"]


def _row(unit: str, month: str, cell: dict[str, Any]) -> dict[str, Any]:
    needing = cell["documents_needing_video"]
    return {
        "unit": unit,
        "month": month,
        "cases_total": sum(cell["cases"].values()),
        "cases_by_category": {c: int(cell["cases"].get(c, 0)) for c in CATEGORIES},
        "documents": cell["documents"],
        "footage_hours": round(cell["footage_hours"], 2),
        "documents_needing_video": needing,
        "documents_with_footage": cell["documents_with_footage"],
        "coverage_rate": round(cell["documents_with_footage"] / needing, 4) if needing else None,
        "exports": cell["exports"],
        "deletions": cell["deletions"],
    }


CSV_COLUMNS = [
    "unit",
    "month",
    "cases_total",
    *[f"cases:{c}" for c in CATEGORIES],
    "documents",
    "footage_hours",
    "documents_needing_video",
    "documents_with_footage",
    "coverage_rate",
    "exports",
    "deletions",
]


def as_csv(stats: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in stats["rows"]:
        writer.writerow(
            [
                row["unit"],
                row["month"],
                row["cases_total"],
                *[row["cases_by_category"][c] for c in CATEGORIES],
                row["documents"],
                row["footage_hours"],
                row["documents_needing_video"],
                row["documents_with_footage"],
                "" if row["coverage_rate"] is None else row["coverage_rate"],
                row["exports"],
                row["deletions"],
            ]
        )
    return out.getvalue()
