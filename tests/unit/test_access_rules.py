"""R11 access by duty and R13 confidentiality as pure predicates; R12's original download condition."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from evidence_store.domain.access import (
    PERMISSIONS,
    WITHHELD,
    Facts,
    Kind,
    Permission,
    Role,
    User,
    case_visible,
    clip_visible_to,
    export_covers,
    flag_details_shown,
    hidden_object,
    may_review,
    may_see,
    original_download_allowed,
    role_has,
    roles_with,
)

NOW = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)


def user(role: Role, unit: str = "U1", officer_id: int | None = None, uid: int = 1) -> User:
    return User(id=uid, username=role.value, display_name="", role=role, unit=unit, officer_id=officer_id)


def test_no_role_but_the_footage_roles_sees_footage_and_nobody_manages_users_but_the_admin() -> None:
    assert {r for r in Role if user(r).sees_footage} == set(Role) - {Role.AUDITOR, Role.ADMIN}
    assert roles_with(Permission.USERS_MANAGE) == [Role.ADMIN]
    assert roles_with(Permission.SUPERVISION_REVIEW) == [Role.SUPERVISOR]
    assert role_has("custodian", Permission.CASE_LINK) and not role_has("approver", Permission.CASE_LINK)
    assert all(user(r).can(p) == (p in PERMISSIONS[r]) for r in Role for p in Permission)


@pytest.mark.parametrize(
    ("role", "unit", "level", "visible"),
    [
        (Role.CUSTODIAN, "U2", "normal", True),
        (Role.AUDITOR, "U2", "normal", True),
        (Role.CUSTODIAN, "U1", "personal_privacy", True),
        (Role.CUSTODIAN, "U2", "personal_privacy", False),  # another unit
        (Role.CUSTODIAN, "U1", "state_secret", False),  # not cleared
        (Role.SUPERVISOR, "U1", "state_secret", True),
        (Role.APPROVER, "U2", "state_secret", False),
        (Role.AUDITOR, "U1", "commercial_secret", False),
    ],
)
def test_a_confidential_case_is_for_the_same_unit_and_a_cleared_role_only(
    role: Role, unit: str, level: str, visible: bool
) -> None:
    assert case_visible(user(role), unit, level) is visible


def test_a_user_without_a_unit_sees_only_normal_cases() -> None:
    assert not case_visible(user(Role.SUPERVISOR, unit=""), "", "personal_privacy")


def test_a_clip_is_visible_only_if_every_case_it_is_linked_to_is() -> None:
    custodian = user(Role.CUSTODIAN)
    assert clip_visible_to(custodian, 7, [])
    assert clip_visible_to(custodian, 7, [("U2", "normal"), ("U1", "personal_privacy")])
    assert not clip_visible_to(custodian, 7, [("U1", "normal"), ("U2", "personal_privacy")])
    assert not clip_visible_to(user(Role.AUDITOR), 7, [])


def test_an_officer_sees_only_what_they_recorded() -> None:
    officer = user(Role.OFFICER, officer_id=7)
    assert clip_visible_to(officer, 7, [])
    assert not clip_visible_to(officer, 8, [])
    assert not clip_visible_to(user(Role.OFFICER, officer_id=None), None, [])


def test_an_investigator_downloads_an_original_only_under_a_valid_approved_export() -> None:
    investigator = user(Role.INVESTIGATOR)
    assert not original_download_allowed(investigator, covered_by_export=False)
    assert original_download_allowed(investigator, covered_by_export=True)
    assert original_download_allowed(user(Role.CUSTODIAN), covered_by_export=False)
    assert not original_download_allowed(user(Role.SUPERVISOR), covered_by_export=True)
    items = [{"clip_id": 3}, {"clip_id": 5}]
    assert export_covers([(items, NOW + timedelta(days=1))], 5, NOW)
    assert export_covers([(items, None)], 3, NOW)
    assert not export_covers([(items, NOW)], 5, NOW)  # expired at this very moment
    assert not export_covers([(items, NOW + timedelta(days=1)), (None, None)], 4, NOW)


def test_a_review_item_is_for_its_reviewer_or_any_reviewer_while_unassigned() -> None:
    supervisor = user(Role.SUPERVISOR, uid=4)
    assert may_review(supervisor, None) and may_review(supervisor, 4)
    assert not may_review(supervisor, 5)
    assert not may_review(user(Role.APPROVER, uid=4), 4)


def test_one_rule_for_every_kind_of_object() -> None:
    secret_u1 = (("U1", "state_secret"),)
    supervisor, investigator = user(Role.SUPERVISOR), user(Role.INVESTIGATOR)
    auditor, officer = user(Role.AUDITOR), user(Role.OFFICER, officer_id=7)
    for kind in (Kind.CASE, Kind.DOCUMENT, Kind.AUDIT_ENTRY, Kind.DASHBOARD_ROW):
        assert may_see(supervisor, Facts(kind, secret_u1))
        assert not may_see(investigator, Facts(kind, secret_u1))
        assert not may_see(user(Role.SUPERVISOR, unit="U2"), Facts(kind, secret_u1))
    clip = Facts(Kind.CLIP, (("U1", "normal"),), footage=True, recorded_by=8)
    assert may_see(investigator, clip) and not may_see(auditor, clip) and not may_see(officer, clip)
    assert may_see(officer, Facts(Kind.CLIP, (), footage=True, recorded_by=7))
    # a draw item is its clip or its case
    assert may_see(investigator, Facts(Kind.DRAW_ITEM, (), footage=True, recorded_by=8))
    assert not may_see(auditor, Facts(Kind.DRAW_ITEM, (), footage=True, recorded_by=8))
    assert not may_see(investigator, Facts(Kind.DRAW_ITEM, secret_u1))
    # naming a clip in the audit log or on the dashboard needs no footage role, only the clearance
    assert may_see(auditor, Facts(Kind.AUDIT_ENTRY, (("U2", "normal"),), footage=True, recorded_by=8))
    assert not may_see(auditor, Facts(Kind.AUDIT_ENTRY, (("U1", "personal_privacy"),), footage=True))
    assert may_see(user(Role.ADMIN), Facts(Kind.DASHBOARD_ROW, (), footage=True, recorded_by=8))


def test_a_hidden_object_is_refused_like_a_missing_one() -> None:
    hidden, missing = hidden_object("clip", 4, missing=False), hidden_object("clip", 4, missing=True)
    assert hidden.hidden and missing.hidden
    assert (hidden.reason, missing.reason) == ("confidential", "missing")


def test_a_document_flag_withholds_what_hidden_footage_implies_and_keeps_the_documents_window() -> None:
    details = {
        "document_kind": "现场检查笔录",
        "document_end": "2026-03-02T01:30:00+00:00",
        "footage_end": "2026-03-02T01:15:00+00:00",
        "uncovered_seconds": 900.0,
    }
    assert flag_details_shown(details, footage_hidden=False) == details
    assert flag_details_shown(details, footage_hidden=True) == {
        "document_kind": "现场检查笔录",
        "document_end": "2026-03-02T01:30:00+00:00",
        "withheld": WITHHELD,
    }
    gap = {"gaps": [{"from": "a", "to": "b", "seconds": 60.0}], "uncovered_seconds": 60.0}
    assert flag_details_shown(gap, footage_hidden=True) == {"withheld": WITHHELD}
    # a flag computed from no footage (missing video) has nothing to withhold
    missing = {"reason": "the act requires video (R7)", "window_start": "2026-03-02T01:00:00+00:00"}
    assert flag_details_shown(missing, footage_hidden=True) == missing
    assert flag_details_shown(None, footage_hidden=True) == {}


def test_only_the_custodian_and_the_investigator_edit_redactions() -> None:
    # issue 20: detect faces, edit a redaction specification and render a copy (R15)
    assert roles_with(Permission.REDACTION_EDIT) == [Role.CUSTODIAN, Role.INVESTIGATOR]
    assert Permission.REDACTION_EDIT.value == "redaction.edit"
