"""Accounts, passwords, server-side sessions and login rate limiting.

* Passwords are hashed with argon2id (argon2-cffi); only the hash (`$argon2id$...`) is stored.
* A session is a random 256-bit token in an HttpOnly, SameSite=Strict cookie; the database keeps only
  its sha256, with an idle timeout and an absolute lifetime (both settings, see `WebConfig`).
* The password check and its rate limits are `evidence_store.credentials.check_credentials`, shared with
  the command line: failures are kept in the database (`login_attempts`), so they hold across processes
  and restarts: at most `login_user_failures` failed logins per user name and `login_client_failures`
  per client address within `login_window_minutes`; past that, logins are refused until the window
  passes. Rows older than a day are removed as new attempts arrive, so the table stays small.
* Every login, failed login, refused (rate-limited) login, logout and session expiry is audited.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.engine import Row

from evidence_store.bootstrap import Station
from evidence_store.credentials import (
    CredentialsRefused,
    LoginLimits,
    check_credentials,
    hash_password,
    normalise_username,
)
from evidence_store.db.tables import officers, users, web_sessions, web_settings
from evidence_store.errors import EvidenceError
from web.access import Role, User
from web.dbutil import inserted_id

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,62}$")
MIN_PASSWORD_LENGTH = 10
_TOUCH_EVERY = timedelta(seconds=30)


class AccountError(EvidenceError):
    """A user-management request that cannot be carried out (unknown user, bad role, weak password)."""


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")


def token_id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# -- settings -----------------------------------------------------------------------------------------


_LIMITS = LoginLimits()  # the command line's defaults too (`credentials.load_limits`)


@dataclass(frozen=True)
class WebConfig:
    session_idle_minutes: int = 30
    session_max_hours: int = 12
    login_user_failures: int = _LIMITS.user_failures
    login_client_failures: int = _LIMITS.client_failures
    login_window_minutes: int = _LIMITS.window // timedelta(minutes=1)

    @property
    def idle(self) -> timedelta:
        return timedelta(minutes=self.session_idle_minutes)

    @property
    def lifetime(self) -> timedelta:
        return timedelta(hours=self.session_max_hours)

    @property
    def limits(self) -> LoginLimits:
        return LoginLimits(
            self.login_user_failures, self.login_client_failures, timedelta(minutes=self.login_window_minutes)
        )


SETTING_LIMITS: dict[str, tuple[int, int]] = {
    "session_idle_minutes": (1, 24 * 60),
    "session_max_hours": (1, 7 * 24),
    "login_user_failures": (1, 100),
    "login_client_failures": (1, 1000),
    "login_window_minutes": (1, 24 * 60),
}


class ConfigCache:
    """The admin's settings over the defaults, re-read from the database at most every few seconds."""

    def __init__(self, station: Station, defaults: WebConfig, ttl_s: float = 5.0) -> None:
        self.station = station
        self.defaults = defaults
        self.ttl_s = ttl_s
        self._value: WebConfig | None = None
        self._read_at = 0.0

    def get(self) -> WebConfig:
        if self._value is None or time.monotonic() - self._read_at > self.ttl_s:
            with self.station.engine.connect() as connection:
                self._value = load_config(connection, self.defaults)
            self._read_at = time.monotonic()
        return self._value

    def invalidate(self) -> None:
        self._value = None


def load_config(connection: Connection, defaults: WebConfig) -> WebConfig:
    stored: dict[str, Any] = {
        k: v for k, v in connection.execute(select(web_settings.c.key, web_settings.c.value))
    }
    known = {f.name for f in fields(WebConfig)}
    values = {k: int(v) for k, v in stored.items() if k in known}
    return replace(defaults, **values)


def save_setting(station: Station, key: str, value: int, *, actor: str, source: str) -> None:
    if key not in SETTING_LIMITS:
        raise AccountError(f"unknown setting {key}")
    low, high = SETTING_LIMITS[key]
    if not low <= value <= high:
        raise AccountError(f"{key} must be between {low} and {high}")
    now = station.clock()
    with station.transaction() as session:
        exists = session.scalar(select(web_settings.c.key).where(web_settings.c.key == key))
        if exists:
            session.execute(
                update(web_settings)
                .where(web_settings.c.key == key)
                .values(value=value, updated_at=now, updated_by=actor)
            )
        else:
            session.execute(
                insert(web_settings).values(key=key, value=value, updated_at=now, updated_by=actor)
            )
        station.audit.record(
            session,
            actor=actor,
            action="settings.changed",
            object_type="web_setting",
            object_id=key,
            details={"value": value},
            source=source,
        )


# -- users --------------------------------------------------------------------------------------------


def user_from_row(row: Row[Any]) -> User:
    return User(
        id=row.id,
        username=row.username,
        display_name=row.display_name,
        role=Role(row.role),
        unit=row.unit,
        officer_id=row.officer_id,
    )


def _officer_id(connection: Connection, badge: str | None) -> int | None:
    if not badge:
        return None
    found = connection.scalar(select(officers.c.id).where(officers.c.badge_number == badge))
    if found is None:
        raise AccountError(f"no officer with number {badge} on record")
    return int(found)


def create_user(
    station: Station,
    *,
    username: str,
    password: str,
    role: Role | str,
    unit: str = "",
    display_name: str = "",
    officer_badge: str | None = None,
    actor: str,
    source: str | None = None,
) -> int:
    username = normalise_username(username)
    if not USERNAME.match(username):
        raise AccountError(
            "a user name is 2-63 characters: lowercase letters, digits, '.', '_' or '-', starting with a "
            "letter or digit"
        )
    try:
        role = Role(role)
    except ValueError as exc:
        raise AccountError(f"unknown role {role!r} (roles: {', '.join(r.value for r in Role)})") from exc
    check_password_strength(password)
    if role is Role.OFFICER and not officer_badge:
        raise AccountError("an officer account needs the officer's number (--officer)")
    now = station.clock()
    with station.transaction() as session:
        connection = session.connection()
        if connection.scalar(select(users.c.id).where(users.c.username == username)) is not None:
            raise AccountError(f"user {username} already exists")
        officer_id = _officer_id(connection, officer_badge)
        user_id = inserted_id(
            connection.execute(
                insert(users).values(
                    username=username,
                    display_name=display_name,
                    role=role.value,
                    unit=unit,
                    officer_id=officer_id,
                    password_hash=hash_password(password),
                    active=True,
                    created_at=now,
                    updated_at=now,
                    password_changed_at=now,
                )
            )
        )
        station.audit.record(
            session,
            actor=actor,
            action="user.created",
            object_type="user",
            object_id=username,
            details={"role": role.value, "unit": unit, "officer": officer_badge},
            source=source,
        )
    return int(user_id)


def _change_user(
    station: Station,
    username: str,
    values: dict[str, Any],
    *,
    action: str,
    details: dict[str, Any],
    actor: str,
    source: str | None,
    end_sessions: bool = False,
) -> None:
    now = station.clock()
    with station.transaction() as session:
        user_id = session.scalar(select(users.c.id).where(users.c.username == username))
        if user_id is None:
            raise AccountError(f"no user {username}")
        session.execute(update(users).where(users.c.id == user_id).values(**values, updated_at=now))
        if end_sessions:
            session.execute(
                update(web_sessions)
                .where(web_sessions.c.user_id == user_id, web_sessions.c.ended_at.is_(None))
                .values(ended_at=now)
            )
        station.audit.record(
            session,
            actor=actor,
            action=action,
            object_type="user",
            object_id=username,
            details=details,
            source=source,
        )


def set_role(
    station: Station,
    username: str,
    role: Role | str,
    *,
    unit: str | None = None,
    officer_badge: str | None = None,
    actor: str,
    source: str | None = None,
) -> None:
    try:
        role = Role(role)
    except ValueError as exc:
        raise AccountError(f"unknown role {role!r}") from exc
    values: dict[str, Any] = {"role": role.value}
    if unit is not None:
        values["unit"] = unit
    if officer_badge is not None:
        with station.engine.connect() as connection:
            values["officer_id"] = _officer_id(connection, officer_badge)
    elif role is Role.OFFICER:
        with station.engine.connect() as connection:
            current = connection.scalar(select(users.c.officer_id).where(users.c.username == username))
        if current is None:
            raise AccountError("an officer account needs the officer's number (--officer)")
    _change_user(
        station,
        username,
        values,
        action="user.role_changed",
        details={"role": role.value, "unit": unit, "officer": officer_badge},
        actor=actor,
        source=source,
        end_sessions=True,  # new rights take effect at the next login
    )


def set_active(
    station: Station, username: str, active: bool, *, actor: str, source: str | None = None
) -> None:
    _change_user(
        station,
        username,
        {"active": active},
        action="user.enabled" if active else "user.disabled",
        details={},
        actor=actor,
        source=source,
        end_sessions=not active,
    )


def reset_password(
    station: Station, username: str, password: str, *, actor: str, source: str | None = None
) -> None:
    check_password_strength(password)
    _change_user(
        station,
        username,
        {"password_hash": hash_password(password), "password_changed_at": station.clock()},
        action="user.password_reset",
        details={},
        actor=actor,
        source=source,
        end_sessions=True,
    )


def list_users(connection: Connection) -> list[dict[str, Any]]:
    rows = connection.execute(
        select(users, officers.c.badge_number)
        .outerjoin(officers, officers.c.id == users.c.officer_id)
        .order_by(users.c.username)
    ).all()
    return [
        {
            "id": r.id,
            "username": r.username,
            "display_name": r.display_name,
            "role": r.role,
            "unit": r.unit,
            "officer": r.badge_number,
            "active": bool(r.active),
            "created_at": r.created_at,
            "last_login_at": r.last_login_at,
        }
        for r in rows
    ]


# -- login and sessions -------------------------------------------------------------------------------


class LoginRefused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # "bad_credentials" | "rate_limited"


@dataclass(frozen=True)
class NewSession:
    token: str
    csrf_token: str
    user: User
    expires_at: datetime


def login(
    station: Station, config: WebConfig, username: str, password: str, *, client: str, user_agent: str = ""
) -> NewSession:
    """Check the password (after the rate limits), open a session, audit either way."""
    try:
        row = check_credentials(
            station, username, password, client=client, limits=config.limits, channel="web"
        )
    except CredentialsRefused as refused:
        raise LoginRefused(refused.reason) from None
    now = station.clock()
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    expires_at = now + config.lifetime
    with station.transaction() as session:
        session.execute(
            insert(web_sessions).values(
                id=token_id(token),
                user_id=row.id,
                csrf_token=csrf,
                created_at=now,
                last_seen_at=now,
                expires_at=expires_at,
                client=client[:200],
                user_agent=user_agent[:300],
            )
        )
        session.execute(update(users).where(users.c.id == row.id).values(last_login_at=now))
        station.audit.record(
            session,
            actor=f"web:{row.username}",
            action="auth.login",
            object_type="user",
            object_id=row.username,
            details={"role": row.role, "session": token_id(token)[:16]},
            source=client,
        )
    return NewSession(token, csrf, user_from_row(row), expires_at)


@dataclass(frozen=True)
class ActiveSession:
    id: str
    user: User
    csrf_token: str


def load_session(station: Station, config: WebConfig, token: str, *, client: str) -> ActiveSession | None:
    """The session a cookie names, if it is still valid; an expired one is ended (and audited)."""
    if not token or len(token) > 200:
        return None
    sid = token_id(token)
    now = station.clock()
    with station.engine.connect() as connection:
        row = connection.execute(
            select(web_sessions, users.c.active.label("user_active"), users.c.username)
            .join(users, users.c.id == web_sessions.c.user_id)
            .where(web_sessions.c.id == sid)
        ).first()
        if row is None or row.ended_at is not None:
            return None
        expired = now >= row.expires_at or now - row.last_seen_at >= config.idle or not row.user_active
        user_row = (
            None if expired else connection.execute(select(users).where(users.c.id == row.user_id)).one()
        )
    if expired:
        with station.transaction() as session:
            ended = (
                session.connection()
                .execute(
                    update(web_sessions)
                    .where(web_sessions.c.id == sid, web_sessions.c.ended_at.is_(None))
                    .values(ended_at=now)
                )
                .rowcount
            )
            if ended:
                station.audit.record(
                    session,
                    actor=f"web:{row.username}",
                    action="auth.session_expired",
                    object_type="user",
                    object_id=row.username,
                    details={"session": sid[:16]},
                    source=client,
                )
        return None
    if now - row.last_seen_at >= _TOUCH_EVERY:
        with station.transaction() as session:
            session.execute(update(web_sessions).where(web_sessions.c.id == sid).values(last_seen_at=now))
    assert user_row is not None
    return ActiveSession(sid, user_from_row(user_row), row.csrf_token)


def logout(station: Station, active: ActiveSession, *, client: str) -> None:
    with station.transaction() as session:
        session.execute(
            update(web_sessions).where(web_sessions.c.id == active.id).values(ended_at=station.clock())
        )
        station.audit.record(
            session,
            actor=active.user.actor,
            action="auth.logout",
            object_type="user",
            object_id=active.user.username,
            details={"session": active.id[:16]},
            source=client,
        )


def tokens_match(expected: str, given: str | None) -> bool:
    return bool(given) and bool(expected) and hmac.compare_digest(expected.encode(), (given or "").encode())
