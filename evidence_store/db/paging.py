"""Reading the newest rows that a rule written in Python keeps, without losing any to a limit."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import Select

T = TypeVar("T")


def newest_kept(
    read: Callable[[Select[Any]], Sequence[T]],
    query: Select[Any],
    id_column: Any,
    keep: Callable[[T], bool],
    *,
    limit: int,
    id_of: Callable[[T], int] = lambda row: int(row.id),  # type: ignore[attr-defined]
    batch: int = 500,
) -> list[T]:
    """Up to `limit` rows of `query` that `keep` accepts, highest id first. The rows are read in batches
    of `batch` (by id, below the last read) until `limit` are kept or none are left: a limit applied
    before a filter in Python (e.g. what a user may see, R13) would shorten the list while older rows
    that pass still exist."""
    kept: list[T] = []
    below: int | None = None
    while len(kept) < limit:
        page = query.order_by(id_column.desc()).limit(batch)
        if below is not None:
            page = page.where(id_column < below)
        rows = read(page)
        kept.extend(row for row in rows if keep(row))
        if len(rows) < batch:
            break
        below = id_of(rows[-1])
    return kept[:limit]
