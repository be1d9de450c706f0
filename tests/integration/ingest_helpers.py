"""Helpers shared by the dock and deletion tests."""

from __future__ import annotations

import json

from sqlalchemy import select

from evidence_store.bootstrap import Station
from evidence_store.db.tables import audit_events


def deletion_events(station: Station) -> list[tuple[str, dict[str, object]]]:
    """The `device_file.*` audit events (deleting, deleted, delete_failed) in order, details decoded."""
    with station.engine.connect() as connection:
        rows = connection.execute(
            select(audit_events.c.action, audit_events.c.details)
            .where(audit_events.c.action.like("device_file.%"))
            .order_by(audit_events.c.seq)
        ).all()
    return [(row.action, json.loads(row.details)) for row in rows]
