"""The server-rendered pages (Jinja2). Every string comes from the message catalogue (`web.i18n`)."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from evidence_store.domain.model import CaseCategory, ClipStatus, Confidentiality, MediaType
from web import auth
from web.access import Permission, Role
from web.auditlog import AuditQuery, browse
from web.casesview import (
    CaseActionError,
    case_detail,
    link_clip,
    list_cases,
    mark_evidence,
    timeline_svg,
    unlink,
)
from web.common import (
    SEARCH_FIELDS,
    clip_query,
    download_original,
    run_search,
    serve_derivative,
    verify_clip,
    view_clip,
)
from web.context import (
    LANG_COOKIE,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    BadRequest,
    Ctx,
)
from web.dashboard import dashboard
from web.deps import (
    AnyCtx,
    AuditCtx,
    CaseCtx,
    ClipCtx,
    DashboardCtx,
    DrawCtx,
    LinkCtx,
    OriginalCtx,
    ReviewCtx,
    SearchCtx,
    SettingsCtx,
    StatsCtx,
    SupervisionCtx,
    UsersCtx,
    VerifyCtx,
)
from web.i18n import LANGUAGES
from web.stats import CATEGORIES, annual_statistics, as_csv
from web.supervision import (
    DrawRequest,
    SupervisionError,
    assign,
    create_draw,
    get_draw,
    items_for,
    list_draws,
    review,
    reviewers,
)

router = APIRouter(include_in_schema=False)
P = Permission


def render(ctx: Ctx, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    user = ctx.session.user if ctx.session else None
    return ctx.web.templates.TemplateResponse(
        ctx.request,
        template,
        {
            "ctx": ctx,
            "t": ctx.t,
            "user": user,
            "P": Permission,
            "csrf": ctx.csrf_token,
            "languages": LANGUAGES,
            "lang": ctx.lang,
            "here": _here(ctx.request),
            **context,
        },
        status_code=status,
    )


def _here(request: Request) -> str:
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


def safe_next(target: str | None) -> str:
    """Only a local path may be a redirect target (no open redirect)."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if (
        parts.scheme
        or parts.netloc
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
    ):
        return "/"
    return target


def redirect(target: str) -> RedirectResponse:
    return RedirectResponse(target, status_code=303)


def home_for(role: Role) -> str:
    return {
        Role.OFFICER: "/search",
        Role.CUSTODIAN: "/dashboard",
        Role.INVESTIGATOR: "/search",
        Role.APPROVER: "/dashboard",
        Role.SUPERVISOR: "/supervision",
        Role.AUDITOR: "/audit",
        Role.ADMIN: "/admin/users",
    }[role]


# -- sign-in, language ---------------------------------------------------------------------------------


@router.get("/")
def index(ctx: AnyCtx) -> Response:
    if ctx.session is None:
        return redirect("/login")
    return redirect(home_for(ctx.session.user.role))


def _login_page(ctx: Ctx, next_url: str, error: str = "", status: int = 200) -> HTMLResponse:
    token = ctx.request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = render(ctx, "login.html", status, login_csrf=token, next_url=next_url, error=error)
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=ctx.request.url.scheme == "https",
        path="/",
    )
    return response


@router.get("/login")
def login_form(ctx: AnyCtx, next: str = "/") -> Response:
    if ctx.session is not None:
        return redirect(safe_next(next))
    return _login_page(ctx, safe_next(next))


@router.post("/login")
def login_submit(
    ctx: AnyCtx,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    try:
        new = auth.login(
            ctx.station,
            ctx.web.config.get(),
            username,
            password,
            client=ctx.client,
            user_agent=ctx.request.headers.get("user-agent", ""),
        )
    except auth.LoginRefused as refused:
        if refused.reason == "rate_limited":
            return _login_page(ctx, safe_next(next), ctx.t("login.rate_limited"), 429)
        return _login_page(ctx, safe_next(next), ctx.t("login.failed"), 401)
    target = safe_next(next)
    if target == "/":
        target = home_for(new.user.role)
    response = redirect(target)
    set_session_cookie(ctx, response, new.token)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


def set_session_cookie(ctx: Ctx, response: Response, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=ctx.request.url.scheme == "https",
        path="/",
    )


@router.post("/logout")
def logout(ctx: AnyCtx) -> Response:
    if ctx.session is not None:
        auth.logout(ctx.station, ctx.session, client=ctx.client)
    response = redirect("/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/lang/{code}")
def switch_language(code: str, next: str = "/") -> Response:
    response = redirect(safe_next(next))
    if code in LANGUAGES:
        response.set_cookie(LANG_COOKIE, code, max_age=365 * 86400, samesite="lax", path="/")
    return response


# -- footage -------------------------------------------------------------------------------------------


@router.get("/search")
def search_page(ctx: SearchCtx) -> Response:
    values = {k: v for k, v in ctx.request.query_params.items() if k in SEARCH_FIELDS}
    page = None
    error = ""
    asked = (
        any(v for k, v in values.items() if k not in ("sort", "limit", "offset"))
        or "go" in ctx.request.query_params
    )
    if asked:
        try:
            page = run_search(ctx, clip_query(ctx, values))
        except BadRequest as exc:
            error = exc.message
    base = {k: v for k, v in values.items() if v and k != "offset"}
    next_link = prev_link = ""
    if page is not None:
        if page.has_next:
            next_link = "/search?" + urlencode({**base, "go": 1, "offset": page.offset + page.limit})
        if page.offset > 0:
            prev_link = "/search?" + urlencode({**base, "go": 1, "offset": max(0, page.offset - page.limit)})
    return render(
        ctx,
        "search.html",
        400 if error else 200,
        values=values,
        page=page,
        error=error,
        next_link=next_link,
        prev_link=prev_link,
        media_types=[m.value for m in MediaType],
        statuses=[s.value for s in ClipStatus],
    )


@router.get("/clips/{clip_id}")
def clip_page(ctx: ClipCtx, clip_id: int) -> Response:
    detail = view_clip(ctx, clip_id)
    return render(ctx, "clip.html", clip=detail, message=ctx.request.query_params.get("message", ""))


@router.get("/clips/{clip_id}/derivative/{kind}")
def clip_derivative(ctx: ClipCtx, clip_id: int, kind: str) -> Response:
    return serve_derivative(ctx, clip_id, kind)


@router.post("/clips/{clip_id}/verify")
def clip_verify(ctx: VerifyCtx, clip_id: int) -> Response:
    result = verify_clip(ctx, clip_id)
    return redirect(f"/clips/{clip_id}?message={'verified_ok' if result['ok'] else 'verified_bad'}")


@router.post("/clips/{clip_id}/original")
def clip_original(ctx: OriginalCtx, clip_id: int, reason: Annotated[str, Form()] = "") -> Response:
    return download_original(ctx, clip_id, reason)


# -- cases ---------------------------------------------------------------------------------------------


@router.get("/cases")
def cases_page(ctx: CaseCtx, number: str = "", offset: int = 0) -> Response:
    user = ctx.user
    offset = max(0, min(offset, 10_000))
    with ctx.station.engine.connect() as connection:
        found, has_next = list_cases(connection, user, number=number.strip(), offset=offset)
    return render(ctx, "cases.html", cases=found, number=number, offset=offset, has_next=has_next)


@router.get("/cases/{case_id}")
def case_page(ctx: CaseCtx, case_id: int) -> Response:
    user = ctx.user
    with ctx.station.engine.connect() as connection:
        detail = case_detail(connection, case_id, user)
    if detail is None:
        from web.casesview import case_row

        with ctx.station.engine.connect() as connection:
            missing = case_row(connection, case_id) is None
        ctx.hidden("case", case_id, missing=missing)
    ctx.audit("case.viewed", "case", case_id, {"number": detail["case"]["number"]})
    return render(
        ctx,
        "case.html",
        detail=detail,
        has_timeline=True,
        may_link=user.can(Permission.CASE_LINK),
        error=ctx.request.query_params.get("error", ""),
    )


@router.get("/cases/{case_id}/timeline.svg")
def case_timeline(ctx: CaseCtx, case_id: int) -> Response:
    user = ctx.user
    with ctx.station.engine.connect() as connection:
        detail = case_detail(connection, case_id, user)
    if detail is None:
        ctx.hidden("case", case_id, missing=False)
    svg = timeline_svg(ctx.station, case_id, user)
    if svg is None:
        return Response(status_code=404)
    return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "private, no-store"})


def _case_action(ctx: Ctx, case_id: int) -> None:
    user = ctx.require(Permission.CASE_LINK)
    with ctx.station.engine.connect() as connection:
        detail = case_detail(connection, case_id, user)
    if detail is None:
        ctx.hidden("case", case_id, missing=False)


def _back_to_case(case_id: int, error: str = "") -> Response:
    return redirect(f"/cases/{case_id}" + (f"?{urlencode({'error': error})}" if error else ""))


@router.post("/cases/{case_id}/links")
def case_link(
    ctx: LinkCtx,
    case_id: int,
    clip_id: Annotated[int, Form()],
    reason: Annotated[str, Form()] = "",
    document: Annotated[str, Form()] = "",
    evidence: Annotated[str, Form()] = "",
) -> Response:
    _case_action(ctx, case_id)
    from web.common import visible_clip_row

    visible_clip_row(ctx, clip_id, Permission.CLIP_VIEW)
    try:
        link_clip(
            ctx.station,
            case_id,
            clip_id,
            document_external_id=document.strip(),
            reason=reason,
            is_evidence=bool(evidence),
            actor=ctx.user.actor,
        )
    except CaseActionError as exc:
        return _back_to_case(case_id, str(exc))
    return _back_to_case(case_id)


@router.post("/cases/{case_id}/links/{link_id}/unlink")
def case_unlink(ctx: LinkCtx, case_id: int, link_id: int, reason: Annotated[str, Form()] = "") -> Response:
    _case_action(ctx, case_id)
    try:
        unlink(ctx.station, case_id, link_id, reason=reason, actor=ctx.user.actor)
    except CaseActionError as exc:
        return _back_to_case(case_id, str(exc))
    return _back_to_case(case_id)


@router.post("/cases/{case_id}/links/{link_id}/evidence")
def case_mark_evidence(
    ctx: LinkCtx,
    case_id: int,
    link_id: int,
    reason: Annotated[str, Form()] = "",
    evidence: Annotated[str, Form()] = "1",
) -> Response:
    _case_action(ctx, case_id)
    try:
        mark_evidence(
            ctx.station,
            case_id,
            link_id,
            evidence == "1",
            reason=reason,
            actor=ctx.user.actor,
        )
    except CaseActionError as exc:
        return _back_to_case(case_id, str(exc))
    return _back_to_case(case_id)


# -- dashboard, supervision, statistics, audit -----------------------------------------------------------


@router.get("/dashboard")
def dashboard_page(ctx: DashboardCtx) -> Response:
    with ctx.station.engine.connect() as connection:
        data = dashboard(connection, ctx.now())
    return render(ctx, "dashboard.html", data=data)


@router.get("/supervision")
def supervision_page(ctx: SupervisionCtx) -> Response:
    user = ctx.user
    with ctx.station.engine.connect() as connection:
        draws = list_draws(connection)
        mine = items_for(connection, user) if user.can(Permission.SUPERVISION_REVIEW) else []
        names = reviewers(connection)
    return render(
        ctx,
        "supervision.html",
        draws=draws,
        mine=mine,
        reviewers=names,
        categories=CATEGORIES,
        error=ctx.request.query_params.get("error", ""),
    )


def _form_time(ctx: Ctx, value: str) -> datetime | None:
    return ctx.parse_time(value) if value else None


@router.post("/supervision/draws")
def supervision_draw(
    ctx: DrawCtx,
    kind: Annotated[str, Form()] = "clip",
    size: Annotated[int, Form()] = 10,
    period_from: Annotated[str, Form()] = "",
    period_to: Annotated[str, Form()] = "",
    unit: Annotated[str, Form()] = "",
    officer: Annotated[str, Form()] = "",
    category: Annotated[str, Form()] = "",
    seed: Annotated[str, Form()] = "",
    reviewer: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
) -> Response:
    user = ctx.user
    try:
        request = DrawRequest(
            kind="case" if kind == "case" else "clip",
            size=size,
            period_from=_form_time(ctx, period_from),
            period_to=_form_time(ctx, period_to),
            unit=unit.strip(),
            officer=officer.strip(),
            category=category.strip(),
            seed=int(seed) if seed.strip() else None,
            reviewer=reviewer.strip(),
            note=note,
        )
        draw_id = create_draw(ctx.station, request, user, source=ctx.client)
    except (SupervisionError, ValueError, BadRequest) as exc:
        message = exc.message if isinstance(exc, BadRequest) else str(exc)
        return redirect("/supervision?" + urlencode({"error": message}))
    return redirect(f"/supervision/draws/{draw_id}")


@router.get("/supervision/draws/{draw_id}")
def supervision_draw_page(ctx: SupervisionCtx, draw_id: int) -> Response:
    with ctx.station.engine.connect() as connection:
        draw = get_draw(connection, draw_id)
        names = reviewers(connection)
    if draw is None:
        ctx.hidden("supervision_draw", draw_id, missing=True)
    return render(
        ctx, "draw.html", draw=draw, reviewers=names, error=ctx.request.query_params.get("error", "")
    )


@router.post("/supervision/items/{item_id}/assign")
def supervision_assign(
    ctx: DrawCtx, item_id: int, reviewer: Annotated[str, Form()] = "", draw_id: Annotated[int, Form()] = 0
) -> Response:
    user = ctx.user
    try:
        assign(ctx.station, item_id, reviewer.strip(), user, source=ctx.client)
    except SupervisionError as exc:
        return redirect(f"/supervision/draws/{draw_id}?" + urlencode({"error": str(exc)}))
    return redirect(f"/supervision/draws/{draw_id}")


@router.post("/supervision/items/{item_id}/review")
def supervision_review(
    ctx: ReviewCtx,
    item_id: int,
    outcome: Annotated[str, Form()] = "",
    notes: Annotated[str, Form()] = "",
    draw_id: Annotated[int, Form()] = 0,
) -> Response:
    user = ctx.user
    try:
        review(ctx.station, item_id, outcome, notes, user, source=ctx.client)
    except PermissionError:
        ctx.deny(
            reason="assigned to another reviewer",
            permission=Permission.SUPERVISION_REVIEW,
            object_type="supervision_item",
            object_id=item_id,
        )
    except SupervisionError as exc:
        return redirect(f"/supervision/draws/{draw_id}?" + urlencode({"error": str(exc)}))
    return redirect(f"/supervision/draws/{draw_id}" if draw_id else "/supervision")


def _year(ctx: Ctx, year: int | None) -> int:
    return year if year and 2000 <= year <= 2200 else ctx.now().astimezone(ctx.web.zone).year


@router.get("/stats")
def stats_page(ctx: StatsCtx, year: int | None = None) -> Response:
    chosen = _year(ctx, year)
    with ctx.station.engine.connect() as connection:
        stats = annual_statistics(connection, chosen, ctx.station.settings.timezone)
    ctx.audit("stats.viewed", "statistics", chosen, {"format": "html"})
    return render(ctx, "stats.html", stats=stats, year=chosen)


@router.get("/stats.csv")
def stats_csv(ctx: StatsCtx, year: int | None = None) -> Response:
    chosen = _year(ctx, year)
    with ctx.station.engine.connect() as connection:
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
    before_seq: int | None = None,
) -> Response:
    error = ""
    result: dict[str, Any] = {"events": [], "next_before_seq": None}
    try:
        query = AuditQuery(
            actor=actor.strip(),
            action=action.strip(),
            object_type=object_type.strip(),
            object_id=object_id.strip(),
            since=ctx.parse_time(since),
            until=ctx.parse_time(until),
            before_seq=before_seq,
        )
        with ctx.station.engine.connect() as connection:
            result = browse(connection, query)
        ctx.audit("audit.viewed", "audit_log", "events", {"filters": query.filters()})
    except BadRequest as exc:
        error = exc.message
    values = {
        "actor": actor,
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        "since": since,
        "until": until,
    }
    next_link = ""
    if result["next_before_seq"] is not None:
        next_link = "/audit?" + urlencode(
            {**{k: v for k, v in values.items() if v}, "before_seq": result["next_before_seq"]}
        )
    return render(ctx, "audit.html", result=result, values=values, error=error, next_link=next_link)


# -- administration --------------------------------------------------------------------------------------


@router.get("/admin/users")
def users_page(ctx: UsersCtx) -> Response:
    with ctx.station.engine.connect() as connection:
        found = auth.list_users(connection)
    return render(
        ctx,
        "users.html",
        users=found,
        roles=[r.value for r in Role],
        error=ctx.request.query_params.get("error", ""),
        message=ctx.request.query_params.get("message", ""),
    )


def _users_back(error: str = "", message: str = "") -> Response:
    query = urlencode({k: v for k, v in (("error", error), ("message", message)) if v})
    return redirect("/admin/users" + (f"?{query}" if query else ""))


@router.post("/admin/users")
def users_create(
    ctx: UsersCtx,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    role: Annotated[str, Form()] = "",
    unit: Annotated[str, Form()] = "",
    display_name: Annotated[str, Form()] = "",
    officer: Annotated[str, Form()] = "",
) -> Response:
    user = ctx.user
    try:
        auth.create_user(
            ctx.station,
            username=username,
            password=password,
            role=role,
            unit=unit.strip(),
            display_name=display_name.strip(),
            officer_badge=officer.strip() or None,
            actor=user.actor,
            source=ctx.client,
        )
    except auth.AccountError as exc:
        return _users_back(error=str(exc))
    return _users_back(message="created")


@router.post("/admin/users/{username}/role")
def users_role(
    ctx: UsersCtx,
    username: str,
    role: Annotated[str, Form()] = "",
    unit: Annotated[str, Form()] = "",
    officer: Annotated[str, Form()] = "",
) -> Response:
    user = ctx.user
    try:
        auth.set_role(
            ctx.station,
            username,
            role,
            unit=unit.strip() or None,
            officer_badge=officer.strip() or None,
            actor=user.actor,
            source=ctx.client,
        )
    except auth.AccountError as exc:
        return _users_back(error=str(exc))
    return _users_back(message="saved")


@router.post("/admin/users/{username}/active")
def users_active(ctx: UsersCtx, username: str, active: Annotated[str, Form()] = "0") -> Response:
    user = ctx.user
    if username == user.username and active != "1":
        return _users_back(error=ctx.t("users.cannot_disable_self"))
    try:
        auth.set_active(ctx.station, username, active == "1", actor=user.actor, source=ctx.client)
    except auth.AccountError as exc:
        return _users_back(error=str(exc))
    return _users_back(message="saved")


@router.post("/admin/users/{username}/password")
def users_password(ctx: UsersCtx, username: str, password: Annotated[str, Form()] = "") -> Response:
    user = ctx.user
    try:
        auth.reset_password(ctx.station, username, password, actor=user.actor, source=ctx.client)
    except auth.AccountError as exc:
        return _users_back(error=str(exc))
    return _users_back(message="saved")


@router.get("/admin/settings")
def settings_page(ctx: SettingsCtx) -> Response:
    config = ctx.web.config.get()
    values = {key: getattr(config, key) for key in auth.SETTING_LIMITS}
    return render(
        ctx,
        "settings.html",
        values=values,
        limits=auth.SETTING_LIMITS,
        error=ctx.request.query_params.get("error", ""),
    )


@router.post("/admin/settings")
def settings_save(
    ctx: SettingsCtx,
    session_idle_minutes: Annotated[str, Form()] = "",
    session_max_hours: Annotated[str, Form()] = "",
    login_user_failures: Annotated[str, Form()] = "",
    login_client_failures: Annotated[str, Form()] = "",
    login_window_minutes: Annotated[str, Form()] = "",
) -> Response:
    given = {
        "session_idle_minutes": session_idle_minutes,
        "session_max_hours": session_max_hours,
        "login_user_failures": login_user_failures,
        "login_client_failures": login_client_failures,
        "login_window_minutes": login_window_minutes,
    }
    try:
        for key, value in given.items():
            if value.strip():
                auth.save_setting(ctx.station, key, int(value), actor=ctx.user.actor, source=ctx.client)
    except (auth.AccountError, ValueError) as exc:
        return redirect("/admin/settings?" + urlencode({"error": str(exc)}))
    finally:
        ctx.web.config.invalidate()
    return redirect("/admin/settings")


CATEGORY_VALUES = [c.value for c in CaseCategory]
CONFIDENTIALITY_VALUES = [c.value for c in Confidentiality]
