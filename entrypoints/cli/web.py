"""`evidence web`, `evidence users ...` and `evidence clips search`."""

from __future__ import annotations

import json
import sys
from typing import Any
from zoneinfo import ZoneInfo

import click

from entrypoints.cli.support import (
    EXIT_USAGE,
    cli_actor,
    fail,
    initialise_from,
    open_station_from,
    parse_time,
    settings_from,
)


@click.command("web", help="Serve the custodian web UI and API (initialises the station first).")
@click.option("--host", default=None, help="Listen address (default: settings web_host).")
@click.option("--port", default=None, type=int, help="Listen port (default: settings web_port).")
@click.option(
    "--session-idle-minutes",
    type=click.IntRange(1, 1440),
    default=None,
    help="Default session idle timeout (the admin's setting in the UI wins).",
)
@click.option(
    "--session-max-hours",
    type=click.IntRange(1, 168),
    default=None,
    help="Default absolute session lifetime (the admin's setting in the UI wins).",
)
@click.option(
    "--ssl-certfile",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Serve HTTPS with this certificate (PEM); HSTS and Secure cookies follow.",
)
@click.option("--ssl-keyfile", type=click.Path(exists=True, dir_okay=False), default=None)
@click.pass_context
def web_command(
    ctx: click.Context,
    host: str | None,
    port: int | None,
    session_idle_minutes: int | None,
    session_max_hours: int | None,
    ssl_certfile: str | None,
    ssl_keyfile: str | None,
) -> None:
    from entrypoints.station import run_web  # lazy: uvicorn, FastAPI; keeps `--help` fast

    settings = settings_from(ctx)
    run_web(
        initialise_from(ctx),
        host=host or settings.web_host,
        port=port or settings.web_port,
        session_idle_minutes=session_idle_minutes,
        session_max_hours=session_max_hours,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
    )


# -- users --------------------------------------------------------------------------------------------


def _password(from_stdin: bool, confirm: bool = True) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return str(click.prompt("password", hide_input=True, confirmation_prompt=confirm))


def _account_call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    from evidence_store.accounts import AccountError  # lazy: SQLAlchemy, argon2; keeps `--help` fast

    try:
        return fn(*args, **kwargs)
    except AccountError as exc:
        fail(str(exc), EXIT_USAGE)


ROLE_CHOICE = click.Choice(
    ["officer", "custodian", "investigator", "approver", "supervisor", "auditor", "admin"]
)


@click.group(
    "users",
    help="Accounts of the web UI (roles: officer, custodian, investigator, approver, "
    "supervisor, auditor, admin).",
)
def users_group() -> None:
    pass


@users_group.command("add", help="Create a user; the password is prompted for (or read from stdin).")
@click.argument("username")
@click.option("--role", type=ROLE_CHOICE, required=True)
@click.option("--unit", default="", help="The user's unit (confidential cases are visible within it).")
@click.option("--name", "display_name", default="", help="Display name.")
@click.option("--officer", default=None, help="Officer number (required for the officer role).")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@click.pass_context
def users_add(
    ctx: click.Context,
    username: str,
    role: str,
    unit: str,
    display_name: str,
    officer: str | None,
    password_stdin: bool,
) -> None:
    from evidence_store.accounts import create_user  # lazy: SQLAlchemy, argon2; keeps `--help` fast

    station = open_station_from(ctx)
    try:
        password = _password(password_stdin)
        _account_call(
            create_user,
            station,
            username=username,
            password=password,
            role=role,
            unit=unit,
            display_name=display_name,
            officer_badge=officer,
            actor=cli_actor(),
        )
    finally:
        station.close()
    click.echo(f"user {username.lower()} created ({role})")


@users_group.command("list", help="List the users.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def users_list(ctx: click.Context, as_json: bool) -> None:
    from evidence_store.accounts import list_users  # lazy: SQLAlchemy, argon2; keeps `--help` fast

    station = open_station_from(ctx)
    with station.connect() as connection:
        found = list_users(connection)
    station.close()
    if as_json:
        click.echo(json.dumps({"users": found}, ensure_ascii=False, indent=2, default=str))
        return
    for u in found:
        state = "active" if u["active"] else "DISABLED"
        click.echo(
            f"{u['username']:<20} {u['role']:<13} {u['unit'] or '-':<20} {u['officer'] or '-':<10} {state}"
        )


@users_group.command("set-role", help="Change a user's role (and unit/officer); their sessions end.")
@click.argument("username")
@click.argument("role", type=ROLE_CHOICE)
@click.option("--unit", default=None)
@click.option("--officer", default=None)
@click.pass_context
def users_set_role(
    ctx: click.Context, username: str, role: str, unit: str | None, officer: str | None
) -> None:
    from evidence_store.accounts import set_role  # lazy: SQLAlchemy, argon2; keeps `--help` fast

    station = open_station_from(ctx)
    try:
        _account_call(set_role, station, username, role, unit=unit, officer_badge=officer, actor=cli_actor())
    finally:
        station.close()
    click.echo(f"user {username} is now {role}")


@users_group.command("disable", help="Disable a user (their sessions end); --enable turns it back on.")
@click.argument("username")
@click.option("--enable", is_flag=True)
@click.pass_context
def users_disable(ctx: click.Context, username: str, enable: bool) -> None:
    from evidence_store.accounts import set_active  # lazy: SQLAlchemy, argon2; keeps `--help` fast

    station = open_station_from(ctx)
    try:
        _account_call(set_active, station, username, enable, actor=cli_actor())
    finally:
        station.close()
    click.echo(f"user {username} {'enabled' if enable else 'disabled'}")


@users_group.command("reset-password", help="Set a new password (prompted, or from stdin); sessions end.")
@click.argument("username")
@click.option("--password-stdin", is_flag=True)
@click.pass_context
def users_reset_password(ctx: click.Context, username: str, password_stdin: bool) -> None:
    from evidence_store.accounts import reset_password  # lazy: SQLAlchemy, argon2; keeps `--help` fast

    station = open_station_from(ctx)
    try:
        password = _password(password_stdin)
        _account_call(reset_password, station, username, password, actor=cli_actor())
    finally:
        station.close()
    click.echo(f"password of {username} reset")


# -- clips search ---------------------------------------------------------------------------------------


@click.group("clips", help="Footage on record.")
def clips_group() -> None:
    pass


@clips_group.command("search", help="Search clips (the same search as the web UI and API; audited).")
@click.option("--officer", default=None, help="Officer number.")
@click.option("--device", default=None, help="Recorder serial.")
@click.option(
    "--from",
    "start_from",
    default=None,
    help="Recording starts at or after (ISO 8601; without a zone, the station's).",
)
@click.option(
    "--to",
    "start_to",
    default=None,
    help="Recording starts before (ISO 8601; without a zone, the station's).",
)
@click.option("--case", "case_number", default=None, help="Case number.")
@click.option("--document", default=None, help="Document number.")
@click.option("--flag", default=None, help="Compliance flag kind, 'late_handover' or 'any'.")
@click.option("--media-type", type=click.Choice(["video", "audio", "photo", "other"]), default=None)
@click.option(
    "--status",
    type=click.Choice(["ingested", "processing", "ready", "unplayable", "failed", "deleted"]),
    default=None,
)
@click.option("--transfer", "transfer_id", type=int, default=None)
@click.option("--sha256", "sha256_prefix", default=None, help="SHA-256 or a prefix of it.")
@click.option(
    "--sort", type=click.Choice(["start_desc", "start_asc", "id_desc", "id_asc"]), default="start_desc"
)
@click.option("--limit", type=click.IntRange(1, 200), default=50, show_default=True)
@click.option("--offset", type=click.IntRange(0, 10_000), default=0)
@click.option("--after", default=None, help="Continue after this cursor (what the page before printed).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def clips_search(
    ctx: click.Context,
    officer: str | None,
    device: str | None,
    start_from: str | None,
    start_to: str | None,
    case_number: str | None,
    document: str | None,
    flag: str | None,
    media_type: str | None,
    status: str | None,
    transfer_id: int | None,
    sha256_prefix: str | None,
    sort: str,
    limit: int,
    offset: int,
    after: str | None,
    as_json: bool,
) -> None:
    from evidence_store.clip_search import recorded_search  # lazy: SQLAlchemy; keeps `--help` fast
    from evidence_store.domain.model import ClipStatus, MediaType  # lazy: start-up
    from evidence_store.queries.search import ClipQuery, SearchError  # lazy: as above

    settings = settings_from(ctx)
    query = ClipQuery(
        officer=officer,
        device=device,
        start_from=parse_time(start_from, settings.timezone, option="--from"),
        start_to=parse_time(start_to, settings.timezone, option="--to"),
        case_number=case_number,
        document=document,
        flag=flag,
        media_type=MediaType(media_type) if media_type else None,
        status=ClipStatus(status) if status else None,
        transfer_id=transfer_id,
        sha256_prefix=sha256_prefix,
        sort=sort,  # type: ignore[arg-type]
        limit=limit,
        offset=offset,
        after=after,
    )
    station = open_station_from(ctx)
    try:
        page = recorded_search(station, query, None, actor=cli_actor())
    except SearchError as exc:
        fail(str(exc), EXIT_USAGE)
    finally:
        station.close()
    data = page.as_dict()
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    for hit in page.hits:
        start = (
            hit.utc_start.astimezone(ZoneInfo(settings.timezone)).strftime("%Y-%m-%d %H:%M:%S")
            if hit.utc_start
            else "-"
        )
        click.echo(
            f"{hit.id:>8} {start:<19} {hit.officer or '-':<10} {hit.device or '-':<12} {hit.status:<10} "
            f"{hit.sha256[:12]} {hit.original_name}"
        )
    if page.has_next:
        click.echo(f"... more: --after {page.next_after}", err=True)
