"""The retention run over a few clips with a fixed `now` (R9, R10), on the fake station: a dry run
plans and deletes nothing; a run deletes only what the policy lets go, through the retention purger,
leaving tombstones and an intact audit chain; a large share waits for confirmation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from evidence_store.audit import verify_audit_log
from evidence_store.db.tables import clips, tombstones
from evidence_store.domain.model import ClipStatus, RetentionPeriod
from retention.policy import add_months
from retention.run import ConfirmationNeeded, run_retention
from tests.factories import add_case, add_link, store_clip
from tests.fakes import FakeStation, audit_trail, fake_station

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def months_ago(months: int) -> datetime:
    return add_months(NOW, -months)


def clip_ended(station: FakeStation, ended: datetime, label: str) -> tuple[int, str]:
    stored = store_clip(
        station, label.encode() * 200, utc_start=ended, utc_end=ended, status=ClipStatus.READY
    )
    return stored.clip_id, stored.sha256


def statuses(station: FakeStation) -> dict[int, str]:
    with station.engine.connect() as connection:
        return {row.id: str(row.status) for row in connection.execute(select(clips.c.id, clips.c.status))}


def a_station() -> tuple[FakeStation, dict[str, tuple[int, str]]]:
    station = fake_station(retention_max_delete_share=1.0)
    made = {
        "young": clip_ended(station, months_ago(6) + DAY, "young"),
        "old": clip_ended(station, months_ago(6) - DAY, "old"),
        "evidence_open_case": clip_ended(station, months_ago(150), "evidence, open case"),
        "evidence_archived_long_ago": clip_ended(station, months_ago(150), "evidence, archived 10y+"),
    }
    open_case = add_case(station, "C-O", archived_at=None, retention_period=RetentionPeriod.YEARS_10)
    archived = add_case(
        station, "C-10", archived_at=months_ago(120) - DAY, retention_period=RetentionPeriod.YEARS_10
    )
    add_link(station, made["evidence_open_case"][0], open_case, is_evidence=True)
    add_link(station, made["evidence_archived_long_ago"][0], archived, is_evidence=True)
    return station, made


def test_a_dry_run_plans_and_deletes_nothing() -> None:
    station, made = a_station()
    report = run_retention(station, NOW, dry_run=True)
    assert {item["clip_id"] for item in report.would_delete} == {
        made["old"][0],
        made["evidence_archived_long_ago"][0],
    }
    assert "deleted" not in statuses(station).values()
    assert all(station.blobs.exists(sha) for _, sha in made.values())
    assert audit_trail(station, "retention.run_started") == []  # a dry run changes nothing on record


def test_a_run_deletes_what_the_policy_lets_go_and_nothing_else() -> None:
    station, made = a_station()
    report = run_retention(station, NOW)
    assert report.status == "finished"
    assert report.deleted == 2
    doomed = {made["old"][0], made["evidence_archived_long_ago"][0]}
    now_status = statuses(station)
    assert {clip_id for clip_id, status in now_status.items() if status == "deleted"} == doomed
    for clip_id, sha256 in made.values():
        assert station.blobs.exists(sha256) == (clip_id not in doomed)
    assert station.purger is not None
    assert {sha for _, sha in station.purger.purged} == {
        made["old"][1],
        made["evidence_archived_long_ago"][1],
    }
    with station.engine.connect() as connection:
        rules = {row.clip_id: row.rule for row in connection.execute(select(tombstones))}
    assert rules == {
        made["old"][0]: "non_evidence:minimum_period",
        made["evidence_archived_long_ago"][0]: "evidence:case_file_period",
    }
    assert verify_audit_log(station.engine, station.key.public()).ok
    again = run_retention(station, NOW)  # idempotent
    assert again.deleted == 0


def test_a_large_share_waits_for_confirmation() -> None:
    limited = fake_station()  # the default: at most 10 % of the stored bytes without confirmation
    old = clip_ended(limited, months_ago(12), "old")
    clip_ended(limited, months_ago(1), "young")
    with pytest.raises(ConfirmationNeeded) as waiting:
        run_retention(limited, NOW)
    assert waiting.value.report.status == "awaiting_confirmation"
    assert limited.blobs.exists(old[1])
    confirmed = run_retention(limited, NOW, confirm_run_id=waiting.value.report.run_id)
    assert confirmed.deleted == 1
    assert not limited.blobs.exists(old[1])
    assert sorted(statuses(limited).values()) == ["deleted", "ready"]
