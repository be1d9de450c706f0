"""`evidence spool status|forward`: the station's store-and-forward spool (issue 18; `ingest.spool`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import click

from entrypoints.cli.support import EXIT_FAILED, cli_actor, emit, json_option, settings_from
from entrypoints.wiring import processing_queue_for


@click.group("spool", help="The local spool a station docks into while its backend is unreachable.")
def spool_group() -> None:
    pass


def _print_status(data: dict[str, Any]) -> None:
    if not data.get("exists"):
        click.echo(f"spool: none at {data['path']} (nothing was ever spooled)")
        return
    over = " (OVER: recorders are not cleared)" if data["over_high_water"] else ""
    click.echo(
        f"spool {data['path']}: {data['held_bytes']:,} bytes held, high-water mark "
        f"{data['high_water_bytes']:,}{over}"
    )
    click.echo(
        f"  waiting to be forwarded: {data['transfers_waiting']} transfer(s), "
        f"{data['clips_waiting']} clip(s); "
        f"being pulled: {data['transfers_running']}; forwarded: {data['transfers_forwarded']} "
        f"({data['transfers_kept']} kept locally until the keep passes)"
    )


def spool_status_data(settings: Any) -> dict[str, Any]:
    """What `spool status` and `status` say of the spool (opening it only if it exists)."""
    from evidence_store.bootstrap import open_spool  # lazy: SQLAlchemy; keeps `--help` fast
    from ingest.spool import spool_exists, spool_status

    if not spool_exists(settings):
        return {"exists": False, "path": str(settings.effective_spool_dir), "empty": True}
    spool = open_spool(settings)
    try:
        return {"exists": True, **spool_status(spool, settings).as_dict()}
    finally:
        spool.close()


@spool_group.command("status", help="How much the spool holds, what waits to be forwarded.")
@json_option
@click.pass_context
def spool_status_command(ctx: click.Context, as_json: bool) -> None:
    emit(spool_status_data(settings_from(ctx)), as_json, _print_status)


@spool_group.command("forward", help="Forward the spool into the backend now, then free what may be freed.")
@json_option
@click.pass_context
def spool_forward_command(ctx: click.Context, as_json: bool) -> None:
    from evidence_store.bootstrap import open_spool  # lazy: SQLAlchemy; keeps `--help` fast
    from ingest.spool import forward_spool, open_backend, spool_exists

    settings = settings_from(ctx)
    if not spool_exists(settings):
        emit({"forwarded": [], "freed": [], "running": 0, "problems": []}, as_json, lambda _d: None)
        if not as_json:
            click.echo("spool: nothing to forward")
        return
    backend = open_backend(settings)
    spool = open_spool(settings)
    try:
        report = forward_spool(
            spool,
            backend,
            actor=cli_actor(),
            keep=timedelta(hours=settings.spool_keep_hours),
            queue=processing_queue_for(settings),
        )
    finally:
        spool.close()
        backend.close()
    data = report.as_dict()
    emit(data, as_json, _print_forward)
    if report.problems:
        raise SystemExit(EXIT_FAILED)


def _print_forward(data: dict[str, Any]) -> None:
    for item in data["forwarded"]:
        already = " (the backend had it already)" if item["already"] else ""
        click.echo(
            f"spooled transfer {item['spool_transfer_id']} -> transfer {item['transfer_id']}: "
            f"{item['clips']} clip(s), {item['duplicates']} already on record, {item['attachments']} "
            f"attachment(s), {item['bytes']:,} bytes{already}"
        )
    if data["freed"]:
        click.echo(f"freed from the spool: transfer(s) {', '.join(map(str, data['freed']))}")
    if data["running"]:
        click.echo(f"{data['running']} spooled transfer(s) still being pulled: forwarded once closed")
    if not data["forwarded"] and not data["freed"]:
        click.echo("spool: nothing to forward")
