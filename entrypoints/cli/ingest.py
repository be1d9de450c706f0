"""`evidence import` and `evidence dock`: the ways footage comes in."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import click

from entrypoints.cli.support import (
    EXIT_FAILED,
    EXIT_INTEGRITY,
    cli_actor,
    close_interrupted,
    settings_from,
)
from entrypoints.wiring import processing_queue_for
from evidence_store.ports import NoProcessingQueue

if TYPE_CHECKING:
    from ingest.prefetch import StartupPrefetch


def print_summary(summary: dict[str, Any]) -> None:
    click.echo(
        f"transfer {summary['transfer_id']} {summary['outcome'].upper()}: device {summary['device_serial']}, "
        f"officer {summary['officer'] or 'unknown'}, profile {summary['profile']}"
    )
    click.echo(
        f"  seen {summary['files_seen']}, ingested {summary['files_ingested']}, duplicate "
        f"{summary['files_duplicate']}, failed {summary['files_failed']}, "
        f"skipped {summary['files_skipped']}, "
        f"attachments {summary.get('files_attached', 0)}, "
        f"{summary['bytes_copied']:,} bytes"
        + (f", deleted from the recorder {summary['files_deleted']}" if summary.get("files_deleted") else "")
    )
    if summary["clock_offset_s"] is not None:
        click.echo(f"  recorder clock offset {summary['clock_offset_s']:+.1f} s")
    for problem in summary["problems"]:
        click.echo(f"  problem: {problem}", err=True)
    for item in summary["files"]:
        if item["status"] == "attached":  # a recorder sidecar: listed with its size and hash
            detail = f"{item['size']:,} bytes, sha256 {item['sha256']}; " + "; ".join(item["warnings"])
            click.echo(f"  {item['status']:<9} {item['path']}: {detail}")
        elif item["status"] in {"failed", "skipped"} or item["warnings"]:
            detail = item["error"] or "; ".join(item["warnings"])
            click.echo(f"  {item['status']:<9} {item['path']}: {detail}", err=item["status"] == "failed")


@click.command(
    "import", help="Pull footage from a mounted recorder volume or a folder (same path as docking)."
)
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--device", "device_serial", default=None, help="Recorder serial, if the volume does not say.")
@click.option("--officer", default=None, help="Officer number, if the volume does not say.")
@click.option("--profile", "profile_name", default=None, help="Recorder profile (default: recognised).")
@click.option(
    "--verify-reread", is_flag=True, help="Skeptical mode: read every file twice and compare hashes."
)
@click.option("--json", "as_json", is_flag=True, help="Print the transfer summary as JSON.")
@click.pass_context
def import_command(
    ctx: click.Context,
    path: Path,
    device_serial: str | None,
    officer: str | None,
    profile_name: str | None,
    verify_reread: bool,
    as_json: bool,
) -> None:
    # the disk is idle while the command imports its libraries and opens the station: the files the
    # pull copies first are read into the page cache meanwhile (standard library only; issue 21)
    from ingest.prefetch import StartupPrefetch  # lazy: `--help` and the other commands need no walk

    prefetch = StartupPrefetch(path).start()
    try:
        _import(ctx, path, device_serial, officer, profile_name, verify_reread, as_json, prefetch)
    finally:
        prefetch.stop()


def _import(
    ctx: click.Context,
    path: Path,
    device_serial: str | None,
    officer: str | None,
    profile_name: str | None,
    verify_reread: bool,
    as_json: bool,
    prefetch: StartupPrefetch,
) -> None:
    # lazy: SQLAlchemy, PyAV and rich; keeps `--help` fast
    from entrypoints.cli.progress import Bars
    from entrypoints.cli.progress import wanted as progress_wanted
    from evidence_store.domain.model import TransferOutcome, TransferSource  # lazy: start-up
    from ingest.pull import PullRequest, pull
    from ingest.service import choose_profile
    from ingest.spool import open_for_docking

    # the backend, or (unreachable) the station's spool, which is forwarded later (issue 18)
    target = open_for_docking(settings_from(ctx))
    station = target.station
    if target.spooled:
        click.echo(
            f"evidence: backend unreachable ({target.reason}): pulling into the spool at "
            f"{station.settings.home}; 'evidence spool forward' delivers it when the backend is back",
            err=True,
        )
    close_interrupted(station)
    profile, facts = choose_profile(station, path, profile_name)
    bars = Bars() if progress_wanted(as_json) else None
    request = PullRequest(
        root=path,
        profile=profile,
        source=TransferSource.IMPORT,
        volume=facts,
        device_serial=device_serial,
        officer_badge=officer,
        verify_reread=verify_reread,
        actor=cli_actor(),
        dock_station=station.settings.station_name,
        progress=(lambda state: bars.update(path.name or str(path), state)) if bars is not None else None,
    )
    queue = None if target.spooled else processing_queue_for(station.settings)
    prefetch.stop()  # from here the copy has the disk to itself
    try:
        summary = pull(station, request, queue)
    finally:
        if bars is not None:
            bars.stop()
        station.close()
    data = summary.as_dict()
    data["spooled"] = target.spooled
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
    else:
        print_summary(data)
    if summary.outcome is not TransferOutcome.COMPLETE:
        # 1: partial (files or directories not taken, the rest stored); 3: failed or interrupted
        partial = summary.outcome is TransferOutcome.PARTIAL or summary.files_failed
        raise SystemExit(EXIT_INTEGRITY if partial else EXIT_FAILED)


@click.command(
    "dock",
    help="Run the dock: pull every recorder docked at this station (read-only mount, same pull as "
    "'evidence import'). With --watch, pull each sub-folder of a drop folder instead.",
)
@click.option(
    "--watch",
    "watch_dir",
    default=None,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Drop folder: each new sub-folder is one recorder's upload.",
)
@click.option(
    "--settle",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="With --watch: seconds a folder must be quiet before it is pulled.",
)
@click.option("--once", is_flag=True, help="Pull the recorders (or folders) there now, then exit.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line per transfer summary.")
@click.option(
    "--events",
    type=click.Choice(["auto", "udev", "kernel"]),
    default="auto",
    show_default=True,
    help="Event source: udev's events when udevd runs, else the kernel's (filesystem read by blkid).",
)
@click.option(
    "--accept-loop-devices",
    is_flag=True,
    hidden=True,
    help="Treat loop devices with FAT/exFAT as recorders (tests and demonstrations only).",
)
@click.pass_context
def dock_command(
    ctx: click.Context,
    watch_dir: Path | None,
    settle: float,
    once: bool,
    as_json: bool,
    events: str,
    accept_loop_devices: bool,
) -> None:
    # lazy: SQLAlchemy, PyAV, pyudev, rich; keeps `--help` fast
    from entrypoints.cli.progress import Bars
    from entrypoints.cli.progress import wanted as progress_wanted
    from ingest.dock import Dock, DockResult, FolderWatcher, run_devices, run_watch

    settings = settings_from(ctx)
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=settings.log_level,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
    from ingest.spool import DockTargets, open_for_docking

    # the backend, or (unreachable at start) the station's spool, forwarded later (issue 18)
    target = open_for_docking(settings)
    station = target.station
    close_interrupted(station)
    bars = Bars() if progress_wanted(as_json) else None
    output_lock = threading.Lock()

    def report(result: DockResult) -> None:
        data = result.as_dict()
        with output_lock:
            if bars is not None:
                bars.finished(Path(result.key).name)
            if as_json:
                click.echo(json.dumps(data, ensure_ascii=False, default=str))
            elif result.summary is not None:
                click.echo(f"{result.key}:")
                print_summary(data)
            else:
                click.echo(f"{result.key}: no transfer: {result.error}", err=True)
            sys.stdout.flush()

    queue = processing_queue_for(settings)
    # each docking goes to the backend if it answers then, else to the spool (issue 18)
    targets = DockTargets(
        settings,
        queue=queue,
        backend=None if target.spooled else station,
        spool=station if target.spooled else None,
    )
    dock = Dock(
        station,
        targets=targets,
        queue=NoProcessingQueue() if target.spooled else queue,
        accept_loop=accept_loop_devices,
        on_result=report,
        on_progress=(lambda job, state: bars.update(Path(job.key).name, state)) if bars is not None else None,
    )
    stop = threading.Event()

    def request_stop(signum: int, _frame: Any) -> None:
        logging.getLogger("ingest.dock").info("signal %d: stopping the dock", signum)
        stop.set()
        dock.cancel_all()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if watch_dir is not None:
            run_watch(dock, FolderWatcher(dock, watch_dir.absolute(), settle), stop, once=once)
        else:
            run_devices(dock, stop, once=once, source=cast(Literal["auto", "udev", "kernel"], events))
        if once:
            dock.wait_idle()
    finally:
        dock.close()
        if bars is not None:
            bars.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        targets.close()
    if once and dock.not_complete:
        raise SystemExit(EXIT_FAILED)
