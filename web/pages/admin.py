"""Administration pages: user accounts (R11) and the sign-in settings."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form
from fastapi.responses import Response

from evidence_store import accounts
from evidence_store.domain.access import Role
from evidence_store.errors import InputError
from web.deps import SettingsCtx, UsersCtx
from web.pages.rendering import redirect, render

router = APIRouter()


@router.get("/admin/users")
def users_page(ctx: UsersCtx) -> Response:
    with ctx.station.connect() as connection:
        found = accounts.list_users(connection)
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


def _setting_value(value: str) -> int:
    try:
        return int(value)
    except ValueError as exc:
        raise InputError(str(exc)) from exc


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
    ctx.on_input_error(lambda message: _users_back(error=message))
    accounts.create_user(
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
    ctx.on_input_error(lambda message: _users_back(error=message))
    accounts.set_role(
        ctx.station,
        username,
        role,
        unit=unit.strip() or None,
        officer_badge=officer.strip() or None,
        actor=user.actor,
        source=ctx.client,
    )
    return _users_back(message="saved")


@router.post("/admin/users/{username}/active")
def users_active(ctx: UsersCtx, username: str, active: Annotated[str, Form()] = "0") -> Response:
    user = ctx.user
    if username == user.username and active != "1":
        return _users_back(error=ctx.t("users.cannot_disable_self"))
    ctx.on_input_error(lambda message: _users_back(error=message))
    accounts.set_active(ctx.station, username, active == "1", actor=user.actor, source=ctx.client)
    return _users_back(message="saved")


@router.post("/admin/users/{username}/password")
def users_password(ctx: UsersCtx, username: str, password: Annotated[str, Form()] = "") -> Response:
    user = ctx.user
    ctx.on_input_error(lambda message: _users_back(error=message))
    accounts.reset_password(ctx.station, username, password, actor=user.actor, source=ctx.client)
    return _users_back(message="saved")


@router.get("/admin/settings")
def settings_page(ctx: SettingsCtx) -> Response:
    config = ctx.web.config.get()
    values = {key: getattr(config, key) for key in accounts.SETTING_LIMITS}
    return render(
        ctx,
        "settings.html",
        values=values,
        limits=accounts.SETTING_LIMITS,
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
    ctx.on_input_error_go_to("/admin/settings")
    try:
        for key, value in given.items():
            if value.strip():
                accounts.save_setting(
                    ctx.station, key, _setting_value(value), actor=ctx.user.actor, source=ctx.client
                )
    finally:
        ctx.web.config.invalidate()  # what was saved before a refused value takes effect too
    return redirect("/admin/settings")
