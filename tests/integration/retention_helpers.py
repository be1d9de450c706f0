"""Building a station's contents for retention tests: clips with bytes, cases, links, holds."""

from __future__ import annotations

import os
from datetime import datetime

from sqlalchemy import insert

from evidence_store.bootstrap import Station
from evidence_store.credentials import hash_password
from evidence_store.db.tables import disclosure_applications
from evidence_store.domain.disclosure import ApplicationKind, ApplicationState
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


def apply_for_disclosure(station: Station, clip_id: int, state: ApplicationState) -> int:
    """A party's application (R15) naming the clip, in `state`; its id."""
    now = station.clock()
    with station.transaction() as session:
        return int(
            session.execute(
                insert(disclosure_applications).values(
                    party_name="张三",
                    id_document_type="resident_id",
                    id_document_number="210200199001011234",
                    kind=ApplicationKind.COPY,
                    purpose="a copy of the inspection of his shop",
                    clip_ids=[clip_id],
                    received_at=now,
                    recorded_by="custodian",
                    recorded_at=now,
                    state=state,
                )
            ).inserted_primary_key[0]
        )


def add_user(station: Station, username: str, role: str, password: str) -> None:
    """A station user who can prove who they are on the command line (`--password-stdin`)."""
    factories.add_user(
        station, username, role, unit="金普新区卫生健康监督所", password_hash=hash_password(password)
    )
