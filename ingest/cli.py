"""`evidence import` and `evidence dock`: the ways footage comes in."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click


def _progress_printer(enabled: bool) -> Any:
    if not enabled:
        return None

    def show(progress: Any) -> None:
        rate = progress.rate_bytes_s / 1e6
        click.echo(
            f"\r{progress.files_done} files, {progress.bytes_done / 1e6:,.1f} MB, {rate:,.1f} MB/s  "
            f"{progress.current[-40:]:<40}",
            nl=False,
            err=True,
        )

    return show


def print_summary(summary: dict[str, Any]) -> None:
    click.echo(
        f"transfer {summary['transfer_id']} {summary['outcome'].upper()}: device {summary['device_serial']}, "
        f"officer {summary['officer'] or 'unknown'}, profile {summary['profile']}"
    )
    click.echo(
        f"  seen {summary['files_seen']}, ingested {summary['files_ingested']}, duplicate "
        f"{summary['files_duplicate']}, failed {summary['files_failed']}, "
        f"skipped {summary['files_skipped']}, "
        f"{summary['bytes_copied']:,} bytes"
    )
    if summary["clock_offset_s"] is not None:
        click.echo(f"  recorder clock offset {summary['clock_offset_s']:+.1f} s")
    for problem in summary["problems"]:
        click.echo(f"  problem: {problem}", err=True)
    for item in summary["files"]:
        if item["status"] in {"failed", "skipped"} or item["warnings"]:
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
    from evidence_store.bootstrap import open_station
    from evidence_store.cli import EXIT_INTEGRITY, cli_actor, settings_from
    from evidence_store.domain.model import TransferOutcome, TransferSource
    from ingest.pull import PullRequest, pull
    from ingest.service import choose_profile, make_processing_queue

    station = open_station(settings_from(ctx))
    profile, facts = choose_profile(station, path, profile_name)
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
        progress=_progress_printer(not as_json and sys.stderr.isatty()),
    )
    summary = pull(station, request, make_processing_queue(station))
    station.close()
    if request.progress:
        click.echo("", err=True)
    data = summary.as_dict()
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
    else:
        print_summary(data)
    if summary.outcome is not TransferOutcome.COMPLETE:
        raise SystemExit(EXIT_INTEGRITY if summary.files_failed else 3)
