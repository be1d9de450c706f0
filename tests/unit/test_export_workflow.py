"""The certified-export workflow's rules (R12, R14) on the fake station: who may request, decide and
build; approval valid for a number of days on the station's clock; every step and every refusal on the
audit record, the refusal surviving the error it raises."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from evidence_store.domain.model import ClipStatus, ExportStatus
from evidence_store.errors import NotFoundError
from evidence_store.export.workflow import (
    ExportRefusedError,
    approve_export,
    authorise_build,
    expire_due,
    reject_export,
    request_export,
)
from tests.factories import add_user, store_clip
from tests.fakes import FakeStation, audit_trail, fake_station


def station_with_people(**settings: Any) -> tuple[FakeStation, int]:
    station = fake_station(**settings)
    for username, role in (("inv1", "investigator"), ("boss", "approver"), ("clerk", "custodian")):
        add_user(station, username, role)
    add_user(station, "gone", "investigator", active=False)
    clip = store_clip(station, b"footage for court" * 100, status=ClipStatus.READY).clip_id
    return station, clip


def requested(station: FakeStation, clip: int) -> int:
    request = request_export(station, user="inv1", items=[{"clip_id": clip}], purpose="court")
    assert request.id is not None
    return request.id


def test_a_request_is_pending_and_audited() -> None:
    station, clip = station_with_people()
    request = request_export(
        station, user="inv1", items=[{"clip_id": clip, "start_s": 5, "end_s": 20}], purpose=" court "
    )
    assert request.status is ExportStatus.PENDING
    assert request.purpose == "court"
    assert request.items == [{"clip_id": clip, "start_s": 5.0, "end_s": 20.0, "cut": "exact"}]
    [event] = audit_trail(station, "export.requested")
    assert (event.actor, event.object_id) == ("inv1", str(request.id))


@pytest.mark.parametrize(
    ("user", "reason"),
    [
        ("clerk", "has role custodian, not investigator"),
        ("gone", "is deactivated"),
        ("nobody", "no user 'nobody'"),
    ],
)
def test_only_an_active_investigator_may_request_and_the_refusal_is_on_record(user: str, reason: str) -> None:
    station, clip = station_with_people()
    with pytest.raises(ExportRefusedError) as refused:
        request_export(station, user=user, items=[{"clip_id": clip}], purpose="court")
    assert reason in refused.value.reason
    [event] = audit_trail(station, "export.refused")
    assert event.actor == user
    assert event.details["step"] == "request"
    assert reason in event.details["reason"]
    assert audit_trail(station, "export.requested") == []


def test_a_deleted_clip_cannot_be_requested() -> None:
    station, _ = station_with_people()
    gone = store_clip(station, b"deleted by retention", status=ClipStatus.DELETED).clip_id
    with pytest.raises(NotFoundError, match="deleted by retention"):
        request_export(station, user="inv1", items=[{"clip_id": gone}], purpose="court")
    with pytest.raises(NotFoundError, match="no clip 999"):
        request_export(station, user="inv1", items=[{"clip_id": 999}], purpose="court")


def test_an_approval_is_valid_for_the_configured_days_on_the_stations_clock() -> None:
    station, clip = station_with_people(export_validity_days=3)
    request_id = requested(station, clip)
    station.clock.advance(timedelta(hours=2))
    approved = approve_export(station, request_id, user="boss")
    assert approved.status is ExportStatus.APPROVED
    assert approved.decided_at == station.clock.now
    assert approved.valid_until == station.clock.now + timedelta(days=3)
    assert authorise_build(station, request_id, user="inv1").status is ExportStatus.APPROVED


def test_only_an_approver_decides_and_only_once() -> None:
    station, clip = station_with_people()
    request_id = requested(station, clip)
    with pytest.raises(ExportRefusedError, match="not approver"):
        approve_export(station, request_id, user="inv1")
    reject_export(station, request_id, user="boss", reason="not needed")
    with pytest.raises(ExportRefusedError, match="rejected, not pending"):
        approve_export(station, request_id, user="boss")
    assert [e.details["step"] for e in audit_trail(station, "export.refused")] == ["approve", "approve"]
    [rejected] = audit_trail(station, "export.rejected")
    assert rejected.details["reason"] == "not needed"


def test_only_the_requester_builds_and_not_before_approval() -> None:
    station, clip = station_with_people()
    request_id = requested(station, clip)
    with pytest.raises(ExportRefusedError, match="not approved yet"):
        authorise_build(station, request_id, user="inv1")
    approve_export(station, request_id, user="boss")
    with pytest.raises(ExportRefusedError, match="only the requester"):
        authorise_build(station, request_id, user="boss")


def test_an_approval_past_its_validity_expires_when_used_and_is_refused() -> None:
    station, clip = station_with_people(export_validity_days=7)
    request_id = requested(station, clip)
    approve_export(station, request_id, user="boss")
    station.clock.advance(timedelta(days=7))
    assert (
        authorise_build(station, request_id, user="inv1").status is ExportStatus.APPROVED
    )  # the last moment
    station.clock.advance(timedelta(seconds=1))
    with pytest.raises(ExportRefusedError, match="expired"):
        authorise_build(station, request_id, user="inv1")
    assert [e.object_id for e in audit_trail(station, "export.expired")] == [str(request_id)]
    [refusal] = audit_trail(station, "export.refused")
    assert refusal.details["status"] == "expired"


def test_expire_due_expires_only_approvals_past_their_validity() -> None:
    station, clip = station_with_people(export_validity_days=1)
    old = requested(station, clip)
    approve_export(station, old, user="boss")
    station.clock.advance(timedelta(days=2))
    fresh = requested(station, clip)
    approve_export(station, fresh, user="boss")
    pending = requested(station, clip)
    assert expire_due(station) == [old]
    assert expire_due(station) == []
    assert pending not in {int(e.object_id) for e in audit_trail(station, "export.expired")}
