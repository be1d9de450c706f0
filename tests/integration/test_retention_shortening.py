"""A decided retention date is shortened only under a recorded, audited authorisation (R9, R10).

The run keeps the earlier, longer date when a case file's period is changed from 30 to 10 years or a
category period is lowered, and says "shortening needs approval"; an approver's `evidence retention
allow-shorter` is audited and honoured by the next run; 6 months after the recording is never undercut.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from evidence_store.audit import verify_audit_log
from evidence_store.bootstrap import Station, open_station
from evidence_store.db.tables import (
    audit_events,
    cases,
    clip_links,
    clips,
    retention_floors,
    retention_shortenings,
    tombstones,
    users,
)
from evidence_store.domain.model import ClipStatus, RetentionPeriod
from evidence_store.errors import NotFoundError
from evidence_store.settings import load_settings
from retention.policy import add_months
from retention.run import run_retention
from retention.shortening import ShorteningRefused, authorise_shortening
from tests.conftest import run_cli
from tests.integration.retention_helpers import add_case, add_clip, add_user, link

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
DAY = timedelta(days=1)
PASSWORD = "correct horse battery staple"


def months_ago(months: int) -> datetime:
    return add_months(NOW, -months)


def run(env: dict[str, str], *args: str) -> dict:
    result = run_cli(["retention", "run", "--now", NOW.isoformat(), "--json", *args], env)
    assert result.code == 0, result.stderr
    return json.loads(result.stdout)


def allow(env: dict[str, str], user: str, *scope: str, password: str = PASSWORD) -> tuple[int, str]:
    args = ["retention", "allow-shorter", *scope, "--reason", "case file reviewed", "--user", user]
    result = run_cli(
        [*args, "--password-stdin", "--json"],
        env,
        input=password + "\n",
    )
    return result.code, result.stdout + result.stderr


def deleted(station: Station) -> set[int]:
    with station.engine.connect() as connection:
        return set(connection.scalars(select(tombstones.c.clip_id)))


def audit(station: Station, action: str) -> list[dict]:
    with station.engine.connect() as connection:
        return [
            {"object_id": r.object_id, "actor": r.actor, **json.loads(r.details)}
            for r in connection.execute(
                select(audit_events).where(audit_events.c.action == action).order_by(audit_events.c.seq)
            )
        ]


def test_a_shorter_period_waits_for_an_audited_authorisation(
    station: Station, station_env: dict[str, str]
) -> None:
    env = {**station_env, "EVIDENCE_RETENTION_MAX_DELETE_SHARE": "1.0"}
    config = Path(env["EVIDENCE_HOME"]) / "evidence.toml"
    config.write_text('[retention_months_by_category]\n"行政处罚" = 12\n', encoding="utf-8")
    archived = months_ago(132)  # 11 years ago: a 10-year file has ended, a 30-year one has not
    file_case = add_case(station, "C-S", archived=archived, period=RetentionPeriod.YEARS_30)
    evidence = add_clip(station, months_ago(150))
    link(station, evidence, file_case, evidence=True)
    punishment = add_case(station, "C-P", archived=None, period=RetentionPeriod.YEARS_10)
    eight_months = add_clip(station, months_ago(8))  # 12 months for its category, then 6
    four_months = add_clip(station, months_ago(4))
    for clip_id in (eight_months, four_months):
        link(station, clip_id, punishment, evidence=False)
    add_user(station, "boss", "approver", PASSWORD)
    add_user(station, "inv1", "investigator", PASSWORD)

    first = run(env)
    assert first["deleted"] == 0 and first["shortening_needs_approval"] == 0
    with station.engine.connect() as connection:
        floors = {r.clip_id: r for r in connection.execute(select(retention_floors))}
    assert floors[evidence].not_before == add_months(archived, 360)
    assert floors[evidence].case_id == file_case
    assert floors[eight_months].not_before == add_months(months_ago(8), 12)

    # the case file's period is changed to 10 years; the category period goes back to 6 months
    with station.engine.begin() as connection:
        connection.execute(
            update(cases).where(cases.c.id == file_case).values(retention_period=RetentionPeriod.YEARS_10)
        )
    config.write_text("", encoding="utf-8")
    dry = run(env, "--dry-run")
    assert dry["would_delete"] == [] and dry["shortening_needs_approval"] == 3
    waiting = {item["clip_id"]: item for item in dry["shortenings"]}
    assert waiting[evidence]["kept_until"] == add_months(archived, 360).isoformat()
    assert waiting[evidence]["policy_date"] == add_months(archived, 120).isoformat()
    assert waiting[evidence]["floor_case_id"] == file_case
    text = run_cli(["retention", "run", "--dry-run", "--now", NOW.isoformat()], env)
    assert "shortening needs approval: clip" in text.stdout
    assert run(env)["deleted"] == 0  # a real run keeps the longer dates
    assert deleted(station) == set()

    # only an active approver who proves who they are may authorise, and only with a known target
    assert allow(env, "inv1", "--case", "C-S")[0] == 2
    assert allow(env, "boss", "--case", "C-S", password="wrong")[0] == 2
    assert allow(env, "boss", "--case", "NO-SUCH")[0] == 2
    assert allow(env, "boss", "--rule", "hold:legal_hold_clip")[0] == 2
    assert allow(env, "boss", "--case", "C-S", "--clip", str(evidence))[0] == 2
    with station.engine.connect() as connection:
        assert connection.scalar(select(retention_shortenings.c.id)) is None

    code, out = allow(env, "boss", "--case", "C-S")
    assert code == 0, out
    case_authorisation = json.loads(out)["authorisation_id"]
    [granted] = audit(station, "retention.shortening_authorised")
    assert granted["actor"] == "boss" and granted["reason"] == "case file reviewed"
    assert granted["case_number"] == "C-S"
    dry = run(env, "--dry-run")
    assert [item["clip_id"] for item in dry["would_delete"]] == [evidence]
    assert dry["shortened"] == 1 and dry["shortening_needs_approval"] == 2
    assert audit(station, "retention.period_shortened") == []  # a dry run changes nothing

    report = run(env)
    assert report["deleted"] == 1 and deleted(station) == {evidence}
    [lowered] = audit(station, "retention.period_shortened")
    assert lowered["object_id"] == str(evidence) and lowered["authorisation_id"] == case_authorisation
    assert lowered["from"] == add_months(archived, 360).isoformat()
    assert lowered["to"] == add_months(archived, 120).isoformat()
    with station.engine.connect() as connection:
        [spent] = connection.execute(select(retention_shortenings)).all()
        tombstone_rule = connection.scalar(select(tombstones.c.rule).where(tombstones.c.clip_id == evidence))
    assert spent.applied_run_id == report["run_id"] and spent.clips_shortened == 1
    assert tombstone_rule == "evidence:case_file_period"

    code, out = allow(env, "boss", "--rule", "non_evidence:minimum_period")
    assert code == 0, out
    report = run(env)
    assert report["shortened"] == 2 and report["shortening_needs_approval"] == 0
    assert deleted(station) == {evidence, eight_months}
    # R9: the four-month-old clip got its 6 months back, not less, authorisation or not
    with station.engine.connect() as connection:
        floor = connection.scalar(
            select(retention_floors.c.not_before).where(retention_floors.c.clip_id == four_months)
        )
    assert floor == add_months(months_ago(4), 6)
    assert run(env)["shortening_needs_approval"] == 0  # spent, and nothing left to shorten
    listed = json.loads(run_cli(["retention", "shortenings", "--json"], env).stdout)["shortenings"]
    assert [s["clips_shortened"] for s in listed] == [2, 1]
    assert all(s["applied_run_id"] for s in listed)
    assert run_cli(["audit", "verify"], env).code == 0


def test_a_permanent_case_file_made_dated_waits_for_an_authorisation(
    station: Station, station_env: dict[str, str]
) -> None:
    env = {**station_env, "EVIDENCE_RETENTION_MAX_DELETE_SHARE": "1.0"}
    archived = months_ago(132)  # 11 years ago
    permanent_case = add_case(station, "C-PERM", archived=archived, period=RetentionPeriod.PERMANENT)
    evidence = add_clip(station, months_ago(150))
    link(station, evidence, permanent_case, evidence=True)
    add_user(station, "boss", "approver", PASSWORD)

    first = run(env)
    assert first["deleted"] == 0 and first["shortening_needs_approval"] == 0
    with station.engine.connect() as connection:
        floor = connection.execute(
            select(retention_floors).where(retention_floors.c.clip_id == evidence)
        ).one()
    assert floor.reason == "evidence:permanent_case_file" and floor.case_id == permanent_case
    assert floor.store_hold and floor.not_before is None

    # the case-management system now says 10 years: 10 years since archiving have passed
    with station.transaction() as session:
        session.execute(
            update(cases)
            .where(cases.c.id == permanent_case)
            .values(retention_period=RetentionPeriod.YEARS_10)
        )
    dry = run(env, "--dry-run")
    assert dry["would_delete"] == [] and dry["shortening_needs_approval"] == 1
    assert dry["shortenings"][0]["kept_until"] == "permanent"
    assert run(env)["deleted"] == 0 and evidence not in deleted(station)

    code, out = allow(env, "boss", "--case", "C-PERM")
    assert code == 0, out
    after = run(env)
    assert after["deleted"] == 1 and evidence in deleted(station)
    lowered = audit(station, "retention.period_shortened")
    assert [(e["object_id"], e["from"]) for e in lowered] == [(str(evidence), "permanent")]


class Crash(BaseException):
    """Stands for SIGKILL inside the process: nothing after it runs, no handler sees it."""


def lenient(station_env: dict[str, str]) -> Station:
    """The same station, opened with no confirmation asked for large deletions."""
    return open_station(load_settings({**station_env, "EVIDENCE_RETENTION_MAX_DELETE_SHARE": "1.0"}))


def test_a_run_killed_before_spending_the_authorisation_counts_each_clip_once(
    station: Station, station_env: dict[str, str]
) -> None:
    archived = months_ago(132)
    file_case = add_case(station, "C-K", archived=archived, period=RetentionPeriod.YEARS_30)
    evidence = [add_clip(station, months_ago(150)) for _ in range(2)]
    for clip_id in evidence:
        link(station, clip_id, file_case, evidence=True)
    add_user(station, "boss", "approver", PASSWORD)
    runner = lenient(station_env)
    run_retention(runner, NOW)  # the 30-year floors are recorded
    with station.engine.begin() as connection:
        connection.execute(
            update(cases).where(cases.c.id == file_case).values(retention_period=RetentionPeriod.YEARS_10)
        )
    authorisation = authorise_shortening(runner, case_number="C-K", reason="case file reviewed", user="boss")

    def kill_after_planning(step: str) -> None:
        if step == "planned_batch":
            raise Crash(step)

    with pytest.raises(Crash):
        run_retention(runner, NOW, checkpoint=kill_after_planning)
    with station.engine.connect() as connection:
        pending = connection.execute(
            select(retention_shortenings).where(retention_shortenings.c.id == authorisation)
        ).one()
    # the lowered floors and their count were written together; the authorisation is not yet spent
    assert pending.applied_run_id is None and pending.clips_shortened == 2
    assert len(audit(station, "retention.period_shortened")) == 2

    report = run_retention(runner, NOW)  # finishes the killed run's deletes, then spends it
    assert deleted(station) == set(evidence) and report.resumed == 2
    with station.engine.connect() as connection:
        spent = connection.execute(
            select(retention_shortenings).where(retention_shortenings.c.id == authorisation)
        ).one()
    assert spent.applied_run_id == report.run_id and spent.clips_shortened == 2
    assert len(audit(station, "retention.period_shortened")) == 2  # each lowering audited once
    [applied] = audit(station, "retention.shortening_applied")
    assert applied["clips_shortened"] == 2
    assert verify_audit_log(station.engine, station.key).ok
    runner.close()


def test_an_authorised_end_to_a_permanent_keep_replaces_its_rule_even_at_the_same_date(
    station: Station, station_env: dict[str, str]
) -> None:
    ended = months_ago(20)
    clip_id = add_clip(station, ended)
    add_user(station, "boss", "approver", PASSWORD)
    runner = lenient(station_env)
    run_retention(runner, add_months(ended, 4))  # 4 months old: kept, floor at 6 months
    permanent = add_case(station, "C-PP", archived=months_ago(200), period=RetentionPeriod.PERMANENT)
    link(station, clip_id, permanent, evidence=True)
    run_retention(runner, add_months(ended, 5))  # now kept permanently; the old date stays with it
    with station.engine.connect() as connection:
        floor = connection.execute(
            select(retention_floors).where(retention_floors.c.clip_id == clip_id)
        ).one()
    assert floor.reason == "evidence:permanent_case_file" and floor.not_before == add_months(ended, 6)

    # the evidence mark is taken away: the 6-month date (the one still stored) needs approval
    with station.engine.begin() as connection:
        connection.execute(
            update(clip_links).where(clip_links.c.clip_id == clip_id).values(is_evidence=False)
        )
    waiting = run_retention(runner, NOW)
    assert waiting.shortening_needs_approval == 1 and deleted(station) == set()

    authorise_shortening(runner, clip_id=clip_id, reason="evidence mark was wrong", user="boss")
    report = run_retention(runner, NOW)
    assert report.shortened == 1 and report.skipped == []
    assert report.deleted == 1 and deleted(station) == {clip_id}
    runner.close()


def test_a_bad_authorisation_records_nothing(station: Station) -> None:
    clip_id = add_clip(station, months_ago(8))
    gone = add_clip(station, months_ago(8))
    add_case(station, "C-B", archived=None, period=RetentionPeriod.YEARS_10)
    add_user(station, "boss", "approver", PASSWORD)
    add_user(station, "retired", "approver", PASSWORD)
    with station.engine.begin() as connection:
        connection.execute(update(users).where(users.c.username == "retired").values(active=False))
        connection.execute(update(clips).where(clips.c.id == gone).values(status=ClipStatus.DELETED))

    def refused(error: type[Exception], match: str, **kwargs: object) -> None:
        arguments: dict = {"reason": "case file reviewed", "user": "boss", **kwargs}
        with pytest.raises(error, match=match):
            authorise_shortening(station, **arguments)

    refused(ShorteningRefused, "reason is required", clip_id=clip_id, reason="   ")
    refused(ShorteningRefused, "exactly one", clip_id=clip_id, case_number="C-B")
    refused(ShorteningRefused, "exactly one")
    refused(ShorteningRefused, "gives no date", rule="evidence:permanent_case_file")
    refused(ShorteningRefused, "not an active approver", clip_id=clip_id, user="retired")
    refused(ShorteningRefused, "not an active approver", clip_id=clip_id, user="nobody")
    refused(NotFoundError, "no clip", clip_id=gone)
    refused(NotFoundError, "no clip", clip_id=10_000)
    refused(NotFoundError, "no case", case_number="C-NONE")
    with station.engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(retention_shortenings)) == 0
    assert audit(station, "retention.shortening_authorised") == []
    assert authorise_shortening(station, clip_id=clip_id, reason=" checked ", user="boss") > 0
    [granted] = audit(station, "retention.shortening_authorised")
    assert granted["clip_id"] == clip_id and granted["reason"] == "checked"
