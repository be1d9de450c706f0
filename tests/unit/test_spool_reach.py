"""The one-shot `evidence spool forward` tries a backend that does not answer a few times before it
gives up (issue 18: a link just back can drop the first connections); a backend that stays away still
fails it, and an error that is not about reaching the backend is never retried."""

from __future__ import annotations

from typing import Any, cast

import pytest

from evidence_store.errors import DatabaseUnavailableError, StationNotTrustedError
from ingest.spool import reach_backend

SETTINGS = cast(Any, object())
BACKEND = cast(Any, object())


class Backend:
    """Answers after `failures` refusals of the given kind."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures, self.error, self.calls = failures, error, 0

    def __call__(self, _settings: Any) -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return BACKEND


def test_a_backend_that_answers_on_the_second_try_is_reached_after_one_wait() -> None:
    opened = Backend(1, DatabaseUnavailableError("cannot reach database: server closed the connection"))
    waits: list[float] = []
    assert reach_backend(SETTINGS, attempts=3, wait_s=2.0, open_=opened, sleep=waits.append) is BACKEND
    assert opened.calls == 2 and waits == [2.0]


def test_a_backend_still_away_after_the_last_try_fails_with_its_error() -> None:
    opened = Backend(5, DatabaseUnavailableError("cannot reach database"))
    waits: list[float] = []
    with pytest.raises(DatabaseUnavailableError):
        reach_backend(SETTINGS, attempts=3, wait_s=1.5, open_=opened, sleep=waits.append)
    assert opened.calls == 3 and waits == [1.5, 1.5]


def test_a_refusal_that_is_not_about_reaching_the_backend_is_not_retried() -> None:
    opened = Backend(1, StationNotTrustedError("station dock-b is not approved"))
    waits: list[float] = []
    with pytest.raises(StationNotTrustedError):
        reach_backend(SETTINGS, attempts=3, open_=opened, sleep=waits.append)
    assert opened.calls == 1 and waits == []
