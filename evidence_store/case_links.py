"""A custodian's manual link decisions on a case page, addressed by case and link id: link a clip,
unlink, mark (or unmark) as evidence, each with a required reason. The decisions themselves are the
cases package's services (`evidence_store.cases.manual`); this module finds what they act on, refuses
what the acting user may not see exactly as what is not there (404, R13), and turns the services'
refusals into one `InputError`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection, select

from evidence_store.bootstrap import Station
from evidence_store.cases.manual import ManualLinkError, link_manually, unlink_manually
from evidence_store.cases.manual import mark_evidence as mark_clip_evidence
from evidence_store.db.tables import cases, clip_links, documents
from evidence_store.domain.access import User, hidden_object
from evidence_store.errors import ConflictError, InputError, NotFoundError
from evidence_store.queries.cases import case_row
from evidence_store.queries.visibility import case_facts, clip_facts, sees

T = TypeVar("T")


class CaseActionError(InputError):
    """A manual link decision that cannot be applied (unknown clip or document, missing reason)."""


class CaseActionNotFound(CaseActionError, NotFoundError):
    """The case or link named is not there."""


class CaseActionConflict(CaseActionError, ConflictError):
    """What is stored does not allow it: the link was already removed."""


def _need_reason(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise CaseActionError("a reason is required")
    return reason[:2000]


def _call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    try:
        return fn(*args, **kwargs)
    except ConflictError as exc:
        raise CaseActionConflict(str(exc)) from exc
    except NotFoundError as exc:
        raise CaseActionNotFound(str(exc)) from exc
    except ManualLinkError as exc:
        raise CaseActionError(str(exc)) from exc


def _visible_case(connection: Connection, user: User, case_id: int) -> Any:
    row = case_row(connection, case_id)
    if row is None or not sees(user, case_facts(connection, case_id)):
        raise hidden_object("case", case_id, missing=row is None)
    return row


def link_clip(
    station: Station,
    case_id: int,
    clip_id: int,
    *,
    document_external_id: str = "",
    reason: str,
    is_evidence: bool,
    user: User,
) -> int:
    """Link a clip to the case by hand (to one of its documents if named), optionally as evidence; the
    link's id. A case or clip the user may not see answers as a missing one (R13)."""
    actor = user.actor
    with station.connect() as connection:
        row = _visible_case(connection, user, case_id)
        facts = clip_facts(connection, clip_id)
    if not sees(user, facts):
        raise hidden_object("clip", clip_id, missing=facts is None)
    reason = _need_reason(reason)
    done = _call(
        link_manually,
        station,
        clip_id,
        row.number,
        document=document_external_id or None,
        reason=reason,
        actor=actor,
    )
    if is_evidence:
        _call(mark_clip_evidence, station, clip_id, row.number, reason=reason, actor=actor)
    return int(done["link_id"])


def _link(station: Station, case_id: int, link_id: int, user: User) -> tuple[Any, str, str | None]:
    """The link of the case, if there is one and the user may see its case and its clip (R13); else the
    same refusal as for a missing link (404)."""
    with station.connect() as connection:
        _visible_case(connection, user, case_id)
        found = connection.execute(
            select(clip_links, cases.c.number, documents.c.external_id)
            .join(cases, cases.c.id == clip_links.c.case_id)
            .outerjoin(documents, documents.c.id == clip_links.c.document_id)
            .where(clip_links.c.id == link_id, clip_links.c.case_id == case_id)
        ).first()
        visible = found is not None and sees(user, clip_facts(connection, found.clip_id))
    if found is None or not visible:
        raise hidden_object("clip_link", link_id, missing=found is None)
    if found.removed_at is not None:
        raise CaseActionConflict("this link was already removed")
    return found, found.number, found.external_id


def unlink(station: Station, case_id: int, link_id: int, *, reason: str, user: User) -> None:
    """Remove a link by hand (a link to a document: that document's link; else the clip's links to the
    case)."""
    link, number, document = _link(station, case_id, link_id, user)
    _call(
        unlink_manually,
        station,
        link.clip_id,
        number,
        document=document,
        reason=_need_reason(reason),
        actor=user.actor,
    )


def mark_evidence(
    station: Station, case_id: int, link_id: int, evidence: bool, *, reason: str, user: User
) -> None:
    """Mark (or unmark) the link's clip as evidence in the case (every active link of it to the case)."""
    link, number, _document = _link(station, case_id, link_id, user)
    _call(
        mark_clip_evidence,
        station,
        link.clip_id,
        number,
        reason=_need_reason(reason),
        actor=user.actor,
        unmark=not evidence,
    )
