"""Which database errors may pass (and become TransientError for a retry) and which stay what they are."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    ProgrammingError,
)

from evidence_store.db.transient import errors_that_pass_as_transient, may_pass
from evidence_store.errors import InputError, TransientError


def wrapped(kind: type[DBAPIError], message: str, *, invalidated: bool = False) -> DBAPIError:
    return kind("SELECT 1", {}, sqlite3.OperationalError(message), connection_invalidated=invalidated)


@pytest.mark.parametrize(
    ("error", "dialect", "passes"),
    [
        (wrapped(OperationalError, "terminating connection by administrator command"), "postgresql", True),
        (wrapped(OperationalError, "connection refused"), "postgresql", True),
        (wrapped(InterfaceError, "the connection is closed"), "postgresql", True),
        (wrapped(DBAPIError, "server closed the connection", invalidated=True), "postgresql", True),
        (wrapped(IntegrityError, "duplicate key value violates unique constraint"), "postgresql", False),
        (wrapped(ProgrammingError, 'relation "clips" does not exist'), "postgresql", False),
        (wrapped(OperationalError, "database is locked"), "sqlite", True),
        (wrapped(OperationalError, "no such table: clips"), "sqlite", False),
        (wrapped(InterfaceError, "Error binding parameter 1"), "sqlite", False),
        (ValueError("not a database error"), "postgresql", False),
    ],
)
def test_which_database_errors_may_pass(error: BaseException, dialect: str, passes: bool) -> None:
    assert may_pass(error, dialect) is passes


def test_an_error_that_may_pass_is_raised_as_transient_with_the_original_as_cause() -> None:
    original = wrapped(OperationalError, "terminating connection due to administrator command")
    with (
        pytest.raises(TransientError, match="administrator command") as raised,
        errors_that_pass_as_transient("postgresql"),
    ):
        raise original
    assert raised.value.__cause__ is original


def test_an_error_that_will_not_pass_is_left_as_it_is() -> None:
    original = wrapped(IntegrityError, "duplicate key")
    with pytest.raises(IntegrityError) as raised, errors_that_pass_as_transient("postgresql"):
        raise original
    assert raised.value is original


def test_a_value_the_database_refuses_is_an_input_error_not_a_crash() -> None:
    # PostgreSQL refuses a NUL character in text (SQLSTATE 22021): the same input would fail again
    original = wrapped(DataError, "PostgreSQL text fields cannot contain NUL (0x00) bytes")
    with (
        pytest.raises(InputError, match=r"cannot store this value.*NUL") as raised,
        errors_that_pass_as_transient("postgresql"),
    ):
        raise original
    assert raised.value.__cause__ is original
