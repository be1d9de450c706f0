"""`evidence export request|approve|reject|build|list|show` and `evidence verify PACKAGE`.

Exit codes (as for every `evidence` command): 0 done; 1 an integrity problem (a package that does not
verify, an original that no longer hashes to its sha256); 2 a refused or malformed step: a request by
someone who is not an investigator, a decision by someone who is not an approver, a build before
approval, after rejection, after expiry or by another user, an unknown request or clip (the refusals
are recorded in the audit log as ``export.refused``); 3 any other failure.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from entrypoints.cli.support import (
    EXIT_FAILED,
    EXIT_INTEGRITY,
    EXIT_USAGE,
    emit,
    fail,
    json_option,
    open_station_as,
    user_option,
)
from evidence_store.errors import InputError, NotFoundError


def _run(action: Any) -> Any:
    """Run a workflow step; refusals and unknown records exit 2 with one clear line."""
    from evidence_store.export.workflow import ExportRefusedError  # lazy: SQLAlchemy; `--help` fast

    try:
        return action()
    except ExportRefusedError as exc:
        fail(str(exc), EXIT_USAGE)
    except NotFoundError as exc:
        fail(str(exc), EXIT_USAGE)
    except InputError as exc:
        fail(str(exc), EXIT_USAGE)
    except OSError as exc:  # the output directory cannot be written, the disk is full
        fail(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), EXIT_FAILED)


@click.group("export", help="Certified export of clips (request, approve, build; R12, R14).")
def export_group() -> None:
    pass


@export_group.command("request", help="Ask for clips to be extracted as a certified package.")
@user_option
@click.option(
    "--clip",
    "clip_specs",
    multiple=True,
    required=True,
    help="ID, or ID@START-END for a segment (seconds or HH:MM:SS, e.g. 12@00:01:05-00:01:30). Repeatable.",
)
@click.option("--case", "case_number", default=None, help="Case number (案号).")
@click.option("--purpose", required=True, help="What the package is for.")
@click.option("--recipient", default="", help="Who receives the package.")
@click.option(
    "--cut",
    type=click.Choice(["exact", "keyframe"]),
    default="exact",
    show_default=True,
    help="Segments: exact (re-encoded) or keyframe (stream copy, starts at the keyframe before START).",
)
@click.option("--disclosure", is_flag=True, help="Also make a disclosure copy with a burnt-in overlay.")
@json_option
@click.pass_context
def request_command(
    ctx: click.Context,
    user: str,
    password_stdin: bool,
    clip_specs: tuple[str, ...],
    case_number: str | None,
    purpose: str,
    recipient: str,
    cut: str,
    disclosure: bool,
    as_json: bool,
) -> None:
    # lazy: SQLAlchemy; keeps `--help` fast
    from evidence_store.export.workflow import describe, parse_clip_spec, request_export

    station = open_station_as(ctx, user, password_stdin)
    try:
        items = _run(lambda: [parse_clip_spec(spec, cut=cut, disclosure=disclosure) for spec in clip_specs])
        request = _run(
            lambda: request_export(
                station, user=user, items=items, purpose=purpose, recipient=recipient, case_number=case_number
            )
        )
        data = describe(request, case_number)
    finally:
        station.close()
    emit(data, as_json, lambda d: click.echo(f"export request {d['id']} pending approval"))


def _decide(
    ctx: click.Context,
    request_id: int,
    user: str,
    password_stdin: bool,
    reason: str,
    approve: bool,
    as_json: bool,
) -> None:
    # lazy: SQLAlchemy; keeps `--help` fast
    from evidence_store.export.workflow import approve_export, describe, reject_export

    station = open_station_as(ctx, user, password_stdin)
    try:
        if approve:
            request = _run(lambda: approve_export(station, request_id, user=user, reason=reason))
        else:
            request = _run(lambda: reject_export(station, request_id, user=user, reason=reason))
        data = describe(request, None)
    finally:
        station.close()
    emit(
        data,
        as_json,
        lambda d: click.echo(
            f"export {d['id']} approved, valid until {d['valid_until']}"
            if approve
            else f"export {d['id']} rejected: {d['decision_reason']}"
        ),
    )


@export_group.command("approve", help="Approve a pending request (as an approver).")
@click.argument("request_id", type=int)
@user_option
@click.option("--reason", default="", help="A note on the approval.")
@json_option
@click.pass_context
def approve_command(
    ctx: click.Context, request_id: int, user: str, password_stdin: bool, reason: str, as_json: bool
) -> None:
    _decide(ctx, request_id, user, password_stdin, reason, True, as_json)


@export_group.command("reject", help="Reject a pending request, with a reason (as an approver).")
@click.argument("request_id", type=int)
@user_option
@click.option("--reason", required=True, help="Why it is rejected.")
@json_option
@click.pass_context
def reject_command(
    ctx: click.Context, request_id: int, user: str, password_stdin: bool, reason: str, as_json: bool
) -> None:
    _decide(ctx, request_id, user, password_stdin, reason, False, as_json)


@export_group.command("build", help="Build the package of an approved request (by its requester).")
@click.argument("request_id", type=int)
@user_option
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to put the package directory and .zip (default: HOME/exports).",
)
@click.option("--no-zip", is_flag=True, help="Only the directory, no .zip.")
@json_option
@click.pass_context
def build_command(
    ctx: click.Context,
    request_id: int,
    user: str,
    password_stdin: bool,
    out_dir: Path | None,
    no_zip: bool,
    as_json: bool,
) -> None:
    # lazy: SQLAlchemy; keeps `--help` fast
    from evidence_store.export.package import build_package, default_out_dir
    from ingest.transcode.segment import FfmpegCutter  # lazy: as above

    station = open_station_as(ctx, user, password_stdin)
    target = out_dir or default_out_dir(station)
    try:
        result = _run(
            lambda: build_package(
                station,
                request_id,
                user=user,
                out_dir=target,
                make_zip=not no_zip,
                progress=None if as_json else lambda message: click.echo(message, err=True),
                cutter=FfmpegCutter(),
            )
        )
    finally:
        station.close()
    data = {
        "id": result.request_id,
        "directory": str(result.directory),
        "zip": str(result.zip_path) if result.zip_path else None,
        "manifest_sha256": result.manifest_sha256,
        "files": result.files,
        "bytes": result.bytes_total,
        "zip_shared_bytes": result.zip_shared_bytes,
        "seconds": round(result.seconds, 3),
    }
    emit(
        data,
        as_json,
        lambda d: click.echo(
            f"package {d['directory']}" + (f" and {d['zip']}" if d["zip"] else "") + f"\n"
            f"{d['files']} files, {d['bytes']} bytes, manifest sha256 {d['manifest_sha256']}"
            + (
                f"\nthe zip shares the originals' {d['zip_shared_bytes']} bytes with the directory "
                "(written once, stored once)"
                if d["zip_shared_bytes"]
                else ""
            )
        ),
    )


@export_group.command("list", help="List export requests, newest first.")
@user_option
@click.option(
    "--status", type=click.Choice(["pending", "approved", "rejected", "built", "expired"]), default=None
)
@json_option
@click.pass_context
def list_command(
    ctx: click.Context, user: str, password_stdin: bool, status: str | None, as_json: bool
) -> None:
    # lazy: SQLAlchemy; keeps `--help` fast
    from evidence_store.export.workflow import check_reader, expire_due, list_exports

    station = open_station_as(ctx, user, password_stdin)
    try:
        _run(lambda: check_reader(station, user))
        expire_due(station)
        found = list_exports(station, status=status)
    finally:
        station.close()
    emit({"exports": found}, as_json, _print_list)


def _print_list(data: dict[str, Any]) -> None:
    for e in data["exports"]:
        clips = ",".join(str(i["clip_id"]) for i in e["items"])
        click.echo(
            f"{e['id']:>6} {e['status']:<9} {e['requested_by']:<16} {e['case'] or '-':<20} clips {clips}"
            f"  {e['purpose']}"
        )


@export_group.command("show", help="Show one export request.")
@click.argument("request_id", type=int)
@user_option
@json_option
@click.pass_context
def show_command(ctx: click.Context, request_id: int, user: str, password_stdin: bool, as_json: bool) -> None:
    # lazy: SQLAlchemy; keeps `--help` fast
    from evidence_store.export.workflow import check_reader, expire_due, show_export

    station = open_station_as(ctx, user, password_stdin)
    try:
        _run(lambda: check_reader(station, user))
        expire_due(station)
        data = _run(lambda: show_export(station, request_id))
    finally:
        station.close()
    emit(data, as_json, lambda d: click.echo(json.dumps(d, ensure_ascii=False, indent=2, default=str)))


@click.command(
    "verify", help="Verify an export package (directory or .zip) offline: exit 0 valid, 1 invalid."
)
@click.argument("package", type=click.Path(path_type=Path))
@click.option("--fingerprint", default=None, help="The station key fingerprint you expect (from the note).")
@json_option
def verify_command(package: Path, fingerprint: str | None, as_json: bool) -> None:
    from evidence_store.export.verify import NotAPackageError, verify_package  # lazy: cryptography

    try:
        verdict = verify_package(package, expected_fingerprint=fingerprint)
    except NotAPackageError as exc:
        fail(str(exc), EXIT_USAGE)
    emit(verdict.as_dict(), as_json, _print_verdict)
    if not verdict.ok:
        raise SystemExit(EXIT_INTEGRITY)


def _print_verdict(data: dict[str, Any]) -> None:
    for finding in data["findings"]:
        mark = "OK  " if finding["ok"] else "FAIL"
        click.echo(f"{mark} {finding['file']}: {finding['check']}: {finding['detail']}")
    kind = (
        "DISCLOSURE package (a party's redacted copies, no original; R15)" if data.get("disclosure") else ""
    )
    if data["valid"]:
        click.echo(f"VALID{' ' + kind if kind else ''}: {data['package']} ({data['checks']} checks passed)")
    else:
        click.echo(f"INVALID: {data['package']}: {len(data['problems'])} problem(s):", err=True)
        for problem in data["problems"]:
            click.echo(f"  {problem['file']}: {problem['check']}: {problem['detail']}", err=True)
