"""`evidence redact`: a clip's redaction (issue 20, R15) from the command line: detect faces on the
proxy, store a specification from a JSON file, render a version, show the versions and copies.

Detecting, storing a specification and rendering act as a named station user (`--user`, proved with
their password as for `evidence export`) who holds `redaction.edit` (a custodian or an investigator,
R11) and may see the clip (R13: otherwise the clip answers as missing). Printing a version and listing
the versions read only positions and times.

Errors follow the root command's exit codes (a refused specification is an `InputError`: exit 2).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from entrypoints.cli.support import (
    EXIT_USAGE,
    emit,
    fail,
    json_option,
    open_station_as,
    open_station_from,
    user_option,
)
from evidence_store.errors import InputError

if TYPE_CHECKING:
    from evidence_store.bootstrap import Station

EDITOR_HELP = "Who acts (a station user who edits redactions: a custodian or an investigator)."


def _as_editor(ctx: click.Context, user: str, password_stdin: bool, clip_id: int) -> Station:
    """The station, once `user` has proved who they are and may edit this clip's redaction."""
    from evidence_store.redactions import check_editor  # lazy: SQLAlchemy; keeps `--help` fast

    station = open_station_as(ctx, user, password_stdin)
    try:
        check_editor(station, user, clip_id)
    except BaseException:
        station.close()
        raise
    return station


@click.group("redact", help="Redaction of a clip into a copy for a party (R15): detect, spec, render, show.")
def redact_group() -> None:
    pass


@redact_group.command("detect", help="Detect faces on the clip's proxy; store them as the next version.")
@click.argument("clip_id", type=int)
@functools.partial(user_option, help=EDITOR_HELP)
@json_option
@click.pass_context
def redact_detect(ctx: click.Context, clip_id: int, user: str, password_stdin: bool, as_json: bool) -> None:
    from workers.redaction import detect  # lazy: OpenCV and PyAV load only for this command

    station = _as_editor(ctx, user, password_stdin, clip_id)
    try:
        stored = detect(station, clip_id, actor=user)
    finally:
        station.close()
    data = {
        "clip_id": clip_id,
        "version": stored.version,
        "spec_sha256": stored.spec_sha256,
        "tracks": [
            {"id": t.id, "boxes": len(t.boxes), "from_s": t.boxes[0].t, "to_s": t.boxes[-1].t}
            for t in stored.spec.tracks
        ],
    }
    emit(data, as_json, _human_detected)


def _human_detected(data: dict[str, Any]) -> None:
    click.echo(f"clip {data['clip_id']}: version {data['version']} with {len(data['tracks'])} face track(s)")
    for track in data["tracks"]:
        click.echo(
            f"  track {track['id']}: {track['boxes']} boxes, {track['from_s']:.2f}s to {track['to_s']:.2f}s"
        )


@redact_group.command("spec", help="Store a specification (JSON) as the clip's next version, or print one.")
@click.argument("clip_id", type=int)
@click.option("--file", "spec_file", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--version", type=int, default=None, help="The version to print (default: the newest).")
@click.option("--user", "user", default=None, help=EDITOR_HELP + " Needed with --file.")
@click.option("--password-stdin", is_flag=True, help="Read the user's password from the first line of stdin.")
@click.pass_context
def redact_spec(
    ctx: click.Context,
    clip_id: int,
    spec_file: Path | None,
    version: int | None,
    user: str | None,
    password_stdin: bool,
) -> None:
    from evidence_store.credentials import normalise_username  # lazy: as below
    from evidence_store.domain.redaction import spec_to_dict
    from evidence_store.redactions import load_spec, save_spec

    if spec_file is not None and user is None:
        fail("storing a specification needs --user (a custodian or an investigator)", EXIT_USAGE)
    if spec_file is None:
        station = open_station_from(ctx)
    else:
        assert user is not None
        user = normalise_username(user)
        station = _as_editor(ctx, user, password_stdin, clip_id)
    try:
        if spec_file is None:
            stored = load_spec(station, clip_id, version)
        else:
            try:
                raw = json.loads(spec_file.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise InputError(f"cannot read the specification {spec_file}: {exc}") from exc
            stored = save_spec(station, clip_id, raw, actor=str(user))
    finally:
        station.close()
    click.echo(
        json.dumps(
            {
                "version": stored.version,
                "spec_sha256": stored.spec_sha256,
                "created": stored.created,
                "spec": spec_to_dict(stored.spec),
            },
            ensure_ascii=False,
            indent=2,
        )
    )


@redact_group.command("render", help="Render a version (default: the newest) into a signed redacted copy.")
@click.argument("clip_id", type=int)
@click.option("--version", type=int, default=None)
@click.option("--start", "start_s", type=float, default=None, help="Only the segment from this second.")
@click.option("--end", "end_s", type=float, default=None, help="Only the segment up to this second.")
@functools.partial(user_option, help=EDITOR_HELP)
@json_option
@click.pass_context
def redact_render(
    ctx: click.Context,
    clip_id: int,
    version: int | None,
    start_s: float | None,
    end_s: float | None,
    user: str,
    password_stdin: bool,
    as_json: bool,
) -> None:
    from workers.redaction import render  # lazy: as above

    station = _as_editor(ctx, user, password_stdin, clip_id)
    try:
        done = render(station, clip_id, version=version, actor=user, start_s=start_s, end_s=end_s)
    finally:
        station.close()
    data = {
        "clip_id": clip_id,
        "render_id": done.render_id,
        "version": done.version,
        "spec_sha256": done.spec_sha256,
        "sha256": done.sha256,
        "rendered_sha256": done.rendered_sha256,
        "size": done.size,
        "start_s": done.start_s,
        "end_s": done.end_s,
    }
    emit(
        data,
        as_json,
        lambda d: click.echo(f"clip {clip_id} version {d['version']}: redacted copy {d['sha256']}"),
    )


@redact_group.command("show", help="The clip's specification versions and the copies rendered from each.")
@click.argument("clip_id", type=int)
@json_option
@click.pass_context
def redact_show(ctx: click.Context, clip_id: int, as_json: bool) -> None:
    from evidence_store.redactions import spec_versions

    station = open_station_from(ctx)
    try:
        versions = spec_versions(station, clip_id)
    finally:
        station.close()
    emit({"clip_id": clip_id, "versions": versions}, as_json, _human_versions)


def _human_versions(data: dict[str, Any]) -> None:
    if not data["versions"]:
        click.echo(f"clip {data['clip_id']} has no redaction specification")
    for version in data["versions"]:
        click.echo(f"version {version['version']} {version['spec_sha256'][:16]} by {version['created_by']}")
        for made in version["renders"]:
            click.echo(f"  copy {made['sha256']} ({made['size']} bytes)")
