"""The request contexts every route asks for: signed in, or holding one permission (R11)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Path, Query
from pydantic import BeforeValidator

from evidence_store.domain.access import Permission as P
from web.context import Ctx, get_ctx, need, user_ctx

AnyCtx = Annotated[Ctx, Depends(get_ctx)]
UserCtx = Annotated[Ctx, Depends(user_ctx)]
SearchCtx = Annotated[Ctx, Depends(need(P.CLIP_SEARCH))]
ClipCtx = Annotated[Ctx, Depends(need(P.CLIP_VIEW))]
VerifyCtx = Annotated[Ctx, Depends(need(P.CLIP_VERIFY))]
AnnotateCtx = Annotated[Ctx, Depends(need(P.CLIP_ANNOTATE))]
OriginalCtx = Annotated[Ctx, Depends(need(P.CLIP_DOWNLOAD_ORIGINAL))]
CaseCtx = Annotated[Ctx, Depends(need(P.CASE_VIEW))]
LinkCtx = Annotated[Ctx, Depends(need(P.CASE_LINK))]
DashboardCtx = Annotated[Ctx, Depends(need(P.DASHBOARD_VIEW))]
SupervisionCtx = Annotated[Ctx, Depends(need(P.SUPERVISION_VIEW))]
DrawCtx = Annotated[Ctx, Depends(need(P.SUPERVISION_DRAW))]
ReviewCtx = Annotated[Ctx, Depends(need(P.SUPERVISION_REVIEW))]
StatsCtx = Annotated[Ctx, Depends(need(P.STATS_VIEW))]
AuditCtx = Annotated[Ctx, Depends(need(P.AUDIT_VIEW))]
UsersCtx = Annotated[Ctx, Depends(need(P.USERS_MANAGE))]
SettingsCtx = Annotated[Ctx, Depends(need(P.SETTINGS_MANAGE))]
ExportCtx = Annotated[Ctx, Depends(need(P.EXPORT_VIEW))]
RequestExportCtx = Annotated[Ctx, Depends(need(P.EXPORT_REQUEST))]
DecideExportCtx = Annotated[Ctx, Depends(need(P.EXPORT_DECIDE))]
StationCtx = Annotated[Ctx, Depends(need(P.STATION_VIEW))]
RedactCtx = Annotated[Ctx, Depends(need(P.REDACTION_EDIT))]

# Ids are INTEGER columns (PostgreSQL's is 32 bits): a larger or non-positive number names nothing, and
# is refused at the edge (422) before it reaches a query; audit sequence numbers are BIGINT
MAX_ID = 2**31 - 1
MAX_SEQ = 2**63 - 1
Id = Annotated[int, Path(ge=1, le=MAX_ID)]
OptionalIdQuery = Annotated[int | None, Query(ge=1, le=MAX_ID)]
OptionalSeqQuery = Annotated[int | None, Query(ge=1, le=MAX_SEQ)]
_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def iso_time(value: Any) -> Any:
    """ISO 8601 text with a date and a time (pydantic would take a number of seconds too)."""
    if value is not None and not (isinstance(value, str) and _ISO_TIME.match(value)):
        raise ValueError("must be an ISO 8601 date and time, e.g. 2026-03-02T09:30:00+08:00")
    return value


# A time in a query: ISO 8601; without a zone, the station's local time (`Ctx.instant` makes it UTC)
TimeQuery = Annotated[
    datetime | None,
    BeforeValidator(iso_time),
    Query(description="ISO 8601; without a zone: the station's local time"),
]
