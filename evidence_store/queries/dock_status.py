"""The station page's bays (issue 19): the transfers running now and those finished a short while ago,
each with its recorder, officer, counters, the totals listed at docking and whether the dock let the
recorder go, as `evidence_store.domain.dock_status.TransferFacts`.

A transfer names no clip, so every signed-in user may see these (as the dashboard counts transfers
whole); the totals and the release come from the transfer's own audit events (`transfer.started`,
`transfer.released`), which the dock writes (`ingest.transfer_record`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, or_, select

from evidence_store.db.tables import audit_events, clips, devices, dock_stations, officers, transfers
from evidence_store.domain.dock_status import COPY_IN_DOUBT, TransferFacts
from evidence_store.domain.model import TransferOutcome, TransferSource

RECENT = timedelta(minutes=30)  # a finished transfer stays on the page this long
MOST = 50


@dataclass(frozen=True)
class Bay:
    """One recorder (or imported folder) at the station, as the page shows it."""

    transfer_id: int
    dock_station: str
    source: str
    volume_label: str
    device_serial: str
    device_model: str
    officer_badge: str
    officer_name: str
    started_at: datetime
    finished_at: datetime | None
    facts: TransferFacts


def station_bays(connection: Connection, now: datetime, *, recent: timedelta = RECENT) -> list[Bay]:
    """The transfers running now and those finished within `recent` of `now`, newest first."""
    rows = connection.execute(
        select(
            transfers,
            devices.c.serial,
            devices.c.model,
            officers.c.badge_number,
            officers.c.name.label("officer_name"),
            dock_stations.c.name.label("dock_name"),
        )
        .select_from(transfers)
        .outerjoin(devices, devices.c.id == transfers.c.device_id)
        .outerjoin(officers, officers.c.id == transfers.c.officer_id)
        .outerjoin(dock_stations, dock_stations.c.id == transfers.c.dock_station_id)
        .where(
            or_(
                transfers.c.outcome == TransferOutcome.RUNNING,
                transfers.c.finished_at >= now - recent,
            )
        )
        .order_by(transfers.c.started_at.desc(), transfers.c.id.desc())
        .limit(MOST)
    ).all()
    events = _events(connection, [row.id for row in rows])
    in_doubt = _copies_in_doubt(
        connection, [row.id for row in rows if TransferOutcome(row.outcome) is TransferOutcome.COMPLETE]
    )
    bays = []
    for row in rows:
        started = events.get((row.id, "transfer.started"), {})
        released = events.get((row.id, "transfer.released"))
        files_total = started.get("files_total")
        bytes_total = started.get("bytes_total")
        facts = TransferFacts(
            outcome=TransferOutcome(row.outcome),
            files_total=int(files_total) if files_total is not None else None,
            bytes_total=int(bytes_total) if bytes_total is not None else None,
            files_seen=row.files_seen,
            files_stored=row.files_ingested + row.files_duplicate,
            files_failed=row.files_failed,
            files_in_doubt=in_doubt.get(row.id, 0),
            bytes_done=row.bytes_copied,
            released=None if released is None else bool(released.get("unmounted")),
            from_device=TransferSource(row.source) is TransferSource.DOCK,
        )
        bays.append(
            Bay(
                transfer_id=row.id,
                dock_station=row.dock_name or "",
                source=str(row.source),
                volume_label=row.volume_label,
                device_serial=row.serial or "",
                device_model=row.model or "",
                officer_badge=row.badge_number or "",
                officer_name=row.officer_name or "",
                started_at=row.started_at,
                finished_at=row.finished_at,
                facts=facts,
            )
        )
    return bays


def _copies_in_doubt(connection: Connection, transfer_ids: list[int]) -> dict[int, int]:
    """How many clips each transfer stored with a warning that puts the copy in doubt."""
    if not transfer_ids:
        return {}
    counts: dict[int, int] = {}
    rows = connection.execute(
        select(clips.c.transfer_id, clips.c.warnings).where(clips.c.transfer_id.in_(transfer_ids))
    )
    for transfer_id, warnings in rows:
        if any(w.code in COPY_IN_DOUBT for w in warnings):
            counts[transfer_id] = counts.get(transfer_id, 0) + 1
    return counts


def _events(connection: Connection, transfer_ids: list[int]) -> dict[tuple[int, str], dict[str, Any]]:
    """The details of each transfer's `transfer.started` and `transfer.released` events."""
    if not transfer_ids:
        return {}
    rows = connection.execute(
        select(audit_events.c.object_id, audit_events.c.action, audit_events.c.details)
        .where(
            audit_events.c.object_type == "transfer",
            audit_events.c.object_id.in_([str(i) for i in transfer_ids]),
            audit_events.c.action.in_(("transfer.started", "transfer.released")),
        )
        .order_by(audit_events.c.seq)
    )
    found: dict[tuple[int, str], dict[str, Any]] = {}
    for object_id, action, details in rows:
        try:
            data = json.loads(details)
        except ValueError:
            data = {}
        found[(int(object_id), action)] = data if isinstance(data, dict) else {}
    return found
