"""Which failures of an actor dramatiq retries later: those that may pass, never the permanent ones."""

from __future__ import annotations

import pytest

from evidence_store.errors import DatabaseUnavailableError, IntegrityError, PermanentError, TransientError
from workers.actors import _retry_transient


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (TransientError("the database failed, try again later: terminating connection"), True),
        (DatabaseUnavailableError("cannot reach database postgresql://station/evidence"), True),
        (PermanentError("the original has no decodable stream"), False),
        (IntegrityError("a blob no longer hashes to its sha256"), False),
        (RuntimeError("a bug"), False),
    ],
)
def test_only_failures_that_may_pass_are_retried(error: Exception, retried: bool) -> None:
    assert _retry_transient(0, error) is retried


def test_retries_end_after_five() -> None:
    assert _retry_transient(4, TransientError("busy")) is True
    assert _retry_transient(5, TransientError("busy")) is False
