"""Who may do what (R11 access by duty, post and authority; R13 confidentiality): roles, the
permission matrix and the confidentiality rule, as plain data and pure predicates.

Roles and permissions
    officer       search, view and play back the footage they recorded themselves, nothing else
    custodian     footage (search, view, play, verify now, download the ORIGINAL), cases (view, link,
                  unlink, mark as evidence), dashboard; redaction of the clips they see (detect faces,
                  edit the specification, render a redacted copy, R15); parties' applications to read
                  or copy (R15): records them, supervises an approved reading of the redacted copy and
                  delivers an approved copy's disclosure package (`disclosure.record`, `disclosure.deliver`)
    investigator  footage (search, view, play), cases (view, link, unlink, mark as evidence); downloads
                  an original only while an approved export request of theirs covers that clip (R12);
                  requests exports and builds their own approved ones; redaction of the clips they see
                  (detect, edit, render, R15)
    approver      footage and cases (view), dashboard, supervision results, annual statistics; approves
                  or rejects export requests (never their own, R12); approves or refuses a party's
                  application (`disclosure.decide`; never one they recorded, R15)
    supervisor    footage and cases (view, verify now), dashboard, supervision (draw, assign, review),
                  annual statistics, the audit log
    auditor       the audit log and annual statistics; no footage
    admin         users and settings, dashboard; no footage
Every role sees the station's live dock status (`station.view`): recorders, officers, progress, safe to
unplug; it names no clip.
No role deletes footage: there is no delete endpoint (only the retention run deletes, R9/R10).

Confidentiality (R13). A case of class `normal` is visible to every role that sees cases. A case of
another class is visible only to a user of the SAME unit as the case (a non-empty unit) whose role is
cleared for that class:
    personal_privacy, commercial_secret   officer (own footage only), custodian, investigator,
                                          approver, supervisor
    state_secret                          approver, supervisor
A clip carries the classes of every case it is (actively) linked to: it is visible only if each of those
cases is visible to the user (and, for an officer, only if the officer recorded it). Anything not visible
answers 404, exactly like something that does not exist.

One rule for every kind of object (`may_see`, over the `Facts` of the object):
    case            the confidentiality rule above
    document        as its case
    clip            footage at all (the role views footage), an officer's own recordings only, and every
                    case it is actively linked to visible
    draw item       as the clip or the case it samples (R16)
    audit entry,    as the confidentiality of what it is about (every case the object belongs to visible);
    dashboard row   no footage role needed: reading the audit log or the dashboard names an object, it
                    does not show its footage (R17)
A view of one object never shows a hidden object through it: a case lists only the linked clips the user
sees, plus how many linked clips are hidden; a draw lists only its visible items, plus how many are
hidden.

The same rules as SQL conditions (for queries that must not fetch what a user may not see) are in
`evidence_store.queries.visibility`; a test checks that both agree on every object of a station.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from evidence_store.domain.model import Confidentiality
from evidence_store.errors import NotPermittedError


class Role(enum.StrEnum):
    OFFICER = "officer"
    CUSTODIAN = "custodian"
    INVESTIGATOR = "investigator"
    APPROVER = "approver"
    SUPERVISOR = "supervisor"
    AUDITOR = "auditor"
    ADMIN = "admin"


class Permission(enum.StrEnum):
    CLIP_SEARCH = "clip.search"
    CLIP_VIEW = "clip.view"
    CLIP_PLAY = "clip.play"
    CLIP_DOWNLOAD_ORIGINAL = "clip.download_original"
    CLIP_VERIFY = "clip.verify"
    CLIP_ANNOTATE = "clip.annotate"  # markers (a note at a moment) and tags
    HOLD_MANAGE = "hold.manage"  # place and release legal holds on clips (R9, R10)
    CASE_VIEW = "case.view"
    CASE_LINK = "case.link"
    DASHBOARD_VIEW = "dashboard.view"
    SUPERVISION_VIEW = "supervision.view"
    SUPERVISION_DRAW = "supervision.draw"
    SUPERVISION_REVIEW = "supervision.review"
    STATS_VIEW = "stats.view"
    AUDIT_VIEW = "audit.view"
    USERS_MANAGE = "users.manage"
    SETTINGS_MANAGE = "settings.manage"
    EXPORT_VIEW = "export.view"
    EXPORT_REQUEST = "export.request"
    EXPORT_DECIDE = "export.decide"
    STATION_VIEW = "station.view"  # the live dock status (which recorder, how far, safe to unplug)
    # a party's application to read or copy records (R15): record it, decide it, hand it over
    DISCLOSURE_RECORD = "disclosure.record"
    DISCLOSURE_DECIDE = "disclosure.decide"
    DISCLOSURE_DELIVER = "disclosure.deliver"  # build the copy's package, supervise a viewing
    REDACTION_EDIT = "redaction.edit"  # detect faces, edit a redaction specification, render a copy (R15)


P = Permission
# Every signed-in user at the station sees the bays: the officer docking their recorder waits for "safe
# to unplug", and the page names recorders and officers, never a clip (as the dashboard's transfers)
_STATION = frozenset({P.STATION_VIEW})
_FOOTAGE = frozenset({P.CLIP_SEARCH, P.CLIP_VIEW, P.CLIP_PLAY})

PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.OFFICER: _FOOTAGE | _STATION,
    Role.CUSTODIAN: _FOOTAGE
    | _STATION
    | {
        P.CLIP_DOWNLOAD_ORIGINAL,
        P.CLIP_VERIFY,
        P.CLIP_ANNOTATE,
        P.HOLD_MANAGE,
        P.CASE_VIEW,
        P.CASE_LINK,
        P.DASHBOARD_VIEW,
        P.DISCLOSURE_RECORD,
        P.DISCLOSURE_DELIVER,
        P.REDACTION_EDIT,
    },
    # the investigator's original download is further conditioned on an approved export request
    Role.INVESTIGATOR: _FOOTAGE
    | _STATION
    | {
        P.CLIP_DOWNLOAD_ORIGINAL,
        P.CLIP_ANNOTATE,
        P.CASE_VIEW,
        P.CASE_LINK,
        P.EXPORT_VIEW,
        P.EXPORT_REQUEST,
        P.REDACTION_EDIT,
    },
    Role.APPROVER: _FOOTAGE
    | _STATION
    | {
        P.CASE_VIEW,
        P.DASHBOARD_VIEW,
        P.SUPERVISION_VIEW,
        P.STATS_VIEW,
        P.EXPORT_VIEW,
        P.EXPORT_DECIDE,
        P.DISCLOSURE_DECIDE,
    },
    Role.SUPERVISOR: _FOOTAGE
    | _STATION
    | {
        P.CLIP_VERIFY,
        P.CLIP_ANNOTATE,
        P.HOLD_MANAGE,
        P.CASE_VIEW,
        P.DASHBOARD_VIEW,
        P.SUPERVISION_VIEW,
        P.SUPERVISION_DRAW,
        P.SUPERVISION_REVIEW,
        P.STATS_VIEW,
        P.AUDIT_VIEW,
    },
    Role.AUDITOR: frozenset({P.AUDIT_VIEW, P.STATS_VIEW}) | _STATION,
    Role.ADMIN: frozenset({P.USERS_MANAGE, P.SETTINGS_MANAGE, P.DASHBOARD_VIEW}) | _STATION,
}

# The segregation of duties of the certified-export workflow (R12): who asks, who decides. The
# permissions above say the same for the web; the workflow checks the roles, for the CLI and the web alike.
EXPORT_REQUESTER = Role.INVESTIGATOR
EXPORT_APPROVER = Role.APPROVER

C = Confidentiality
_CONFIDENTIAL = frozenset({C.NORMAL, C.PERSONAL_PRIVACY, C.COMMERCIAL_SECRET})
_ALL_CLASSES = frozenset(Confidentiality)

CLEARANCE: dict[Role, frozenset[Confidentiality]] = {
    Role.OFFICER: _CONFIDENTIAL,
    Role.CUSTODIAN: _CONFIDENTIAL,
    Role.INVESTIGATOR: _CONFIDENTIAL,
    Role.APPROVER: _ALL_CLASSES,
    Role.SUPERVISOR: _ALL_CLASSES,
    Role.AUDITOR: frozenset({C.NORMAL}),
    Role.ADMIN: frozenset({C.NORMAL}),
}


@dataclass(frozen=True)
class User:
    """A signed-in station user as the rules see it (R11): role, unit, and the officer they are."""

    id: int
    username: str
    display_name: str
    role: Role
    unit: str
    officer_id: int | None = None

    @property
    def actor(self) -> str:
        """How the user is named in the audit log."""
        return f"web:{self.username}"

    def can(self, permission: Permission) -> bool:
        """Whether the user's role carries the permission (R11)."""
        return permission in PERMISSIONS[self.role]

    @property
    def sees_footage(self) -> bool:
        return self.can(P.CLIP_VIEW)


def role_has(role: Role | str, permission: Permission) -> bool:
    """Whether a role (as stored, a string) carries a permission (R11)."""
    return permission in PERMISSIONS[Role(role)]


def roles_with(permission: Permission) -> list[Role]:
    """The roles that carry a permission, in the order of `Role` (R11)."""
    return [role for role in Role if permission in PERMISSIONS[role]]


def case_visible(user: User, unit: str, confidentiality: Confidentiality | str) -> bool:
    """The confidentiality rule for one case (R13, see the module docstring)."""
    level = Confidentiality(confidentiality)
    if level is C.NORMAL:
        return True
    return bool(user.unit) and unit == user.unit and level in CLEARANCE[user.role]


class Kind(enum.StrEnum):
    """The kinds of object the visibility rule answers for (R11, R13, R16, R17)."""

    CLIP = "clip"
    CASE = "case"
    DOCUMENT = "document"
    DRAW_ITEM = "supervision_item"
    AUDIT_ENTRY = "audit_entry"
    DASHBOARD_ROW = "dashboard_row"


# An oversight list names an object without showing its footage: the confidentiality rule only.
_MENTIONS = frozenset({Kind.AUDIT_ENTRY, Kind.DASHBOARD_ROW})


@dataclass(frozen=True)
class Facts:
    """What the visibility rule needs to know of one object: its kind, the cases it belongs to as
    (unit, confidentiality) (a case: itself; a document: its case; a clip: every case it is actively
    linked to; a draw item: those of its clip or case), and for footage the officer who recorded it."""

    kind: Kind
    cases: tuple[tuple[str, Confidentiality | str], ...] = ()
    footage: bool = False  # a clip, or a draw item or list row that is one
    recorded_by: int | None = None


def may_see(user: User, facts: Facts) -> bool:
    """Whether the user may see, and so act on, the object (R11, R13, R16, R17): THE visibility rule of
    the station (see the module docstring); anything it refuses answers 404 like a missing object."""
    if not all(case_visible(user, unit, level) for unit, level in facts.cases):
        return False
    if facts.kind in _MENTIONS or not facts.footage:
        return True
    if not user.sees_footage:
        return False
    return user.role is not Role.OFFICER or (
        user.officer_id is not None and facts.recorded_by == user.officer_id
    )


def clip_visible_to(
    user: User, recorded_by: int | None, linked_cases: Iterable[tuple[str, Confidentiality | str]]
) -> bool:
    """Whether a clip is for this user (R11, R13): footage at all, the officer's own recordings only, and
    every case it is actively linked to (given as (unit, confidentiality)) visible to the user."""
    facts = Facts(Kind.CLIP, tuple(linked_cases), footage=True, recorded_by=recorded_by)
    return may_see(user, facts)


# the details of a document's coverage flags (R5) that are computed from its linked footage's times
FOOTAGE_DERIVED_DETAILS = frozenset({"footage_start", "footage_end", "gaps", "uncovered_seconds"})
WITHHELD = "computed with footage you may not see"


def flag_details_shown(details: dict[str, Any] | None, *, footage_hidden: bool) -> dict[str, Any]:
    """A document flag's details as a user sees them (R13): when some footage filed to the document is
    hidden from the user, the times and durations computed from it are left out (they would tell when
    the hidden clips were recorded) and `withheld` says so; the flag itself and the document's own
    window stay, both the user's to see."""
    shown = dict(details or {})
    if not footage_hidden or not FOOTAGE_DERIVED_DETAILS & shown.keys():
        return shown
    kept = {key: value for key, value in shown.items() if key not in FOOTAGE_DERIVED_DETAILS}
    return {**kept, "withheld": WITHHELD}


def export_covers(
    requests: Iterable[tuple[list[dict[str, Any]] | None, datetime | None]], clip_id: int, now: datetime
) -> bool:
    """Whether one of some approved (or built) export requests, given as (items, valid_until), is still
    valid at `now` and lists the clip (R12)."""
    for items, valid_until in requests:
        if valid_until is not None and valid_until <= now:
            continue
        if any(int(item.get("clip_id", -1)) == clip_id for item in items or []):
            return True
    return False


def original_download_allowed(user: User, *, covered_by_export: bool) -> bool:
    """Whether the user may download a clip's ORIGINAL (R11, R12): the role must allow it, and an
    investigator needs an approved export request of theirs covering the clip."""
    if not user.can(P.CLIP_DOWNLOAD_ORIGINAL):
        return False
    if user.role is Role.INVESTIGATOR:
        return covered_by_export
    return True


def may_review(user: User, assigned_reviewer_id: int | None) -> bool:
    """Whether the user may record the outcome of a supervision item (R16, R11): a reviewer's role, and
    the item assigned to this user or to nobody yet."""
    if not user.can(P.SUPERVISION_REVIEW):
        return False
    return assigned_reviewer_id is None or assigned_reviewer_id == user.id


class AccessRefused(NotPermittedError):
    """A refusal under R11/R13 that is put on the audit record (R17) where it is answered.

    `hidden`: the object must look as if it did not exist (HTTP 404), because the user may not know of
    it (R13) or it is not there; otherwise the refusal shows (HTTP 403)."""

    def __init__(
        self,
        reason: str,
        *,
        permission: Permission | None = None,
        object_type: str | None = None,
        object_id: str | int | None = None,
        hidden: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permission = permission
        self.object_type = object_type
        self.object_id = object_id
        self.hidden = hidden


def hidden_object(object_type: str, object_id: str | int, *, missing: bool) -> AccessRefused:
    """The refusal of an object asked for by id that is not there or not for the user (R13): both answer
    alike (404), only the audit record says which."""
    return AccessRefused(
        "missing" if missing else "confidential", object_type=object_type, object_id=object_id, hidden=True
    )


__all__ = [
    "CLEARANCE",
    "EXPORT_APPROVER",
    "EXPORT_REQUESTER",
    "PERMISSIONS",
    "AccessRefused",
    "Facts",
    "Kind",
    "Permission",
    "Role",
    "User",
    "case_visible",
    "clip_visible_to",
    "export_covers",
    "hidden_object",
    "may_review",
    "may_see",
    "original_download_allowed",
    "role_has",
    "roles_with",
]
