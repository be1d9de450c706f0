"""Oversight pages: the dashboard, annual statistics (R18) and the audit log (R17)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query
from fastapi.responses import Response

from evidence_store.queries.audit_browse import AuditQuery, browse
from evidence_store.queries.dashboard import dashboard
from evidence_store.queries.statistics import annual_statistics, as_csv
from ingest.spool import local_spool_status
from web import disclosures, exports
from web.context import Ctx
from web.deps import MAX_SEQ, AuditCtx, DashboardCtx, StatsCtx
from web.pages.rendering import render

router = APIRouter()


@router.get("/dashboard")
def dashboard_page(ctx: DashboardCtx) -> Response:
    with ctx.station.connect() as connection:
        data = dashboard(
            connection,
            ctx.now(),
            ctx.user,
            filing_window_days=ctx.station.settings.retention_filing_window_days,
        )
    # this host's store-and-forward spool, when it has one (issue 18): how full, what waits
    spool = local_spool_status(ctx.station.settings)
    data["spool"] = spool.as_dict() if spool is not None else None
    # an approver is told what waits for a decision (R12)
    # and the parties' applications past their answer deadline (R15)
    return render(
        ctx,
        "dashboard.html",
        data=data,
        waiting=exports.waiting_for(ctx),
        overdue_disclosures=disclosures.overdue_for(ctx),
    )


def _year(ctx: Ctx, year: int | None) -> int:
    return year if year and 2000 <= year <= 2200 else ctx.now().astimezone(ctx.web.zone).year


@router.get("/stats")
def stats_page(ctx: StatsCtx, year: int | None = None) -> Response:
    chosen = _year(ctx, year)
    with ctx.station.connect() as connection:
        stats = annual_statistics(connection, chosen, ctx.station.settings.timezone)
    ctx.audit("stats.viewed", "statistics", chosen, {"format": "html"})
    return render(ctx, "stats.html", stats=stats, year=chosen)


@router.get("/stats.csv")
def stats_csv(ctx: StatsCtx, year: int | None = None) -> Response:
    chosen = _year(ctx, year)
    with ctx.station.connect() as connection:
        stats = annual_statistics(connection, chosen, ctx.station.settings.timezone)
    ctx.audit("stats.viewed", "statistics", chosen, {"format": "csv"})
    return Response(
        "\ufeff" + as_csv(stats),  # a BOM so spreadsheet programs read the Chinese correctly
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="statistics-{chosen}.csv"'},
    )


@router.get("/audit")
def audit_page(
    ctx: AuditCtx,
    actor: str = "",
    action: str = "",
    object_type: str = "",
    object_id: str = "",
    since: str = "",
    until: str = "",
    before_seq: Annotated[int | None, Query(ge=1, le=MAX_SEQ)] = None,
) -> Response:
    values = {
        "actor": actor,
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        "since": since,
        "until": until,
    }
    nothing: dict[str, Any] = {"events": [], "next_before_seq": None}
    ctx.on_input_error(lambda message: _audit_page(ctx, values, nothing, message))
    query = AuditQuery(
        actor=actor.strip(),
        action=action.strip(),
        object_type=object_type.strip(),
        object_id=object_id.strip(),
        since=ctx.parse_time(since),
        until=ctx.parse_time(until),
        before_seq=before_seq,
    )
    with ctx.station.connect() as connection:
        result = browse(connection, query, ctx.user)
    ctx.audit("audit.viewed", "audit_log", "events", {"filters": query.filters()})
    return _audit_page(ctx, values, result)


def _audit_page(ctx: Ctx, values: dict[str, str], result: dict[str, Any], error: str = "") -> Response:
    """The filter form with its values, and a page of events (with the link to older ones) or the error."""
    next_link = ""
    if result["next_before_seq"] is not None:
        next_link = "/audit?" + urlencode(
            {**{k: v for k, v in values.items() if v}, "before_seq": result["next_before_seq"]}
        )
    return render(ctx, "audit.html", result=result, values=values, error=error, next_link=next_link)
