"""The clip read model: metadata, derivatives, hashes and their verification state, the chain of
custody (every audit event of the clip and of its transfer, in order, R17), linked cases (R13)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, and_, or_, select

from evidence_store.db.tables import (
    attachments,
    audit_events,
    cases,
    clip_links,
    clip_markers,
    clip_tags,
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
from evidence_store.domain.access import User, case_visible
from evidence_store.domain.model import DerivativeKind

CUSTODY_LIMIT = 2000


def clip_row(connection: Connection, clip_id: int) -> Any:
    """The few columns of a clip the routes need before anything else (id, hashes, transfer, size, name)."""
    return connection.execute(
        select(clips.c.id, clips.c.sha256, clips.c.transfer_id, clips.c.size, clips.c.original_name).where(
            clips.c.id == clip_id
        )
    ).first()


def clip_id_by_sha256(connection: Connection, sha256: str) -> int | None:
    """The id of the clip whose original has this sha256, or None."""
    found = connection.scalar(select(clips.c.id).where(clips.c.sha256 == sha256))
    return None if found is None else int(found)


def clip_transfer(connection: Connection, transfer_id: int | None) -> dict[str, Any] | None:
    """The transfer (dock session) that brought the clip in."""
    if transfer_id is None:
        return None
    t = connection.execute(
        select(transfers, dock_stations.c.name.label("dock_name"))
        .outerjoin(dock_stations, dock_stations.c.id == transfers.c.dock_station_id)
        .where(transfers.c.id == transfer_id)
    ).first()
    if t is None:
        return None
    return {
        "id": t.id,
        "source": str(t.source),
        "dock": t.dock_name,
        "started_at": t.started_at,
        "finished_at": t.finished_at,
        "outcome": str(t.outcome),
    }


def clip_derivatives(connection: Connection, clip_id: int) -> list[dict[str, Any]]:
    """The clip's derivatives (proxy, poster, contact sheet), oldest first, with the tool that made them."""
    return [
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


def clip_attachments(connection: Connection, clip_id: int, transfer_id: int | None) -> list[dict[str, Any]]:
    """The recorder's sidecar files kept beside the clip (issue 17): its own (a GPS track with its base
    name) and its transfer's (device-info file, logs), deleted ones included and said so."""
    owner = attachments.c.clip_id == clip_id
    if transfer_id is not None:
        owner = or_(owner, and_(attachments.c.transfer_id == transfer_id, attachments.c.clip_id.is_(None)))
    return [
        {
            "id": a.id,
            "kind": a.kind,
            "name": a.original_name,
            "device_path": a.device_path,
            "size": a.size,
            "sha256": a.sha256,
            "of_clip": a.clip_id == clip_id,
            "deleted_at": a.deleted_at,
        }
        for a in connection.execute(select(attachments).where(owner).order_by(attachments.c.id))
    ]


def clip_timestamps(connection: Connection, clip_id: int) -> list[dict[str, Any]]:
    """The trusted timestamps over the clip's hash."""
    return [
        {"kind": s.kind, "authority": s.authority, "gen_time": s.gen_time, "serial": s.serial}
        for s in connection.execute(
            select(timestamp_tokens)
            .where(timestamp_tokens.c.clip_id == clip_id)
            .order_by(timestamp_tokens.c.id)
        )
    ]


def clip_case_links(connection: Connection, clip_id: int, user: User) -> list[dict[str, Any]]:
    """The clip's links (removed ones too) to the cases this user may see (R13)."""
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
    return links


def clip_open_flags(connection: Connection, clip_id: int) -> list[dict[str, Any]]:
    """The clip's open compliance flags."""
    return [
        {"kind": f.kind, "details": f.details, "opened_at": f.opened_at}
        for f in connection.execute(
            select(compliance_flags).where(
                compliance_flags.c.clip_id == clip_id, compliance_flags.c.cleared_at.is_(None)
            )
        )
    ]


def clip_detail(connection: Connection, clip_id: int, user: User) -> dict[str, Any] | None:
    """What the clip page shows (without custody and verification, see those functions), or None when
    there is no such clip. The caller checks that the user may see the clip at all (R11, R13)."""
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
        "transfer": clip_transfer(connection, row.transfer_id),
        "derivatives": clip_derivatives(connection, clip_id),
        "attachments": clip_attachments(connection, clip_id, row.transfer_id),
        "timestamps": clip_timestamps(connection, clip_id),
        "links": clip_case_links(connection, clip_id, user),
        "flags": clip_open_flags(connection, clip_id),
        **clip_annotations(connection, clip_id),
    }


def clip_annotations(connection: Connection, clip_id: int) -> dict[str, Any]:
    """The clip's markers (in time order, removed ones left out) and tags (alphabetical)."""
    markers = connection.execute(
        select(
            clip_markers.c.id,
            clip_markers.c.offset_s,
            clip_markers.c.note,
            clip_markers.c.created_by,
            clip_markers.c.created_at,
        )
        .where(clip_markers.c.clip_id == clip_id, clip_markers.c.removed_at.is_(None))
        .order_by(clip_markers.c.offset_s, clip_markers.c.id)
    ).all()
    tags = connection.scalars(
        select(clip_tags.c.tag).where(clip_tags.c.clip_id == clip_id).order_by(clip_tags.c.tag)
    ).all()
    return {"markers": [dict(m._mapping) for m in markers], "tags": list(tags)}


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
