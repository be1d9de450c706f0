"""`evidence spool status|forward`: the station's store-and-forward spool (issue 18; `ingest.spool`)."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from datetime import timedelta
from typing import Any

import click

from entrypoints.cli.support import EXIT_INTEGRITY, cli_actor, emit, json_option, settings_from


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
    # `ingest.spool`'s spool_exists, read without importing it: `status` of a station without a spool
    # stays light (issue 21)
    if not settings.spool_journal_path.is_file():
        return {"exists": False, "path": str(settings.effective_spool_dir), "empty": True}
    from evidence_store.bootstrap import open_spool  # lazy: start-up (SQLAlchemy), only for a spool
    from ingest.spool import spool_status  # lazy: as above

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
@click.option(
    "--every",
    type=float,
    default=None,
    help="Keep running: try again every this many seconds (what `evidence station` runs).",
)
@json_option
@click.pass_context
def spool_forward_command(ctx: click.Context, every: float | None, as_json: bool) -> None:
    settings = settings_from(ctx)
    if every is None:
        data = _forward_once(settings)
        emit(data, as_json, _print_forward)
        if data["problems"]:  # a spooled copy missing or altered: kept in the spool, reported
            raise SystemExit(EXIT_INTEGRITY)
        return
    _forward_every(settings, every, as_json)


def _forward_once(settings: Any, *, attempts: int = 3) -> dict[str, Any]:
    """One round; the one-shot command tries a backend that does not answer `attempts` times (a link
    just back), the `--every` loop once per round (its next round is the retry)."""
    from entrypoints.wiring import processing_queue_for  # lazy: start-up (only a forward uses it)
    from evidence_store.bootstrap import open_spool  # lazy: SQLAlchemy; keeps `--help` fast
    from ingest.spool import UNREACHABLE, forward_spool, local_spool_status, reach_backend, report_depth

    waiting = local_spool_status(settings)
    if waiting is None or not (
        waiting.transfers_waiting or waiting.transfers_running or waiting.transfers_kept
    ):
        # nothing spooled waits or is kept: neither the spool nor the backend is opened
        return {"forwarded": [], "freed": [], "running": 0, "problems": []}
    backend = reach_backend(settings, attempts=attempts)
    try:
        spool = open_spool(settings)
        try:
            report = forward_spool(
                spool,
                backend,
                actor=cli_actor(),
                keep=timedelta(hours=settings.spool_keep_hours),
                queue=processing_queue_for(settings),
            )
            try:
                report_depth(spool, backend)  # after the round: what still waits or is kept
            except UNREACHABLE as exc:
                # what was forwarded has landed; only the depth shown to other hosts is stale until
                # the next round, so this is said, not a failed forward
                logging.getLogger("ingest.spool").warning("spool depth not reported: %s", exc)
        finally:
            spool.close()
    finally:
        backend.close()
    return report.as_dict()


def _forward_every(settings: Any, every: float, as_json: bool) -> None:
    """The station's forwarding role: a round every `every` seconds until SIGTERM or SIGINT; a backend
    still out of reach is logged and tried again next round."""
    from evidence_store.errors import EvidenceError
    from ingest.spool import UNREACHABLE

    log = logging.getLogger("ingest.spool")
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=settings.log_level,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda _s, _f: stop.set())
    while not stop.is_set():
        try:
            data = _forward_once(settings, attempts=1)
            if data["forwarded"] or data["freed"]:
                emit(data, as_json, _print_forward)
        except UNREACHABLE as exc:
            log.info("spool not forwarded: the backend is still unreachable (%s)", exc)
        except EvidenceError as exc:  # e.g. this station's key not approved: said, and tried again
            log.error("spool not forwarded: %s", exc)
        stop.wait(every)


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
    for problem in data["problems"]:
        click.echo(f"  problem: {problem}", err=True)
    if not data["forwarded"] and not data["freed"] and not data["problems"]:
        click.echo("spool: nothing to forward")
