"""A party's applications to read or copy records (R15), the storing side: record, decide, view,
deliver, withdraw, list and show. The rules (states, deadline, segregation) are in
`evidence_store.domain.disclosure`; who may take which step is the role's permission
(`disclosure.record`, `disclosure.decide`, `disclosure.deliver`, `evidence_store.domain.access`),
checked here for the CLI and the web alike, and a case or clip the user may not see answers as
missing (R13).

Every step is audited on the object ``disclosure`` (`disclosure.recorded`, `.approved`, `.refused`,
`.withdrawn`, `.viewed`, `.delivered`); a step refused for the user's role, the application's state or
the segregation of duties is audited as `disclosure.step_refused` and raised after the record commits.

What a party gets is ONLY a redacted copy (R13, R15): for each clip the newest render of its newest
redaction specification (`redacted_copies`); a clip without one, or whose newest specification has no
render yet, is refused (`ConflictError`) until somebody renders it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.orm import Session

from evidence_store.accounts import user_from_row
from evidence_store.bootstrap import Station
from evidence_store.db.ids import inserted_id
from evidence_store.db.paging import newest_kept
from evidence_store.db.tables import (
    cases,
    clip_links,
    clips,
    disclosure_applications,
    disclosure_handovers,
    redaction_renders,
    redaction_specs,
    users,
)
from evidence_store.domain.access import AccessRefused, Permission, User, hidden_object, role_has
from evidence_store.domain.disclosure import (
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
from evidence_store.domain.model import ClipStatus, MediaType
from evidence_store.errors import ConflictError, InputError, NotFoundError
from evidence_store.queries.visibility import hidden_among

OBJECT_TYPE = "disclosure"
VIEWING = "viewing"
DELIVERY = "delivery"


@dataclass(frozen=True)
class RedactedCopy:
    """The copy of one clip a party may get: the newest render of the clip's newest specification."""

    clip_id: int
    render_id: int
    sha256: str
    size: int
    original_sha256: str
    spec_version: int
    spec_sha256: str
    original_name: str


# ------------------------------------------------------------------ helpers


def _acting_user(session: Session, username: str) -> User | None:
    row = session.execute(select(users).where(users.c.username == username)).first()
    if row is None or not row.active:
        return None
    return user_from_row(row)


def _role_problem(session: Session, username: str, permission: Permission) -> str | None:
    user = _acting_user(session, username)
    if user is None:
        return f"no active user {username!r} on this station"
    if not role_has(user.role, permission):
        return f"user {username!r} has role {user.role}, which may not {permission}"
    return None


def _refusal(
    station: Station,
    session: Session,
    *,
    user: str,
    step: str,
    application_id: int | None,
    reason: str,
    source: str | None,
) -> DisclosureRefusedError:
    """Record the refused step in `session` (which then commits) and return the error to raise after."""
    station.audit.record(
        session,
        source=source,
        actor=user,
        action="disclosure.step_refused",
        object_type=OBJECT_TYPE,
        object_id=application_id if application_id is not None else "-",
        details={"step": step, "reason": reason},
    )
    where = f"application {application_id}" if application_id is not None else "an application"
    return DisclosureRefusedError(f"{step} of {where} refused: {reason}")


def _as_application(row: Any) -> Application:
    return Application(
        id=row.id,
        party_name=row.party_name,
        id_document_type=row.id_document_type,
        id_document_number=row.id_document_number,
        kind=ApplicationKind(row.kind),
        purpose=row.purpose,
        received_at=row.received_at,
        recorded_by=row.recorded_by,
        case_id=row.case_id,
        clip_ids=tuple(int(c) for c in row.clip_ids or ()),
        state=ApplicationState(row.state),
        contact=row.contact,
        decided_by=row.decided_by or None,
    )


def _load_row(session: Session, application_id: int, *, lock: bool = False) -> Any:
    query = select(disclosure_applications).where(disclosure_applications.c.id == application_id)
    if lock:
        query = query.with_for_update()
    row = session.execute(query).first()
    if row is None:
        raise NotFoundError(f"no disclosure application {application_id}")
    return row


def _hidden_from(session: Session, username: str, row: Any) -> bool:
    user = _acting_user(session, username)
    if user is None:
        return True
    return bool(hidden_among(session.connection(), user, [int(c) for c in row.clip_ids or ()], row.case_id))


def _case_clips(session: Session, case_id: int) -> list[int]:
    """The video clips actively linked to a case (what "the case's records" means for a party)."""
    return sorted(
        set(
            session.scalars(
                select(clip_links.c.clip_id)
                .join(clips, clips.c.id == clip_links.c.clip_id)
                .where(
                    clip_links.c.case_id == case_id,
                    clip_links.c.removed_at.is_(None),
                    clips.c.media_type == MediaType.VIDEO,
                    clips.c.status != ClipStatus.DELETED,
                )
            ).all()
        )
    )


# ------------------------------------------------------------------ steps


def record_application(
    station: Station,
    *,
    user: str,
    party_name: str,
    id_document_type: str,
    id_document_number: str,
    kind: str,
    purpose: str,
    case_number: str | None = None,
    clip_ids: list[int] | tuple[int, ...] = (),
    received_at: datetime | None = None,
    contact: str = "",
    source: str | None = None,
) -> dict[str, Any]:
    """A custodian records a party's application as received (R15). The clips are those named plus the
    video clips actively linked to the named case, fixed now; each must exist, be video, not be deleted
    and be visible to the recorder (a hidden one answers as missing, R13)."""
    try:
        kind_value = ApplicationKind(kind)
    except ValueError:
        raise InputError(f"an application asks to read or to copy, not {kind!r}") from None
    now = station.clock()
    refusal: DisclosureRefusedError | None = None
    with station.transaction() as session:
        problem = _role_problem(session, user, Permission.DISCLOSURE_RECORD)
        if problem:
            refusal = _refusal(
                station, session, user=user, step="record", application_id=None, reason=problem, source=source
            )
    if refusal is not None:
        raise refusal
    with station.transaction() as session:
        case_id: int | None = None
        wanted = list(dict.fromkeys(int(c) for c in clip_ids))
        if case_number:
            case_id = session.scalar(select(cases.c.id).where(cases.c.number == case_number))
            acting = _acting_user(session, user)
            if case_id is None or acting is None or hidden_among(session.connection(), acting, [], case_id):
                raise NotFoundError(f"no case numbered {case_number!r}")
        draft = Application(
            party_name=party_name.strip(),
            id_document_type=id_document_type.strip(),
            id_document_number=id_document_number.strip(),
            kind=kind_value,
            purpose=purpose.strip(),
            received_at=received_at or now,
            recorded_by=user,
            case_id=case_id,
            clip_ids=tuple(wanted),
            contact=contact.strip(),
        )
        check_application(draft, now)
        if case_id is not None:
            wanted = list(dict.fromkeys([*wanted, *_case_clips(session, case_id)]))
        if not wanted:
            raise InputError(f"case {case_number} has no video clip linked to it: name the clips")
        _check_clips(session, user, wanted)
        application_id = inserted_id(
            session.execute(
                insert(disclosure_applications).values(
                    party_name=draft.party_name,
                    id_document_type=draft.id_document_type,
                    id_document_number=draft.id_document_number,
                    contact=draft.contact,
                    kind=kind_value,
                    purpose=draft.purpose,
                    case_id=case_id,
                    clip_ids=wanted,
                    received_at=draft.received_at,
                    recorded_by=user,
                    recorded_at=now,
                    state=ApplicationState.RECEIVED,
                    decided_by="",
                    decision_reason="",
                )
            )
        )
        due = answer_due(draft.received_at, station.settings.disclosure_answer_days)
        station.audit.record(
            session,
            source=source,
            actor=user,
            action="disclosure.recorded",
            object_type=OBJECT_TYPE,
            object_id=application_id,
            details={
                "kind": str(kind_value),
                "party": draft.party_name,
                "id_document_type": draft.id_document_type,
                "case": case_number,
                "clips": wanted,
                "purpose": draft.purpose,
                "received_at": draft.received_at.isoformat(),
                "answer_due": due.isoformat(),
            },
        )
    return show_application(station, application_id)


def _check_clips(session: Session, username: str, wanted: list[int]) -> None:
    rows = {
        row.id: row
        for row in session.execute(
            select(clips.c.id, clips.c.status, clips.c.media_type).where(clips.c.id.in_(wanted))
        ).all()
    }
    acting = _acting_user(session, username)
    hidden = set(hidden_among(session.connection(), acting, sorted(rows))) if acting else set(rows)
    missing = sorted(c for c in wanted if c not in rows or c in hidden)
    if missing:
        raise NotFoundError(f"no clip {', '.join(map(str, missing))}")
    deleted = sorted(c for c in wanted if rows[c].status == ClipStatus.DELETED)
    if deleted:
        raise NotFoundError(f"clip {', '.join(map(str, deleted))} was deleted by retention")
    not_video = sorted(c for c in wanted if MediaType(rows[c].media_type) is not MediaType.VIDEO)
    if not_video:
        raise InputError(
            f"clip {', '.join(map(str, not_video))} is not video: only a redacted video copy is disclosed"
        )


def _advance(
    station: Station,
    application_id: int,
    *,
    user: str,
    step: Step,
    permission: Permission,
    source: str | None,
    apply: Any,
) -> dict[str, Any]:
    """Take one step on an application in one transaction: the role, the visibility, the state (and what
    `apply` checks and writes); a refusal is audited and raised after the record commits."""
    refusal: Exception | None = None
    with station.transaction() as session:
        row = _load_row(session, application_id, lock=True)
        problem = _role_problem(session, user, permission)
        if problem is None and _hidden_from(session, user, row):
            problem = "the application names a case or clips this user may not see (R13)"
        application = _as_application(row)
        target: ApplicationState | None = None
        if problem is None:
            try:
                target = next_state(application, step)
                apply(session, application, target)
            except (DisclosureRefusedError, SegregationError) as exc:
                problem = str(exc)
                refusal = exc if isinstance(exc, SegregationError) else None
        if problem is not None:
            refused = _refusal(
                station,
                session,
                user=user,
                step=str(step),
                application_id=application_id,
                reason=problem,
                source=source,
            )
            refusal = refusal or refused
    if refusal is not None:
        raise refusal
    return show_application(station, application_id)


def decide_application(
    station: Station,
    application_id: int,
    *,
    user: str,
    approve: bool,
    reason: str = "",
    source: str | None = None,
) -> dict[str, Any]:
    """An approver approves or refuses (with a reason) a received application (R15); never one they
    recorded themselves (segregation of duties)."""
    check_decision(approve, reason)

    def apply(session: Session, application: Application, target: ApplicationState) -> None:
        check_decider(application, user)
        now = station.clock()
        session.execute(
            update(disclosure_applications)
            .where(disclosure_applications.c.id == application_id)
            .values(state=target, decided_by=user, decided_at=now, decision_reason=reason.strip())
        )
        station.audit.record(
            session,
            source=source,
            actor=user,
            action="disclosure.approved" if approve else "disclosure.refused",
            object_type=OBJECT_TYPE,
            object_id=application_id,
            details={
                "reason": reason.strip(),
                "recorded_by": application.recorded_by,
                "kind": str(application.kind),
                "late": overdue(application, now, station.settings.disclosure_answer_days),
            },
        )

    return _advance(
        station,
        application_id,
        user=user,
        step=Step.APPROVE if approve else Step.REFUSE,
        permission=Permission.DISCLOSURE_DECIDE,
        source=source,
        apply=apply,
    )


def withdraw_application(
    station: Station, application_id: int, *, user: str, reason: str = "", source: str | None = None
) -> dict[str, Any]:
    """The party withdraws an application not yet handed over; a custodian records it (R15)."""

    def apply(session: Session, application: Application, target: ApplicationState) -> None:
        session.execute(
            update(disclosure_applications)
            .where(disclosure_applications.c.id == application_id)
            .values(state=target)
        )
        station.audit.record(
            session,
            source=source,
            actor=user,
            action="disclosure.withdrawn",
            object_type=OBJECT_TYPE,
            object_id=application_id,
            details={"reason": reason.strip(), "was": str(application.state)},
        )

    return _advance(
        station,
        application_id,
        user=user,
        step=Step.WITHDRAW,
        permission=Permission.DISCLOSURE_RECORD,
        source=source,
        apply=apply,
    )


def redacted_copies(station: Station, clip_ids: list[int]) -> list[RedactedCopy]:
    """For each clip, the newest render of its newest redaction specification (R13, R15).
    `ConflictError` naming every clip that has no specification, or whose newest specification has
    not been rendered (its newest copy would hide less, or other things, than the specification says)."""
    with station.connect() as connection:
        return _redacted_copies(connection, clip_ids)


def _redacted_copies(connection: Connection, clip_ids: list[int]) -> list[RedactedCopy]:
    copies: list[RedactedCopy] = []
    problems: list[str] = []
    for clip_id in clip_ids:
        spec = connection.execute(
            select(redaction_specs.c.id, redaction_specs.c.version, redaction_specs.c.spec_sha256)
            .where(redaction_specs.c.clip_id == clip_id)
            .order_by(redaction_specs.c.version.desc())
            .limit(1)
        ).first()
        if spec is None:
            problems.append(f"clip {clip_id} has no redaction (run `evidence redact detect {clip_id}`)")
            continue
        render = connection.execute(
            select(redaction_renders, clips.c.original_name)
            .join(clips, clips.c.id == redaction_renders.c.clip_id)
            .where(redaction_renders.c.clip_id == clip_id)
            .order_by(redaction_renders.c.id.desc())
            .limit(1)
        ).first()
        if render is None or render.spec_id != spec.id:
            problems.append(
                f"clip {clip_id}'s redaction version {spec.version} is not rendered yet "
                f"(run `evidence redact render {clip_id}`)"
            )
            continue
        copies.append(
            RedactedCopy(
                clip_id=clip_id,
                render_id=render.id,
                sha256=render.sha256,
                size=int(render.size),
                original_sha256=render.derived_from_sha256,
                spec_version=int(spec.version),
                spec_sha256=spec.spec_sha256,
                original_name=render.original_name,
            )
        )
    if problems:
        raise ConflictError("no redacted copy to disclose: " + "; ".join(problems))
    return copies


def _copies_detail(copies: list[RedactedCopy]) -> list[dict[str, Any]]:
    return [
        {"clip_id": c.clip_id, "render_id": c.render_id, "sha256": c.sha256, "spec_version": c.spec_version}
        for c in copies
    ]


def record_viewing(
    station: Station, application_id: int, *, user: str, source: str | None = None
) -> tuple[dict[str, Any], list[RedactedCopy]]:
    """A supervised viewing of an approved READ application (R15): `user` (a custodian) supervises it;
    the viewing is on record with the redacted copies shown. Returns the application and the copies."""
    shown: list[RedactedCopy] = []

    def apply(session: Session, application: Application, target: ApplicationState) -> None:
        shown.extend(_redacted_copies(session.connection(), list(application.clip_ids)))
        _handover(station, session, application, target, VIEWING, user, _copies_detail(shown), source)

    data = _advance(
        station,
        application_id,
        user=user,
        step=Step.VIEW,
        permission=Permission.DISCLOSURE_DELIVER,
        source=source,
        apply=apply,
    )
    return data, shown


def record_delivery(
    station: Station,
    session: Session,
    application_id: int,
    *,
    user: str,
    details: dict[str, Any],
    source: str | None,
) -> None:
    """The disclosure package of an approved COPY application was built and handed over (R15); read
    again under a lock in `session`: it may have been withdrawn while the package was built."""
    application = _as_application(_load_row(session, application_id, lock=True))
    target = next_state(application, Step.DELIVER)
    _handover(station, session, application, target, DELIVERY, user, details, source)


def _handover(
    station: Station,
    session: Session,
    application: Application,
    target: ApplicationState,
    kind: str,
    user: str,
    details: Any,
    source: str | None,
) -> None:
    now = station.clock()
    details = {"copies": details} if isinstance(details, list) else details
    session.execute(
        insert(disclosure_handovers).values(
            application_id=application.id, kind=kind, by_user=user, at=now, details=details
        )
    )
    session.execute(
        update(disclosure_applications)
        .where(disclosure_applications.c.id == application.id)
        .values(state=target)
    )
    station.audit.record(
        session,
        source=source,
        actor=user,
        action="disclosure.viewed" if kind == VIEWING else "disclosure.delivered",
        object_type=OBJECT_TYPE,
        object_id=application.id or 0,
        details={**details, "party": application.party_name, "supervised_by": user}
        if kind == VIEWING
        else {**details, "party": application.party_name, "delivered_by": user},
    )


def authorise_delivery(
    station: Station, application_id: int, *, user: str, source: str | None = None
) -> tuple[Application, list[RedactedCopy]]:
    """Check that `user` may deliver the application's package now (refusals audited) and find the
    redacted copies it will hold; nothing is written."""
    refusal: Exception | None = None
    with station.transaction() as session:
        row = _load_row(session, application_id)
        application = _as_application(row)
        problem = _role_problem(session, user, Permission.DISCLOSURE_DELIVER)
        if problem is None and _hidden_from(session, user, row):
            problem = "the application names a case or clips this user may not see (R13)"
        if problem is None:
            try:
                next_state(application, Step.DELIVER)
            except DisclosureRefusedError as exc:
                problem = str(exc)
        if problem is not None:
            refusal = _refusal(
                station,
                session,
                user=user,
                step=str(Step.DELIVER),
                application_id=application_id,
                reason=problem,
                source=source,
            )
    if refusal is not None:
        raise refusal
    return application, redacted_copies(station, list(application.clip_ids))


# ------------------------------------------------------------------ reading


def describe(
    row: Any, case_number: str | None, handovers: list[Any], now: datetime, days: int
) -> dict[str, Any]:
    application = _as_application(row)
    return {
        "id": row.id,
        "state": str(row.state),
        "kind": str(row.kind),
        "party_name": row.party_name,
        "id_document_type": row.id_document_type,
        "id_document_number": row.id_document_number,
        "contact": row.contact,
        "purpose": row.purpose,
        "case": case_number,
        "clip_ids": [int(c) for c in row.clip_ids or ()],
        "received_at": row.received_at.isoformat(),
        "recorded_by": row.recorded_by,
        "recorded_at": row.recorded_at.isoformat(),
        "answer_due": answer_due(row.received_at, days).isoformat(),
        "overdue": overdue(application, now, days),
        "decided_by": row.decided_by or None,
        "decided_at": row.decided_at.isoformat() if row.decided_at else None,
        "decision_reason": row.decision_reason,
        "handovers": [
            {"kind": h.kind, "by": h.by_user, "at": h.at.isoformat(), "details": h.details} for h in handovers
        ],
    }


def list_applications(
    station: Station,
    *,
    state: str | None = None,
    only_overdue: bool = False,
    seen_by: User | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """The newest applications (of a state, or only the overdue ones); `seen_by`: only those naming no
    case or clip hidden from that user (R13)."""
    now = station.clock()
    days = station.settings.disclosure_answer_days
    query = select(disclosure_applications)
    if state:
        query = query.where(disclosure_applications.c.state == ApplicationState(state))
    if only_overdue:
        query = query.where(disclosure_applications.c.state == ApplicationState.RECEIVED)

    def shown(r: Any) -> bool:
        if only_overdue and not overdue(_as_application(r), now, days):
            return False
        return seen_by is None or not hidden_among(
            session.connection(), seen_by, [int(c) for c in r.clip_ids or ()], r.case_id
        )

    with station.session() as session:
        # the filters are applied while reading back, so the oldest (the overdue) are never cut off
        rows = newest_kept(
            lambda page: session.execute(page).all(),
            query,
            disclosure_applications.c.id,
            shown,
            limit=limit,
        )
        numbers = _case_numbers(session, {r.case_id for r in rows if r.case_id})
        return [describe(r, numbers.get(r.case_id or 0), [], now, days) for r in rows]


def show_application(station: Station, application_id: int, *, seen_by: User | None = None) -> dict[str, Any]:
    """One application with its viewings and deliveries; hidden from `seen_by` answers as missing (R13)."""
    with station.session() as session:
        row = session.execute(
            select(disclosure_applications).where(disclosure_applications.c.id == application_id)
        ).first()
        if seen_by is not None and (
            row is None
            or hidden_among(session.connection(), seen_by, [int(c) for c in row.clip_ids or ()], row.case_id)
        ):
            raise hidden_object(OBJECT_TYPE, application_id, missing=row is None)
        if row is None:
            raise NotFoundError(f"no disclosure application {application_id}")
        handovers = session.execute(
            select(disclosure_handovers)
            .where(disclosure_handovers.c.application_id == application_id)
            .order_by(disclosure_handovers.c.id)
        ).all()
        numbers = _case_numbers(session, {row.case_id} if row.case_id else set())
        return describe(
            row,
            numbers.get(row.case_id or 0),
            list(handovers),
            station.clock(),
            station.settings.disclosure_answer_days,
        )


def reader(station: Station, username: str) -> User:
    """The active station user who reads the applications (list, show); what they see is filtered."""
    with station.session() as session:
        user = _acting_user(session, username)
    if user is None:
        raise DisclosureRefusedError(f"no active user {username!r} on this station")
    return user


def application_of(station: Station, application_id: int) -> Application:
    with station.session() as session:
        return _as_application(_load_row(session, application_id))


def _case_numbers(session: Session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return dict(session.execute(select(cases.c.id, cases.c.number).where(cases.c.id.in_(ids))).tuples().all())


__all__ = [
    "AccessRefused",
    "RedactedCopy",
    "application_of",
    "authorise_delivery",
    "decide_application",
    "list_applications",
    "reader",
    "record_application",
    "record_delivery",
    "record_viewing",
    "redacted_copies",
    "show_application",
    "withdraw_application",
]
