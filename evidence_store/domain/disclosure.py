"""A party's application to read or copy enforcement records (R15), as plain data and pure rules.

R15: "Parties may apply to read or copy records under the open-government-information rules"
(金普 第三十二条: 当事人根据需要申请查阅、复制相关执法全过程记录信息的，
依据《中华人民共和国政府信息公开条例》…办理).
Read with R13 (no unauthorised disclosure: a party only ever gets a REDACTED copy, never an original)
and R12 (segregation of duties: who records an application does not decide it).

States::

    received --approve--> approved --(read)--> viewed
       |                     |
       |                     +--(copy)--> delivered
       +--refuse--> refused
    received / approved --withdraw--> withdrawn

An approved read may be viewed again (each viewing is logged) and an approved copy delivered again
(each delivery is logged); the state records the first. The answer is due `answer_days` CALENDAR days
after the application was received (setting `disclosure_answer_days`); an application still `received`
after that is overdue.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from evidence_store.errors import ConflictError, InputError, NotPermittedError


class ApplicationKind(enum.StrEnum):
    READ = "read"  # 查阅: a supervised viewing of the redacted copy at the station
    COPY = "copy"  # 复制: the redacted copy handed over as a disclosure package


class ApplicationState(enum.StrEnum):
    RECEIVED = "received"
    APPROVED = "approved"
    REFUSED = "refused"
    VIEWED = "viewed"
    DELIVERED = "delivered"
    WITHDRAWN = "withdrawn"


# Not yet answered: the party still waits for a decision, a viewing or a copy. The clips such an
# application names are kept from deletion until it is answered (R15 with R10; `retention.policy`).
UNANSWERED_STATES = frozenset({ApplicationState.RECEIVED, ApplicationState.APPROVED})


class Step(enum.StrEnum):
    APPROVE = "approve"
    REFUSE = "refuse"
    VIEW = "view"
    DELIVER = "deliver"
    WITHDRAW = "withdraw"


S = ApplicationState
_NEXT: dict[tuple[ApplicationState, Step], ApplicationState] = {
    (S.RECEIVED, Step.APPROVE): S.APPROVED,
    (S.RECEIVED, Step.REFUSE): S.REFUSED,
    (S.RECEIVED, Step.WITHDRAW): S.WITHDRAWN,
    (S.APPROVED, Step.WITHDRAW): S.WITHDRAWN,
    (S.APPROVED, Step.VIEW): S.VIEWED,
    (S.VIEWED, Step.VIEW): S.VIEWED,
    (S.APPROVED, Step.DELIVER): S.DELIVERED,
    (S.DELIVERED, Step.DELIVER): S.DELIVERED,
}
# which kind of application each hand-over step belongs to
_KIND_OF_STEP = {Step.VIEW: ApplicationKind.READ, Step.DELIVER: ApplicationKind.COPY}

DEFAULT_ANSWER_DAYS = 20
IDENTITY_DOCUMENTS = ("resident_id", "passport", "business_licence", "other")


class DisclosureRefusedError(ConflictError):
    """A step the application's state or people do not allow (exit 2 on the CLI, 409 on the web)."""


class SegregationError(NotPermittedError):
    """The recorder of an application may not decide it (R12's segregation, applied to R15)."""


@dataclass(frozen=True)
class Application:
    """A party's application as recorded (R15): who applies (name, identity document), what for
    (kind, purpose), which records (a case and/or clips), and when it was received."""

    party_name: str
    id_document_type: str
    id_document_number: str
    kind: ApplicationKind
    purpose: str
    received_at: datetime
    recorded_by: str
    case_id: int | None = None
    clip_ids: tuple[int, ...] = ()
    state: ApplicationState = ApplicationState.RECEIVED
    contact: str = ""
    id: int | None = None
    decided_by: str | None = None


def check_application(application: Application, now: datetime) -> None:
    """Refuse (`InputError`) an application that does not say who, what and when (R15)."""
    if not application.party_name.strip():
        raise InputError("an application names the party (--party)")
    if application.id_document_type not in IDENTITY_DOCUMENTS:
        raise InputError(
            f"identity document type must be one of {', '.join(IDENTITY_DOCUMENTS)}, "
            f"not {application.id_document_type!r}"
        )
    if not application.id_document_number.strip():
        raise InputError("an application gives the number of the party's identity document")
    if not application.purpose.strip():
        raise InputError("an application states its purpose")
    if application.case_id is None and not application.clip_ids:
        raise InputError("an application names a case or at least one clip")
    if any(clip_id <= 0 for clip_id in application.clip_ids):
        raise InputError("clip ids are positive integers")
    if application.received_at.tzinfo is None:
        raise InputError("the time an application was received carries its time zone")
    if application.received_at > now + timedelta(minutes=5):
        raise InputError("an application cannot have been received in the future")


def answer_due(received_at: datetime, answer_days: int) -> datetime:
    """When the answer to an application is due (R15): `answer_days` calendar days after receipt."""
    if answer_days < 1:
        raise InputError("the answer period is at least one day")
    return received_at + timedelta(days=answer_days)


def overdue(application: Application, now: datetime, answer_days: int = DEFAULT_ANSWER_DAYS) -> bool:
    """Whether the application is still unanswered after its due time (R15)."""
    return application.state is ApplicationState.RECEIVED and now > answer_due(
        application.received_at, answer_days
    )


def next_state(application: Application, step: Step) -> ApplicationState:
    """The state `step` leads to, or `DisclosureRefusedError` saying why it may not be taken (R15)."""
    wanted_kind = _KIND_OF_STEP.get(step)
    if wanted_kind is not None and application.kind is not wanted_kind:
        raise DisclosureRefusedError(
            f"application {application.id} asks to {application.kind}, not to {wanted_kind}: "
            f"it cannot be handed over by '{step}'"
        )
    target = _NEXT.get((application.state, step))
    if target is None:
        raise DisclosureRefusedError(
            f"application {application.id} is {application.state}: the step '{step}' is not allowed"
        )
    return target


def check_decider(application: Application, decider: str) -> None:
    """The one who recorded an application may not decide it (segregation of duties, R12/R15)."""
    if decider == application.recorded_by:
        raise SegregationError(
            f"{decider} recorded application {application.id} and may not decide it: another approver must"
        )


def check_decision(approve: bool, reason: str) -> None:
    """A refusal states its reason (R15: the party is told why)."""
    if not approve and not reason.strip():
        raise InputError("a refusal states its reason (--reason)")


__all__ = [
    "DEFAULT_ANSWER_DAYS",
    "IDENTITY_DOCUMENTS",
    "Application",
    "ApplicationKind",
    "ApplicationState",
    "DisclosureRefusedError",
    "SegregationError",
    "Step",
    "answer_due",
    "check_application",
    "check_decider",
    "check_decision",
    "next_state",
    "overdue",
]
