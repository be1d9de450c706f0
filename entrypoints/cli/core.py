"""The `evidence` command line. Exit codes: 0 ok, 1 integrity problem found, 2 usage or configuration."""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click
from sqlalchemy import select

from evidence_store.errors import ConfigurationError, EvidenceError, IntegrityError
from evidence_store.settings import Settings, load_settings

EXIT_OK = 0
EXIT_INTEGRITY = 1
EXIT_USAGE = 2
EXIT_FAILED = 3  # an operation failed for another reason (store unreachable, disk full)


def cli_actor() -> str:
    return f"cli:{getpass.getuser()}"


def emit(data: dict[str, Any], as_json: bool, human: Callable[[dict[str, Any]], None]) -> None:
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
    else:
        human(data)


def settings_from(ctx: click.Context) -> Settings:
    settings = ctx.obj
    if not isinstance(settings, Settings):
        settings = load_settings()
        ctx.obj = settings
    return settings


@click.group(help="Evidence management for body-worn camera footage.")
def cli() -> None:
    """Settings are read lazily so that `--help` works without a configured station."""


json_option = click.option("--json", "as_json", is_flag=True, help="Print a JSON report.")


@cli.command(help="Create the data directory, station key, database schema and store (idempotent).")
@json_option
@click.pass_context
def init(ctx: click.Context, as_json: bool) -> None:
    from evidence_store.bootstrap import initialise

    settings = settings_from(ctx)
    station, created = initialise(settings)
    data = {
        "home": str(settings.home),
        "database": station.engine.url.render_as_string(hide_password=True),
        "store": station.blobs.name,
        "key_fingerprint": station.key.fingerprint,
        "created": created,
    }
    station.close()
    emit(data, as_json, _print_init)


def _print_init(data: dict[str, Any]) -> None:
    done = f"created: {', '.join(data['created'])}" if data["created"] else "nothing to do"
    click.echo(f"station ready at {data['home']} ({done})\nkey fingerprint {data['key_fingerprint']}")


@cli.command(help="Show the station's configuration and what it holds.")
@json_option
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    from evidence_store.status import station_status

    data = station_status(settings_from(ctx))
    emit(data, as_json, _print_status)


def _print_status(data: dict[str, Any]) -> None:
    for key, value in data.items():
        if isinstance(value, dict):
            click.echo(f"{key}:")
            for sub_key, sub_value in value.items():
                click.echo(f"  {sub_key}: {sub_value}")
        else:
            click.echo(f"{key}: {value}")


@cli.group(help="The tamper-evident audit log.")
def audit() -> None:
    pass


@audit.command("verify", help="Re-hash the whole audit chain and check its signatures (exit 1 if broken).")
@click.option("--all-signatures", is_flag=True, help="Check every event's signature, not only checkpoints.")
@json_option
@click.pass_context
def audit_verify(ctx: click.Context, all_signatures: bool, as_json: bool) -> None:
    from evidence_store.audit import verify_audit_log
    from evidence_store.bootstrap import open_station

    station = open_station(settings_from(ctx))
    verdict = verify_audit_log(station.engine, station.key, all_signatures=all_signatures)
    first = verdict.first_problem
    data = {
        "ok": verdict.ok,
        "events_checked": verdict.events_checked,
        "checkpoints_checked": verdict.checkpoints_checked,
        "signatures_checked": verdict.signatures_checked,
        "head_seq": verdict.head_seq,
        "head_hash": verdict.head_hash,
        "first_bad_event": first.seq if first else None,
        "problems": [
            {"seq": p.seq, "reason": p.reason} for p in sorted(verdict.problems, key=lambda p: p.seq)
        ],
    }
    station.close()
    emit(data, as_json, _print_verdict)
    if not verdict.ok:
        raise SystemExit(EXIT_INTEGRITY)


def _print_verdict(data: dict[str, Any]) -> None:
    if data["ok"]:
        click.echo(
            f"audit log intact: {data['events_checked']} events, {data['checkpoints_checked']} signed "
            f"checkpoints, {data['signatures_checked']} event signatures checked; head {data['head_hash']}"
        )
        return
    click.echo(f"AUDIT LOG BROKEN: first bad event is {data['first_bad_event']}", err=True)
    for problem in data["problems"]:
        click.echo(f"  - {problem['reason']}", err=True)


@audit.command("checkpoint", help="Sign the current head of the audit chain now.")
@json_option
@click.pass_context
def audit_checkpoint(ctx: click.Context, as_json: bool) -> None:
    from evidence_store.bootstrap import open_station

    station = open_station(settings_from(ctx))
    with station.transaction() as session:
        checkpoint = station.audit.checkpoint_now(session)
        data: dict[str, Any] = (
            {
                "seq": checkpoint.seq,
                "head_hash": checkpoint.head_hash,
                "at": checkpoint.at,
                "signature": checkpoint.signature.hex(),
                "key_fingerprint": checkpoint.key_fingerprint,
            }
            if checkpoint
            else {"seq": 0}
        )
    station.close()
    emit(
        data,
        as_json,
        lambda d: click.echo(f"checkpoint at event {d['seq']}: {d.get('head_hash', '(empty log)')}"),
    )


@audit.command("log", help="List audit events, newest first.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--object", "object_ref", default=None, help="TYPE:ID, e.g. clip:12")
@click.option("--action", default=None, help="Only this action, e.g. auth.login_failed")
@json_option
@click.pass_context
def audit_log(
    ctx: click.Context, limit: int, object_ref: str | None, action: str | None, as_json: bool
) -> None:
    from evidence_store.bootstrap import open_station
    from evidence_store.db.tables import audit_events

    station = open_station(settings_from(ctx))
    query = select(audit_events).order_by(audit_events.c.seq.desc()).limit(limit)
    if object_ref:
        object_type, _, object_id = object_ref.partition(":")
        if not object_id:
            raise click.UsageError("--object takes TYPE:ID, e.g. clip:12")
        query = query.where(audit_events.c.object_type == object_type, audit_events.c.object_id == object_id)
    if action:
        query = query.where(audit_events.c.action == action)
    with station.engine.connect() as connection:
        rows = connection.execute(query).all()
    station.close()
    events = [
        {
            "seq": r.seq,
            "at": r.at,
            "actor": r.actor,
            "action": r.action,
            "object": f"{r.object_type}:{r.object_id}",
            "source": r.source,
            "details": json.loads(r.details),
        }
        for r in rows
    ]
    emit({"events": events}, as_json, _print_events)


def _print_events(data: dict[str, Any]) -> None:
    for e in data["events"]:
        click.echo(f"{e['seq']:>8} {e['at']} {e['actor']:<20} {e['action']:<24} {e['object']}")


@cli.command(
    help="Re-hash every stored blob; report altered, missing and orphan blobs (exit 1 if any is lost)."
)
@json_option
@click.pass_context
def scrub(ctx: click.Context, as_json: bool) -> None:
    from evidence_store.bootstrap import open_station
    from evidence_store.scrub import scrub as run_scrub

    station = open_station(settings_from(ctx))
    report = run_scrub(station, actor=cli_actor())
    station.close()
    emit(report.as_dict(), as_json, _print_scrub)
    if not report.ok:
        raise SystemExit(EXIT_INTEGRITY)


def _print_scrub(data: dict[str, Any]) -> None:
    click.echo(
        f"scrubbed {data['blobs_checked']} blobs ({data['bytes_checked']} bytes) "
        f"against {data['records_checked']} records"
    )
    for kind in ("altered", "missing", "orphans"):
        for finding in data[kind]:
            click.echo(
                f"  {finding['problem'].upper():8} {finding['sha256']}  {finding['detail']}",
                err=kind != "orphans",
            )
    click.echo("OK" if data["ok"] else "INTEGRITY PROBLEM FOUND")


@cli.command(help="Run the station: initialise, then serve the status page and API.")
@click.option("--host", default=None, help="Listen address (default: settings web_host).")
@click.option("--port", default=None, type=int, help="Listen port (default: settings web_port).")
@click.pass_context
def station(ctx: click.Context, host: str | None, port: int | None) -> None:
    from evidence_store.bootstrap import initialise
    from evidence_store.station import run_station

    settings = settings_from(ctx)
    running, _created = initialise(settings)
    run_station(running, host=host or settings.web_host, port=port or settings.web_port)


def fail(message: str, code: int) -> NoReturn:
    click.echo(f"evidence: error: {message}", err=True)
    raise SystemExit(code)


def user_option(
    command: Callable[..., Any], *, help: str = "Who acts (a station user name)."
) -> Callable[..., Any]:
    """`--user NAME` and how that user proves it is them (the password, typed or on stdin); with
    `open_station_as`, for every command that acts as a named user."""
    command = click.option(
        "--password-stdin",
        is_flag=True,
        help="Read the user's password from the first line of stdin (default: prompt on the terminal).",
    )(command)
    return click.option("--user", "user", required=True, help=help, callback=_stored_user_name)(command)


def _stored_user_name(_ctx: click.Context, _param: click.Parameter, name: str) -> str:
    """`--user INV1` names the user stored as `inv1`, for the password check and every step after it."""
    from evidence_store.credentials import normalise_username

    return normalise_username(name)


def read_password(user: str, from_stdin: bool) -> str:
    """The user's password: the first line of stdin, or typed on the terminal; never guessed empty."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\n")
        if not password:  # a script's mistake: refused before it counts as a failed attempt
            fail(f"--password-stdin: no password of {user!r} on the first line of stdin", EXIT_USAGE)
        return password
    if not sys.stdin.isatty():
        fail(f"the password of {user!r} is needed: run on a terminal, or pass --password-stdin", EXIT_USAGE)
    return str(click.prompt(f"password of {user}", hide_input=True, err=True))


def open_station_as(ctx: click.Context, user: str, password_stdin: bool) -> Any:
    """The station, once `user` has proved who they are with their station password.

    The roles of the workflow (investigator requests, approver approves; R12) only separate duties
    if the name given is checked: the same rate-limited, audited check as the web login.
    """
    from evidence_store.bootstrap import open_station
    from evidence_store.credentials import CredentialsRefused, check_credentials, load_limits

    password = read_password(user, password_stdin)
    station = open_station(settings_from(ctx))
    try:
        with station.engine.connect() as connection:
            limits = load_limits(connection)
        check_credentials(station, user, password, client=cli_actor(), limits=limits, channel="cli")
    except CredentialsRefused as exc:
        station.close()
        fail(str(exc), EXIT_USAGE)
    except BaseException:
        station.close()
        raise
    return station


def main(argv: list[str] | None = None) -> None:
    """Entry point: one clear line and a defined exit code for every failure the user can act on."""
    try:
        cli.main(args=argv, prog_name="evidence", standalone_mode=False)
    except click.exceptions.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except click.ClickException as exc:
        exc.show()
        raise SystemExit(EXIT_USAGE if isinstance(exc, click.UsageError) else exc.exit_code) from None
    except click.exceptions.Abort:
        fail("aborted", EXIT_USAGE)
    except ConfigurationError as exc:
        fail(str(exc), EXIT_USAGE)
    except IntegrityError as exc:
        fail(str(exc), EXIT_INTEGRITY)
    except EvidenceError as exc:
        fail(str(exc), EXIT_FAILED)
    sys.exit(EXIT_OK)


def _register_commands() -> None:
    """Commands of the other packages; their heavy imports happen inside the commands."""
    from evidence_store.cases.cli import cases_group, report_group
    from evidence_store.export.cli import export_group, verify_command
    from ingest.cli import dock_command, import_command
    from retention.cli import hold_group, retention_group
    from web.cli import clips_group, users_group, web_command
    from workers.cli import jobs_command, process_command, worker_command

    cli.add_command(import_command)
    cli.add_command(dock_command)
    cli.add_command(worker_command)
    cli.add_command(process_command)
    cli.add_command(jobs_command)
    cli.add_command(retention_group)
    cli.add_command(hold_group)
    cli.add_command(cases_group)
    cli.add_command(report_group)
    cli.add_command(web_command)
    cli.add_command(users_group)
    cli.add_command(clips_group)
    cli.add_command(export_group)
    cli.add_command(verify_command)


_register_commands()
