"""`evidence disclosure apply|decide|view|deliver|withdraw|list|show`: a party's application to read or
copy records (R15), from the command line.

Each step acts as a named station user (`--user`, proved by their password like `evidence export`):
a custodian records (`apply`), an approver who did not record it decides (`decide`), a custodian
supervises the viewing of an approved read (`view`) or delivers an approved copy as a disclosure
package of redacted copies only (`deliver`). Exit codes as for every `evidence` command: 2 for a
refused step (role, state, segregation; audited as `disclosure.step_refused`), an unknown application,
case or clip, a clip without a current redacted copy, or malformed input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from entrypoints.cli.support import (
    EXIT_USAGE,
    emit,
    fail,
    json_option,
    open_station_as,
    station_time,
    user_option,
)
from evidence_store.errors import NotFoundError

ID_DOCUMENTS = ("resident_id", "passport", "business_licence", "other")


def _missing(action: Any) -> Any:
    try:
        return action()
    except NotFoundError as exc:  # an unknown application, case or clip: the user's input
        fail(str(exc), EXIT_USAGE)


def _human(data: dict[str, Any]) -> None:
    late = " OVERDUE" if data["overdue"] else ""
    click.echo(
        f"application {data['id']}: {data['kind']} by {data['party_name']} ({data['state']}{late}), "
        f"clips {', '.join(map(str, data['clip_ids']))}, answer due {data['answer_due']}"
    )


@click.group(
    "disclosure", help="A party's application to read or copy records (R15): apply, decide, hand over."
)
def disclosure_group() -> None:
    pass


@disclosure_group.command("apply", help="Record a party's application (as a custodian).")
@user_option
@click.option("--party", "party_name", required=True, help="The applicant's name.")
@click.option(
    "--id-type", "id_type", type=click.Choice(ID_DOCUMENTS), required=True, help="Identity document."
)
@click.option("--id-number", "id_number", required=True, help="The identity document's number.")
@click.option(
    "--kind", type=click.Choice(["read", "copy"]), required=True, help="Read (查阅) or copy (复制)."
)
@click.option("--purpose", required=True, help="What the party wants the records for.")
@click.option("--case", "case_number", default=None, help="Case number (案号): its linked video clips.")
@click.option("--clip", "clip_ids", type=int, multiple=True, help="A clip id. Repeatable.")
@click.option("--received", default=None, help="When the application was received (default: now).")
@click.option("--contact", default="", help="How to reach the party.")
@json_option
@click.pass_context
def apply_command(
    ctx: click.Context,
    user: str,
    password_stdin: bool,
    party_name: str,
    id_type: str,
    id_number: str,
    kind: str,
    purpose: str,
    case_number: str | None,
    clip_ids: tuple[int, ...],
    received: str | None,
    contact: str,
    as_json: bool,
) -> None:
    from evidence_store.disclosure import record_application  # lazy: SQLAlchemy; `--help` fast

    received_at = station_time(ctx, received, option="--received")
    station = open_station_as(ctx, user, password_stdin)
    try:
        data = _missing(
            lambda: record_application(
                station,
                user=user,
                party_name=party_name,
                id_document_type=id_type,
                id_document_number=id_number,
                kind=kind,
                purpose=purpose,
                case_number=case_number,
                clip_ids=list(clip_ids),
                received_at=received_at,
                contact=contact,
            )
        )
    finally:
        station.close()
    emit(data, as_json, _human)


@disclosure_group.command(
    "decide", help="Approve or refuse an application (as an approver who did not record it)."
)
@click.argument("application_id", type=int)
@user_option
@click.option("--approve/--refuse", "approve", required=True, help="The decision.")
@click.option("--reason", default="", help="Why (required to refuse).")
@json_option
@click.pass_context
def decide_command(
    ctx: click.Context,
    application_id: int,
    user: str,
    password_stdin: bool,
    approve: bool,
    reason: str,
    as_json: bool,
) -> None:
    from evidence_store.disclosure import decide_application  # lazy: SQLAlchemy

    station = open_station_as(ctx, user, password_stdin)
    try:
        data = _missing(
            lambda: decide_application(station, application_id, user=user, approve=approve, reason=reason)
        )
    finally:
        station.close()
    emit(data, as_json, _human)


@disclosure_group.command("withdraw", help="Record that the party withdrew the application (as a custodian).")
@click.argument("application_id", type=int)
@user_option
@click.option("--reason", default="", help="What the party said.")
@json_option
@click.pass_context
def withdraw_command(
    ctx: click.Context, application_id: int, user: str, password_stdin: bool, reason: str, as_json: bool
) -> None:
    from evidence_store.disclosure import withdraw_application  # lazy: SQLAlchemy

    station = open_station_as(ctx, user, password_stdin)
    try:
        data = _missing(lambda: withdraw_application(station, application_id, user=user, reason=reason))
    finally:
        station.close()
    emit(data, as_json, _human)


@disclosure_group.command(
    "view", help="Record a supervised viewing of an approved read (as the custodian supervising it)."
)
@click.argument("application_id", type=int)
@user_option
@json_option
@click.pass_context
def view_command(
    ctx: click.Context, application_id: int, user: str, password_stdin: bool, as_json: bool
) -> None:
    from evidence_store.disclosure import record_viewing  # lazy: SQLAlchemy

    station = open_station_as(ctx, user, password_stdin)
    try:
        data, copies = _missing(lambda: record_viewing(station, application_id, user=user))
    finally:
        station.close()
    data = {**data, "copies": [{"clip_id": c.clip_id, "sha256": c.sha256} for c in copies]}
    emit(
        data,
        as_json,
        lambda d: click.echo(
            f"viewing of application {d['id']} on record; redacted copies: "
            + ", ".join(f"clip {c['clip_id']} {c['sha256']}" for c in d["copies"])
        ),
    )


@disclosure_group.command(
    "deliver", help="Build an approved copy's disclosure package (redacted copies only)."
)
@click.argument("application_id", type=int)
@user_option
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to write it (default: <home>/disclosures).",
)
@json_option
@click.pass_context
def deliver_command(
    ctx: click.Context,
    application_id: int,
    user: str,
    password_stdin: bool,
    out_dir: Path | None,
    as_json: bool,
) -> None:
    # lazy: SQLAlchemy, reportlab, c2pa
    from evidence_store.export.disclosure_package import build_disclosure_package

    station = open_station_as(ctx, user, password_stdin)
    try:
        result = _missing(
            lambda: build_disclosure_package(station, application_id, user=user, out_dir=out_dir)
        )
    finally:
        station.close()
    data = {
        "application": result.application_id,
        "directory": str(result.directory),
        "zip": str(result.zip_path),
        "manifest_sha256": result.manifest_sha256,
        "files": result.files,
    }
    emit(
        data,
        as_json,
        lambda d: click.echo(f"disclosure package {d['zip']} (manifest {d['manifest_sha256']})"),
    )


@disclosure_group.command("list", help="Applications, newest first.")
@click.option(
    "--state",
    type=click.Choice(["received", "approved", "refused", "viewed", "delivered", "withdrawn"]),
    default=None,
)
@click.option("--overdue", "only_overdue", is_flag=True, help="Only those past their answer deadline.")
@user_option
@json_option
@click.pass_context
def list_command(
    ctx: click.Context, state: str | None, only_overdue: bool, user: str, password_stdin: bool, as_json: bool
) -> None:
    from evidence_store.disclosure import list_applications, reader  # lazy: SQLAlchemy

    station = open_station_as(ctx, user, password_stdin)
    try:
        found = list_applications(
            station, state=state, only_overdue=only_overdue, seen_by=reader(station, user)
        )
    finally:
        station.close()
    emit({"applications": found}, as_json, _human_list)


def _human_list(data: dict[str, Any]) -> None:
    for application in data["applications"]:
        _human(application)


@disclosure_group.command("show", help="One application with its viewings and deliveries.")
@click.argument("application_id", type=int)
@user_option
@json_option
@click.pass_context
def show_command(
    ctx: click.Context, application_id: int, user: str, password_stdin: bool, as_json: bool
) -> None:
    from evidence_store.disclosure import reader, show_application  # lazy: SQLAlchemy

    station = open_station_as(ctx, user, password_stdin)
    try:
        data = _missing(lambda: show_application(station, application_id, seen_by=reader(station, user)))
    finally:
        station.close()
    emit(data, as_json, _human)
