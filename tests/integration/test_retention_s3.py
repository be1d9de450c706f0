"""Retention on a real S3 server with Object Lock (Ceph radosgw): the store is aligned with the decisions
and no delete request is ever sent for an object whose retain-until has not passed (R10)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from evidence_store.blobs.s3 import S3BlobStore
from evidence_store.bootstrap import initialise
from evidence_store.db.tables import cases, clips
from evidence_store.domain.model import RetentionPeriod
from evidence_store.settings import load_settings
from retention.policy import add_months
from retention.run import run_retention
from tests.fixtures.radosgw import RadosgwInfo
from tests.integration.retention_helpers import add_case, add_clip, link

pytestmark = pytest.mark.radosgw


def test_locked_objects_are_never_sent_a_delete_and_kept_ones_are_locked_longer(
    radosgw: RadosgwInfo, station_env: dict[str, str]
) -> None:
    env = {
        **station_env,
        "EVIDENCE_BLOB_STORE": "s3",
        "EVIDENCE_S3_ENDPOINT_URL": radosgw.endpoint_url,
        "EVIDENCE_S3_BUCKET": f"retention-{uuid.uuid4().hex[:12]}",
        "EVIDENCE_S3_ACCESS_KEY_ID": radosgw.access_key_id,
        "EVIDENCE_S3_SECRET_ACCESS_KEY": radosgw.secret_access_key,
        "EVIDENCE_S3_REGION": radosgw.region,
        "EVIDENCE_RETENTION_MAX_DELETE_SHARE": "1.0",
    }
    station, _ = initialise(load_settings(env))
    store = station.blobs
    assert isinstance(store, S3BlobStore)
    now = station.clock()
    # stored today, so locked for the default 184 days, although its recording is 7 months old
    locked_old = add_clip(station, add_months(now, -7), with_proxy=False)
    archived = add_case(station, "C-ARCH", archived=add_months(now, -108), period=RetentionPeriod.YEARS_10)
    open_case = add_case(station, "C-OPEN", archived=None, period=RetentionPeriod.YEARS_10)
    evidence_dated = add_clip(station, add_months(now, -110), with_proxy=False)
    evidence_open = add_clip(station, add_months(now, -110), with_proxy=False)
    link(station, evidence_dated, archived, evidence=True)
    link(station, evidence_open, open_case, evidence=True)
    with station.engine.connect() as connection:
        sha = dict(connection.execute(select(clips.c.id, clips.c.sha256)).tuples().all())

    deletes: list[dict] = []
    store.client.meta.events.register(
        "before-call.s3.DeleteObject", lambda params, **_: deletes.append(params)
    )
    store.client.meta.events.register(
        "before-call.s3.DeleteObjects", lambda params, **_: deletes.append(params)
    )

    report = run_retention(station, now)
    assert deletes == []
    assert report.deleted == 0
    assert [s["clip_id"] for s in report.skipped] == [locked_old]
    assert "store refused" in report.skipped[0]["reason"]
    assert store.exists(sha[locked_old])

    # kept evidence: retain-until extended to the case file's end; undated keep: a legal hold
    until = store.retain_until(sha[evidence_dated])
    assert until is not None
    assert until >= add_months(add_months(now, -108), 120) - timedelta(seconds=1)
    assert store.lock_state(sha[evidence_open]).legal_hold is True
    assert store.lock_state(sha[evidence_dated]).legal_hold is not True

    # a second run sends no delete either, and shortens nothing
    run_retention(station, now)
    assert deletes == []
    assert store.retain_until(sha[evidence_dated]) == until

    # the open case is archived, long enough ago that its evidence may go: the legal hold the run put
    # on the object is taken off (else the store would refuse the delete for ever); the object's own
    # retain-until (stored today) still stops the delete, and no delete request is sent for it
    with station.transaction() as session:
        session.execute(
            update(cases).where(cases.c.id == open_case).values(archived_at=add_months(now, -121))
        )
    report = run_retention(station, now)
    assert store.lock_state(sha[evidence_open]).legal_hold is False
    assert deletes == []
    assert evidence_open in [s["clip_id"] for s in report.skipped]
    assert store.exists(sha[evidence_open])
    station.close()
