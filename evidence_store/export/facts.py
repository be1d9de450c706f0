"""What the station's records say about each exported clip, as plain JSON-ready values (R12, R14).

Read once, before the package is built, in one read-only session: the clip, who recorded it
(producer), on which device, its recording times (device-reported and corrected, with the clock
offset), the handover (transfer, who handed over, which dock station, when), the case and the linked
documents, the time-stamp tokens of the original, and the custody events (the clip's audit events in
chain order, with their hashes and station signatures so that a verifier can check each one offline).

Times: system times are UTC, written ``2026-11-24T08:00:00+00:00``; times a recorder reported about
itself are written without an offset exactly as the recorder gave them (its own local clock).
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence_store.cases.kinds import KindTable
from evidence_store.db.tables import (
    audit_events,
    cases,
    clip_links,
    clips,
    devices,
    dock_stations,
    documents,
    officers,
    timestamp_tokens,
    transfers,
    users,
)
from evidence_store.errors import NotFoundError
from evidence_store.queries.clips import clip_annotations


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def people_names(session: Session, logins: list[str | None]) -> dict[str, str]:
    """The display names of station users, by login (a note for people names people, not logins);
    a login with no user or no name is left out."""
    wanted = {login for login in logins if login}
    if not wanted:
        return {}
    rows = session.execute(select(users.c.username, users.c.display_name).where(users.c.username.in_(wanted)))
    return {row.username: row.display_name for row in rows if row.display_name}


def _officer(session: Session, officer_id: int | None) -> dict[str, Any] | None:
    if officer_id is None:
        return None
    row = session.execute(select(officers).where(officers.c.id == officer_id)).first()
    if row is None:
        return None
    return {"badge_number": row.badge_number, "name": row.name, "unit": row.unit}


def _device(session: Session, device_id: int | None) -> dict[str, Any] | None:
    if device_id is None:
        return None
    row = session.execute(select(devices).where(devices.c.id == device_id)).first()
    if row is None:
        return None
    return {"serial": row.serial, "model": row.model, "vendor": row.vendor, "profile": row.profile}


def _handover(session: Session, transfer_id: int | None, late: bool) -> dict[str, Any] | None:
    if transfer_id is None:
        return None
    row = session.execute(select(transfers).where(transfers.c.id == transfer_id)).first()
    if row is None:
        return None
    dock: dict[str, Any] | None = None
    if row.dock_station_id is not None:
        dock_row = session.execute(
            select(dock_stations).where(dock_stations.c.id == row.dock_station_id)
        ).first()
        if dock_row is not None:
            dock = {"name": dock_row.name, "location": dock_row.location, "unit": dock_row.unit}
    return {
        "transfer_id": row.id,
        "source": str(row.source),
        "handed_over_by": _officer(session, row.officer_id),
        "started_at": iso(row.started_at),
        "finished_at": iso(row.finished_at),
        "dock_station": dock,
        "outcome": str(row.outcome),
        "device_clock_offset_s": row.device_clock_offset_s,
        "device_clock_read_at": iso(row.device_clock_read_at),
        "late_handover": late,
    }


def name_document_kinds(clip: dict[str, Any], kinds: KindTable) -> None:
    """Give each linked document's kind its form title (R7: "现场检查笔录" for `on_site_inspection`) as
    `kind_name`, beside the code the records hold, for the note's readers."""
    for document in clip.get("documents") or []:
        kind = kinds.resolve(document["kind"]) if document.get("kind") else None
        if kind is not None:
            document["kind_name"] = kind.name


def _documents(session: Session, clip_id: int) -> list[dict[str, Any]]:
    rows = session.execute(
        select(
            clip_links.c.is_evidence,
            clip_links.c.origin,
            clip_links.c.uncertain,
            cases.c.number.label("case_number"),
            documents.c.external_id,
            documents.c.kind,
            documents.c.title,
            documents.c.start,
            documents.c.end,
        )
        .join(cases, cases.c.id == clip_links.c.case_id)
        .outerjoin(documents, documents.c.id == clip_links.c.document_id)
        .where(clip_links.c.clip_id == clip_id, clip_links.c.removed_at.is_(None))
        .order_by(clip_links.c.id)
    ).all()
    return [
        {
            "case_number": r.case_number,
            "external_id": r.external_id,
            "kind": r.kind,
            "title": r.title,
            "start": iso(r.start),
            "end": iso(r.end),
            "is_evidence": bool(r.is_evidence),
            "link_origin": str(r.origin),
            "uncertain": bool(r.uncertain),
        }
        for r in rows
    ]


def tokens_of(session: Session, clip_id: int) -> list[dict[str, Any]]:
    """The stored time-stamp tokens of a clip (raw bytes under ``token``)."""
    rows = session.execute(
        select(timestamp_tokens).where(timestamp_tokens.c.clip_id == clip_id).order_by(timestamp_tokens.c.id)
    ).all()
    return [
        {
            "kind": r.kind,
            "sha256": r.sha256,
            "authority": r.authority,
            "gen_time": r.gen_time,
            "serial": r.serial,
            "token": bytes(r.token),
        }
        for r in rows
    ]


def audit_trail(session: Session, object_type: str, object_id: str | int) -> list[dict[str, Any]]:
    """The audit events of one object in chain order, as stored (hash inputs kept verbatim)."""
    rows = session.execute(
        select(audit_events)
        .where(audit_events.c.object_type == object_type, audit_events.c.object_id == str(object_id))
        .order_by(audit_events.c.seq)
    ).all()
    return [
        {
            "seq": int(r.seq),
            "at": r.at,
            "actor": r.actor,
            "action": r.action,
            "object_type": r.object_type,
            "object_id": r.object_id,
            "source": r.source,
            "details": r.details,
            "prev_hash": r.prev_hash,
            "hash": r.hash,
            "signature": base64.b64encode(bytes(r.signature)).decode("ascii"),
            # the key that signed it (hashed with it); "" for an event from before events named it
            "key_fingerprint": r.key_fingerprint,
        }
        for r in rows
    ]


def case_facts(session: Session, case_id: int | None) -> dict[str, Any] | None:
    if case_id is None:
        return None
    row = session.execute(select(cases).where(cases.c.id == case_id)).first()
    if row is None:
        return None
    return {"number": row.number, "title": row.title, "category": str(row.category), "unit": row.unit}


def clip_facts(session: Session, clip_id: int) -> dict[str, Any]:
    """Everything the note and the manifest say about one clip (without its tokens' bytes)."""
    row = session.execute(select(clips).where(clips.c.id == clip_id)).first()
    if row is None:
        raise NotFoundError(f"no clip {clip_id}")
    media_info = row.media_info if isinstance(row.media_info, dict) else json.loads(row.media_info or "{}")
    return {
        "clip_id": row.id,
        "sha256": row.sha256,
        "size": int(row.size),
        "media_type": str(row.media_type),
        "status": str(row.status),
        "original_name": row.original_name,
        "device_path": row.device_path,
        "ingested_at": iso(row.ingested_at),
        "producer": _officer(session, row.officer_id),
        "device": _device(session, row.device_id),
        "recording": {
            "device_start": iso(row.device_start),
            "device_end": iso(row.device_end),
            "utc_start": iso(row.utc_start),
            "utc_end": iso(row.utc_end),
            "clock_offset_s": row.clock_offset_s,
            "clock_status": str(row.clock_status),
            "duration_s": row.duration_s,
        },
        "handover": _handover(session, row.transfer_id, bool(row.late_handover)),
        "documents": _documents(session, clip_id),
        "media": _media_summary(media_info),
        **_annotations(session, clip_id),
    }


def _annotations(session: Session, clip_id: int) -> dict[str, Any]:
    """The clip's markers (time in the clip, note, who, when) and tags, as the provenance note lists them."""
    shown = clip_annotations(session.connection(), clip_id)
    markers = shown["markers"]
    names = people_names(session, [m["created_by"].removeprefix("web:") for m in markers])
    return {
        "markers": [
            {
                "offset_s": m["offset_s"],
                "note": m["note"],
                "by": m["created_by"],
                "by_name": names.get(m["created_by"].removeprefix("web:")),
                "at": iso(m["created_at"]),
            }
            for m in markers
        ],
        "tags": shown["tags"],
    }


def _media_summary(media_info: dict[str, Any]) -> dict[str, Any]:
    """The few probe facts the export needs (picture height for the overlay size, container)."""
    probe = media_info.get("probe") if isinstance(media_info.get("probe"), dict) else media_info
    assert isinstance(probe, dict)
    summary: dict[str, Any] = {}
    for key in ("kind", "container", "width", "height", "video_codec", "audio_codec", "video_stream_index"):
        value = probe.get(key)
        if isinstance(value, str | int | float):
            summary[key] = value
    return summary
