"""`evidence stations enrol|approve|revoke|list`: the stations whose keys may write (issue 18).

`evidence station` runs this station; `evidence stations` manages the set of stations that share one
database and one store. Approving and revoking are done by the operator on an approved station and are
recorded (the operator as actor) in the audit chain, signed by that station.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from entrypoints.cli.support import (
    cli_actor,
    emit,
    json_option,
    open_station_from,
    settings_from,
    station_spool_text,
    station_state_text,
    station_time,
)


@click.group("stations", help="The stations (keys) allowed to write to this evidence store.")
def stations_group() -> None:
    pass


@stations_group.command(
    "enrol",
    help="Ask for this station's key to be enrolled (an approved station then approves it); or, with "
    "--public-key, enrol another station's key from this approved station (audited).",
)
@click.option("--name", default=None, help="Station name (default: this station's station_name).")
@click.option("--unit", default=None, help="Its unit (default: this station's unit_name).")
@click.option(
    "--public-key",
    "public_key_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Another station's public key (PEM, its keys/station-ed25519.pub.pem).",
)
@json_option
@click.pass_context
def enrol_command(
    ctx: click.Context, name: str | None, unit: str | None, public_key_path: Path | None, as_json: bool
) -> None:
    from evidence_store.keys import PublicKey  # lazy: cryptography; keeps `--help` fast
    from evidence_store.stations import enrol_other, request_enrolment, standing

    station = open_station_from(ctx)
    settings = station.settings
    try:
        with station.transaction() as session:
            if public_key_path is not None:
                if not name:
                    raise click.UsageError("--public-key needs --name")
                row = enrol_other(
                    session,
                    station.audit,
                    name=name,
                    unit=unit or "",
                    key=PublicKey.from_pem(public_key_path.read_bytes()),
                    actor=cli_actor(),
                    now=station.clock(),
                )
            else:
                if standing(session, station.key, station.clock()).first:
                    raise click.UsageError("no station is enrolled yet: 'evidence init' enrols the first one")
                row = request_enrolment(
                    session,
                    name=name or settings.station_name,
                    unit=settings.unit_name if unit is None else unit,
                    key=station.key,
                    actor=cli_actor(),
                    now=station.clock(),
                )
            data = _station(row)
    finally:
        station.close()
    emit(data, as_json, _print_enrolled)


def _print_enrolled(data: dict[str, Any]) -> None:
    state = "approved" if data["approved"] else "awaiting approval"
    click.echo(f"station {data['name']} enrolled ({state}); key fingerprint {data['fingerprint']}")
    if not data["approved"]:
        click.echo(f"approve it on an approved station: evidence stations approve {data['name']}")


@stations_group.command("approve", help="Approve an enrolled station (by name or fingerprint) to write.")
@click.argument("station_ref", metavar="STATION")
@click.option("--fingerprint", default=None, help="The key fingerprint you expect (checked out of band).")
@json_option
@click.pass_context
def approve_command(ctx: click.Context, station_ref: str, fingerprint: str | None, as_json: bool) -> None:
    from evidence_store.stations import approve  # lazy: SQLAlchemy; keeps `--help` fast

    station = open_station_from(ctx)
    try:
        with station.transaction() as session:
            data = _station(
                approve(
                    session,
                    station.audit,
                    station=station_ref,
                    actor=cli_actor(),
                    now=station.clock(),
                    fingerprint=fingerprint,
                )
            )
    finally:
        station.close()
    emit(data, as_json, lambda d: click.echo(f"station {d['name']} approved ({d['fingerprint']})"))


@stations_group.command(
    "revoke",
    help="Revoke a station's key from a time on (default now): what it signed before stays valid, what "
    "it signed from then on fails `audit verify`, and it can no longer write.",
)
@click.argument("station_ref", metavar="STATION")
@click.option(
    "--from",
    "from_text",
    default=None,
    help="ISO 8601 time the key is untrusted from (e.g. when it leaked); without a zone, the station's.",
)
@json_option
@click.pass_context
def revoke_command(ctx: click.Context, station_ref: str, from_text: str | None, as_json: bool) -> None:
    from evidence_store.stations import revoke  # lazy: SQLAlchemy; keeps `--help` fast

    revoked_from = station_time(ctx, from_text, option="--from")
    station = open_station_from(ctx)
    try:
        with station.transaction() as session:
            data = _station(
                revoke(
                    session,
                    station.audit,
                    station=station_ref,
                    actor=cli_actor(),
                    now=station.clock(),
                    revoked_from=revoked_from,
                )
            )
    finally:
        station.close()
    emit(data, as_json, lambda d: click.echo(f"station {d['name']} revoked from {d['revoked_at']}"))


@stations_group.command("list", help="The enrolled stations: approved, revoked, last seen.")
@json_option
@click.pass_context
def list_command(ctx: click.Context, as_json: bool) -> None:
    from evidence_store import sqlite_status  # lazy: start-up (it imports the settings)

    light = sqlite_status.reader_for(settings_from(ctx))
    if light is not None:  # a SQLite station: read without SQLAlchemy (issue 21)
        with light.snapshot() as connection:
            listed = sqlite_status.list_stations(connection)
        emit({"stations": listed}, as_json, _print_list)
        return
    from evidence_store.stations import list_stations  # lazy: SQLAlchemy; keeps `--help` fast

    station = open_station_from(ctx)
    try:
        with station.connect() as connection:
            listed = list_stations(connection)
    finally:
        station.close()
    emit({"stations": listed}, as_json, _print_list)


def _print_list(data: dict[str, Any]) -> None:
    for s in data["stations"]:
        state = station_state_text(s)
        click.echo(
            f"{s['name']:<20} {s['unit']:<20} {s['fingerprint'][:16]}  {state:<28} "
            f"last seen {s['last_seen'] or 'never'}  {s['version']}  bays in use {s.get('bays_in_use', 0)}  "
            f"{station_spool_text(s)}"
        )


def _station(row: dict[str, Any]) -> dict[str, Any]:
    return {
        key: (value.isoformat() if hasattr(value, "isoformat") else value)
        for key, value in row.items()
        if key not in ("id", "public_key")
    }
