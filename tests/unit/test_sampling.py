"""R16 supervision sampling: a seeded draw is reproducible, bounded and checked."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evidence_store.domain.sampling import (
    MAX_SAMPLE,
    DrawRequest,
    SupervisionError,
    check_draw,
    check_review,
    draw_sample,
    fingerprint,
    stored_request,
)
from evidence_store.errors import InputError


@given(st.sets(st.integers(1, 10_000), max_size=300), st.integers(1, 50), st.integers(0, 2**63 - 1))
def test_the_same_seed_over_the_same_population_draws_the_same_sample(
    ids: set[int], size: int, seed: int
) -> None:
    population = list(ids)
    sample = draw_sample(population, size, seed)
    assert sample == draw_sample(sorted(population, reverse=True), size, seed)  # order does not matter
    assert sample == sorted(sample) and set(sample) <= ids and len(sample) == min(size, len(ids))


def test_the_fingerprint_names_the_population_in_order() -> None:
    assert fingerprint([1, 2, 3]) == fingerprint([1, 2, 3]) != fingerprint([1, 2, 4])


def test_a_stored_draw_gives_back_its_request() -> None:
    request = DrawRequest(
        kind="case", size=3, period_from=datetime(2026, 1, 1, tzinfo=UTC), unit="U1", seed=9, note="n"
    )
    again = stored_request(request.params(), 3, 9)
    assert again.params() == request.params() and again.seed == 9 and again.size == 3


@pytest.mark.parametrize(
    ("request_", "seed"),
    [
        (DrawRequest(kind="other", size=1), 1),  # type: ignore[arg-type]
        (DrawRequest(kind="clip", size=0), 1),
        (DrawRequest(kind="clip", size=MAX_SAMPLE + 1), 1),
        (DrawRequest(kind="clip", size=1), -1),
        (DrawRequest(kind="clip", size=1), 2**63),
    ],
)
def test_a_draw_that_cannot_be_made_is_an_input_error(request_: DrawRequest, seed: int) -> None:
    with pytest.raises(SupervisionError):
        check_draw(request_, seed)
    assert issubclass(SupervisionError, InputError)


def test_a_review_is_pass_or_described_issues() -> None:
    check_review("pass", "")
    check_review("issues", "no announcement")
    for outcome, notes in (("meh", ""), ("issues", "  ")):
        with pytest.raises(SupervisionError):
            check_review(outcome, notes)
