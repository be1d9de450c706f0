"""The custodian's dashboard: transfers per dock station, processing backlog and failures, late
handovers (R1), R8's filing monitor, retention run reports (R9) with what they kept, by which rule,
until when."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, func, select

from evidence_store.cases.views import unfiled_footage_conditions
from evidence_store.db.tables import (
    cases,
    clips,
    compliance_flags,
    devices,
    dock_stations,
    documents,
    officers,
    processing_jobs,
    retention_runs,
    stations,
    transfers,
)
from evidence_store.domain.access import User
from evidence_store.domain.compliance import FlagKind
from evidence_store.domain.model import JobStatus
from evidence_store.domain.stations import station_state
from evidence_store.queries.visibility import cleared_clip_clause, visible_case_clause
from evidence_store.stations import bays_in_use, reported_spool

RECENT = timedelta(days=30)
PER_DOCK = 10
LIST_LIMIT = 20
RUNS_SHOWN = 10


def dock_entries(connection: Connection) -> list[tuple[int | None, str, str, str]]:
    """(id, name, unit, location) of every dock station by name, and an unnamed entry (id None) when
    some transfers came in without a dock (a recorder plugged in by hand)."""
    stations = connection.execute(select(dock_stations).order_by(dock_stations.c.name)).all()
    entries: list[tuple[int | None, str, str, str]] = [(d.id, d.name, d.unit, d.location) for d in stations]
    undocked = connection.scalar(select(transfers.c.id).where(transfers.c.dock_station_id.is_(None)).limit(1))
    if undocked is not None:
        entries.append((None, "", "", ""))
    return entries


def _of_dock(dock_id: int | None) -> ColumnElement[bool]:
    return (
        transfers.c.dock_station_id == dock_id
        if dock_id is not None
        else transfers.c.dock_station_id.is_(None)
    )


def dock_outcomes(connection: Connection, dock_id: int | None, since: datetime) -> dict[str, int]:
    """How the dock's transfers since `since` ended, counted by outcome."""
    return {
        str(outcome): int(n)
        for outcome, n in connection.execute(
            select(transfers.c.outcome, func.count())
            .where(_of_dock(dock_id), transfers.c.started_at >= since)
            .group_by(transfers.c.outcome)
        )
    }


def dock_recent_transfers(connection: Connection, dock_id: int | None) -> list[dict[str, Any]]:
    """The dock's latest transfers, newest first."""
    recent = connection.execute(
        select(transfers, officers.c.badge_number, devices.c.serial)
        .outerjoin(officers, officers.c.id == transfers.c.officer_id)
        .outerjoin(devices, devices.c.id == transfers.c.device_id)
        .where(_of_dock(dock_id))
        .order_by(transfers.c.started_at.desc(), transfers.c.id.desc())
        .limit(PER_DOCK)
    ).all()
    return [
        {
            "id": t.id,
            "source": str(t.source),
            "started_at": t.started_at,
            "finished_at": t.finished_at,
            "outcome": str(t.outcome),
            "officer": t.badge_number,
            "device": t.serial,
            "files_seen": t.files_seen,
            "files_ingested": t.files_ingested,
            "files_duplicate": t.files_duplicate,
            "files_failed": t.files_failed,
            "bytes_copied": t.bytes_copied,
        }
        for t in recent
    ]


def docks(connection: Connection, since: datetime) -> list[dict[str, Any]]:
    """Every dock station with its transfer outcomes since `since` and its latest transfers."""
    return [
        {
            "id": dock_id,
            "name": name,
            "unit": unit,
            "location": location,
            "outcomes_30d": dock_outcomes(connection, dock_id, since),
            "transfers": dock_recent_transfers(connection, dock_id),
        }
        for dock_id, name, unit, location in dock_entries(connection)
    ]


def processing(connection: Connection, user: User) -> dict[str, Any]:
    """Processing jobs and clips counted by status, the backlog, and the latest failed jobs, of the clips
    not confidential to the user (R13)."""
    cleared = select(clips.c.id).where(cleared_clip_clause(user))
    jobs: dict[Any, Any] = {
        k: v
        for k, v in connection.execute(
            select(processing_jobs.c.status, func.count())
            .where(processing_jobs.c.clip_id.in_(cleared))
            .group_by(processing_jobs.c.status)
        )
    }
    clip_states: dict[Any, Any] = {
        k: v
        for k, v in connection.execute(
            select(clips.c.status, func.count()).where(cleared_clip_clause(user)).group_by(clips.c.status)
        )
    }
    failures = connection.execute(
        select(processing_jobs)
        .where(processing_jobs.c.status == JobStatus.FAILED, processing_jobs.c.clip_id.in_(cleared))
        .order_by(processing_jobs.c.updated_at.desc())
        .limit(LIST_LIMIT)
    ).all()
    return {
        "jobs_by_status": {str(k): v for k, v in jobs.items()},
        "clips_by_status": {str(k): v for k, v in clip_states.items()},
        "backlog": int(jobs.get(JobStatus.PENDING, 0)) + int(jobs.get(JobStatus.RUNNING, 0)),
        "failures": [
            {
                "job_id": j.id,
                "clip_id": j.clip_id,
                "step": j.step,
                "attempts": j.attempts,
                "permanent": bool(j.permanent),
                "last_error": j.last_error[:500],
                "updated_at": j.updated_at,
            }
            for j in failures
        ],
    }


def late_handovers(connection: Connection, since: datetime, user: User) -> dict[str, Any]:
    """Clips handed over late (R6): how many were ingested since `since`, and the latest ones, of the
    clips not confidential to the user (R13)."""
    late_count = connection.scalar(
        select(func.count())
        .select_from(clips)
        .where(clips.c.late_handover.is_(True), clips.c.ingested_at >= since, cleared_clip_clause(user))
    )
    late = connection.execute(
        select(
            clips.c.id, clips.c.original_name, clips.c.utc_start, clips.c.ingested_at, officers.c.badge_number
        )
        .outerjoin(officers, officers.c.id == clips.c.officer_id)
        .where(clips.c.late_handover.is_(True), cleared_clip_clause(user))
        .order_by(clips.c.id.desc())
        .limit(LIST_LIMIT)
    ).all()
    return {
        "count_30d": int(late_count or 0),
        "recent": [
            {
                "clip_id": c.id,
                "original_name": c.original_name,
                "utc_start": c.utc_start,
                "ingested_at": c.ingested_at,
                "officer": c.badge_number,
            }
            for c in late
        ],
    }


def retention_run_reports(connection: Connection) -> list[dict[str, Any]]:
    """The latest retention runs (R9) with the figures of their reports."""
    runs = connection.execute(
        select(retention_runs).order_by(retention_runs.c.id.desc()).limit(RUNS_SHOWN)
    ).all()
    return [
        {
            "id": r.id,
            "started_at": r.started_at,
            "finished_at": r.finished_at,
            "as_of": r.as_of,
            "dry_run": bool(r.dry_run),
            "status": r.status,
            "policy_version": r.policy_version,
            "clips_considered": (r.report or {}).get("clips_considered"),
            "planned_delete": (r.report or {}).get("planned_delete"),
            "deleted": (r.report or {}).get("deleted"),
            "bytes_freed": (r.report or {}).get("bytes_freed"),
            "skipped": len((r.report or {}).get("skipped") or []),
            "message": (r.report or {}).get("message", ""),
            "kept_by_rule": (r.report or {}).get("kept_by_rule") or {},
            "kept_until": (r.report or {}).get("kept_until") or {},
        }
        for r in runs
    ]


def filing(connection: Connection, now: datetime, window_days: int, user: User) -> dict[str, Any]:
    """R8: documents flagged because their footage was not filed within the window after the act (the
    nightly run opens the flags), the latest of them, and footage linked to no case past its window;
    of the cases and clips the user may see (R13)."""
    overdue = (
        compliance_flags.c.kind == FlagKind.FILING_OVERDUE.value,
        compliance_flags.c.cleared_at.is_(None),
        compliance_flags.c.case_id.in_(select(cases.c.id).where(visible_case_clause(user))),
    )
    count = connection.scalar(select(func.count()).select_from(compliance_flags).where(*overdue))
    recent = connection.execute(
        select(compliance_flags.c.details, documents.c.external_id, cases.c.number)
        .join(documents, documents.c.id == compliance_flags.c.document_id)
        .join(cases, cases.c.id == documents.c.case_id)
        .where(*overdue)
        .order_by(compliance_flags.c.id.desc())
        .limit(LIST_LIMIT)
    ).all()
    unfiled = connection.scalar(
        select(func.count())
        .select_from(clips)
        .where(*unfiled_footage_conditions(now - timedelta(days=window_days)), cleared_clip_clause(user))
    )
    return {
        "window_days": window_days,
        "overdue_documents": int(count or 0),
        "unfiled_footage": int(unfiled or 0),
        "recent": [
            {"case": r.number, "document": r.external_id, "due": (r.details or {}).get("due")} for r in recent
        ],
    }


def dashboard(
    connection: Connection, now: datetime, user: User, *, filing_window_days: int = 30
) -> dict[str, Any]:
    """Everything the dashboard shows to `user`, as of `now` (the last 30 days for the counts): a clip
    of a case confidential to the user is in no list and no count (R13)."""
    since = now - RECENT
    return {
        "docks": docks(connection, since),
        "processing": processing(connection, user),
        "late_handovers": late_handovers(connection, since, user),
        "filing": filing(connection, now, filing_window_days, user),
        "retention_runs": retention_run_reports(connection),
        "stations": station_states(connection),
    }


def station_states(connection: Connection) -> list[dict[str, Any]]:
    """Every enrolled station and where it stands (issue 18): trusted, waiting for an admin's approval,
    or revoked; when it last wrote, which version it ran, its last refused write and how many
    recorders it is pulling now. Stations are equipment, not footage: every dashboard reader sees them."""
    busy = bays_in_use(connection)
    return [
        {
            "name": row.name,
            "unit": row.unit,
            "fingerprint": row.fingerprint,
            "state": station_state(approved=bool(row.approved), revoked=row.revoked_at is not None),
            "revoked_at": row.revoked_at,
            "last_seen": row.last_seen,
            "version": row.version,
            "refused_at": row.refused_at,
            "refused_action": row.refused_action,
            "bays_in_use": busy.get(row.name, 0),
            "spool": reported_spool(row),
        }
        for row in connection.execute(select(stations).order_by(stations.c.name))
    ]
