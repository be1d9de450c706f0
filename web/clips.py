"""What the clip page shows: metadata, derivatives, hashes and their verification state, the chain of
custody (every audit event of the clip and of its transfer, in order), linked cases."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, and_, or_, select

from evidence_store.bootstrap import Station
from evidence_store.db.tables import (
    audit_events,
    cases,
    clip_links,
    clips,
    compliance_flags,
    derivatives,
    devices,
    dock_stations,
    documents,
    officers,
    timestamp_tokens,
    transfers,
)
from evidence_store.domain.model import DerivativeKind
from evidence_store.errors import BlobNotFoundError, StoreError
from web.access import User, case_visible

CUSTODY_LIMIT = 2000


def clip_detail(connection: Connection, clip_id: int, user: User) -> dict[str, Any] | None:
    row = connection.execute(
        select(
            clips,
            officers.c.badge_number,
            officers.c.name.label("officer_name"),
            officers.c.unit.label("officer_unit"),
            devices.c.serial,
            devices.c.model,
        )
        .outerjoin(officers, officers.c.id == clips.c.officer_id)
        .outerjoin(devices, devices.c.id == clips.c.device_id)
        .where(clips.c.id == clip_id)
    ).first()
    if row is None:
        return None
    transfer = None
    if row.transfer_id is not None:
        t = connection.execute(
            select(transfers, dock_stations.c.name.label("dock_name"))
            .outerjoin(dock_stations, dock_stations.c.id == transfers.c.dock_station_id)
            .where(transfers.c.id == row.transfer_id)
        ).first()
        if t is not None:
            transfer = {
                "id": t.id,
                "source": str(t.source),
                "dock": t.dock_name,
                "started_at": t.started_at,
                "finished_at": t.finished_at,
                "outcome": str(t.outcome),
            }
    derived = [
        {
            "id": d.id,
            "kind": str(d.kind),
            "sha256": d.sha256,
            "size": d.size,
            "mime_type": d.mime_type,
            "tool": d.tool,
            "tool_version": d.tool_version,
            "created_at": d.created_at,
        }
        for d in connection.execute(
            select(derivatives).where(derivatives.c.clip_id == clip_id).order_by(derivatives.c.id)
        )
    ]
    stamps = [
        {"kind": s.kind, "authority": s.authority, "gen_time": s.gen_time, "serial": s.serial}
        for s in connection.execute(
            select(timestamp_tokens)
            .where(timestamp_tokens.c.clip_id == clip_id)
            .order_by(timestamp_tokens.c.id)
        )
    ]
    links = []
    for link in connection.execute(
        select(
            clip_links,
            cases.c.number,
            cases.c.unit.label("case_unit"),
            cases.c.confidentiality,
            documents.c.external_id,
        )
        .join(cases, cases.c.id == clip_links.c.case_id)
        .outerjoin(documents, documents.c.id == clip_links.c.document_id)
        .where(clip_links.c.clip_id == clip_id)
        .order_by(clip_links.c.id)
    ):
        if not case_visible(user, link.case_unit, link.confidentiality):
            continue
        links.append(
            {
                "id": link.id,
                "case_id": link.case_id,
                "case_number": link.number,
                "document": link.external_id,
                "origin": str(link.origin),
                "is_evidence": bool(link.is_evidence),
                "uncertain": bool(link.uncertain),
                "reason": link.reason,
                "created_by": link.created_by,
                "created_at": link.created_at,
                "removed_at": link.removed_at,
                "removed_by": link.removed_by,
            }
        )
    flags = [
        {"kind": f.kind, "details": f.details, "opened_at": f.opened_at}
        for f in connection.execute(
            select(compliance_flags).where(
                compliance_flags.c.clip_id == clip_id, compliance_flags.c.cleared_at.is_(None)
            )
        )
    ]
    return {
        "id": row.id,
        "sha256": row.sha256,
        "size": row.size,
        "media_type": str(row.media_type),
        "status": str(row.status),
        "original_name": row.original_name,
        "device_path": row.device_path,
        "officer": row.badge_number,
        "officer_name": row.officer_name,
        "officer_unit": row.officer_unit,
        "device": row.serial,
        "device_model": row.model,
        "device_start": row.device_start,
        "device_end": row.device_end,
        "utc_start": row.utc_start,
        "utc_end": row.utc_end,
        "clock_offset_s": row.clock_offset_s,
        "clock_status": str(row.clock_status),
        "duration_s": row.duration_s,
        "ingested_at": row.ingested_at,
        "late_handover": bool(row.late_handover),
        "warnings": [{"code": w.code, "message": w.message} for w in row.warnings],
        "media_info": row.media_info,
        "transfer": transfer,
        "derivatives": derived,
        "timestamps": stamps,
        "links": links,
        "flags": flags,
    }


def derivative_for(connection: Connection, clip_id: int, kind: DerivativeKind) -> Any:
    """The newest derivative of a kind made from the clip's original (a row, or None)."""
    return connection.execute(
        select(derivatives.c.sha256, derivatives.c.size, derivatives.c.mime_type)
        .join(clips, clips.c.id == derivatives.c.clip_id)
        .where(
            derivatives.c.clip_id == clip_id,
            derivatives.c.kind == kind,
            derivatives.c.derived_from_sha256 == clips.c.sha256,
        )
        .order_by(derivatives.c.id.desc())
        .limit(1)
    ).first()


def _event(row: Any) -> dict[str, Any]:
    return {
        "seq": row.seq,
        "at": row.at,
        "actor": row.actor,
        "action": row.action,
        "object": f"{row.object_type}:{row.object_id}",
        "source": row.source,
        "details": json.loads(row.details),
        "hash": row.hash,
    }


def custody_events(connection: Connection, clip_id: int, transfer_id: int | None) -> list[dict[str, Any]]:
    """The chain of custody: audit events of the clip and of its transfer, oldest first."""
    about = and_(audit_events.c.object_type == "clip", audit_events.c.object_id == str(clip_id))
    if transfer_id is not None:
        about = or_(
            about,
            and_(audit_events.c.object_type == "transfer", audit_events.c.object_id == str(transfer_id)),
        )
    rows = connection.execute(
        select(audit_events).where(about).order_by(audit_events.c.seq).limit(CUSTODY_LIMIT)
    ).all()
    return [_event(r) for r in rows]


def verification_state(connection: Connection, clip_id: int, sha256: str) -> dict[str, Any]:
    """The last re-hash of this clip ("verify now") and the last store scrub's word on it."""
    last_verify = connection.execute(
        select(audit_events.c.at, audit_events.c.actor, audit_events.c.details)
        .where(
            audit_events.c.object_type == "clip",
            audit_events.c.object_id == str(clip_id),
            audit_events.c.action == "clip.verified",
        )
        .order_by(audit_events.c.seq.desc())
        .limit(1)
    ).first()
    last_scrub = connection.execute(
        select(audit_events.c.at, audit_events.c.details)
        .where(audit_events.c.action == "store.scrubbed")
        .order_by(audit_events.c.seq.desc())
        .limit(1)
    ).first()
    state: dict[str, Any] = {"verified": None, "scrub": None}
    if last_verify is not None:
        details = json.loads(last_verify.details)
        state["verified"] = {"at": last_verify.at, "by": last_verify.actor, "ok": details.get("ok")}
    if last_scrub is not None:
        details = json.loads(last_scrub.details)
        if sha256 in details.get("altered", []):
            verdict = "altered"
        elif sha256 in details.get("missing", []):
            verdict = "missing"
        else:
            verdict = "ok"
        state["scrub"] = {"at": last_scrub.at, "result": verdict}
    return state


def verify_now(station: Station, clip_id: int, sha256: str, *, actor: str, source: str) -> dict[str, Any]:
    """Re-hash the stored original now and record the result (R3)."""
    try:
        actual: str | None = station.blobs.rehash(sha256)
        problem = ""
    except BlobNotFoundError:
        actual, problem = None, "missing"
    except StoreError as exc:
        actual, problem = None, f"store error: {exc}"
    ok = actual == sha256
    result = {"sha256": sha256, "actual": actual, "ok": ok, "problem": problem or ("" if ok else "altered")}
    with station.transaction() as session:
        station.audit.record(
            session,
            actor=actor,
            action="clip.verified",
            object_type="clip",
            object_id=clip_id,
            details=result,
            source=source,
        )
    return result
