"""Stations as records (issue 18): enrol a station's key, approve it, revoke it, list them.

Several docking stations share one database and one store, each signing with its own Ed25519 key. The
first station (`evidence init` on a fresh database) enrols and approves itself; any other asks to be
enrolled (its `evidence init` or `evidence stations enrol`) and writes nothing until an approved station
approves it. Approvals and revocations are audit events signed by the approving station and state the
key (R3, R17): `audit verify` trusts a key only from its approval in the chain on (`domain.stations`).

A station that is not approved cannot sign its own enrolment into the chain; its request lives in
`stations` until the approval, whose event states the enrolment (who asked, when, the key).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, insert, or_, select, update
from sqlalchemy.orm import Session

from evidence_store.db.tables import dock_stations, stations, transfers
from evidence_store.domain.audit_chain import format_time
from evidence_store.domain.model import TransferOutcome
from evidence_store.domain.spool import SpoolLevel, reported_depth
from evidence_store.domain.stations import (
    FIRST_STATION_KEY,
    STATION_APPROVED,
    STATION_ENROLLED,
    STATION_REVOKED,
)
from evidence_store.errors import ConflictError, InputError, NotFoundError
from evidence_store.keys import PublicKey
from evidence_store.station_trust import refusal, software_version

if TYPE_CHECKING:
    from evidence_store.audit import AuditLog


@dataclass(frozen=True)
class Standing:
    """Where this station stands: `first` (no station enrolled yet: it bootstraps trust), `enrolled`
    (its key is), and, if it may not write, `why` (what to do)."""

    first: bool
    enrolled: bool
    why: str | None

    @property
    def may_write(self) -> bool:
        return self.why is None


def standing(session: Session, key: PublicKey, now: datetime) -> Standing:
    row = session.execute(select(stations).where(stations.c.fingerprint == key.fingerprint)).first()
    any_enrolled = row is not None or session.scalar(select(stations.c.id).limit(1)) is not None
    return Standing(
        first=not any_enrolled,
        enrolled=row is not None,
        why=refusal(row, key.fingerprint, now, any_enrolled=any_enrolled),
    )


def first_station_details(*, name: str, unit: str, key: PublicKey) -> dict[str, Any]:
    """What the first station's `station.initialised` event states of itself, under FIRST_STATION_KEY."""
    return {"name": name, "unit": unit, "fingerprint": key.fingerprint, "public_key": key.pem().decode()}


def enrol_first_station(
    session: Session, audit: AuditLog, *, name: str, unit: str, actor: str, now: datetime
) -> dict[str, Any] | None:
    """R17: on a database where no station is enrolled yet, enrol and approve this station (the first
    bootstraps trust); returns the details its `station.initialised` event must state
    (FIRST_STATION_KEY), or None when another station came first (it then asks for enrolment)."""
    audit.lock(session)  # two stations initialising one fresh database at once: one of them is first
    if session.scalar(select(stations.c.id).limit(1)) is not None:
        request_enrolment(session, name=name, unit=unit, key=audit.key, actor=actor, now=now)
        return None
    _insert(session, name=name, unit=unit, key=audit.key, actor=actor, now=now, approved=True)
    return {FIRST_STATION_KEY: first_station_details(name=name, unit=unit, key=audit.key)}


def request_enrolment(
    session: Session, *, name: str, unit: str, key: PublicKey, actor: str, now: datetime
) -> dict[str, Any]:
    """Enrol `key` as station `name`, not approved (idempotent for the same name and key)."""
    existing = session.execute(
        select(stations).where(or_(stations.c.fingerprint == key.fingerprint, stations.c.name == name))
    ).all()
    for row in existing:
        if row.fingerprint == key.fingerprint and row.name == name:
            return dict(row._mapping)
        if row.fingerprint == key.fingerprint:
            raise ConflictError(f"this key is enrolled already, as station {row.name}")
        raise ConflictError(
            f"station name {name} is enrolled with another key ({row.fingerprint[:16]}…): give this "
            "station another name (EVIDENCE_STATION_NAME)"
        )
    _insert(session, name=name, unit=unit, key=key, actor=actor, now=now, approved=False)
    return _row(session, key.fingerprint)


def enrol_other(
    session: Session, audit: AuditLog, *, name: str, unit: str, key: PublicKey, actor: str, now: datetime
) -> dict[str, Any]:
    """An approved station enrols another station's key (from its public key file), audited."""
    row = request_enrolment(session, name=name, unit=unit, key=key, actor=actor, now=now)
    audit.record(
        session,
        actor=actor,
        action=STATION_ENROLLED,
        object_type="station",
        object_id=name,
        details=_key_details(row),
    )
    return row


def approve(
    session: Session, audit: AuditLog, *, station: str, actor: str, now: datetime, fingerprint: str | None
) -> dict[str, Any]:
    """R17: an admin on an approved station approves an enrolled station; the event (signed by the
    approving station) states the key, from which event on `audit verify` trusts it."""
    row = find(session, station)
    if fingerprint and not row["fingerprint"].startswith(fingerprint.lower()):
        raise InputError(
            f"station {row['name']}'s key is {row['fingerprint']}, not {fingerprint}: not approved"
        )
    if row["revoked_at"] is not None:
        raise ConflictError(f"station {row['name']}'s key is revoked: enrol a new key under another name")
    if row["approved"]:
        return row
    audit.record(  # refused here if this station is not approved itself
        session,
        actor=actor,
        action=STATION_APPROVED,
        object_type="station",
        object_id=row["name"],
        details={
            **_key_details(row),
            "enrolled_at": _time(row["enrolled_at"]),
            "enrolled_by": row["enrolled_by"],
        },
    )
    session.execute(
        update(stations)
        .where(stations.c.id == row["id"])
        .values(approved=True, approved_at=now, approved_by=actor)
    )
    return _row(session, row["fingerprint"])


def revoke(
    session: Session,
    audit: AuditLog,
    *,
    station: str,
    actor: str,
    now: datetime,
    revoked_from: datetime | None,
) -> dict[str, Any]:
    """R17: revoke a station's key from a time on (default now): what it signed before stays valid,
    what it signs from then on fails `audit verify`, and it may no longer write."""
    moment = revoked_from or now
    if moment > now:
        raise InputError("a revocation starts now or in the past, not in the future")
    row = find(session, station)
    if row["fingerprint"] == audit.key.fingerprint:
        raise ConflictError("a station cannot revoke its own key: revoke it from another approved station")
    if row["revoked_at"] is not None and row["revoked_at"] <= moment:
        return row
    audit.record(
        session,
        actor=actor,
        action=STATION_REVOKED,
        object_type="station",
        object_id=row["name"],
        details={"name": row["name"], "fingerprint": row["fingerprint"], "revoked_from": format_time(moment)},
    )
    session.execute(
        update(stations).where(stations.c.id == row["id"]).values(revoked_at=moment, revoked_by=actor)
    )
    return _row(session, row["fingerprint"])


def find(session: Session, station: str) -> dict[str, Any]:
    """A station by name, or by its fingerprint (or the fingerprint's start, 8 characters or more)."""
    query = select(stations).where(stations.c.name == station)
    if len(station) >= 8:
        query = select(stations).where(
            or_(stations.c.name == station, stations.c.fingerprint.startswith(station.lower()))
        )
    rows = session.execute(query).all()
    if not rows:
        raise NotFoundError(f"no station {station} is enrolled")
    if len(rows) > 1:
        raise InputError(f"{station} names {len(rows)} stations: give the whole fingerprint")
    return dict(rows[0]._mapping)


def bays_in_use(connection: Connection | Session) -> dict[str, int]:
    """How many recorders each station is pulling now (its transfers still running), by station name:
    a station docks under its own name (`EVIDENCE_STATION_NAME`, the transfer's dock station)."""
    rows = connection.execute(
        select(dock_stations.c.name, func.count())
        .join(transfers, transfers.c.dock_station_id == dock_stations.c.id)
        .where(transfers.c.outcome == TransferOutcome.RUNNING)
        .group_by(dock_stations.c.name)
    )
    return {str(name): int(count) for name, count in rows}


def list_stations(connection: Connection | Session) -> list[dict[str, Any]]:
    """Every enrolled station, as `evidence stations list` and `evidence status` show it."""
    rows = connection.execute(select(stations).order_by(stations.c.id)).all()
    busy = bays_in_use(connection)
    return [
        {
            "name": row.name,
            "unit": row.unit,
            "fingerprint": row.fingerprint,
            "approved": row.approved,
            "approved_by": row.approved_by,
            "approved_at": _time(row.approved_at),
            "enrolled_at": _time(row.enrolled_at),
            "enrolled_by": row.enrolled_by,
            "revoked_at": _time(row.revoked_at),
            "revoked_by": row.revoked_by,
            "last_seen": _time(row.last_seen),
            "version": row.version,
            "refused_at": _time(row.refused_at),
            "refused_action": row.refused_action,
            "bays_in_use": busy.get(row.name, 0),
            "spool": reported_spool(row),
        }
        for row in rows
    ]


def reported_spool(row: Any) -> dict[str, Any] | None:
    """A station's spool depth as it last reported it (its `stations` row), None if it never did."""
    return reported_depth(
        row.spool_held_bytes,
        row.spool_high_water_bytes,
        row.spool_transfers_waiting,
        row.spool_clips_waiting,
        _time(row.spool_reported_at),
    )


def report_spool_depth(
    connection: Connection,
    fingerprint: str,
    level: SpoolLevel,
    *,
    transfers_waiting: int,
    clips_waiting: int,
    now: datetime,
) -> None:
    """Note on the station's own row how full its spool is (issue 18: a filling spool is visible from
    every host, not only its own). A working-list note like `last_seen`: not an audit event."""
    connection.execute(
        update(stations)
        .where(stations.c.fingerprint == fingerprint)
        .values(
            spool_held_bytes=level.held_bytes,
            spool_high_water_bytes=level.high_water_bytes,
            spool_transfers_waiting=transfers_waiting,
            spool_clips_waiting=clips_waiting,
            spool_reported_at=now,
        )
    )


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _key_details(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": row["name"],
        "unit": row["unit"],
        "fingerprint": row["fingerprint"],
        "public_key": row["public_key"],
    }


def _insert(
    session: Session, *, name: str, unit: str, key: PublicKey, actor: str, now: datetime, approved: bool
) -> None:
    session.execute(
        insert(stations).values(
            name=name,
            unit=unit,
            public_key=key.pem().decode(),
            fingerprint=key.fingerprint,
            enrolled_at=now,
            enrolled_by=actor,
            approved=approved,
            approved_at=now if approved else None,
            approved_by=actor if approved else None,
            version=software_version(),
            last_seen=now,
        )
    )


def _row(session: Session, fingerprint: str) -> dict[str, Any]:
    return dict(session.execute(select(stations).where(stations.c.fingerprint == fingerprint)).one()._mapping)
