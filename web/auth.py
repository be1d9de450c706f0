"""Web sign-in: server-side sessions, login and its rate limits, the session settings.

* Accounts (and their argon2id password hashes) are `evidence_store.accounts`.
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
import secrets
import time
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select, update

from evidence_store.accounts import user_from_row
from evidence_store.bootstrap import Station
from evidence_store.credentials import CredentialsRefused, LoginLimits, check_credentials
from evidence_store.db.tables import users, web_sessions, web_settings
from evidence_store.domain.access import User
from evidence_store.errors import NotPermittedError

_TOUCH_EVERY = timedelta(seconds=30)


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
            with self.station.connect() as connection:
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


# -- login and sessions -------------------------------------------------------------------------------


class LoginRefused(NotPermittedError):
    """A login refused: bad credentials, or too many failures (the login routes answer it themselves)."""

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
    with station.connect() as connection:
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


__all__ = [
    "ActiveSession",
    "ConfigCache",
    "LoginRefused",
    "NewSession",
    "WebConfig",
    "load_config",
    "load_session",
    "login",
    "logout",
    "token_id",
    "tokens_match",
]
