"""Replaying the audit chain into the records it implies, and naming where the rows differ (R3, R10, R17).

`fold_events` reads the `facts` each event states (see `record_facts`) into a `RecordState`;
`compare_table` walks one table's stored rows (in id order, streamed by the caller) against it and
names each difference as (object, field, recorded value, stored value), each row the chain never
made (extra) and each row the chain made that is gone (missing).

Rows written before events stated their facts cannot be checked. The records baseline (in the
`station.initialised` event of a new station, or a `records.baseline` event written once by
`evidence init` on an older one) gives each table's highest id at that moment: rows at or below it
without facts are counted as "not covered by the chain", any other row without facts is extra.
Without a baseline every row without facts is counted as not covered.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from evidence_store.domain.record_facts import (
    BASELINE_ACTIONS,
    BASELINE_KEY,
    FACTS_KEY,
    OBJECT_NAMES,
    TRACKED,
    UNSTATED_ROWS,
    fact_value,
    same_fact,
)

REPORT_LIMIT = 1000  # differences listed; the count is always complete
_FACTS_MARK = f'"{FACTS_KEY}":'
_BASELINE_MARK = f'"{BASELINE_KEY}":'


# The form of one fact (`record_facts.row_fact`, `gone_fact`), for msgspec to decode the `facts` of
# an event straight into: it skips the rest of the details without building it, and builds no dict
# per fact. gc=False: decoded from JSON they can hold no cycle, and millions of tracked objects would
# make each full collection of the garbage collector walk them all.
class _Fact(msgspec.Struct, gc=False):
    t: str
    id: int
    new: bool = False
    gone: bool = False
    set: dict[str, Any] = {}


class _Details(msgspec.Struct, gc=False):
    facts: list[_Fact] | None = None


_FACTS_DECODER = msgspec.json.Decoder(_Details)


@dataclass(slots=True)
class RecordedRow:
    """One row as the chain states it: the fields stated so far, the last event that stated them."""

    fields: dict[str, Any]
    seq: int
    complete: bool  # made by an event that stated every tracked field
    gone: bool = False


@dataclass
class RecordState:
    rows: dict[str, dict[int, RecordedRow]] = field(default_factory=lambda: {t: {} for t in TRACKED})
    baseline: dict[str, int] | None = None
    baseline_seq: int | None = None
    events_folded: int = 0
    events_with_facts: int = 0


@dataclass(frozen=True)
class RecordDifference:
    """One place where the rows and the chain disagree."""

    table: str
    row_id: int
    field: str  # "" for a whole row missing or extra
    recorded: Any
    stored: Any
    problem: str  # "changed" | "missing row" | "extra row" | "deleted row back"
    seq: int | None = None  # the event that last stated the recorded value

    @property
    def object(self) -> str:
        return f"{OBJECT_NAMES[self.table]} {self.row_id}"

    def describe(self) -> str:
        where = f" (audit event {self.seq})" if self.seq is not None else ""
        if self.problem == "changed":
            return f"{self.object}: {self.field} recorded {self.recorded!r}, stored {self.stored!r}{where}"
        if self.problem == "missing row":
            return f"{self.object}: on the record{where} but its row is gone"
        if self.problem == "deleted row back":
            return f"{self.object}: taken off the record{where} but a row is stored"
        return f"{self.object}: stored but made by no audit event"


@dataclass
class TableComparison:
    table: str
    rows_checked: int = 0
    rows_not_covered: int = 0  # written before events stated their facts
    rows_unstated: int = 0  # rows the chain states only as counts (`record_facts.UNSTATED_ROWS`)
    differences: int = 0
    listed: list[RecordDifference] = field(default_factory=list)

    def add(self, difference: RecordDifference) -> None:
        self.differences += 1
        if len(self.listed) < REPORT_LIMIT:
            self.listed.append(difference)


def fold_event(state: RecordState, seq: int, action: str, details: str) -> None:
    """Fold one event (its stored canonical details text) into the state."""
    fold_events(((seq, action, details),), state)


def fold_events(events: Iterable[tuple[int, str, str]], state: RecordState | None = None) -> RecordState:
    """R3/R17: the state of the tracked records the chain's events imply, from (seq, action,
    details text) in chain order.

    One loop with its names bound locally: it runs once per event of the chain (millions), so the
    per-event cost is kept to a string search and one typed decode of the `facts` alone (msgspec skips
    the other keys of the details without building them)."""
    state = state or RecordState()
    rows = state.rows
    decode = _FACTS_DECODER.decode
    mark = _FACTS_MARK
    folded = with_facts = 0
    for seq, action, details in events:
        folded += 1
        if action in BASELINE_ACTIONS and _BASELINE_MARK in details:
            _take_baseline(state, seq, details)
            continue
        if mark not in details:  # most events state no facts: no JSON parse at all
            continue
        try:
            facts = decode(details).facts
        except msgspec.ValidationError:
            facts = _loose_facts(details)
        if not facts:
            continue
        with_facts += 1
        for fact in facts:
            table_rows = rows.get(fact.t)
            if table_rows is None:
                continue
            row_id = fact.id
            known = table_rows.get(row_id)
            if fact.gone:
                if known is None:
                    table_rows[row_id] = RecordedRow({}, seq, complete=False, gone=True)
                else:
                    known.gone, known.seq = True, seq
            elif known is None or fact.new:
                table_rows[row_id] = RecordedRow(fact.set, seq, complete=fact.new)
            else:
                known.fields.update(fact.set)
                known.seq = seq
                known.gone = False
    state.events_folded += folded
    state.events_with_facts += with_facts
    return state


def _take_baseline(state: RecordState, seq: int, details: str) -> None:
    """The first records baseline of the chain is the one that counts."""
    if state.baseline is None:
        state.baseline = {t: int(n) for t, n in json.loads(details)[BASELINE_KEY].items()}
        state.baseline_seq = seq


def _loose_facts(details: str) -> list[_Fact]:
    """The `facts` of details not in the form `row_fact` writes (an id as text, a flag as 0/1, ...):
    read as the JSON they are, and taken by the same rules."""
    found = json.loads(details).get(FACTS_KEY)
    if not isinstance(found, list):
        return []
    return [
        _Fact(
            t=fact["t"],
            id=int(fact["id"]),
            new=bool(fact.get("new")),
            gone=bool(fact.get("gone")),
            set=fact.get("set") or {},
        )
        for fact in found
        if isinstance(fact, dict) and "t" in fact
    ]


def compare_table(
    state: RecordState, table: str, stored_rows: Iterable[tuple[int, Mapping[str, Any]]]
) -> TableComparison:
    """R3/R10: compare one table's stored rows, in ascending id order, with what the chain states.

    Recorded rows are dropped from `state` as they are matched, so the state shrinks while the table
    is read; what is left at the end is on the record but no longer stored.
    """
    recorded_rows = state.rows[table]
    result = TableComparison(table)
    for row_id, stored in stored_rows:
        result.rows_checked += 1
        _compare_row(state, result, row_id, stored, recorded_rows.pop(row_id, None))
    _missing_rows(recorded_rows, result)
    return result


def compare_table_rows(
    state: RecordState, table: str, stored_rows: Iterable[Sequence[Any]]
) -> TableComparison:
    """R3/R10: `compare_table` over rows given as (id, then the table's `TRACKED` fields in that order),
    as a database returns them: the same checks and findings.

    A row the chain made with every field is compared as one tuple (one comparison in C instead of one
    per field, and no mapping built per row); only a row that differs is walked field by field, so each
    difference is still named by field with its recorded and stored values."""
    names = TRACKED[table]
    width = len(names)
    recorded_rows = state.rows[table]
    pop = recorded_rows.pop
    result = TableComparison(table)
    checked = 0
    for row in stored_rows:
        checked += 1
        row_id = row[0]
        recorded = pop(row_id, None)
        if recorded is not None and recorded.complete and not recorded.gone:
            fields = recorded.fields
            if len(fields) == width:
                try:
                    if tuple(map(fields.__getitem__, names)) == tuple(row[1:]):
                        continue
                except KeyError:  # stated under other names: walked below
                    pass
        _compare_row(state, result, row_id, dict(zip(names, row[1:], strict=True)), recorded)
    result.rows_checked += checked
    _missing_rows(recorded_rows, result)
    return result


def _compare_row(
    state: RecordState,
    result: TableComparison,
    row_id: int,
    stored: Mapping[str, Any],
    recorded: RecordedRow | None,
) -> None:
    table = result.table
    if recorded is not None and recorded.gone:
        result.add(RecordDifference(table, row_id, "", None, None, "deleted row back", recorded.seq))
        return
    if recorded is None or not recorded.complete:
        _unrecorded_row(state, result, row_id, stored, recorded)
    if recorded is None:
        return
    for name, value in recorded.fields.items():
        actual = stored[name]
        # the caller reads values in their JSON form (times as text): equal is the common case
        if actual != value and not same_fact(name, value, actual):
            result.add(
                RecordDifference(table, row_id, name, value, fact_value(actual), "changed", recorded.seq)
            )


def _missing_rows(recorded_rows: dict[int, RecordedRow], result: TableComparison) -> None:
    """What is left of the recorded rows once the table is read: on the record, no longer stored."""
    for row_id in sorted(recorded_rows):
        recorded = recorded_rows[row_id]
        if not recorded.gone:
            result.add(
                RecordDifference(result.table, row_id, "", recorded.fields, None, "missing row", recorded.seq)
            )
    recorded_rows.clear()


def _unrecorded_row(
    state: RecordState,
    result: TableComparison,
    row_id: int,
    stored: Mapping[str, Any],
    recorded: RecordedRow | None,
) -> None:
    """A row the chain did not make with every fact (its later changes, if stated, are compared by the
    caller): made in bulk and stated as counts, made before the chain stated facts (not covered), or
    made behind the chain's back (extra)."""
    table = result.table
    stated = recorded.fields if recorded is not None else {}
    unstated = UNSTATED_ROWS.get(table)
    if unstated is not None and fact_value(stored[unstated[0]]) == unstated[1]:
        result.rows_unstated += 1
        for name, value in unstated[2].items():
            if name in stated:
                continue  # a later decision about the row is stated, and compared as such
            actual = fact_value(stored[name])
            if actual != value:
                result.add(RecordDifference(table, row_id, name, value, actual, "changed"))
        return
    covered_up_to = None if state.baseline is None else state.baseline.get(table, 0)
    if covered_up_to is None or row_id <= covered_up_to:
        result.rows_not_covered += 1
    else:
        result.add(RecordDifference(table, row_id, "", None, None, "extra row"))
