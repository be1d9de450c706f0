"""Browsing the audit log (R17): filter by actor, action, object and time; newest first, paged by seq.
Used by the web's audit page and API, and meant for `evidence audit log` too."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from evidence_store.db.tables import audit_events
from evidence_store.domain.access import User
from evidence_store.domain.audit_chain import format_time
from evidence_store.queries.visibility import visible_audit_clause

PAGE = 100


@dataclass
class AuditQuery:
    actor: str = ""
    action: str = ""  # exact, or a prefix ending in "." (e.g. "clip.")
    object_type: str = ""
    object_id: str = ""
    since: datetime | None = None
    until: datetime | None = None
    before_seq: int | None = None
    limit: int = PAGE

    def filters(self) -> dict[str, Any]:
        return {
            k: (v.isoformat() if isinstance(v, datetime) else v)
            for k, v in asdict(self).items()
            if v not in (None, "") and k not in ("limit",)
        }


def browse(connection: Connection, query: AuditQuery, user: User | None = None) -> dict[str, Any]:
    """A page of the entries matching `query` that `user` may see (R13, R17: an entry about an object
    confidential to the user is left out); `None`: every entry (the station's own command line)."""
    statement = select(audit_events)
    if user is not None:
        statement = statement.where(visible_audit_clause(user))
    if query.actor:
        statement = statement.where(audit_events.c.actor == query.actor)
    if query.action:
        if query.action.endswith("."):
            statement = statement.where(
                audit_events.c.action >= query.action, audit_events.c.action < query.action + "\uffff"
            )
        else:
            statement = statement.where(audit_events.c.action == query.action)
    if query.object_type:
        statement = statement.where(audit_events.c.object_type == query.object_type)
    if query.object_id:
        statement = statement.where(audit_events.c.object_id == query.object_id)
    if query.since is not None:
        statement = statement.where(audit_events.c.at >= format_time(query.since))
    if query.until is not None:
        statement = statement.where(audit_events.c.at < format_time(query.until))
    if query.before_seq is not None:
        statement = statement.where(audit_events.c.seq < query.before_seq)
    limit = max(1, min(query.limit, 500))
    rows = connection.execute(statement.order_by(audit_events.c.seq.desc()).limit(limit + 1)).all()
    events = [
        {
            "seq": r.seq,
            "at": r.at,
            "actor": r.actor,
            "action": r.action,
            "object_type": r.object_type,
            "object_id": r.object_id,
            "source": r.source,
            "details": json.loads(r.details),
        }
        for r in rows[:limit]
    ]
    next_before = events[-1]["seq"] if len(rows) > limit and events else None
    return {"events": events, "next_before_seq": next_before}
