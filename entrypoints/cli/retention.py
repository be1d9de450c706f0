"""`evidence retention run|runs|allow-shorter|shortenings` and `evidence hold place|release|list`."""

from __future__ import annotations

import functools
import json
from typing import Any

import click

from entrypoints.cli.support import (
    EXIT_USAGE,
    cli_actor,
    fail,
    open_station_as,
    open_station_from,
    station_time,
    user_option,
)
from evidence_store.errors import NotFoundError

EXIT_NEEDS_CONFIRMATION = 4


@click.group("retention", help="The retention run (R9, R10): nothing is deleted any other way.")
def retention_group() -> None:
    pass


@retention_group.command("run", help="Plan and apply retention; --dry-run prints what would go and why.")
@click.option("--dry-run", is_flag=True, help="Decide and report, delete nothing.")
@click.option(
    "--now",
    "now_text",
    default=None,
    help="Decide as of this ISO 8601 time; without a zone, in the station's zone (default: now).",
)
@click.option(
    "--list",
    "list_limit",
    type=click.IntRange(0),
    default=20,
    show_default=True,
    help="How many kept clips to list with their rule and date (a dry run).",
)
@click.option("--confirm", "confirm_run_id", type=int, default=None, help="Confirm a run that asked for it.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def run_command(
    ctx: click.Context,
    dry_run: bool,
    now_text: str | None,
    list_limit: int,
    confirm_run_id: int | None,
    as_json: bool,
) -> None:
    from retention.run import ConfirmationNeeded, run_retention  # lazy: SQLAlchemy; keeps `--help` fast

    as_of = station_time(ctx, now_text, option="--now")
    station = open_station_from(ctx)
    now = as_of or station.clock()
    try:
        report = run_retention(
            station, now, dry_run=dry_run, confirm_run_id=confirm_run_id, actor=cli_actor()
        )
    except ConfirmationNeeded as exc:
        station.close()
        _emit(exc.report.as_dict(), as_json, list_limit)
        click.echo(f"evidence: {exc.report.message}", err=True)
        raise SystemExit(EXIT_NEEDS_CONFIRMATION) from None
    station.close()
    _emit(report.as_dict(), as_json, list_limit)


def _emit(data: dict[str, Any], as_json: bool, list_limit: int) -> None:
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    kind = "DRY RUN" if data["dry_run"] else "run"
    click.echo(
        f"retention {kind} {data['run_id']} as of {data['as_of']} (policy {data['policy_version']}): "
        f"{data['clips_considered']} clips considered, {data['planned_delete']} may go "
        f"({data['planned_delete_bytes']:,} bytes), {data['deleted']} deleted "
        f"({data['bytes_freed']:,} bytes freed)"
        + (
            f", {data['attachments_deleted']} recorder sidecar file(s) deleted with their footage"
            if data.get("attachments_deleted")
            else ""
        )
    )
    for rule, count in sorted(data["kept_by_rule"].items()):
        span = data["kept_until"].get(rule) or {}
        until = (
            f"may go from {span['next']} to {span['last']}"
            if span.get("next")
            else "no date yet (until the hold, review or case ends)"
        )
        click.echo(f"  kept    {count:>8}  {rule}: {until}")
    for rule, count in sorted(data["delete_by_rule"].items()):
        click.echo(f"  delete  {count:>8}  {rule}")
    if data["dry_run"]:
        for item in data["held"][:list_limit]:
            until = item["until"] or "no date yet"
            click.echo(
                f"  kept clip {item['clip_id']} until {until} ({item['rule']}): {'; '.join(item['reasons'])}"
            )
        for item in data["would_delete"]:
            click.echo(
                f"  would delete clip {item['clip_id']} {item['sha256'][:16]}… ({item['rule']}; "
                f"may go since {item['earliest_delete_at']})"
            )
    for item in data["skipped"]:
        click.echo(f"  skipped clip {item['clip_id']}: {item['reason']}")
    if data.get("shortening_needs_approval"):
        click.echo(
            f"  {data['shortening_needs_approval']} clips kept by an earlier, longer date: shortening needs "
            "approval (evidence retention allow-shorter --clip ID | --case NUMBER | --rule RULE "
            "--reason TEXT --user NAME)"
        )
    if data.get("shortened"):
        verb = "would be shortened" if data["dry_run"] else "shortened"
        click.echo(f"  {data['shortened']} clips' dates {verb} under an authorisation")
    for item in data.get("shortenings", []):
        source = f"case {item['floor_case_id']}" if item["floor_case_id"] else item["floor_rule"]
        if item["authorisation_id"] is None:
            click.echo(
                f"  shortening needs approval: clip {item['clip_id']} kept until {item['kept_until']} "
                f"(from {source}); the policy now gives {item['policy_date']}"
            )
        else:
            click.echo(
                f"  shortened: clip {item['clip_id']} from {item['kept_until']} to {item['policy_date']} "
                f"(authorisation {item['authorisation_id']})"
            )


@retention_group.command("runs", help="Reports of earlier runs, newest first.")
@click.option("--limit", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def runs_command(ctx: click.Context, limit: int, as_json: bool) -> None:
    from retention.history import list_runs  # lazy: SQLAlchemy; keeps `--help` fast

    station = open_station_from(ctx)
    try:
        runs = list_runs(station, limit=limit)
    finally:
        station.close()
    if as_json:
        click.echo(json.dumps({"runs": runs}, ensure_ascii=False, indent=2))
        return
    for run in runs:
        click.echo(
            f"{run['run_id']:>5} {run['status']:<22} as of {run['as_of']}  deleted {run['deleted']} "
            f"({run['bytes_freed']:,} bytes)"
        )


@retention_group.command(
    "allow-shorter",
    help="Authorise the next run to let clips go earlier than an earlier decision said (audited; "
    "never below 6 months). Name one clip, one case (clips whose date came from its case-file period) "
    "or one rule (clips whose date came from it, e.g. non_evidence:minimum_period after a category "
    "period was lowered).",
)
@click.option("--clip", "clip_id", type=int, default=None)
@click.option("--case", "case_number", default=None)
@click.option("--rule", default=None, help="non_evidence:minimum_period or evidence:case_file_period")
@click.option("--reason", required=True, help="Why the shorter date is right (kept in the audit log).")
@functools.partial(user_option, help="Who authorises (a station user with role approver).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def allow_shorter_command(
    ctx: click.Context,
    clip_id: int | None,
    case_number: str | None,
    rule: str | None,
    reason: str,
    user: str,
    password_stdin: bool,
    as_json: bool,
) -> None:
    # lazy: SQLAlchemy; keeps `--help` fast
    from retention.shortening import ShorteningRefused, authorise_shortening

    if sum(x is not None for x in (clip_id, case_number, rule)) != 1:
        raise click.UsageError("give exactly one of --clip, --case or --rule")
    station = open_station_as(ctx, user, password_stdin)
    try:
        authorisation_id = authorise_shortening(
            station,
            clip_id=clip_id,
            case_number=case_number,
            rule=rule,
            reason=reason,
            user=user,
        )
    except (ShorteningRefused, NotFoundError) as exc:
        fail(str(exc), EXIT_USAGE)
    finally:
        station.close()
    if as_json:
        click.echo(json.dumps({"authorisation_id": authorisation_id}))
    else:
        click.echo(f"shortening authorisation {authorisation_id} recorded; the next run applies it")


@retention_group.command("shortenings", help="Shortening authorisations, newest first.")
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def shortenings_command(ctx: click.Context, limit: int, as_json: bool) -> None:
    from retention.shortening import list_shortenings  # lazy: SQLAlchemy; keeps `--help` fast

    station = open_station_from(ctx)
    items = list_shortenings(station, limit=limit)
    station.close()
    if as_json:
        click.echo(json.dumps({"shortenings": items}, ensure_ascii=False, indent=2))
        return
    for item in items:
        scope = (
            f"clip {item['clip_id']}"
            if item["clip_id"] is not None
            else f"case {item['case_number']}"
            if item["case_number"] is not None
            else f"rule {item['rule']}"
        )
        state = (
            f"applied by run {item['applied_run_id']} ({item['clips_shortened']} clips)"
            if item["applied_run_id"]
            else "pending"
        )
        click.echo(f"{item['id']:>5} {scope:<30} by {item['authorised_by']} {state}: {item['reason']}")


@click.group("hold", help="Legal holds: a held clip or case is kept whatever its age.")
def hold_group() -> None:
    pass


@hold_group.command("place", help="Place a legal hold on a clip or a case.")
@click.option("--clip", "clip_id", type=int, default=None)
@click.option("--case", "case_number", default=None)
@click.option("--reason", required=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def hold_place(
    ctx: click.Context, clip_id: int | None, case_number: str | None, reason: str, as_json: bool
) -> None:
    from retention.holds import place_hold  # lazy: SQLAlchemy; keeps `--help` fast

    if (clip_id is None) == (case_number is None):
        raise click.UsageError("give exactly one of --clip or --case")
    station = open_station_from(ctx)
    hold_id = place_hold(station, clip_id=clip_id, case_number=case_number, reason=reason, actor=cli_actor())
    station.close()
    click.echo(json.dumps({"hold_id": hold_id}) if as_json else f"hold {hold_id} placed")


@hold_group.command("release", help="Release a legal hold (audited, with a reason).")
@click.argument("hold_id", type=int)
@click.option("--reason", required=True)
@click.pass_context
def hold_release(ctx: click.Context, hold_id: int, reason: str) -> None:
    from retention.holds import release_hold  # lazy: SQLAlchemy; keeps `--help` fast

    station = open_station_from(ctx)
    release_hold(station, hold_id, reason=reason, actor=cli_actor())
    station.close()
    click.echo(f"hold {hold_id} released")
