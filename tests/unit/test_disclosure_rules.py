"""The rules of a party's application to read or copy records (R15): its checks, its states, the
answer deadline and who may decide it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from evidence_store.domain.disclosure import (
    DEFAULT_ANSWER_DAYS,
    Application,
    ApplicationKind,
    ApplicationState,
    DisclosureRefusedError,
    SegregationError,
    Step,
    answer_due,
    check_application,
    check_decider,
    check_decision,
    next_state,
    overdue,
)
from evidence_store.errors import ConflictError, InputError, NotPermittedError

NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)


def application(**fields: object) -> Application:
    base = Application(
        party_name="张三",
        id_document_type="resident_id",
        id_document_number="210213198001011234",
        kind=ApplicationKind.COPY,
        purpose="行政复议",
        received_at=NOW - timedelta(days=1),
        recorded_by="custodian",
        clip_ids=(1,),
        id=7,
    )
    return replace(base, **fields)  # type: ignore[arg-type]


def test_a_complete_application_passes() -> None:
    check_application(application(), NOW)
    check_application(application(clip_ids=(), case_id=3), NOW)


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"party_name": " "}, "names the party"),
        ({"id_document_type": "library card"}, "identity document type"),
        ({"id_document_number": ""}, "number of the party's identity document"),
        ({"purpose": ""}, "purpose"),
        ({"clip_ids": (), "case_id": None}, "a case or at least one clip"),
        ({"clip_ids": (0,)}, "positive"),
        ({"received_at": datetime(2026, 12, 1, 9, 0)}, "time zone"),
        ({"received_at": NOW + timedelta(days=2)}, "future"),
    ],
)
def test_an_incomplete_application_is_refused_saying_what_is_missing(
    fields: dict[str, object], words: str
) -> None:
    with pytest.raises(InputError, match=words):
        check_application(application(**fields), NOW)


def test_the_answer_is_due_the_configured_calendar_days_after_receipt() -> None:
    received = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    assert answer_due(received, 20) == datetime(2026, 12, 21, 10, 0, tzinfo=UTC)
    assert answer_due(received, 1) == datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
    with pytest.raises(InputError):
        answer_due(received, 0)


def test_only_an_unanswered_application_past_its_due_time_is_overdue() -> None:
    received = NOW - timedelta(days=DEFAULT_ANSWER_DAYS)
    waiting = application(received_at=received)
    assert not overdue(waiting, NOW)  # due exactly now: not yet late
    assert overdue(waiting, NOW + timedelta(seconds=1))
    assert not overdue(waiting, NOW + timedelta(days=3), answer_days=30)
    for answered in (ApplicationState.APPROVED, ApplicationState.REFUSED, ApplicationState.WITHDRAWN):
        assert not overdue(replace(waiting, state=answered), NOW + timedelta(days=10))


def test_the_states_follow_the_workflow() -> None:
    copy = application()
    assert next_state(copy, Step.APPROVE) is ApplicationState.APPROVED
    assert next_state(copy, Step.REFUSE) is ApplicationState.REFUSED
    assert next_state(copy, Step.WITHDRAW) is ApplicationState.WITHDRAWN
    approved = replace(copy, state=ApplicationState.APPROVED)
    assert next_state(approved, Step.DELIVER) is ApplicationState.DELIVERED
    assert (
        next_state(replace(copy, state=ApplicationState.DELIVERED), Step.DELIVER)
        is ApplicationState.DELIVERED
    )
    read = replace(approved, kind=ApplicationKind.READ)
    assert next_state(read, Step.VIEW) is ApplicationState.VIEWED
    assert next_state(replace(read, state=ApplicationState.VIEWED), Step.VIEW) is ApplicationState.VIEWED


@pytest.mark.parametrize(
    ("state", "kind", "step"),
    [
        (ApplicationState.RECEIVED, ApplicationKind.COPY, Step.DELIVER),  # not approved yet
        (ApplicationState.RECEIVED, ApplicationKind.READ, Step.VIEW),
        (ApplicationState.REFUSED, ApplicationKind.COPY, Step.DELIVER),
        (ApplicationState.REFUSED, ApplicationKind.COPY, Step.APPROVE),  # decided once
        (ApplicationState.APPROVED, ApplicationKind.COPY, Step.REFUSE),
        (ApplicationState.APPROVED, ApplicationKind.READ, Step.DELIVER),  # a read is not handed over
        (ApplicationState.APPROVED, ApplicationKind.COPY, Step.VIEW),
        (ApplicationState.WITHDRAWN, ApplicationKind.READ, Step.VIEW),
        (ApplicationState.DELIVERED, ApplicationKind.COPY, Step.WITHDRAW),
    ],
)
def test_a_step_the_state_or_kind_does_not_allow_is_refused(
    state: ApplicationState, kind: ApplicationKind, step: Step
) -> None:
    with pytest.raises(DisclosureRefusedError) as refused:
        next_state(application(state=state, kind=kind), step)
    assert isinstance(refused.value, ConflictError)


def test_the_recorder_of_an_application_may_not_decide_it() -> None:
    with pytest.raises(SegregationError, match="may not decide") as refused:
        check_decider(application(recorded_by="alice"), "alice")
    assert isinstance(refused.value, NotPermittedError)
    check_decider(application(recorded_by="alice"), "bob")


def test_a_refusal_states_its_reason() -> None:
    with pytest.raises(InputError, match="reason"):
        check_decision(False, "  ")
    check_decision(False, "third parties' privacy")
    check_decision(True, "")
