"""Building a station's contents for retention tests: clips with bytes, cases, links, holds."""

from __future__ import annotations

import io
import os
from datetime import datetime

from evidence_store.bootstrap import Station
from evidence_store.domain.model import (
    Case,
    CaseCategory,
    Clip,
    ClipLink,
    ClipStatus,
    Derivative,
    DerivativeKind,
    ExportRequest,
    ExportStatus,
    MediaType,
    RetentionPeriod,
)
from evidence_store.originals import store_original


def add_clip(
    station: Station,
    ended: datetime,
    *,
    status: ClipStatus = ClipStatus.READY,
    size: int = 2048,
    with_proxy: bool = True,
) -> int:
    data = os.urandom(size)

    def make(sha256: str, stored_size: int, now: datetime) -> Clip:
        return Clip(
            sha256=sha256,
            size=stored_size,
            media_type=MediaType.VIDEO,
            original_name=f"{sha256[:8]}.MP4",
            utc_start=ended,
            utc_end=ended,
            status=status,
            ingested_at=now,
        )

    with station.transaction() as session:
        stored = store_original(
            source=io.BytesIO(data),
            blobs=station.blobs,
            session=session,
            audit=station.audit,
            clock=station.clock,
            make_clip=make,
            actor="test",
        )
        if with_proxy:
            proxy = station.blobs.put(io.BytesIO(b"proxy of " + data[:64]))
            session.add(
                Derivative(
                    clip_id=stored.clip_id,
                    kind=DerivativeKind.PROXY,
                    sha256=proxy.sha256,
                    size=proxy.size,
                    mime_type="video/mp4",
                    derived_from_sha256=stored.sha256,
                    tool="ffmpeg",
                    tool_version="test",
                    arguments=[],
                    created_at=station.clock(),
                )
            )
    return stored.clip_id


def add_case(
    station: Station,
    number: str,
    *,
    archived: datetime | None,
    period: RetentionPeriod,
    category: CaseCategory = CaseCategory.PUNISHMENT,
) -> int:
    with station.transaction() as session:
        case = Case(number=number, category=category, archived_at=archived, retention_period=period)
        session.add(case)
        session.flush()
        return case.id or 0


def link(station: Station, clip_id: int, case_id: int, *, evidence: bool) -> None:
    with station.transaction() as session:
        session.add(
            ClipLink(
                clip_id=clip_id,
                case_id=case_id,
                is_evidence=evidence,
                created_at=station.clock(),
                created_by="test",
                reason="test",
            )
        )


def request_export(station: Station, clip_id: int) -> None:
    with station.transaction() as session:
        session.add(
            ExportRequest(
                requested_by="investigator",
                purpose="court",
                items=[{"clip_id": clip_id}],
                status=ExportStatus.PENDING,
                created_at=station.clock(),
            )
        )


def add_user(station: Station, username: str, role: str, password: str) -> None:
    """A station user who can prove who they are on the command line (`--password-stdin`)."""
    from sqlalchemy import insert

    from evidence_store.credentials import hash_password
    from evidence_store.db.tables import users

    now = station.clock()
    with station.engine.begin() as connection:
        connection.execute(
            insert(users).values(
                username=username,
                display_name=username,
                role=role,
                unit="金普新区卫生健康监督所",
                password_hash=hash_password(password),
                active=True,
                created_at=now,
                updated_at=now,
            )
        )
