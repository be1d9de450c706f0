"""The request contexts every route asks for: signed in, or holding one permission (R11)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from evidence_store.domain.access import Permission as P
from web.context import Ctx, get_ctx, need, user_ctx

AnyCtx = Annotated[Ctx, Depends(get_ctx)]
UserCtx = Annotated[Ctx, Depends(user_ctx)]
SearchCtx = Annotated[Ctx, Depends(need(P.CLIP_SEARCH))]
ClipCtx = Annotated[Ctx, Depends(need(P.CLIP_VIEW))]
VerifyCtx = Annotated[Ctx, Depends(need(P.CLIP_VERIFY))]
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
