"""Station user accounts (R11): create, list, change role, enable or disable, reset the password; and
the sign-in settings an admin may change. Passwords are argon2id hashes (`evidence_store.credentials`);
every change is audited, and a change of rights or a disabled account ends the user's web sessions."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.engine import Row

from evidence_store.bootstrap import Station
from evidence_store.credentials import hash_password, normalise_username
from evidence_store.db.ids import inserted_id
from evidence_store.db.tables import officers, users, web_sessions, web_settings
from evidence_store.domain.access import Role, User
from evidence_store.errors import ConflictError, InputError, NotFoundError

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,62}$")
MIN_PASSWORD_LENGTH = 10


class AccountError(InputError):
    """A user-management request that cannot be carried out (unknown user, bad role, weak password)."""


class UserExists(AccountError, ConflictError):
    """The user name is taken (a conflict with what is stored, not a malformed request)."""


class NoSuchOfficer(AccountError, NotFoundError):
    """The officer number names no officer on record."""


def check_password_strength(password: str) -> None:
    """A password has at least `MIN_PASSWORD_LENGTH` characters."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")


# -- sign-in settings ---------------------------------------------------------------------------------

# the settings an admin may change (web sessions and login rate limits) and their bounds
SETTING_LIMITS: dict[str, tuple[int, int]] = {
    "session_idle_minutes": (1, 24 * 60),
    "session_max_hours": (1, 7 * 24),
    "login_user_failures": (1, 100),
    "login_client_failures": (1, 1000),
    "login_window_minutes": (1, 24 * 60),
}


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
        raise NoSuchOfficer(f"no officer with number {badge} on record")
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
            raise UserExists(f"user {username} already exists")
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
        with station.connect() as connection:
            values["officer_id"] = _officer_id(connection, officer_badge)
    elif role is Role.OFFICER:
        with station.connect() as connection:
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
