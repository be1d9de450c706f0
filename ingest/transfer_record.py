"""The transfer's record (R2): opened at docking, registering the device, officer and dock station it
meets for the first time, and closed with the summary of what the pull did."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from evidence_store.bootstrap import Station
from evidence_store.db.tables import devices, dock_stations, officers, transfers
from evidence_store.domain.model import (
    Device,
    DockStation,
    Officer,
    RecordWarning,
    Transfer,
    TransferOutcome,
)
from evidence_store.process_identity import this_process
from ingest.pull_report import PullRequest, TransferSummary
from ingest.volume import RecorderIdentity


def open_transfer(
    station: Station,
    request: PullRequest,
    identity: RecorderIdentity,
    offset: float | None,
    handed_over_at: datetime,
    totals: tuple[int, int] | None = None,
) -> tuple[Transfer, Device, Officer | None, float | None]:
    """Record the transfer as started (audited), registering its device and officer if new; returns
    them with the clock offset measured at the device's previous transfer (for the clock reading, R5).
    `totals` (files, bytes) are what the volume held when listed at docking: the `transfer.started`
    event states them, and the station page measures the transfer's progress against them."""
    serial = identity.serial or _unidentified_serial(request)
    owner = this_process()  # so a start after this process dies can close the transfer as interrupted
    with station.transaction() as session:
        device = session.scalars(select(Device).where(devices.c.serial == serial)).one_or_none()
        if device is None:
            device = Device(
                serial=serial,
                model=identity.model or "",
                profile=request.profile.name,
                registered_at=handed_over_at,
            )
            session.add(device)
            session.flush()
            station.audit.record(
                session,
                actor=request.actor,
                action="device.registered",
                object_type="device",
                object_id=device.id or 0,
                details={"serial": serial, "profile": request.profile.name},
            )
        officer = _officer(station, request, session, identity, device, handed_over_at)
        if officer is not None and device.assigned_officer_id is None:
            device.assigned_officer_id = officer.id
        previous_offset = session.scalar(
            select(transfers.c.device_clock_offset_s)
            .where(transfers.c.device_id == device.id, transfers.c.device_clock_offset_s.is_not(None))
            .order_by(transfers.c.started_at.desc())
            .limit(1)
        )
        station_id = None
        if request.dock_station:
            station_id = _dock_station_id(station, session, request.dock_station)
        transfer = Transfer(
            source=request.source,
            device_id=device.id,
            officer_id=officer.id if officer else None,
            dock_station_id=station_id,
            volume_label=request.volume.label or "",
            volume_uuid=request.volume.uuid or "",
            source_path=str(request.root),
            started_at=handed_over_at,
            device_clock_offset_s=offset,
            device_clock_read_at=handed_over_at if offset is not None else None,
            owner_host=owner.host,
            owner_pid=owner.pid,
            owner_started=owner.started,
        )
        session.add(transfer)
        session.flush()
        station.audit.record(
            session,
            actor=request.actor,
            action="transfer.started",
            object_type="transfer",
            object_id=transfer.id or 0,
            details={
                "device": serial,
                "officer": officer.badge_number if officer else None,
                "dock_station": request.dock_station,
                "source": str(request.source),
                "profile": request.profile.name,
                "volume_label": request.volume.label,
                "volume_uuid": request.volume.uuid,
                "clock_offset_s": offset,
                **({"files_total": totals[0], "bytes_total": totals[1]} if totals is not None else {}),
            },
        )
    return transfer, device, officer, previous_offset


def _officer(
    station: Station,
    request: PullRequest,
    session: Any,
    identity: RecorderIdentity,
    device: Device,
    now: datetime,
) -> Officer | None:
    if identity.officer:
        officer = session.scalars(
            select(Officer).where(officers.c.badge_number == identity.officer)
        ).one_or_none()
        if officer is None:
            officer = Officer(badge_number=identity.officer, unit=identity.unit or "")
            session.add(officer)
            session.flush()
            station.audit.record(
                session,
                actor=request.actor,
                action="officer.registered",
                object_type="officer",
                object_id=officer.id or 0,
                details={"badge_number": identity.officer, "via": "recorder"},
            )
        return officer  # type: ignore[no-any-return]
    if device.assigned_officer_id is not None:
        return session.get(Officer, device.assigned_officer_id)  # type: ignore[no-any-return]
    return None


def _dock_station_id(station: Station, session: Any, name: str) -> int:
    dock = session.scalars(select(DockStation).where(dock_stations.c.name == name)).one_or_none()
    if dock is None:
        dock = DockStation(name=name, unit=station.settings.unit_name)
        session.add(dock)
        session.flush()
    return int(dock.id)


def close_transfer(station: Station, actor: str, transfer: Transfer, summary: TransferSummary) -> None:
    """Record the transfer as finished with its counts, outcome and problems (audited)."""
    with station.transaction() as session:
        row = session.get(Transfer, transfer.id)
        assert row is not None
        row.finished_at = summary.finished_at
        row.files_seen = summary.files_seen
        row.files_ingested = summary.files_ingested
        row.files_duplicate = summary.files_duplicate
        row.files_failed = summary.files_failed
        row.bytes_copied = summary.bytes_copied
        row.outcome = summary.outcome
        row.problems = [RecordWarning("transfer", p) for p in summary.problems] + [
            RecordWarning("file_failed", f"{f.path}: {f.error}")
            for f in summary.files
            if f.status == "failed"
        ][:1000]
        station.audit.record(
            session,
            actor=actor,
            action="transfer.finished",
            object_type="transfer",
            object_id=transfer.id or 0,
            details={
                "outcome": str(summary.outcome),
                "files_seen": summary.files_seen,
                "files_ingested": summary.files_ingested,
                "files_duplicate": summary.files_duplicate,
                "files_failed": summary.files_failed,
                "files_skipped": summary.files_skipped,
                "files_attached": summary.files_attached,
                "bytes_copied": summary.bytes_copied,
                "problems": summary.problems[:50],
            },
        )


def record_progress(station: Station, transfer_id: int, summary: TransferSummary, bytes_done: int) -> None:
    """Write a running transfer's counters so far (files seen, stored, failed; bytes read, the file
    being read counted as far as it is read). Not audited: `transfer.finished` states the final
    counts, which `close_transfer` writes over these. The caller bounds how often (at most once a
    second, `evidence_store.domain.dock_status.progress_due`)."""
    with station.transaction() as session:
        session.execute(
            update(transfers)
            .where(transfers.c.id == transfer_id, transfers.c.outcome == TransferOutcome.RUNNING)
            .values(
                files_seen=summary.files_seen,
                files_ingested=summary.files_ingested,
                files_duplicate=summary.files_duplicate,
                files_failed=summary.files_failed,
                bytes_copied=bytes_done,
            )
        )


def release_transfer(
    station: Station, actor: str, transfer_id: int, *, unmounted: bool, problems: list[str]
) -> None:
    """Record that the dock is done with the recorder of a transfer (audited `transfer.released`): it
    unmounted it (`unmounted`) after the pull and any deletion its profile asks for. With a complete
    transfer this is when the recorder is safe to unplug (`evidence_store.domain.dock_status`)."""
    with station.transaction() as session:
        station.audit.record(
            session,
            actor=actor,
            action="transfer.released",
            object_type="transfer",
            object_id=transfer_id,
            details={"unmounted": unmounted, "problems": problems[:50]},
        )


def _unidentified_serial(request: PullRequest) -> str:
    volume = request.volume
    if volume.uuid:
        return f"unidentified-{volume.uuid}"
    if volume.label:
        return f"unidentified-{volume.label}"
    return f"unidentified-{request.root.name or 'volume'}"
