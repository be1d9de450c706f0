"""Who may do what (R11, R13): roles, the permission matrix and the confidentiality rule.

Roles and permissions
    officer       search, view and play back the footage they recorded themselves, nothing else
    custodian     footage (search, view, play, verify now, download the ORIGINAL), cases (view, link,
                  unlink, mark as evidence), dashboard
    investigator  footage (search, view, play), cases (view, link, unlink, mark as evidence); downloads
                  an original only while an approved export request of theirs covers that clip
    approver      footage and cases (view), dashboard, supervision results, annual statistics
    supervisor    footage and cases (view, verify now), dashboard, supervision (draw, assign, review),
                  annual statistics, the audit log
    auditor       the audit log and annual statistics; no footage
    admin         users and settings, dashboard; no footage
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
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Connection, and_, exists, false, not_, or_, select

from evidence_store.db.tables import cases, clip_links, clips, export_requests
from evidence_store.domain.model import Confidentiality, ExportStatus


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


P = Permission
_FOOTAGE = frozenset({P.CLIP_SEARCH, P.CLIP_VIEW, P.CLIP_PLAY})

PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.OFFICER: _FOOTAGE,
    Role.CUSTODIAN: _FOOTAGE
    | {P.CLIP_DOWNLOAD_ORIGINAL, P.CLIP_VERIFY, P.CASE_VIEW, P.CASE_LINK, P.DASHBOARD_VIEW},
    # the investigator's original download is further conditioned on an approved export request
    Role.INVESTIGATOR: _FOOTAGE | {P.CLIP_DOWNLOAD_ORIGINAL, P.CASE_VIEW, P.CASE_LINK},
    Role.APPROVER: _FOOTAGE | {P.CASE_VIEW, P.DASHBOARD_VIEW, P.SUPERVISION_VIEW, P.STATS_VIEW},
    Role.SUPERVISOR: _FOOTAGE
    | {
        P.CLIP_VERIFY,
        P.CASE_VIEW,
        P.DASHBOARD_VIEW,
        P.SUPERVISION_VIEW,
        P.SUPERVISION_DRAW,
        P.SUPERVISION_REVIEW,
        P.STATS_VIEW,
        P.AUDIT_VIEW,
    },
    Role.AUDITOR: frozenset({P.AUDIT_VIEW, P.STATS_VIEW}),
    Role.ADMIN: frozenset({P.USERS_MANAGE, P.SETTINGS_MANAGE, P.DASHBOARD_VIEW}),
}

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
        return permission in PERMISSIONS[self.role]

    @property
    def sees_footage(self) -> bool:
        return self.can(P.CLIP_VIEW)


def case_visible(user: User, unit: str, confidentiality: Confidentiality | str) -> bool:
    """The confidentiality rule for one case (see the module docstring)."""
    level = Confidentiality(confidentiality)
    if level is C.NORMAL:
        return True
    return bool(user.unit) and unit == user.unit and level in CLEARANCE[user.role]


def visible_case_clause(user: User) -> ColumnElement[bool]:
    """SQL form of `case_visible` over the `cases` table."""
    cleared = [level.value for level in CLEARANCE[user.role] if level is not C.NORMAL]
    own_unit: ColumnElement[bool] = (
        and_(cases.c.unit == user.unit, cases.c.confidentiality.in_(cleared))
        if user.unit and cleared
        else false()
    )
    return or_(cases.c.confidentiality == C.NORMAL.value, own_unit)


def visible_clip_clause(user: User) -> ColumnElement[bool]:
    """SQL condition over `clips`: the clips this user may see at all."""
    if not user.sees_footage:
        return false()
    hidden_case = (
        select(clip_links.c.id)
        .join(cases, cases.c.id == clip_links.c.case_id)
        .where(
            clip_links.c.clip_id == clips.c.id,
            clip_links.c.removed_at.is_(None),
            cases.c.confidentiality != C.NORMAL.value,
            not_(visible_case_clause(user)),
        )
    )
    condition: ColumnElement[bool] = not_(exists(hidden_case))
    if user.role is Role.OFFICER:
        own = clips.c.officer_id == user.officer_id if user.officer_id is not None else false()
        condition = and_(own, condition)
    return condition


def clip_visible(connection: Connection, user: User, clip_id: int) -> bool:
    found = connection.scalar(select(clips.c.id).where(clips.c.id == clip_id, visible_clip_clause(user)))
    return found is not None


def approved_export_covers(connection: Connection, user: User, clip_id: int, now: datetime) -> bool:
    """Whether an approved (or built), unexpired export request of this user lists the clip (R12)."""
    rows = connection.execute(
        select(export_requests.c["items"], export_requests.c.valid_until).where(
            export_requests.c.status.in_([ExportStatus.APPROVED.value, ExportStatus.BUILT.value]),
            export_requests.c.requested_by.in_([user.username, user.actor]),
        )
    ).all()
    for items, valid_until in rows:
        if valid_until is not None and valid_until <= now:
            continue
        if any(int(item.get("clip_id", -1)) == clip_id for item in items or []):
            return True
    return False


def may_download_original(connection: Connection, user: User, clip_id: int, now: datetime) -> bool:
    if not user.can(P.CLIP_DOWNLOAD_ORIGINAL):
        return False
    if user.role is Role.INVESTIGATOR:
        return approved_export_covers(connection, user, clip_id, now)
    return True


__all__ = [
    "CLEARANCE",
    "PERMISSIONS",
    "Permission",
    "Role",
    "User",
    "case_visible",
    "clip_visible",
    "may_download_original",
    "visible_case_clause",
    "visible_clip_clause",
]
