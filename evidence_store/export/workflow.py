"""The certified-export workflow (R12, R14): request, approve or reject, build once, within a validity.

States (`ExportStatus`)::

    pending --approve--> approved --build--> built
       |                    |
       +--reject--> rejected  +--(valid_until passed)--> expired

* Request: an investigator names the clips (each optionally with a time segment, a cut mode and a
  disclosure copy), the purpose, the recipient and optionally the case. The clips must exist and not be
  deleted. A pending or approved request holds its clips from retention (retention/run.py).
* Approve / reject: an approver decides, rejecting with a reason. Approval sets ``valid_until`` to the
  decision time plus ``settings.export_validity_days``. Nobody decides their own request.
* Build: only the requester, only while approved and not past ``valid_until``; once (the package is
  the recorded copy that was handed over). Past ``valid_until`` the request becomes ``expired``.

Who acts is named with ``--user``. The station has a ``users`` table (web accounts, issue 8): a
requester must be an active user with role ``investigator``, an approver an active user with role
``approver``; the builder must be the requester and still active. Every step, and every refusal
(``export.refused``, with the step and the reason), is appended to the audit log in the same transaction
as the change it describes. A refusal raises `ExportRefusedError`, which the CLI turns into exit 2.
"""

from __future__ import annotations

import getpass
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence_store.accounts import user_from_row
from evidence_store.bootstrap import Station
from evidence_store.db.paging import newest_kept
from evidence_store.db.tables import cases, clips, export_requests, users
from evidence_store.domain.access import EXPORT_APPROVER, EXPORT_REQUESTER, Role, User, hidden_object
from evidence_store.domain.model import ClipStatus, ExportRequest, ExportStatus, MediaType
from evidence_store.errors import ConflictError, InputError, NotFoundError
from evidence_store.queries.visibility import hidden_among

REQUESTER_ROLE = EXPORT_REQUESTER
APPROVER_ROLE = EXPORT_APPROVER
CUT_MODES = ("exact", "keyframe")
OBJECT_TYPE = "export"


class ExportRefusedError(ConflictError):
    """A workflow step that is not allowed (wrong state, wrong user, expired); it was audited. A conflict
    with the request's state or its people: exit 2 on the CLI, 409 on the web (with this message)."""

    def __init__(self, step: str, request_id: int | None, reason: str) -> None:
        where = f"export {request_id}" if request_id is not None else "export request"
        super().__init__(f"{step} of {where} refused: {reason}")
        self.step = step
        self.request_id = request_id
        self.reason = reason


# ------------------------------------------------------------------ item specifications (pure)

_TIME = re.compile(r"^(?:(\d+):)?(?:(\d+):)?(\d+(?:\.\d+)?)$")


def parse_time(text: str) -> float:
    """Seconds from ``90``, ``90.5``, ``1:30`` or ``00:01:30.5``."""
    match = _TIME.fullmatch(text.strip())
    if not match:
        raise InputError(f"not a time: {text!r} (use seconds, MM:SS or HH:MM:SS)")
    parts = [p for p in match.groups() if p is not None]
    seconds = 0.0
    for part in parts:
        seconds = seconds * 60 + float(part)
    return seconds


def parse_clip_spec(text: str, *, cut: str = "exact", disclosure: bool = False) -> dict[str, Any]:
    """``ID`` or ``ID@START-END`` (times as in `parse_time`) into a request item."""
    clip_part, _, range_part = text.partition("@")
    if not clip_part.strip().isdigit():
        raise InputError(f"not a clip: {text!r} (use ID or ID@START-END, e.g. 12@00:01:05-00:01:30)")
    item: dict[str, Any] = {"clip_id": int(clip_part)}
    if "@" in text and not range_part.strip():
        raise InputError(f"no segment after @ in {text!r}")
    if range_part:
        start_text, sep, end_text = range_part.partition("-")
        if not sep:
            raise InputError(f"a segment is START-END, not {range_part!r}")
        item["start_s"] = parse_time(start_text) if start_text.strip() else 0.0
        if end_text.strip():
            item["end_s"] = parse_time(end_text)
    return normalise_item({**item, "cut": cut, "disclosure": disclosure})


def normalise_item(raw: dict[str, Any]) -> dict[str, Any]:
    """Check one request item; return it with only known keys. Raises InputError."""
    unknown = set(raw) - {"clip_id", "start_s", "end_s", "cut", "disclosure"}
    if unknown:
        raise InputError(f"unknown item fields {sorted(unknown)}")
    clip_id = raw.get("clip_id")
    if not isinstance(clip_id, int) or isinstance(clip_id, bool) or clip_id <= 0:
        raise InputError(f"clip_id must be a positive integer, not {clip_id!r}")
    item: dict[str, Any] = {"clip_id": clip_id}
    start, end = raw.get("start_s"), raw.get("end_s")
    for name, value in (("start_s", start), ("end_s", end)):
        if value is not None and (not isinstance(value, int | float) or isinstance(value, bool) or value < 0):
            raise InputError(f"{name} must be a number of seconds >= 0, not {value!r}")
    if start is not None or end is not None:
        item["start_s"] = float(start or 0.0)
        if end is not None:
            if float(end) <= item["start_s"]:
                raise InputError(f"clip {clip_id}: the segment ends ({end} s) before it starts ({start} s)")
            item["end_s"] = float(end)
        cut = raw.get("cut", "exact")
        if cut not in CUT_MODES:
            raise InputError(f"cut must be one of {', '.join(CUT_MODES)}, not {cut!r}")
        item["cut"] = cut
    if raw.get("disclosure"):
        item["disclosure"] = True
    return item


def has_segment(item: dict[str, Any]) -> bool:
    return "start_s" in item or "end_s" in item


# ------------------------------------------------------------------ helpers


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return ""


@contextmanager
def _step(station: Station) -> Iterator[Session]:
    with station.transaction() as session:
        yield session


def _record_refusal(
    station: Station,
    session: Session,
    *,
    user: str,
    step: str,
    request_id: int | None,
    reason: str,
    details: dict[str, Any] | None = None,
    source: str | None = None,
) -> ExportRefusedError:
    """Append ``export.refused`` in `session` (which must then commit) and return the error to raise
    once it has: raising inside the transaction would roll the record of the refusal back."""
    station.audit.record(
        session,
        source=source,
        actor=user,
        action="export.refused",
        object_type=OBJECT_TYPE,
        object_id=request_id if request_id is not None else "-",
        details={"step": step, "reason": reason, "os_user": _os_user(), **(details or {})},
    )
    return ExportRefusedError(step, request_id, reason)


def user_problem(session: Session, username: str, role: Role | None) -> str | None:
    """Why `username` may not act in `role` (None: may). `role` None: any active user."""
    if not username.strip():
        return "no user named (--user)"
    row = session.execute(select(users.c.role, users.c.active).where(users.c.username == username)).first()
    if row is None:
        return f"no user {username!r} on this station"
    if not row.active:
        return f"user {username!r} is deactivated"
    if role is not None and row.role != role:
        return f"user {username!r} has role {row.role}, not {role}"
    return None


def hidden_from(
    session: Session, username: str, clip_ids: list[int], case_id: int | None = None
) -> list[int]:
    """The clips among `clip_ids` that the station user may not see (R11, R13), and the case's id first
    when there is a case they may not see: what they may not request, approve or build."""
    row = session.execute(select(users).where(users.c.username == username)).first()
    if row is None:
        return [*([case_id] if case_id is not None else []), *clip_ids]
    return hidden_among(session.connection(), user_from_row(row), clip_ids, case_id)


def _load(session: Session, request_id: int) -> ExportRequest | None:
    return session.get(ExportRequest, request_id, with_for_update=True)


def _must_load(session: Session, request_id: int) -> ExportRequest:
    request = _load(session, request_id)
    if request is None:
        raise NotFoundError(f"no export request {request_id}")
    return request


# ------------------------------------------------------------------ steps


def request_export(
    station: Station,
    *,
    user: str,
    items: list[dict[str, Any]],
    purpose: str,
    recipient: str = "",
    case_number: str | None = None,
    source: str | None = None,
) -> ExportRequest:
    """An investigator asks for clips to be extracted. Raises InputError for a malformed request."""
    if not items:
        raise InputError("an export request names at least one clip")
    if not purpose.strip():
        raise InputError("an export request states its purpose")
    normalised = [normalise_item(item) for item in items]
    refusal: ExportRefusedError | None = None
    with _step(station) as session:
        problem = user_problem(session, user, REQUESTER_ROLE)
        if problem:
            refusal = _record_refusal(
                station, session, user=user, step="request", request_id=None, reason=problem, source=source
            )
    if refusal is not None:
        raise refusal
    with _step(station) as session:
        case_id: int | None = None
        if case_number:
            case_id = session.scalar(select(cases.c.id).where(cases.c.number == case_number))
            if case_id is None or hidden_from(session, user, [], case_id):
                raise NotFoundError(f"no case numbered {case_number!r}")
        wanted = {item["clip_id"] for item in normalised}
        rows = session.execute(
            select(clips.c.id, clips.c.status, clips.c.media_type).where(clips.c.id.in_(wanted))
        ).all()
        found = {row.id: row for row in rows}
        for hidden in hidden_from(session, user, sorted(found)):  # hidden answers as missing (R13)
            del found[hidden]
        missing = sorted(wanted - set(found))
        if missing:
            raise NotFoundError(f"no clip {', '.join(map(str, missing))}")
        deleted = sorted(cid for cid, row in found.items() if row.status == ClipStatus.DELETED)
        if deleted:
            raise NotFoundError(f"clip {', '.join(map(str, deleted))} was deleted by retention")
        for item in normalised:
            media_type = MediaType(found[item["clip_id"]].media_type)
            if has_segment(item) and media_type not in (MediaType.VIDEO, MediaType.AUDIO):
                raise InputError(
                    f"clip {item['clip_id']} is {media_type}: only video and audio have segments"
                )
            if item.get("disclosure") and media_type is not MediaType.VIDEO:
                raise InputError(f"clip {item['clip_id']} is {media_type}: only video gets a disclosure copy")
        request = ExportRequest(
            case_id=case_id,
            requested_by=user,
            purpose=purpose.strip(),
            recipient=recipient.strip(),
            items=normalised,
            status=ExportStatus.PENDING,
            created_at=station.clock(),
        )
        session.add(request)
        session.flush()
        station.audit.record(
            session,
            source=source,
            actor=user,
            action="export.requested",
            object_type=OBJECT_TYPE,
            object_id=request.id or 0,
            details={
                "case": case_number,
                "purpose": request.purpose,
                "recipient": request.recipient,
                "items": normalised,
                "os_user": _os_user(),
            },
        )
        return request


def decide_export(
    station: Station,
    request_id: int,
    *,
    user: str,
    approve: bool,
    reason: str = "",
    source: str | None = None,
) -> ExportRequest:
    """An approver approves (valid for `export_validity_days`) or rejects (with a reason)."""
    step = "approve" if approve else "reject"
    if not approve and not reason.strip():
        raise InputError("a rejection states its reason (--reason)")
    refusal: ExportRefusedError | None = None
    with _step(station) as session:
        request = _must_load(session, request_id)
        problem = user_problem(session, user, APPROVER_ROLE)
        if problem is None and hidden_from(session, user, _clip_ids(request), request.case_id):
            problem = "the request names a case or clips this approver may not see (R13)"
        if problem is None and user == request.requested_by:
            problem = "nobody decides their own request"
        if problem is None and request.status is not ExportStatus.PENDING:
            problem = f"the request is {request.status}, not pending"
        if problem:
            refusal = _record_refusal(
                station, session, user=user, step=step, request_id=request_id, reason=problem, source=source
            )
        else:
            now = station.clock()
            request.decided_by = user
            request.decided_at = now
            request.decision_reason = reason.strip()
            if approve:
                request.status = ExportStatus.APPROVED
                request.valid_until = now + timedelta(days=station.settings.export_validity_days)
            else:
                request.status = ExportStatus.REJECTED
            station.audit.record(
                session,
                source=source,
                actor=user,
                action="export.approved" if approve else "export.rejected",
                object_type=OBJECT_TYPE,
                object_id=request_id,
                details={
                    "reason": request.decision_reason,
                    "valid_until": _iso(request.valid_until) if approve else None,
                    "requested_by": request.requested_by,
                    "os_user": _os_user(),
                },
            )
    if refusal is not None:
        raise refusal
    return request


def approve_export(station: Station, request_id: int, *, user: str, reason: str = "") -> ExportRequest:
    return decide_export(station, request_id, user=user, approve=True, reason=reason)


def reject_export(station: Station, request_id: int, *, user: str, reason: str) -> ExportRequest:
    return decide_export(station, request_id, user=user, approve=False, reason=reason)


def _clip_ids(request: ExportRequest) -> list[int]:
    return sorted({int(item["clip_id"]) for item in request.items or []})


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _build_problem(request: ExportRequest, user: str) -> str | None:
    status = request.status
    if status is ExportStatus.PENDING:
        return "the request is not approved yet"
    if status is ExportStatus.REJECTED:
        return f"the request was rejected by {request.decided_by}: {request.decision_reason}"
    if status is ExportStatus.EXPIRED:
        return f"the approval expired at {_iso(request.valid_until)}"
    if status is ExportStatus.BUILT:
        return f"the package was already built at {_iso(request.built_at)}"
    if user != request.requested_by:
        return f"only the requester ({request.requested_by}) may build it, not {user}"
    return None


def authorise_build(
    station: Station, request_id: int, *, user: str, source: str | None = None
) -> ExportRequest:
    """Check that `user` may build the package now; refuse (audited) otherwise.

    An approval past its ``valid_until`` turns the request ``expired`` (audited) and is refused."""
    refusal: ExportRefusedError | None = None
    with _step(station) as session:
        request = _must_load(session, request_id)
        now = station.clock()
        if request.status is ExportStatus.APPROVED and request.valid_until and now > request.valid_until:
            request.status = ExportStatus.EXPIRED
            station.audit.record(
                session,
                source=source,
                actor="system",
                action="export.expired",
                object_type=OBJECT_TYPE,
                object_id=request_id,
                details={"valid_until": _iso(request.valid_until), "noticed_at": now.isoformat()},
            )
        problem = _build_problem(request, user) or user_problem(session, user, None)
        if problem is None and hidden_from(session, user, _clip_ids(request), request.case_id):
            problem = "the request names a case or clips the requester may no longer see (R13)"
        if problem:
            refusal = _record_refusal(
                station,
                session,
                user=user,
                step="build",
                request_id=request_id,
                reason=problem,
                details={"status": str(request.status)},
                source=source,
            )
    if refusal is not None:
        raise refusal
    return request


def record_built(
    station: Station,
    request_id: int,
    *,
    user: str,
    built_at: datetime,
    manifest_sha256: str,
    details: dict[str, Any],
    source: str | None = None,
) -> ExportRequest:
    """The package is complete on disk: mark the request built (the retrieval of R12 is on record)."""
    refusal: ExportRefusedError | None = None
    with _step(station) as session:
        request = _must_load(session, request_id)
        if request.status is not ExportStatus.APPROVED:
            refusal = _record_refusal(
                station,
                session,
                user=user,
                step="build",
                request_id=request_id,
                reason=f"the request became {request.status} while the package was built",
                source=source,
            )
        else:
            request.status = ExportStatus.BUILT
            request.built_at = built_at
            request.package_sha256 = manifest_sha256
            station.audit.record(
                session,
                source=source,
                actor=user,
                action="export.built",
                object_type=OBJECT_TYPE,
                object_id=request_id,
                details={**details, "manifest_sha256": manifest_sha256, "os_user": _os_user()},
            )
            for clip_id in sorted({int(item["clip_id"]) for item in request.items}):
                station.audit.record(
                    session,
                    source=source,
                    actor=user,
                    action="clip.exported",
                    object_type="clip",
                    object_id=clip_id,
                    details={"export": request_id, "manifest_sha256": manifest_sha256},
                )
    if refusal is not None:
        raise refusal
    return request


def record_build_failed(
    station: Station, request_id: int, *, user: str, error: str, source: str | None = None
) -> None:
    with _step(station) as session:
        station.audit.record(
            session,
            source=source,
            actor=user,
            action="export.build_failed",
            object_type=OBJECT_TYPE,
            object_id=request_id,
            details={"error": error, "os_user": _os_user()},
        )


def expire_due(station: Station) -> list[int]:
    """Approved requests past their validity become expired (audited); returns their ids."""
    now = station.clock()
    with _step(station) as session:
        due = session.scalars(
            select(ExportRequest).where(
                export_requests.c.status == ExportStatus.APPROVED, export_requests.c.valid_until < now
            )
        ).all()
        for request in due:
            request.status = ExportStatus.EXPIRED
            station.audit.record(
                session,
                actor="system",
                action="export.expired",
                object_type=OBJECT_TYPE,
                object_id=request.id or 0,
                details={"valid_until": request.valid_until.isoformat() if request.valid_until else None},
            )
        return [r.id or 0 for r in due]


# ------------------------------------------------------------------ reading


def describe(request: ExportRequest, case_number: str | None) -> dict[str, Any]:
    def when(moment: datetime | None) -> str | None:
        return moment.isoformat() if moment else None

    return {
        "id": request.id,
        "status": str(request.status),
        "case": case_number,
        "requested_by": request.requested_by,
        "requested_at": when(request.created_at),
        "purpose": request.purpose,
        "recipient": request.recipient,
        "items": request.items,
        "decided_by": request.decided_by,
        "decided_at": when(request.decided_at),
        "decision_reason": request.decision_reason,
        "valid_until": when(request.valid_until),
        "built_at": when(request.built_at),
        "manifest_sha256": request.package_sha256,
    }


def _seen(session: Session, user: User, request: ExportRequest) -> bool:
    return not hidden_among(session.connection(), user, _clip_ids(request), request.case_id)


def list_exports(
    station: Station, *, status: str | None = None, limit: int = 200, seen_by: User | None = None
) -> list[dict[str, Any]]:
    """The newest requests; `seen_by`: only those naming no case or clip hidden from that user (R13).
    Filtered here, one request at a time, with the rule `hidden_from` applies to every step (the clips
    sit in a JSON column SQL cannot join portably), reading further back until `limit` are shown."""
    with station.session() as session:
        query = select(ExportRequest)
        if status:
            query = query.where(export_requests.c.status == ExportStatus(status))
        found = newest_kept(
            lambda page: session.scalars(page).all(),
            query,
            export_requests.c.id,
            lambda r: seen_by is None or _seen(session, seen_by, r),
            limit=limit,
        )
        numbers = _case_numbers(session, {r.case_id for r in found if r.case_id})
        return [describe(r, numbers.get(r.case_id or 0)) for r in found]


def show_export(station: Station, request_id: int, *, seen_by: User | None = None) -> dict[str, Any]:
    """One request. `seen_by`: a request naming a case or clip hidden from that user is refused like a
    missing one (`AccessRefused`, hidden: 404 on the web, R13)."""
    with station.session() as session:
        request = session.get(ExportRequest, request_id)
        if seen_by is not None and (request is None or not _seen(session, seen_by, request)):
            raise hidden_object(OBJECT_TYPE, request_id, missing=request is None)
        if request is None:
            raise NotFoundError(f"no export request {request_id}")
        numbers = _case_numbers(session, {request.case_id} if request.case_id else set())
        return describe(request, numbers.get(request.case_id or 0))


def check_reader(station: Station, user: str) -> None:
    """list/show: any active user of the station (not audited: reading changes nothing)."""
    with station.session() as session:
        problem = user_problem(session, user, None)
    if problem:
        raise ExportRefusedError("read", None, problem)


def _case_numbers(session: Session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return dict(session.execute(select(cases.c.id, cases.c.number).where(cases.c.id.in_(ids))).tuples().all())
