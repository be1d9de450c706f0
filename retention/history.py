"""Reports of earlier retention runs, for `evidence retention runs`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from evidence_store.bootstrap import Station
from evidence_store.db.tables import retention_runs


def list_runs(station: Station, *, limit: int = 20) -> list[dict[str, Any]]:
    """The newest `limit` runs (dry runs included), each with what it deleted by rule."""
    with station.connect() as connection:
        rows = connection.execute(
            select(retention_runs).order_by(retention_runs.c.id.desc()).limit(limit)
        ).all()
    return [
        {
            "run_id": r.id,
            "status": r.status,
            "dry_run": r.dry_run,
            "as_of": r.as_of.isoformat(),
            "started_at": r.started_at.isoformat(),
            "finished_at": r.finished_at.isoformat() if r.finished_at else None,
            "deleted": r.report.get("deleted", 0),
            "bytes_freed": r.report.get("bytes_freed", 0),
            "delete_by_rule": r.report.get("delete_by_rule", {}),
        }
        for r in rows
    ]
