"""What `evidence status` and the status API report about a station.

SQLAlchemy is imported inside the functions: `evidence status` on a SQLite station is answered by
`sqlite_status` without it (issue 21: a light command in <= 0.3 s).
"""

from __future__ import annotations

import json
from typing import Any

from evidence_store import sqlite_status
from evidence_store.settings import Settings


def station_status(settings: Settings) -> dict[str, Any]:
    # a spool's status opens the spool with SQLAlchemy anyway: then there is nothing to save
    light = None if settings.spool_journal_path.is_file() else sqlite_status.reader_for(settings)
    if light is not None:
        return sqlite_status.describe(light)
    from evidence_store.bootstrap import open_station  # lazy: start-up (SQLAlchemy)

    station = open_station(settings)
    try:
        return describe(station)
    finally:
        station.close()


def describe(station: Any) -> dict[str, Any]:
    from sqlalchemy import func, select  # lazy: start-up (see the module docstring)

    from evidence_store.db.migrate import current_revision  # lazy: as above
    from evidence_store.db.tables import audit_checkpoints, audit_events, cases, clips, transfers  # lazy
    from evidence_store.disclosure import list_applications  # lazy: as above
    from evidence_store.stations import list_stations  # lazy: as above

    settings: Settings = station.settings
    with station.connect() as connection:
        by_status = dict(
            connection.execute(select(clips.c.status, func.count()).group_by(clips.c.status)).all()
        )
        stored_bytes = connection.scalar(select(func.coalesce(func.sum(clips.c.size), 0)))
        head = connection.execute(
            select(audit_events.c.seq, audit_events.c.hash).order_by(audit_events.c.seq.desc()).limit(1)
        ).first()
        last_checkpoint = connection.scalar(select(func.max(audit_checkpoints.c.seq)))
        last_scrub = connection.execute(
            select(audit_events.c.at, audit_events.c.details)
            .where(audit_events.c.action == "store.scrubbed")
            .order_by(audit_events.c.seq.desc())
            .limit(1)
        ).first()
        n_transfers = connection.scalar(select(func.count()).select_from(transfers))
        n_cases = connection.scalar(select(func.count()).select_from(cases))
        enrolled = list_stations(connection)
    store: dict[str, Any] = {"kind": station.blobs.name}
    if station.blobs.name == "local":
        store["path"] = str(settings.effective_store_path)
    else:
        store["endpoint"] = settings.s3_endpoint_url
        store["bucket"] = settings.s3_bucket
    scrub_info: dict[str, Any] | None = None
    if last_scrub is not None:
        details = json.loads(last_scrub.details)
        scrub_info = {"at": last_scrub.at, "ok": details.get("ok"), "counts": details.get("counts")}
    # parties' applications not answered within `disclosure_answer_days` (R15)
    overdue = list_applications(station, only_overdue=True)
    return {
        "station": settings.station_name,
        "unit": settings.unit_name,
        "home": str(settings.home),
        "database": {
            "url": station.engine.url.render_as_string(hide_password=True),
            "backend": station.engine.dialect.name,
            "schema_revision": current_revision(station.engine),
        },
        "store": store,
        "key_fingerprint": station.key.fingerprint,
        "clips": {
            "total": sum(by_status.values()),
            "by_status": {str(k): v for k, v in by_status.items()},
            "bytes": int(stored_bytes or 0),
        },
        "transfers": n_transfers,
        "cases": n_cases,
        "disclosures_overdue": {
            "count": len(overdue),
            "applications": [f"{a['id']} ({a['party_name']}, due {a['answer_due']})" for a in overdue],
            "answer_days": settings.disclosure_answer_days,
        },
        "audit": {
            "head_seq": head.seq if head else 0,
            "head_hash": head.hash if head else None,
            "last_checkpoint_seq": last_checkpoint or 0,
        },
        "last_scrub": scrub_info,
        # every station sharing this database (issue 18): approved or revoked, last seen, version, and
        # how many recorders it is pulling now
        "stations": [
            {
                "name": s["name"],
                "unit": s["unit"],
                "fingerprint": s["fingerprint"],
                "approved": s["approved"],
                "revoked_at": s["revoked_at"],
                "last_seen": s["last_seen"],
                "version": s["version"],
                "refused_at": s["refused_at"],
                "bays_in_use": s["bays_in_use"],
                "spool": s["spool"],  # its spool's depth as it last reported it (None: never)
            }
            for s in enrolled
        ],
    }
