"""Building a station's contents for retention tests: clips with bytes, cases, links, holds."""

from __future__ import annotations

import os
from datetime import datetime

from evidence_store.bootstrap import Station
from evidence_store.credentials import hash_password
from evidence_store.domain.model import (
    CaseCategory,
    ClipStatus,
    ExportRequest,
    ExportStatus,
    RetentionPeriod,
)
from tests import factories


def add_clip(
    station: Station,
    ended: datetime,
    *,
    status: ClipStatus = ClipStatus.READY,
    size: int = 2048,
    with_proxy: bool = True,
) -> int:
    data = os.urandom(size)
    stored = factories.store_clip(station, data, utc_start=ended, utc_end=ended, status=status)
    if with_proxy:
        factories.add_derivative(station, stored.clip_id, stored.sha256, b"proxy of " + data[:64])
    return stored.clip_id


def add_case(
    station: Station,
    number: str,
    *,
    archived: datetime | None,
    period: RetentionPeriod,
    category: CaseCategory = CaseCategory.PUNISHMENT,
) -> int:
    return factories.add_case(
        station, number, category=category, archived_at=archived, retention_period=period
    )


def link(station: Station, clip_id: int, case_id: int, *, evidence: bool) -> None:
    factories.add_link(station, clip_id, case_id, is_evidence=evidence)


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
    factories.add_user(
        station, username, role, unit="金普新区卫生健康监督所", password_hash=hash_password(password)
    )
