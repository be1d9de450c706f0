"""`evidence init|status|scrub|station` and `evidence audit verify|checkpoint|log`: the station itself."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from entrypoints.cli.support import (
    EXIT_FAILED,
    EXIT_INTEGRITY,
    UNIT_NAME_MISSING,
    cli_actor,
    close_interrupted,
    emit,
    initialise_from,
    json_option,
    open_station_from,
    settings_from,
    station_spool_text,
    station_state_text,
)

if TYPE_CHECKING:
    from sqlalchemy import Engine


@click.command(help="Create the data directory, station key, database schema and store (idempotent).")
@json_option
@click.pass_context
def init(ctx: click.Context, as_json: bool) -> None:
    from evidence_store.bootstrap import initialise  # lazy: SQLAlchemy, alembic; keeps `--help` fast

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
    if not settings.unit_name.strip():
        data["warnings"] = [UNIT_NAME_MISSING]
        if not as_json:
            click.echo(f"evidence: warning: {UNIT_NAME_MISSING}", err=True)
    emit(data, as_json, _print_init)


def _print_init(data: dict[str, Any]) -> None:
    done = f"created: {', '.join(data['created'])}" if data["created"] else "nothing to do"
    click.echo(f"station ready at {data['home']} ({done})\nkey fingerprint {data['key_fingerprint']}")


@click.command(help="Show the station's configuration and what it holds.")
@json_option
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    from entrypoints.cli.spool import spool_status_data
    from evidence_store.errors import DatabaseUnavailableError, StoreError, TransientError
    from evidence_store.status import station_status  # lazy: SQLAlchemy; keeps `--help` fast

    settings = settings_from(ctx)
    try:
        data = station_status(settings)
    except (DatabaseUnavailableError, StoreError, TransientError) as exc:
        # the backend is unreachable: what the station still has is its spool (issue 18)
        data = {"station": settings.station_name, "backend": f"UNREACHABLE: {exc}"}
        data["spool"] = spool_status_data(settings)
        emit(data, as_json, _print_status)
        raise SystemExit(EXIT_FAILED) from None
    data["spool"] = spool_status_data(settings)
    emit(data, as_json, _print_status)


def _print_status(data: dict[str, Any]) -> None:
    for key, value in data.items():
        if key == "stations":
            click.echo("stations:")
            for s in value:
                state = station_state_text(s)
                click.echo(
                    f"  {s['name']} ({s['unit'] or 'no unit'}) {s['fingerprint'][:16]} {state}, "
                    f"last seen {s['last_seen'] or 'never'}, version {s['version'] or '?'}, "
                    f"bays in use {s.get('bays_in_use', 0)}, {station_spool_text(s)}"
                )
        elif isinstance(value, dict):
            click.echo(f"{key}:")
            for sub_key, sub_value in value.items():
                click.echo(f"  {sub_key}: {sub_value}")
        else:
            click.echo(f"{key}: {value}")


@click.group(help="The tamper-evident audit log.")
def audit() -> None:
    pass


@audit.command(
    "verify",
    help="Re-hash the whole audit chain and check its signatures, then replay the chain and compare the "
    "records with it (exit 1 if anything differs).",
)
@click.option("--all-signatures", is_flag=True, help="Check every event's signature, not only checkpoints.")
@click.option(
    "--records/--no-records",
    "check_records",
    default=True,
    show_default=True,
    help="Replay the chain's facts and compare them with the clips, derivatives, links, documents, "
    "exceptions, holds and tombstones on record.",
)
@json_option
@click.pass_context
def audit_verify(ctx: click.Context, all_signatures: bool, check_records: bool, as_json: bool) -> None:
    from evidence_store.audit import verify_audit_log  # lazy: SQLAlchemy, cryptography; `--help` fast
    from evidence_store.audit_anchoring import verify_anchors  # lazy: as above
    from evidence_store.record_check import verify_records  # lazy: SQLAlchemy; keeps `--help` fast

    station = open_station_from(ctx)
    verdict = verify_audit_log(station.engine, station.key, all_signatures=all_signatures)
    anchors = verify_anchors(station.engine, station.key, station.audit.anchoring, station.settings)
    records = verify_records(station.engine) if check_records else None
    first = verdict.first_problem
    data = {
        "ok": verdict.ok and anchors.ok and (records is None or records.ok),
        "chain_ok": verdict.ok,
        "events_checked": verdict.events_checked,
        "checkpoints_checked": verdict.checkpoints_checked,
        "signatures_checked": verdict.signatures_checked,
        "head_seq": verdict.head_seq,
        "head_hash": verdict.head_hash,
        "first_bad_event": first.seq if first else None,
        "problems": [
            {"seq": p.seq, "reason": p.reason} for p in sorted(verdict.problems, key=lambda p: p.seq)
        ],
        "anchors": {
            "ok": anchors.ok,
            "anchors_checked": anchors.anchors_checked,
            "newest_anchored_seq": anchors.newest_anchored_seq,
            "timestamps_checked": anchors.timestamps_checked,
            "restored_from_backup": anchors.behind_backup,
            "problems": [{"seq": p.seq, "reason": p.reason} for p in anchors.problems],
            "notes": anchors.notes,
        },
    }
    data["records"] = records.as_dict() if records is not None else None
    station.close()
    emit(data, as_json, _print_verdict)
    if not data["ok"]:
        raise SystemExit(EXIT_INTEGRITY)


def _print_verdict(data: dict[str, Any]) -> None:
    anchors = data["anchors"]
    if data["chain_ok"] and anchors["ok"]:
        click.echo(
            f"audit log intact: {data['events_checked']} events, {data['checkpoints_checked']} signed "
            f"checkpoints, {data['signatures_checked']} event signatures checked; head {data['head_hash']}"
        )
        click.echo(
            f"anchors: {anchors['anchors_checked']} checked outside the database, newest at event "
            f"{anchors['newest_anchored_seq']}, {anchors['timestamps_checked']} time-stamps checked"
        )
        for note in anchors["notes"]:
            click.echo(f"  note: {note}")
    if data["problems"]:
        click.echo(f"AUDIT LOG BROKEN: first bad event is {data['first_bad_event']}", err=True)
    for problem in data["problems"]:
        click.echo(f"  - {problem['reason']}", err=True)
    if not anchors["ok"]:
        headline = (
            "AUDIT LOG BEHIND ITS ANCHORS"
            if anchors["restored_from_backup"]
            else "AUDIT LOG DISAGREES WITH ITS ANCHORS"
        )
        click.echo(headline, err=True)
        for problem in anchors["problems"]:
            click.echo(f"  - {problem['reason']}", err=True)
    if data["records"] is not None:
        _print_records(data["records"])


def _print_records(records: dict[str, Any]) -> None:
    """The `records` sub-check: the rows against the state the chain's facts imply."""
    not_covered = (
        f"; not covered by the chain: {records['rows_not_covered']} rows from before records were replayed"
        if records["rows_not_covered"]
        else ""
    )
    if records["ok"]:
        click.echo(
            f"records match the chain: {records['rows_checked']} rows checked against "
            f"{records['events_with_facts']} events stating facts{not_covered}"
        )
        return
    click.echo(
        f"RECORDS DIFFER FROM THE CHAIN: {records['differences']} differences in "
        f"{records['rows_checked']} rows{not_covered}",
        err=True,
    )
    for finding in records["findings"]:
        click.echo(f"  - {finding['text']}", err=True)


@audit.command("checkpoint", help="Sign the current head of the audit chain now.")
@json_option
@click.pass_context
def audit_checkpoint(ctx: click.Context, as_json: bool) -> None:
    station = open_station_from(ctx)
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
    object_type = object_id = None
    if object_ref:
        object_type, _, object_id = object_ref.partition(":")
        if not object_id:
            raise click.UsageError("--object takes TYPE:ID, e.g. clip:12")
    station = open_station_from(ctx)
    try:
        events = newest_audit_events(
            station.engine, limit=limit, object_type=object_type, object_id=object_id, action=action
        )
    finally:
        station.close()
    emit({"events": events}, as_json, _print_events)


def newest_audit_events(
    engine: Engine, *, limit: int, object_type: str | None, object_id: str | None, action: str | None
) -> list[dict[str, Any]]:
    """The `audit log` listing: newest first, optionally of one object and one action; the audit
    browsing query of the web's audit page, paged through until `limit` events."""
    # lazy: SQLAlchemy; keeps `--help` fast
    from evidence_store.queries.audit_browse import AuditQuery, browse

    query = AuditQuery(object_type=object_type or "", object_id=object_id or "", action=action or "")
    events: list[dict[str, Any]] = []
    with engine.connect() as connection:
        while len(events) < limit:
            query.limit = limit - len(events)
            page = browse(connection, query)
            events.extend(page["events"])
            if page["next_before_seq"] is None:
                break
            query.before_seq = page["next_before_seq"]
    return [
        {
            "seq": e["seq"],
            "at": e["at"],
            "actor": e["actor"],
            "action": e["action"],
            "object": f"{e['object_type']}:{e['object_id']}",
            "source": e["source"],
            "details": e["details"],
        }
        for e in events
    ]


def _print_events(data: dict[str, Any]) -> None:
    for e in data["events"]:
        click.echo(f"{e['seq']:>8} {e['at']} {e['actor']:<20} {e['action']:<24} {e['object']}")


@click.command(
    help="Re-hash every stored blob; report altered, missing, unrecorded (clip row gone) and orphan blobs "
    "(exit 1 unless only orphans)."
)
@json_option
@click.pass_context
def scrub(ctx: click.Context, as_json: bool) -> None:
    from evidence_store.scrub import scrub as run_scrub  # lazy: SQLAlchemy; keeps `--help` fast

    station = open_station_from(ctx)
    interrupted = close_interrupted(station)
    report = run_scrub(station, actor=cli_actor())
    station.close()
    emit({**report.as_dict(), "interrupted_work": interrupted}, as_json, _print_scrub)
    if not report.ok:
        raise SystemExit(EXIT_INTEGRITY)


def _print_scrub(data: dict[str, Any]) -> None:
    click.echo(
        f"scrubbed {data['blobs_checked']} blobs ({data['bytes_checked']} bytes) "
        f"against {data['records_checked']} records"
    )
    for kind in ("altered", "missing", "unrecorded", "orphans"):
        for finding in data[kind]:
            click.echo(
                f"  {finding['problem'].upper():8} {finding['sha256']}  {finding['detail']}",
                err=kind != "orphans",
            )
    click.echo("OK" if data["ok"] else "INTEGRITY PROBLEM FOUND")


@click.command(
    help="Run the whole station until stopped: initialise, then the dock daemon, the processing workers "
    "and the web UI, each in a child process, restarted if it dies; Ctrl-C or SIGTERM stops all."
)
@click.option("--host", default=None, help="Web UI listen address (default: settings web_host).")
@click.option("--port", default=None, type=int, help="Web UI listen port (default: settings web_port).")
@click.option(
    "--without",
    type=click.Choice(["dock", "worker", "web"]),
    multiple=True,
    help="Leave this role out (repeatable), e.g. a station with no bays: --without dock.",
)
@click.option(
    "--stop-timeout",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Seconds a role has to stop after SIGTERM before it is killed.",
)
@click.pass_context
def station(
    ctx: click.Context, host: str | None, port: int | None, without: tuple[str, ...], stop_timeout: float
) -> None:
    from entrypoints.station import run_station  # lazy: uvicorn, FastAPI; keeps `--help` fast

    settings = settings_from(ctx)
    running = initialise_from(ctx)
    close_interrupted(running)
    run_station(
        running,
        host=host or settings.web_host,
        port=port or settings.web_port,
        without=without,
        stop_timeout=stop_timeout,
    )
