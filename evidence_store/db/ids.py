"""The id of a row an INSERT created, on every supported database."""

from __future__ import annotations

from typing import Any


def inserted_id(result: Any) -> int:
    """The primary key of the row an INSERT just created."""
    key = result.inserted_primary_key
    if key is None or key[0] is None:
        raise RuntimeError("the INSERT returned no primary key")
    return int(key[0])
