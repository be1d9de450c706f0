"""The retention run for real (database, store, CLI) with a fixed `now` (R9, R10)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from evidence_store.bootstrap import Station
from evidence_store.db.tables import clips as clips_table
from evidence_store.db.tables import derivatives, tombstones
from evidence_store.domain.disclosure import ApplicationState
from evidence_store.domain.model import ClipStatus, RetentionPeriod
from retention.policy import add_months
from tests.conftest import run_cli
from tests.integration.retention_helpers import (
    add_case,
    add_clip,
    apply_for_disclosure,
    link,
    request_export,
)

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def months_ago(months: int) -> datetime:
    return add_months(NOW, -months)


def run(station_env: dict[str, str], *args: str) -> tuple[int, dict]:
    result = run_cli(["retention", "run", "--now", NOW.isoformat(), "--json", *args], station_env)
    return result.code, json.loads(result.stdout) if result.stdout else {}


def status_of(station: Station) -> dict[int, str]:
    with station.engine.connect() as connection:
        return {
            row.id: str(row.status)
            for row in connection.execute(select(clips_table.c.id, clips_table.c.status))
        }


def test_what_must_hold(station: Station, station_env: dict[str, str]) -> None:
    station_env = {**station_env, "EVIDENCE_RETENTION_MAX_DELETE_SHARE": "1.0"}
    young = add_clip(station, months_ago(6) + DAY)
    old = add_clip(station, months_ago(6) - DAY)
    nine_years = add_case(station, "C-9", archived=months_ago(108), period=RetentionPeriod.YEARS_10)
    ten_years = add_case(station, "C-10", archived=months_ago(120) - DAY, period=RetentionPeriod.YEARS_10)
    permanent = add_case(station, "C-P", archived=months_ago(400), period=RetentionPeriod.PERMANENT)
    open_case = add_case(station, "C-O", archived=None, period=RetentionPeriod.YEARS_10)
    evidence = {}
    for name, case_id in (
        ("nine", nine_years),
        ("ten", ten_years),
        ("permanent", permanent),
        ("open", open_case),
    ):
        evidence[name] = add_clip(station, months_ago(150))
        link(station, evidence[name], case_id, evidence=True)
    held = add_clip(station, months_ago(100))
    exporting = add_clip(station, months_ago(100))
    failed = add_clip(station, months_ago(100), status=ClipStatus.FAILED)
    request_export(station, exporting)
    assert run_cli(["hold", "place", "--clip", str(held), "--reason", "litigation"], station_env).code == 0

    code, dry = run(station_env, "--dry-run")
    assert code == 0
    assert {item["clip_id"] for item in dry["would_delete"]} == {old, evidence["ten"]}
    assert all(s != "deleted" for s in status_of(station).values())  # a dry run deletes nothing

    code, report = run(station_env)
    assert code == 0, report
    assert report["deleted"] == 2
    statuses = status_of(station)
    deleted = {clip_id for clip_id, s in statuses.items() if s == "deleted"}
    assert deleted == {old, evidence["ten"]}
    for clip_id in (young, held, exporting, failed, *(evidence[k] for k in ("nine", "permanent", "open"))):
        assert statuses[clip_id] != "deleted"
    with station.engine.connect() as connection:
        gone = {row.clip_id: row for row in connection.execute(select(tombstones))}
        kept_hashes = connection.execute(select(clips_table.c.id, clips_table.c.sha256)).all()
        remaining_derivatives = set(connection.scalars(select(derivatives.c.clip_id)))
    assert set(gone) == deleted
    assert gone[evidence["ten"]].case_links[0]["case_number"] == "C-10"
    assert gone[old].rule == "non_evidence:minimum_period"
    assert gone[evidence["ten"]].rule == "evidence:case_file_period"
    for clip_id, sha in kept_hashes:
        assert station.blobs.exists(sha) == (clip_id not in deleted)
    assert remaining_derivatives.isdisjoint(deleted)
    # idempotent: a second run deletes nothing more
    code, again = run(station_env)
    assert code == 0 and again["deleted"] == 0
    assert run_cli(["audit", "verify"], station_env).code == 0
    scrub = run_cli(["scrub", "--json"], station_env)
    assert scrub.code == 0, scrub.stdout


def test_a_clip_a_party_applied_for_is_kept_until_the_application_is_answered(
    station: Station, station_env: dict[str, str]
) -> None:
    """R15 with R10: what a party asked to read or copy is not deleted before the application is
    answered (received, or approved and not yet viewed or delivered); afterwards its own rule decides."""
    station_env = {**station_env, "EVIDENCE_RETENTION_MAX_DELETE_SHARE": "1.0"}
    waiting = {state: add_clip(station, months_ago(100)) for state in ApplicationState}
    for state, clip_id in waiting.items():
        apply_for_disclosure(station, clip_id, state)
    code, dry = run(station_env, "--dry-run")
    assert code == 0, dry
    answered = {
        waiting[s]
        for s in ApplicationState
        if s not in (ApplicationState.RECEIVED, ApplicationState.APPROVED)
    }
    assert {item["clip_id"] for item in dry["would_delete"]} == answered
    code, report = run(station_env)
    assert code == 0 and report["deleted"] == len(answered), report
    with station.engine.connect() as connection:
        rules = {row.clip_id: row.rule for row in connection.execute(select(tombstones))}
    assert set(rules) == answered


def test_a_large_deletion_asks_for_confirmation(station: Station, station_env: dict[str, str]) -> None:
    for _ in range(3):
        add_clip(station, months_ago(12))
    add_clip(station, months_ago(1))
    code, report = run(station_env)
    assert code == 4
    assert report["status"] == "awaiting_confirmation"
    assert all(s != "deleted" for s in status_of(station).values())
    code, confirmed = run(station_env, "--confirm", str(report["run_id"]))
    assert code == 0, confirmed
    assert confirmed["deleted"] == 3


def test_a_hold_placed_after_planning_wins(station: Station, station_env: dict[str, str]) -> None:
    doomed = add_clip(station, months_ago(12))
    add_clip(station, months_ago(1))
    code, report = run(station_env)
    assert code == 4  # awaiting confirmation: the decision is planned, not executed
    assert (
        run_cli(["hold", "place", "--clip", str(doomed), "--reason", "new complaint"], station_env).code == 0
    )
    code, confirmed = run(station_env, "--confirm", str(report["run_id"]))
    assert code == 0
    assert confirmed["deleted"] == 0
    assert confirmed["skipped"][0]["clip_id"] == doomed
    assert status_of(station)[doomed] != "deleted"


def test_a_period_below_six_months_is_refused_at_start(station_env: dict[str, str]) -> None:
    result = run_cli(
        ["retention", "run", "--dry-run"], {**station_env, "EVIDENCE_RETENTION_NON_EVIDENCE_MONTHS": "3"}
    )
    assert result.code == 2
    assert "below the legal minimum of 6 months" in result.stderr


def test_a_clip_under_supervisory_review_is_kept(station: Station, station_env: dict[str, str]) -> None:
    from evidence_store.db.tables import supervision_draws, supervision_items

    reviewed = add_clip(station, months_ago(12))
    free = add_clip(station, months_ago(12))
    with station.engine.begin() as connection:
        draw = connection.execute(
            supervision_draws.insert().values(
                kind="clip",
                seed=7,
                params={},
                population=2,
                population_sha256="0" * 64,
                sample_size=1,
                drawn_by="supervisor",
                drawn_at=NOW,
            )
        ).inserted_primary_key[0]
        connection.execute(
            supervision_items.insert().values(
                draw_id=draw, clip_id=reviewed, status="open", notes="", created_at=NOW
            )
        )
    code, report = run({**station_env, "EVIDENCE_RETENTION_MAX_DELETE_SHARE": "1.0"})
    assert code == 0, report
    statuses = status_of(station)
    assert statuses[reviewed] != "deleted"
    assert statuses[free] == "deleted"
    assert report["kept_by_rule"].get("hold:supervisory_review") == 1


def test_times_without_a_zone_are_read_in_the_stations_zone(
    station: Station, station_env: dict[str, str]
) -> None:
    """Issue 17: `--now 2026-09-03T12:00` is noon in Asia/Shanghai (the default zone), not in UTC; the
    same for `clips search --from/--to`."""
    result = run_cli(["retention", "run", "--dry-run", "--now", "2026-09-03T12:00", "--json"], station_env)
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["as_of"] == "2026-09-03T04:00:00+00:00"
    berlin = {**station_env, "EVIDENCE_TIMEZONE": "Europe/Berlin"}
    result = run_cli(["retention", "run", "--dry-run", "--now", "2026-09-03T12:00", "--json"], berlin)
    assert json.loads(result.stdout)["as_of"] == "2026-09-03T10:00:00+00:00"
    bad = run_cli(["retention", "run", "--dry-run", "--now", "noon"], station_env)
    assert bad.code == 2 and "not an ISO 8601 time" in bad.stderr

    at_half_past_eleven = add_clip(station, datetime(2026, 9, 3, 3, 30, tzinfo=UTC))  # 11:30 in Shanghai

    def found(*window: str) -> list[int]:
        result = run_cli(["clips", "search", *window, "--json"], station_env)
        assert result.code == 0, result.stderr
        return [hit["id"] for hit in json.loads(result.stdout)["items"]]

    assert found("--from", "2026-09-03T11:00", "--to", "2026-09-03T12:00") == [at_half_past_eleven]
    assert found("--from", "2026-09-03T03:00", "--to", "2026-09-03T04:00") == []
    assert found("--from", "2026-09-03T03:00Z", "--to", "2026-09-03T04:00Z") == [at_half_past_eleven]


def test_ordinary_footage_goes_at_six_months_whatever_its_flags(
    station: Station, station_env: dict[str, str]
) -> None:
    """Issue 17, on both databases, through the CLI with a fixed `--now`: unassigned footage is kept on
    day 29 after its act and at 6 months less a day, deleted at 6 months; a late-handed-over clip that is
    not evidence is deleted at 6 months; a clip under an open review is kept until the review closes."""
    from evidence_store.cases.flags_service import refresh_flags
    from evidence_store.db.tables import compliance_flags, supervision_draws, supervision_items
    from tests.factories import store_clip

    env = {**station_env, "EVIDENCE_RETENTION_MAX_DELETE_SHARE": "1.0"}
    act = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)
    six_months = add_months(act, 6)
    unassigned = add_clip(station, act)
    late = store_clip(
        station, os.urandom(512), utc_start=act, utc_end=act, status=ClipStatus.READY, late_handover=True
    ).clip_id
    case_id = add_case(station, "C-L", archived=None, period=RetentionPeriod.YEARS_10)
    link(station, late, case_id, evidence=False)
    reviewed = add_clip(station, act)
    with station.transaction() as session:
        refresh_flags(session, station, clip_ids=[unassigned, late, reviewed])
    with station.engine.begin() as connection:
        kinds = set(
            connection.execute(
                select(compliance_flags.c.kind, compliance_flags.c.clip_id).where(
                    compliance_flags.c.cleared_at.is_(None)
                )
            ).all()
        )
        draw = connection.execute(
            supervision_draws.insert().values(
                kind="clip",
                seed=7,
                params={},
                population=3,
                population_sha256="0" * 64,
                sample_size=1,
                drawn_by="supervisor",
                drawn_at=act,
            )
        ).inserted_primary_key[0]
        item = connection.execute(
            supervision_items.insert().values(
                draw_id=draw, clip_id=reviewed, status="open", notes="", created_at=act
            )
        ).inserted_primary_key[0]
    assert {("unassigned_footage", unassigned), ("late_handover", late)} <= kinds

    def as_of(moment: datetime, *args: str) -> dict:
        result = run_cli(["retention", "run", "--now", moment.isoformat(), "--json", *args], env)
        assert result.code == 0, result.stderr
        return json.loads(result.stdout)

    for moment in (act + 29 * DAY, six_months - DAY):
        dry = as_of(moment, "--dry-run")
        assert dry["would_delete"] == []
        held = {entry["clip_id"]: entry for entry in dry["held"]}
        assert held[unassigned]["until"] == six_months.isoformat()
        assert held[reviewed]["rule"] == "hold:supervisory_review" and held[reviewed]["until"] is None
    report = as_of(six_months)
    assert report["deleted"] == 2
    statuses = status_of(station)
    assert statuses[unassigned] == "deleted" and statuses[late] == "deleted"
    assert statuses[reviewed] != "deleted"
    with station.engine.begin() as connection:
        connection.execute(
            supervision_items.update().where(supervision_items.c.id == item).values(status="done")
        )
    assert as_of(six_months)["deleted"] == 1
    assert status_of(station)[reviewed] == "deleted"
    assert run_cli(["audit", "verify"], env).code == 0


def test_a_supervisor_puts_a_flag_under_review_from_the_command_line(
    station: Station, station_env: dict[str, str]
) -> None:
    """Issue 17: `evidence flags review` holds the flag's clip (password-checked, audited) until
    `evidence flags close-review`; an open flag alone does not."""
    from evidence_store.cases.flags_service import refresh_flags
    from evidence_store.db.tables import compliance_flags
    from tests.integration.retention_helpers import add_user

    env = {**station_env, "EVIDENCE_RETENTION_MAX_DELETE_SHARE": "1.0"}
    add_user(station, "sup", "supervisor", "s3cret-pass")
    flagged = add_clip(station, months_ago(12))
    with station.transaction() as session:
        refresh_flags(session, station, clip_ids=[flagged])
    with station.engine.connect() as connection:
        flag_id = connection.scalar(
            select(compliance_flags.c.id).where(compliance_flags.c.clip_id == flagged)
        )
    opened = run_cli(
        [
            "flags",
            "review",
            str(flag_id),
            "--reason",
            "抽查发现问题",
            "--user",
            "sup",
            "--password-stdin",
            "--json",
        ],
        env,
        input="s3cret-pass\n",
    )
    assert opened.code == 0, opened.stderr
    review_id = json.loads(opened.stdout)["review_id"]
    listed = run_cli(["flags", "reviews", "--json"], env)
    assert [r["flag_id"] for r in json.loads(listed.stdout)["reviews"]] == [flag_id]
    code, dry = run(env, "--dry-run")
    assert code == 0 and dry["kept_by_rule"] == {"hold:flag_under_review": 1}
    closed = run_cli(
        ["flags", "close-review", str(review_id), "--outcome", "已整改", "--user", "sup", "--password-stdin"],
        env,
        input="s3cret-pass\n",
    )
    assert closed.code == 0, closed.stderr
    code, report = run(env)
    assert code == 0 and report["deleted"] == 1
    assert run_cli(["audit", "verify"], env).code == 0
