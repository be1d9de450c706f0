"""The one password check (evidence_store/credentials.py) behind the web login and `evidence export`:
one count of failures for both ways in, the administrator's limits for both, and its refusals."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select, update

from evidence_store.accounts import create_user, save_setting, set_active
from evidence_store.bootstrap import Station
from evidence_store.credentials import (
    CredentialsRefused,
    LoginLimits,
    check_credentials,
    load_limits,
    verify_password,
)
from evidence_store.db.tables import audit_events, login_attempts, users
from web.auth import LoginRefused, WebConfig, login

PASSWORD = "correct horse battery staple"


def audited(station: Station, action: str) -> list[tuple[str, dict[str, object]]]:
    with station.engine.connect() as connection:
        rows = connection.execute(
            select(audit_events.c.actor, audit_events.c.details)
            .where(audit_events.c.action == action)
            .order_by(audit_events.c.seq)
        ).all()
    return [(row.actor, json.loads(row.details)) for row in rows]


def refusal(station: Station, username: str, password: str, **kwargs: object) -> str:
    options: dict[str, object] = {"client": "cli:alice", "limits": LoginLimits(), "channel": "cli", **kwargs}
    with pytest.raises(CredentialsRefused) as refused:
        check_credentials(station, username, password, **options)  # type: ignore[arg-type]
    return refused.value.reason


@pytest.fixture
def inv1(station: Station) -> Station:
    create_user(station, username="inv1", password=PASSWORD, role="investigator", actor="test")
    return station


def test_the_web_and_the_command_line_count_failures_together(inv1: Station) -> None:
    station = inv1
    limits = LoginLimits(user_failures=3, client_failures=100, window=timedelta(minutes=15))
    config = WebConfig(login_user_failures=3, login_client_failures=100, login_window_minutes=15)
    assert config.limits == limits
    for _ in range(2):
        assert refusal(station, "inv1", "wrong password", limits=limits) == "bad_credentials"
    with pytest.raises(LoginRefused) as on_the_web:
        login(station, config, "inv1", "wrong again", client="10.0.0.7")
    assert on_the_web.value.reason == "bad_credentials"

    # three failures for the name, two ways in: both refuse the right password now
    with pytest.raises(LoginRefused) as limited:
        login(station, config, "inv1", PASSWORD, client="10.0.0.8")
    assert limited.value.reason == "rate_limited"
    assert refusal(station, "inv1", PASSWORD, limits=limits) == "rate_limited"
    assert [actor for actor, _ in audited(station, "auth.login_failed")] == [
        "cli:inv1",
        "cli:inv1",
        "web:inv1",
    ]
    assert [actor for actor, _ in audited(station, "auth.login_rate_limited")] == ["web:inv1", "cli:inv1"]
    assert audited(station, "auth.login") == []


def test_the_command_line_takes_the_limits_the_administrator_set(inv1: Station) -> None:
    station = inv1
    with station.engine.connect() as connection:
        assert load_limits(connection) == WebConfig().limits  # the same defaults both ways in
    save_setting(station, "login_user_failures", 2, actor="web:admin", source="test")
    save_setting(station, "login_window_minutes", 5, actor="web:admin", source="test")
    with station.engine.connect() as connection:
        limits = load_limits(connection)
    assert limits == LoginLimits(user_failures=2, client_failures=20, window=timedelta(minutes=5))
    assert [refusal(station, "inv1", "wrong", limits=limits) for _ in range(2)] == ["bad_credentials"] * 2
    assert refusal(station, "inv1", PASSWORD, limits=limits) == "rate_limited"


def test_a_disabled_user_is_refused_with_the_right_password_and_it_counts(inv1: Station) -> None:
    station = inv1
    set_active(station, "inv1", False, actor="test")
    with pytest.raises(CredentialsRefused, match="wrong password, or no such active user") as refused:
        check_credentials(station, "inv1", PASSWORD, client="cli:alice", limits=LoginLimits(), channel="cli")
    assert refused.value.reason == "bad_credentials"  # the message does not tell a guesser it was right
    assert audited(station, "auth.login_failed") == [("cli:inv1", {"reason": "disabled"})]
    with station.engine.connect() as connection:
        assert connection.execute(select(login_attempts.c.success)).scalars().all() == [False]


def test_an_unknown_user_is_refused_like_a_wrong_password(station: Station) -> None:
    assert refusal(station, " Nobody ", "whatever") == "bad_credentials"
    assert audited(station, "auth.login_failed") == [("cli:nobody", {"reason": "bad_credentials"})]


def test_a_long_client_name_is_limited_like_any_other(station: Station) -> None:
    client = "x" * 300  # longer than the recorded client column keeps
    limits = LoginLimits(user_failures=100, client_failures=2)
    assert refusal(station, "a1", "p", client=client, limits=limits) == "bad_credentials"
    assert refusal(station, "a2", "p", client=client, limits=limits) == "bad_credentials"
    assert refusal(station, "a3", "p", client=client, limits=limits) == "rate_limited"


def test_a_hash_with_older_parameters_is_upgraded_on_success(inv1: Station) -> None:
    station = inv1
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    with station.engine.begin() as connection:
        connection.execute(update(users).where(users.c.username == "inv1").values(password_hash=weak))
    row = check_credentials(
        station, "INV1", PASSWORD, client="cli:alice", limits=LoginLimits(), channel="cli"
    )
    assert row.username == "inv1"
    with station.engine.connect() as connection:
        stored = connection.scalar(select(users.c.password_hash).where(users.c.username == "inv1"))
    assert stored != weak and "m=65536" in stored and verify_password(stored, PASSWORD)
