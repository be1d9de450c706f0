"""The facts on record that matter as evidence, as they are stated in the audit events (R3, R10, R17).

Every event that makes or changes one of these rows carries, under the `facts` key of its details, the
tracked fields of the row as the transaction left them: ``{"t": table, "id": row id, "new": true|false,
"set": {field: value}}`` (or ``"gone": true`` for a row taken off the record). `record_replay` folds
these back into the state the chain implies and compares it with the rows.

Values are stated in one JSON form (`fact_value`) so a row read back from either database gives the
same text: times as UTC ISO text with microseconds, recorder times as naive ISO text, enums by value.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

FACTS_KEY = "facts"
BASELINE_KEY = "records_baseline"
BASELINE_ACTION = "records.baseline"
# A fresh station states its (empty) baseline in its `station.initialised` event.
BASELINE_ACTIONS = (BASELINE_ACTION, "station.initialised")

# table -> the fields replayed from the chain. Workflow columns (processing jobs, retention decisions,
# warnings, media_info) are left out: they are bookkeeping, not evidence.
TRACKED: dict[str, tuple[str, ...]] = {
    "clips": (
        "sha256",
        "size",
        "media_type",
        "device_id",
        "officer_id",
        "transfer_id",
        "device_start",
        "device_end",
        "utc_start",
        "utc_end",
        "clock_offset_s",
        "clock_status",
        "duration_s",
        "status",
        "ingested_at",
    ),
    "derivatives": ("clip_id", "kind", "sha256", "size", "derived_from_sha256"),
    "clip_links": ("clip_id", "case_id", "document_id", "origin", "is_evidence", "removed_at"),
    "documents": ("external_id", "case_id", "kind", "officer_ids", "start", "end", "requires_video"),
    "recording_exceptions": ("case_id", "document_id", "reason", "approved_by", "approved_at"),
    "legal_holds": ("clip_id", "case_id", "reason", "placed_by", "placed_at", "released_at"),
    "tombstones": ("clip_id", "sha256", "size", "rule", "run_id", "deleted_at"),
}

# The tracked fields that are times: a stored time may be read back in another text form of the same
# instant (another writer's format), so these are compared as instants when their texts differ.
TIME_FIELDS: frozenset[str] = frozenset(
    {
        "device_start",
        "device_end",
        "utc_start",
        "utc_end",
        "ingested_at",
        "start",
        "end",
        "removed_at",
        "approved_at",
        "placed_at",
        "released_at",
        "deleted_at",
    }
)

# Rows the chain states only as counts: automatic case links, made and unmade in bulk by linking (R5)
# and recomputable from the clips and documents. Such a row needs no fact of its own as long as it has
# the values below; a person's decision about it (a manual link, the evidence mark, a removal by hand)
# is always stated. table -> (field, value that marks such a row, values every such row must have).
UNSTATED_ROWS: dict[str, tuple[str, Any, dict[str, Any]]] = {
    "clip_links": ("origin", "auto", {"is_evidence": False})
}

# The name of one row of each table in a finding ("clip 12").
OBJECT_NAMES: dict[str, str] = {
    "clips": "clip",
    "derivatives": "derivative",
    "clip_links": "case link",
    "documents": "document",
    "recording_exceptions": "recording exception",
    "legal_holds": "legal hold",
    "tombstones": "tombstone",
}


def fact_value(value: Any) -> Any:
    """The one JSON form of a stored value inside the chain and in the comparison."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        # isoformat is several times faster than strftime, and the replay converts every stored time
        if value.tzinfo is None:
            return value.isoformat(timespec="microseconds")
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(value, tuple):
        return [fact_value(v) for v in value]
    if isinstance(value, list):
        return [fact_value(v) for v in value]
    return value


def same_fact(name: str, recorded: Any, stored: Any) -> bool:
    """Whether a stored value is the value the chain states (R3, R10): equal in the one JSON form, or,
    for a time, the same instant written another way."""
    if stored == recorded:
        return True
    stored = fact_value(stored)
    if stored == recorded:
        return True
    if name in TIME_FIELDS and isinstance(stored, str) and isinstance(recorded, str):
        expected, actual = _moment(recorded), _moment(stored)
        if expected is None or actual is None:
            return False
        if expected.tzinfo is not None and actual.tzinfo is None:
            actual = actual.replace(tzinfo=UTC)  # a UTC time stored without its zone, as SQLite keeps it
        if (expected.tzinfo is None) != (actual.tzinfo is None):
            return False  # a recorder's own (naive) time is never equal to an instant
        return expected == actual
    return False


def _moment(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _field(source: Any, name: str) -> Any:
    return source[name] if isinstance(source, Mapping) else getattr(source, name)


def row_fact(
    table: str, row_id: int, source: Any, *, new: bool, fields: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The fact stating a row (an object or a mapping): every tracked field when `new`, else `fields`
    (all tracked fields when none are named)."""
    names = TRACKED[table] if new or not fields else fields
    return {
        "t": table,
        "id": int(row_id),
        "new": new,
        "set": {name: fact_value(_field(source, name)) for name in names},
    }


def gone_fact(table: str, row_id: int) -> dict[str, Any]:
    """The fact that a row was taken off the record (e.g. a deleted clip's derivatives)."""
    return {"t": table, "id": int(row_id), "gone": True}
