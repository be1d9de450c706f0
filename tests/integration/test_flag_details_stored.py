"""The flag writer stores each flag's own details, whatever it keeps between flags of one run.

`flags_service._FlagWriter` encodes details made only of text once per run and reuses the stored
text for the next flag with the same details (a first relink stores one sentence for a third of its
flags). These flags go through one writer with details that a key built from less than every name
and every value would mix up.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from evidence_store.bootstrap import Station
from evidence_store.cases import flags_service
from evidence_store.db.columns import json_value
from evidence_store.db.tables import compliance_flags
from evidence_store.domain.compliance import Flag, FlagKind
from tests.integration.test_linking_and_flags import add_clip

DETAILS: list[dict[str, Any]] = [
    {"reason": "linked to no case"},
    {"reason": "linked to no case"},  # the same again: the kept text
    {"reason": "not linked"},  # the same name, another value
    {"why": "linked to no case"},  # the same value, another name
    {"reason": "linked to no case", "note": "x"},  # one more pair
    {"note": "x", "reason": "linked to no case"},  # the same pairs in another order
    {"reason": "1"},
    {"reason": 1},  # not all text: 1, 1.0 and True must stay apart
    {"reason": 1.0},
    {"reason": True},
    {"reason": "linked to no case"},  # after the others: still its own
]


@pytest.mark.parametrize("kept_texts", [flags_service._KEPT_TEXTS, 2])
def test_every_flag_stores_its_own_details(station: Station, kept_texts: int, monkeypatch: Any) -> None:
    monkeypatch.setattr(flags_service, "_KEPT_TEXTS", kept_texts)  # 2: the kept texts are dropped often
    clip_ids = [add_clip(station, f"c{i}", None, i) for i in range(len(DETAILS))]
    flags = [
        Flag(FlagKind.UNASSIGNED_FOOTAGE, clip_id=clip_id, details=details)
        for clip_id, details in zip(clip_ids, DETAILS, strict=True)
    ]
    with station.transaction() as session:
        writer = flags_service._FlagWriter(session.connection(), datetime(2026, 12, 5, tzinfo=UTC))
        writer.apply([], flags[:6])
        writer.apply([], flags[6:])  # a second page of the same run
    assert writer.changes.opened == len(DETAILS)
    with station.engine.connect() as connection:
        stored = dict(
            connection.execute(select(compliance_flags.c.clip_id, compliance_flags.c.details)).all()
        )
    for clip_id, details in zip(clip_ids, DETAILS, strict=True):
        value = json_value(stored[clip_id])
        assert value == details
        assert {k: type(v) for k, v in value.items()} == {k: type(v) for k, v in details.items()}
