"""Passwords of station users, and the one rate-limited check of them used by every way in.

The web login and the command line (`evidence export ... --user NAME`) both prove who acts with the
same check: argon2id password hashes, failures counted in `login_attempts` (per user name and per
client, so the limits hold across processes and across the web and the CLI), and every failure and
refusal audited. Segregation of duties (an investigator requests, an approver approves; R12) means
nothing if anyone at the station's shell may act under any name.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session

from evidence_store.bootstrap import Station
from evidence_store.db.tables import login_attempts, users, web_settings
from evidence_store.errors import EvidenceError

_hasher = PasswordHasher()  # argon2id, RFC 9106 "low memory" profile (64 MiB, 3 passes)
_DUMMY_HASH = _hasher.hash("not a real password: equalises timing for unknown user names")
ATTEMPT_RETENTION = timedelta(days=1)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class LoginLimits:
    """Failed attempts allowed within `window` before further attempts are refused."""

    user_failures: int = 5
    client_failures: int = 20
    window: timedelta = timedelta(minutes=15)


def load_limits(connection: Connection, defaults: LoginLimits | None = None) -> LoginLimits:
    """The limits an administrator set in the web settings, over the defaults."""
    base = defaults or LoginLimits()
    stored = {
        k: int(v)
        for k, v in connection.execute(
            select(web_settings.c.key, web_settings.c.value).where(
                web_settings.c.key.in_(
                    ["login_user_failures", "login_client_failures", "login_window_minutes"]
                )
            )
        )
    }
    return LoginLimits(
        user_failures=stored.get("login_user_failures", base.user_failures),
        client_failures=stored.get("login_client_failures", base.client_failures),
        window=timedelta(minutes=stored["login_window_minutes"])
        if "login_window_minutes" in stored
        else base.window,
    )


class CredentialsRefused(EvidenceError):
    """A password check that failed: `reason` is "bad_credentials" or "rate_limited"."""

    def __init__(self, reason: str, username: str) -> None:
        message = (
            f"too many failed attempts for {username!r} or from here; wait and try again"
            if reason == "rate_limited"
            else f"user {username!r}: wrong password, or no such active user"
        )
        super().__init__(message)
        self.reason = reason


def normalise_username(username: str) -> str:
    """A user name as stored: user names are lower-case, so `INV1` and ` inv1 ` name the same user."""
    return username.strip().lower()


def check_credentials(
    station: Station, username: str, password: str, *, client: str, limits: LoginLimits, channel: str
) -> Row[Any]:
    """The `users` row of `username` if `password` is theirs and they are active.

    Rate limits first (failed attempts per user name and per client within the window), then the
    argon2 check with the same work whether or not the user exists; the attempt is recorded either
    way and a failure or refusal is audited with `channel` ("web", "cli") in the actor. Raises
    `CredentialsRefused`. A hash made with older parameters is upgraded on success.
    """
    username = normalise_username(username)[:200]
    client = client[:200]  # as stored, so that the failures counted are the ones recorded
    now = station.clock()
    since = now - limits.window
    with station.connect() as connection:
        by_user = _recent_failures(connection, login_attempts.c.username, username, since)
        by_client = _recent_failures(connection, login_attempts.c.client, client, since)
        row = connection.execute(select(users).where(users.c.username == username)).first()
    if by_user >= limits.user_failures or by_client >= limits.client_failures:
        with station.transaction() as session:
            _audit_refusal(
                station,
                session,
                channel,
                username,
                client,
                "auth.login_rate_limited",
                {"failures_for_user": by_user, "failures_from_client": by_client},
            )
        raise CredentialsRefused("rate_limited", username)
    if row is None:
        verify_password(_DUMMY_HASH, password)  # the same argon2 work whether or not the user exists
    ok = row is not None and verify_password(row.password_hash, password)
    accepted = row is not None and ok and bool(row.active)
    with station.transaction() as session:
        session.execute(delete(login_attempts).where(login_attempts.c.at < now - ATTEMPT_RETENTION))
        session.execute(
            insert(login_attempts).values(username=username, client=client, at=now, success=accepted)
        )
        if not accepted:
            details = {"reason": "disabled" if ok else "bad_credentials"}
            _audit_refusal(station, session, channel, username, client, "auth.login_failed", details)
        elif row is not None and _hasher.check_needs_rehash(row.password_hash):
            session.execute(
                update(users).where(users.c.id == row.id).values(password_hash=hash_password(password))
            )
    if row is None or not accepted:
        raise CredentialsRefused("bad_credentials", username)
    return row


def _audit_refusal(
    station: Station,
    session: Session,
    channel: str,
    username: str,
    client: str,
    action: str,
    details: dict[str, Any],
) -> None:
    station.audit.record(
        session,
        actor=f"{channel}:{username}"[:200],  # the column holds 200 (PostgreSQL refuses more)
        action=action,
        object_type="user",
        object_id=username,
        details=details,
        source=client,
    )


def _recent_failures(connection: Connection, column: Any, value: str, since: Any) -> int:
    return int(
        connection.scalar(
            select(func.count())
            .select_from(login_attempts)
            .where(column == value, login_attempts.c.at >= since, login_attempts.c.success.is_(False))
        )
        or 0
    )
