"""`evidence cases ...`, `evidence report compliance` and `evidence flags review|close-review|reviews`."""

from __future__ import annotations

import functools
import json
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click

from entrypoints.cli.support import (
    EXIT_USAGE,
    cli_actor,
    json_option,
    open_station_as,
    open_station_from,
    print_json,
    user_option,
)

reason_option = click.option("--reason", required=True, help="Why (required; kept in the audit log).")


@click.group("cases", help="Cases, their enforcement documents, and the footage linked to them (R5-R7).")
def cases_group() -> None:
    pass


# -- import ---------------------------------------------------------------------------------------------


@cases_group.command(
    "import",
    help="Import cases, documents and approved recording exceptions from a CSV or JSON file "
    "(docs/cases-import.md). One transaction: a file with any bad row changes nothing (exit 2).",
)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--format", "file_format", type=click.Choice(["csv", "json"]), default=None, help="Default: by extension."
)
@json_option
@click.pass_context
def cases_import(ctx: click.Context, file: Path, file_format: str | None, as_json: bool) -> None:
    from evidence_store.cases.importer import ImportRejected, import_cases  # lazy: SQLAlchemy; `--help` fast

    station = open_station_from(ctx)
    try:
        summary = import_cases(station, file, actor=cli_actor(), file_format=file_format)
    except ImportRejected as rejected:
        if as_json:
            print_json(
                {"ok": False, "file": rejected.file, "problems": [p.as_dict() for p in rejected.problems]}
            )
        else:
            click.echo(f"evidence: error: {rejected}", err=True)
        raise SystemExit(EXIT_USAGE) from None
    finally:
        station.close()
    data = {"ok": True, **summary.as_dict()}
    if as_json:
        print_json(data)
        return
    click.echo(f"imported {file.name} ({data['format']}, {data['encoding']})")
    for what in ("cases", "documents"):
        part = data[what]
        click.echo(
            f"  {what}: {len(part['created'])} created, {len(part['updated'])} updated, "
            f"{len(part['unchanged'])} unchanged"
        )
    if data["documents"]["moved_to_another_case"]:
        click.echo(
            f"  documents moved to another case: {', '.join(data['documents']['moved_to_another_case'])}"
        )
    if data["documents"]["without_end"]:
        click.echo(f"  documents without an end time: {', '.join(data['documents']['without_end'])}")
    click.echo(
        f"  exceptions: {data['exceptions']['added']} added, "
        f"{data['exceptions']['already_on_file']} already on file"
    )
    if data["officers_created"]:
        click.echo(f"  officers created (unknown numbers): {', '.join(data['officers_created'])}")
    links = data["links"]
    click.echo(f"  links: {links.get('added', 0)} added, {links.get('removed', 0)} removed")


# -- manual decisions -------------------------------------------------------------------------------------


def _done(data: dict[str, Any], as_json: bool, text: str) -> None:
    if as_json:
        print_json(data)
    else:
        click.echo(text)


@cases_group.command("link", help="Link a clip to a case (and one of its documents) by hand.")
@click.argument("clip_id", type=int)
@click.argument("case_number")
@click.option("--document", default=None, help="The document's external id.")
@reason_option
@json_option
@click.pass_context
def cases_link(
    ctx: click.Context, clip_id: int, case_number: str, document: str | None, reason: str, as_json: bool
) -> None:
    from evidence_store.cases.manual import link_manually  # lazy: SQLAlchemy; keeps `--help` fast

    station = open_station_from(ctx)
    try:
        data = link_manually(
            station, clip_id, case_number, document=document, reason=reason, actor=cli_actor()
        )
    finally:
        station.close()
    _done(
        data,
        as_json,
        f"clip {clip_id} linked to case {data['case']}" + (f", document {document}" if document else ""),
    )


@cases_group.command(
    "unlink",
    help="Remove a clip's links to a case (or to one document) by hand; automatic linking leaves it "
    "unlinked.",
)
@click.argument("clip_id", type=int)
@click.argument("case_number")
@click.option("--document", default=None, help="Only the link to this document (external id).")
@reason_option
@json_option
@click.pass_context
def cases_unlink(
    ctx: click.Context, clip_id: int, case_number: str, document: str | None, reason: str, as_json: bool
) -> None:
    from evidence_store.cases.manual import unlink_manually  # lazy: SQLAlchemy; keeps `--help` fast

    station = open_station_from(ctx)
    try:
        data = unlink_manually(
            station, clip_id, case_number, document=document, reason=reason, actor=cli_actor()
        )
    finally:
        station.close()
    _done(
        data,
        as_json,
        f"clip {clip_id} unlinked from case {data['case']} ({len(data['links_removed'])} link(s))",
    )


@cases_group.command("mark-evidence", help="Mark a linked clip as evidence in a case (or --unmark).")
@click.argument("clip_id", type=int)
@click.argument("case_number")
@reason_option
@click.option("--unmark", is_flag=True, help="Take the evidence mark away.")
@json_option
@click.pass_context
def cases_mark_evidence(
    ctx: click.Context, clip_id: int, case_number: str, reason: str, unmark: bool, as_json: bool
) -> None:
    from evidence_store.cases.manual import mark_evidence  # lazy: SQLAlchemy; keeps `--help` fast

    station = open_station_from(ctx)
    try:
        data = mark_evidence(station, clip_id, case_number, reason=reason, actor=cli_actor(), unmark=unmark)
    finally:
        station.close()
    state = "no longer evidence" if unmark else "marked as evidence"
    _done(data, as_json, f"clip {clip_id} {state} in case {data['case']}")


@cases_group.command(
    "exception",
    help="Record an approved exception (R6): why an act that needed video has none. Without --document it "
    "covers every document of the case.",
)
@click.argument("case_number")
@click.option("--document", default=None, help="The document's external id.")
@reason_option
@click.option("--approved-by", required=True, help="Who approved the exception.")
@click.option("--requested-by", default="", help="Who asked for it (default: you).")
@json_option
@click.pass_context
def cases_exception(
    ctx: click.Context,
    case_number: str,
    document: str | None,
    reason: str,
    approved_by: str,
    requested_by: str,
    as_json: bool,
) -> None:
    from evidence_store.cases.manual import approve_exception  # lazy: SQLAlchemy; keeps `--help` fast

    station = open_station_from(ctx)
    try:
        data = approve_exception(
            station,
            case_number,
            document=document,
            reason=reason,
            approved_by=approved_by,
            actor=cli_actor(),
            requested_by=requested_by,
        )
    finally:
        station.close()
    _done(
        data,
        as_json,
        f"exception {data['exception_id']} recorded for case {data['case']}"
        + (f", document {document}" if document else "")
        + f"; {data['flags_cleared']} flag(s) cleared",
    )


@cases_group.command(
    "relink",
    help="Link every clip to the documents it matches again (R5) and recompute every flag (R1, R5-R8): "
    "the links and flags that linking each clip and document as it arrived would give. "
    "Links made or removed by hand are kept. It reads only what was written since the last relink "
    "(the relink journal) unless --full, a first relink, or another tolerance, filing window or "
    "version of the rules.",
)
@click.option("--tolerance", type=click.FloatRange(min=0), default=None, help="Minutes (default: settings).")
@click.option(
    "--full", is_flag=True, help="Read every clip, document, link and flag, not only the journal's."
)
# the old name of --full (issue 21: one definition), kept so that scripts written for it keep working
@click.option("--all-flags", is_flag=True, hidden=True)
@json_option
@click.pass_context
def cases_relink(
    ctx: click.Context, tolerance: float | None, full: bool, all_flags: bool, as_json: bool
) -> None:
    from evidence_store.cases.linking_service import relink_all  # lazy: SQLAlchemy; keeps `--help` fast

    station = open_station_from(ctx)
    setting = station.settings.link_tolerance_minutes
    if tolerance is not None and tolerance != setting:
        # linking as clips and documents arrive uses the setting: the two would disagree until the
        # next relink at the setting
        click.echo(
            f"evidence: warning: --tolerance {tolerance:g} is not EVIDENCE_LINK_TOLERANCE_MINUTES "
            f"({setting:g}): clips and documents linked from now on use {setting:g}; change the setting "
            "to keep one tolerance",
            err=True,
        )
    try:
        changes = relink_all(
            station,
            timedelta(minutes=tolerance) if tolerance is not None else None,
            actor=cli_actor(),
            full=full or all_flags,
        )
    finally:
        station.close()
    data = {
        **changes.as_dict(),
        **changes.flag_counts,
        "full": changes.full,
        "seconds": round(changes.seconds, 2),
    }
    _done(
        data,
        as_json,
        f"relinked ({'everything' if changes.full else 'what changed since the last relink'}) in "
        f"{changes.seconds:.1f} s: {changes.added} link(s) added, {changes.removed} removed; "
        f"flags {changes.flag_counts.get('flags_opened', 0)} opened, "
        f"{changes.flag_counts.get('flags_updated', 0)} updated, "
        f"{changes.flag_counts.get('flags_cleared', 0)} cleared",
    )


# -- views ------------------------------------------------------------------------------------------------


def _flag_text(flag: dict[str, Any]) -> str:
    details = flag["details"]
    numbers = []
    if "uncovered_seconds" in details:
        numbers.append(f"{details['uncovered_seconds']:g} s uncovered")
    if "gaps" in details:
        numbers.append(f"{len(details['gaps'])} gap(s)")
    if "hours_after_recording" in details:
        numbers.append(f"{details['hours_after_recording']} h after recording")
    where = f"document {flag['document']}" if flag["document"] else f"clip {flag['clip_id']}"
    return f"{flag['kind']:<20} {where}" + (f" ({', '.join(numbers)})" if numbers else "")


def _print_case(view: dict[str, Any]) -> None:
    case = view["case"]
    click.echo(f"case {case['number']}  {case['title']}")
    click.echo(
        f"  {case['category']}, {case['subject']}, {case['unit']}; officers {', '.join(case['officers'])}; "
        f"retention {case['retention_period']}, {case['confidentiality']}"
    )
    click.echo(f"documents (times in {view['timezone']}):")
    for d in view["documents"]:
        video = "video required" if d["requires_video"] else "video optional"
        click.echo(
            f"  {d['id']:<16} {d['kind_name']:<10} {d['start_local']} – {d['end_local'] or '(no end)'}  "
            f"{', '.join(d['officers'])}  {video}; clips {d['linked_clips'] or '-'}"
            + ("; exception on file" if d["exception"] else "")
        )
    click.echo("clips:")
    for c in view["clips"]:
        marks = [m for m, on in (("evidence", c["evidence"]), ("uncertain clock", c["uncertain"])) if on]
        docs = ", ".join(sorted({link["document"] or "(case)" for link in c["links"]}))
        click.echo(
            f"  {c['clip_id']:>6} {c['original_name']:<32} {c['officer'] or '?'} {c['start_local']} – "
            f"{c['end_local'] or '?'}  -> {docs}" + (f"  [{', '.join(marks)}]" if marks else "")
        )
    click.echo("open flags:" if view["flags"] else "open flags: none")
    for flag in view["flags"]:
        click.echo(f"  {_flag_text(flag)}")
    if view["exceptions"]:
        click.echo("exceptions (R6):")
    for e in view["exceptions"]:
        click.echo(
            f"  {e['document'] or '(whole case)'}: {e['reason']} "
            f"(approved by {e['approved_by']}, {e['approved_at']})"
        )


@cases_group.command(
    "show", help="A case: documents, linked clips, open flags with their numbers, exceptions."
)
@click.argument("number")
@json_option
@click.pass_context
def cases_show(ctx: click.Context, number: str, as_json: bool) -> None:
    from evidence_store.cases.views import case_view  # lazy: SQLAlchemy; keeps `--help` fast

    station = open_station_from(ctx)
    try:
        view = case_view(station, number)
    finally:
        station.close()
    if as_json:
        print_json(view)
    else:
        _print_case(view)


@cases_group.command("timeline", help="Draw a case's coverage timeline as an SVG picture.")
@click.argument("number")
@click.option(
    "--svg", "svg_path", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Output file."
)
@click.pass_context
def cases_timeline(ctx: click.Context, number: str, svg_path: Path) -> None:
    # lazy: SQLAlchemy; the SVG writer pulls in xml.sax and urllib; keeps `--help` fast
    from evidence_store.cases.timeline import render_timeline
    from evidence_store.cases.views import case_view, timeline_lanes

    station = open_station_from(ctx)
    try:
        view = case_view(station, number)
        zone_name = station.settings.timezone
    finally:
        station.close()
    case = view["case"]
    svg = render_timeline(
        f"{case['number']} {case['title']}".strip(),
        timeline_lanes(view),
        ZoneInfo(zone_name),
        zone_name=zone_name,
    )
    svg_path.write_text(svg, encoding="utf-8")
    click.echo(f"wrote {svg_path} ({len(view['documents'])} documents, {len(view['clips'])} clips)")


# -- report -----------------------------------------------------------------------------------------------


@click.group("report", help="Reports.")
def report_group() -> None:
    pass


@report_group.command(
    "compliance",
    help="Documents that needed video in a period (days in the station's zone, both included): covered, "
    "covered with a time mismatch, missing with and without an approved exception; late handovers.",
)
@click.option("--from", "date_from", required=True, type=click.DateTime(formats=["%Y-%m-%d"]))
@click.option("--to", "date_to", required=True, type=click.DateTime(formats=["%Y-%m-%d"]))
@click.option("--officer", default=None, help="Officer number.")
@click.option("--unit", default=None, help="Unit (of the case; of the officer for late handovers).")
@click.option(
    "--format", "output_format", type=click.Choice(["json", "csv", "html"]), default="json", show_default=True
)
@click.option(
    "--output", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Default: stdout."
)
@click.pass_context
def report_compliance(
    ctx: click.Context,
    date_from: datetime,
    date_to: datetime,
    officer: str | None,
    unit: str | None,
    output_format: str,
    output: Path | None,
) -> None:
    # lazy: SQLAlchemy; the report writers pull in xml.sax and urllib; keeps `--help` fast
    from evidence_store.cases.report import report_csv, report_html
    from evidence_store.cases.views import ReportFilter, compliance_report

    if date_to < date_from:
        raise click.BadParameter("--to is before --from", param_hint="--to")
    station = open_station_from(ctx)
    try:
        report = compliance_report(station, ReportFilter(date_from.date(), date_to.date(), officer, unit))
    finally:
        station.close()
    if output_format == "json":
        text = json.dumps(report, ensure_ascii=False, indent=2, default=str) + "\n"
    elif output_format == "csv":
        text = report_csv(report)
    else:
        text = report_html(report) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)


# -- flags under review ---------------------------------------------------------------------------------


@click.group(
    "flags",
    help="Compliance flags under a supervisor's review (R16): while a review is open the flag's clips are "
    "held from retention; an open flag alone holds nothing.",
)
def flags_group() -> None:
    pass


@flags_group.command("review", help="Put a compliance flag under review (its clips are held until closed).")
@click.argument("flag_id", type=int)
@reason_option
@functools.partial(user_option, help="Who reviews (a station user with the supervision review permission).")
@json_option
@click.pass_context
def flags_review(
    ctx: click.Context, flag_id: int, reason: str, user: str, password_stdin: bool, as_json: bool
) -> None:
    from evidence_store.flag_reviews import open_flag_review  # lazy: SQLAlchemy; keeps `--help` fast

    station = open_station_as(ctx, user, password_stdin)
    try:
        review_id = open_flag_review(station, flag_id, reason=reason, user=user)
    finally:
        station.close()
    if as_json:
        print_json({"review_id": review_id, "flag_id": flag_id})
    else:
        click.echo(f"flag {flag_id} under review ({review_id}); its clips are held until the review closes")


@flags_group.command("close-review", help="Close a flag review with its outcome (the hold ends).")
@click.argument("review_id", type=int)
@click.option("--outcome", required=True, help="What the review found (kept in the audit log).")
@functools.partial(user_option, help="Who closes it (a station user with the supervision review permission).")
@click.pass_context
def flags_close_review(
    ctx: click.Context, review_id: int, outcome: str, user: str, password_stdin: bool
) -> None:
    from evidence_store.flag_reviews import close_flag_review  # lazy: SQLAlchemy; keeps `--help` fast

    station = open_station_as(ctx, user, password_stdin)
    try:
        close_flag_review(station, review_id, outcome=outcome, user=user)
    finally:
        station.close()
    click.echo(f"flag review {review_id} closed")


@flags_group.command("reviews", help="Flag reviews still open, oldest first.")
@json_option
@click.pass_context
def flags_reviews(ctx: click.Context, as_json: bool) -> None:
    from evidence_store.flag_reviews import open_flag_reviews  # lazy: SQLAlchemy; keeps `--help` fast

    station = open_station_from(ctx)
    try:
        reviews = open_flag_reviews(station)
    finally:
        station.close()
    if as_json:
        print_json({"reviews": reviews})
        return
    for r in reviews:
        subject = f"clip {r['clip_id']}" if r["clip_id"] is not None else f"document {r['document_id']}"
        click.echo(
            f"{r['review_id']:>5} flag {r['flag_id']} {r['kind']} ({subject}) by {r['opened_by']} "
            f"since {r['opened_at']}: {r['reason']}"
        )
