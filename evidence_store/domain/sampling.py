"""Supervision by random sampling (R16): what a draw asks for, and how it picks its items.

A draw selects a population (clips or cases matching period, unit, officer, category, and visible to
the supervisor drawing), orders it by id, and takes `random.Random(seed).sample(ids, n)`. The seed, the
parameters, the population size and the sha256 of the population's id list are stored with the draw, so
a redraw proves later that the same seed over the same population gives the same sample.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

from evidence_store.domain.model import CaseCategory
from evidence_store.errors import ConflictError, InputError, NotFoundError

MAX_SAMPLE = 1000
MAX_SEED = 2**63
OPEN = "open"
DONE = "done"
OUTCOMES = ("pass", "issues")


class SupervisionError(InputError):
    """A draw, assignment or review that cannot be carried out as asked (R16)."""


class SupervisionNotFound(SupervisionError, NotFoundError):
    """The draw or review item named is not there."""


class SupervisionConflict(SupervisionError, ConflictError):
    """What is stored does not allow it: the review is closed, the named reviewer cannot review."""


@dataclass
class DrawRequest:
    kind: Literal["clip", "case"]
    size: int
    period_from: datetime | None = None
    period_to: datetime | None = None
    unit: str = ""
    officer: str = ""  # officer number
    category: str = ""  # CaseCategory value
    seed: int | None = None
    reviewer: str = ""  # user name of the reviewer every item is assigned to
    note: str = ""

    def params(self) -> dict[str, Any]:
        """The population's parameters as stored with the draw (R16)."""
        data = asdict(self)
        for key in ("seed", "size", "note", "reviewer"):
            data.pop(key)
        for key in ("period_from", "period_to"):
            data[key] = data[key].isoformat() if data[key] else None
        return data


def stored_request(params: dict[str, Any], sample_size: int, seed: int) -> DrawRequest:
    """The request a stored draw was made with (its `params`, size and seed), for a redraw (R16)."""
    values = dict(params)
    for key in ("period_from", "period_to"):
        values[key] = datetime.fromisoformat(values[key]) if values.get(key) else None
    return DrawRequest(size=sample_size, seed=seed, **values)


def check_draw(request: DrawRequest, seed: int) -> None:
    """Refuse a draw that cannot be made (R16): the kind, the sample size, the seed."""
    if request.kind not in ("clip", "case"):
        raise SupervisionError("a draw samples clips or cases")
    if not 1 <= request.size <= MAX_SAMPLE:
        raise SupervisionError(f"a sample has 1 to {MAX_SAMPLE} items")
    if not 0 <= seed < MAX_SEED:
        raise SupervisionError("the seed is a number between 0 and 2^63-1")


def check_category(category: str) -> None:
    """A draw's category filter must name a case category (R16)."""
    if category:
        try:
            CaseCategory(category)
        except ValueError as exc:
            raise SupervisionError(f"unknown case category {category!r}") from exc


def fingerprint(ids: list[int]) -> str:
    """The sha256 of a population's id list, stored with the draw to prove a redraw saw the same one (R16)."""
    return hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()


def draw_sample(ids: list[int], size: int, seed: int) -> list[int]:
    """The reproducible sample (R16): the same seed over the same (sorted) population gives the same ids."""
    # a seeded PRNG is the point: anyone can redraw; the seed itself comes from `secrets`
    return sorted(random.Random(seed).sample(sorted(ids), min(size, len(ids))))  # noqa: S311


def check_review(outcome: str, notes: str) -> None:
    """A review outcome is pass or issues, and issues are described (R16)."""
    if outcome not in OUTCOMES:
        raise SupervisionError(f"the outcome is one of {', '.join(OUTCOMES)}")
    if outcome == "issues" and not notes.strip():
        raise SupervisionError("describe the issues found")
