"""What every `evidence` command shares: exit codes, output, settings, the acting user, the station.

Command modules import this, never the root command (`entrypoints.cli`), so the root can import them
without a loop.
"""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn
from zoneinfo import ZoneInfo

import click

if TYPE_CHECKING:
    from evidence_store.bootstrap import Station
    from evidence_store.settings import Settings

EXIT_OK = 0
EXIT_INTEGRITY = 1
EXIT_USAGE = 2
EXIT_FAILED = 3  # an operation failed for another reason (store unreachable, disk full)

UNIT_NAME_MISSING = (
    "UNIT_NAME (制作单位, the producing unit) is empty: export notes print '—' in its place; set "
    "EVIDENCE_UNIT_NAME or unit_name in evidence.toml"
)

json_option = click.option("--json", "as_json", is_flag=True, help="Print a JSON report.")


def cli_actor() -> str:
    return f"cli:{getpass.getuser()}"


def emit(data: dict[str, Any], as_json: bool, human: Callable[[dict[str, Any]], None]) -> None:
    if as_json:
        print_json(data)
    else:
        human(data)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def station_state_text(station: dict[str, Any]) -> str:
    """A listed station's standing in words, as `status` and `stations list` print it."""
    from evidence_store.domain.stations import station_state  # pure; lazy like the other imports here

    state = station_state(approved=bool(station["approved"]), revoked=bool(station["revoked_at"]))
    if state == "revoked":
        return f"revoked from {station['revoked_at']}"
    return "approved" if state == "approved" else "awaiting approval"


def station_spool_text(station: dict[str, Any]) -> str:
    """A listed station's spool as it last reported it, as `status` and `stations list` print it."""
    spool = station.get("spool")
    if not spool:
        return "spool never reported"
    text = (
        f"spool {spool['held_bytes']:,} of {spool['high_water_bytes']:,} bytes, "
        f"{spool['transfers_waiting']} transfer(s) waiting (reported {spool['reported_at']})"
    )
    return text + (", OVER ITS HIGH-WATER MARK" if spool["over_high_water"] else "")


def fail(message: str, code: int) -> NoReturn:
    click.echo(f"evidence: error: {message}", err=True)
    raise SystemExit(code)


def parse_time(value: str | None, zone: str, *, option: str) -> datetime | None:
    """A time given on the command line, as UTC: ISO 8601 (`2026-09-03T12:00`, `2026-09-03`, with or
    without seconds); one without a zone is read in the station's zone `zone` (settings.timezone,
    Asia/Shanghai by default), as the README says; `Z` or an offset is taken as written. Every command
    that takes a time reads it here."""
    if value is None or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 time (e.g. 2026-09-03T12:00, in the station's zone {zone})",
            param_hint=option,
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(zone))
    return moment.astimezone(UTC)


def station_time(ctx: click.Context, value: str | None, *, option: str) -> datetime | None:
    """`parse_time` in the zone of the station's settings."""
    if value is None:
        return None
    return parse_time(value, settings_from(ctx).timezone, option=option)


def settings_from(ctx: click.Context) -> Settings:
    """Settings are read on first use, so that `--help` works without a configured station."""
    # imported here: pydantic-settings costs ~0.15 s, which `--help` and usage errors need not pay (#21)
    from evidence_store.settings import Settings, load_settings

    settings = ctx.obj
    if not isinstance(settings, Settings):
        settings = load_settings()
        ctx.obj = settings
    return settings


def open_station_from(ctx: click.Context) -> Station:
    """The initialised station of the settings; a missing one is a configuration error (exit 2)."""
    from evidence_store.bootstrap import open_station  # lazy: SQLAlchemy, alembic; keeps `--help` fast

    return open_station(settings_from(ctx))


def initialise_from(ctx: click.Context) -> Station:
    """The station of the settings, created or migrated first (`init`, `web`, `station`)."""
    from evidence_store.bootstrap import initialise  # lazy: SQLAlchemy, alembic; keeps `--help` fast

    station, _created = initialise(settings_from(ctx))
    return station


def close_interrupted(station: Station) -> dict[str, Any]:
    """Close what a dead process left running (transfers, temp files), saying so on stderr; at the
    start of `dock`, `import`, `worker`, `station` and in `scrub`."""
    # lazy: SQLAlchemy; keeps `--help` fast
    from evidence_store.interrupted_work import close_interrupted_work

    work = close_interrupted_work(station, actor=cli_actor())
    for line in work.lines():
        click.echo(f"evidence: {line}", err=True)
    return work.as_dict()


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
    from evidence_store.credentials import normalise_username  # lazy: SQLAlchemy, argon2; `--help` fast

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


def open_station_as(ctx: click.Context, user: str, password_stdin: bool) -> Station:
    """The station, once `user` has proved who they are with their station password.

    The roles of the workflow (investigator requests, approver approves; R12) only separate duties
    if the name given is checked: the same rate-limited, audited check as the web login.
    """
    # lazy: SQLAlchemy, argon2; keeps `--help` fast
    from evidence_store.credentials import CredentialsRefused, check_credentials, load_limits

    password = read_password(user, password_stdin)
    station = open_station_from(ctx)
    try:
        with station.connect() as connection:
            limits = load_limits(connection)
        check_credentials(station, user, password, client=cli_actor(), limits=limits, channel="cli")
    except CredentialsRefused as exc:
        station.close()
        fail(str(exc), EXIT_USAGE)
    except BaseException:
        station.close()
        raise
    return station
