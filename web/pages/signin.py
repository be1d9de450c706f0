"""Signing in and out, and the language switch."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form
from fastapi.responses import HTMLResponse, Response

from web import auth
from web.context import LANG_COOKIE, LOGIN_CSRF_COOKIE, SESSION_COOKIE, Ctx
from web.deps import AnyCtx
from web.i18n import LANGUAGES
from web.pages.rendering import home_for, redirect, render, safe_next

router = APIRouter()


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
