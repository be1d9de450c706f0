"""One visibility rule on every path (issue 16, R11, R13, R16, R17): supervision draws and reviews, a
hidden clip linked to a visible case, the dashboard and the audit log, through the API and the pages."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from evidence_store.bootstrap import Station
from evidence_store.cases.flags_service import refresh_flags
from evidence_store.db.tables import (
    audit_events,
    cases,
    clip_links,
    clips,
    documents,
    supervision_items,
)
from evidence_store.domain.access import Kind, Role, User
from evidence_store.domain.model import ExportStatus
from evidence_store.errors import NotFoundError
from evidence_store.export.workflow import ExportRefusedError, approve_export, list_exports, request_export
from evidence_store.queries.visibility import (
    audit_entry_facts,
    case_facts,
    cleared_clip_clause,
    clip_facts,
    document_facts,
    item_facts,
    sees,
    visible_audit_clause,
    visible_case_clause,
    visible_clip_clause,
    visible_document_clause,
    visible_item_clause,
)
from evidence_store.review_holds import clips_under_review
from tests.integration.visibility_world import PASSWORD, World, build_world, secret_words, user_of
from web.app import create_app

MISSING = 999_999


@pytest.fixture
def world(station: Station) -> World:
    return build_world(station)


def signed_in(station: Station, username: str) -> tuple[TestClient, str]:
    client = TestClient(create_app(station))
    token = client.get("/api/csrf").json()["csrf_token"]
    response = client.post(
        "/api/login", json={"username": username, "password": PASSWORD}, headers={"X-CSRF-Token": token}
    )
    assert response.status_code == 200, response.text
    return client, str(response.json()["csrf_token"])


def audit_count(station: Station) -> int:
    with station.engine.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(audit_events)) or 0)


def item_row(station: Station, item_id: int) -> Any:
    with station.engine.connect() as connection:
        return connection.execute(select(supervision_items).where(supervision_items.c.id == item_id)).one()


def link_row(station: Station, link_id: int) -> Any:
    with station.engine.connect() as connection:
        return connection.execute(select(clip_links).where(clip_links.c.id == link_id)).one()


def assert_no_secret(text: str, words: list[str], where: str) -> None:
    leaked = [word for word in words if word in text]
    assert not leaked, (where, leaked)


def test_a_supervisor_of_another_unit_sees_no_hidden_item_of_a_draw(world: World) -> None:
    client, _csrf = signed_in(world.station, "supervisor-u2")
    words = secret_words(world, user_of(world.station, "supervisor-u2"))
    for path in (
        f"/api/supervision/draws/{world.clip_draw}",
        f"/api/supervision/draws/{world.case_draw}",
        f"/supervision/draws/{world.clip_draw}",
        f"/supervision/draws/{world.case_draw}",
        "/api/supervision/draws",
        "/supervision",
    ):
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        assert_no_secret(response.text, words, path)
    draw = client.get(f"/api/supervision/draws/{world.clip_draw}").json()
    assert [item["clip_id"] for item in draw["items"]] == [world.clip_a]
    assert draw["hidden_items"] == 1
    client.cookies.set("lang", "en")
    assert (
        "1 more item(s) of this draw are not visible to you"
        in client.get(f"/supervision/draws/{world.clip_draw}").text
    )
    cases = client.get(f"/api/supervision/draws/{world.case_draw}").json()
    assert [item["case_id"] for item in cases["items"]] == [world.case_normal]
    # the drawing supervisor (U1, cleared for state secrets) sees every item
    own, _ = signed_in(world.station, "supervisor")
    mine = own.get(f"/api/supervision/draws/{world.clip_draw}").json()
    assert {item["clip_id"] for item in mine["items"]} == {world.clip_a, world.clip_c}
    assert mine["hidden_items"] == 0


def test_reviewing_or_assigning_a_hidden_item_answers_like_a_missing_one_and_changes_nothing(
    world: World,
) -> None:
    client, csrf = signed_in(world.station, "supervisor-u2")
    headers = {"X-CSRF-Token": csrf}
    before = audit_count(world.station)
    body = {"outcome": "pass", "notes": ""}
    hidden = client.post(f"/api/supervision/items/{world.item_c}/review", json=body, headers=headers)
    missing = client.post("/api/supervision/items/999999/review", json=body, headers=headers)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == missing.json()
    for item_id in (world.item_c, world.item_case_state):
        page = client.post(
            f"/supervision/items/{item_id}/review",
            data={"outcome": "pass", "csrf_token": csrf, "draw_id": str(world.clip_draw)},
            follow_redirects=False,
        )
        assert page.status_code == 404, page.status_code
        assigned = client.post(
            f"/supervision/items/{item_id}/assign",
            data={"reviewer": "supervisor-u2", "csrf_token": csrf, "draw_id": str(world.clip_draw)},
            follow_redirects=False,
        )
        assert assigned.status_code == 404, assigned.status_code
    item = item_row(world.station, world.item_c)
    assert item.status == "open" and item.outcome is None and item.reviewer_id is None
    with world.station.engine.connect() as connection:
        assert world.clip_c in clips_under_review(connection, [world.clip_c])
    with world.station.engine.connect() as connection:
        actions = set(connection.scalars(select(audit_events.c.action).where(audit_events.c.seq > before)))
    assert actions <= {"access.denied"}, actions


def test_a_hidden_clip_linked_to_a_visible_case_cannot_be_acted_on_nor_seen_through_it(world: World) -> None:
    client, csrf = signed_in(world.station, "investigator")
    headers = {"X-CSRF-Token": csrf}
    words = secret_words(world, user_of(world.station, "investigator"))
    assert client.get(f"/api/clips/{world.clip_c}").status_code == 404
    before = link_row(world.station, world.link_c_normal)
    for action, body in (
        ("evidence", {"reason": "why not", "is_evidence": True}),
        ("unlink", {"reason": "x"}),
    ):
        hidden = client.post(
            f"/api/cases/{world.case_normal}/links/{world.link_c_normal}/{action}", json=body, headers=headers
        )
        missing = client.post(
            f"/api/cases/{world.case_normal}/links/999999/{action}", json=body, headers=headers
        )
        assert hidden.status_code == missing.status_code == 404, (
            action,
            hidden.status_code,
            missing.status_code,
        )
        assert hidden.json() == missing.json()
        page = client.post(
            f"/cases/{world.case_normal}/links/{world.link_c_normal}/{action}",
            data={"reason": "why not", "evidence": "1", "csrf_token": csrf},
            follow_redirects=False,
        )
        assert page.status_code == 404, (action, page.status_code)
    after = link_row(world.station, world.link_c_normal)
    assert (after.removed_at, after.is_evidence) == (before.removed_at, before.is_evidence)
    detail = client.get(f"/api/cases/{world.case_normal}").json()
    text = json.dumps(detail, ensure_ascii=False, default=str)
    assert_no_secret(text, words, "api case")
    assert {link["clip_id"] for link in detail["links"]} == {world.clip_a}
    assert detail["hidden_linked_clips"] == 1
    assert "01:10:00" not in text  # clip_c's start time
    client.cookies.set("lang", "en")
    page = client.get(f"/cases/{world.case_normal}")
    assert page.status_code == 200
    assert "1 more linked clip(s) are not visible to you" in page.text
    assert_no_secret(page.text, words, "case page")
    # the approver of U1 is cleared for the state secret and sees both links
    approver, _ = signed_in(world.station, "approver")
    seen = approver.get(f"/api/cases/{world.case_normal}").json()
    assert {link["clip_id"] for link in seen["links"]} == {world.clip_a, world.clip_c}
    assert seen["hidden_linked_clips"] == 0


@pytest.mark.parametrize("username", ["admin", "custodian", "custodian-u2", "supervisor-u2"])
def test_the_dashboard_names_no_clip_of_a_case_hidden_from_the_user(world: World, username: str) -> None:
    client, _ = signed_in(world.station, username)
    words = secret_words(world, user_of(world.station, username))
    for path in ("/api/dashboard", "/dashboard"):
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        assert_no_secret(response.text, words, path)
    late = client.get("/api/dashboard").json()["late_handovers"]
    assert late["count_30d"] == 0 and late["recent"] == []


def test_the_dashboard_of_a_cleared_user_names_the_late_secret_clip(world: World) -> None:
    client, _ = signed_in(world.station, "supervisor")
    late = client.get("/api/dashboard").json()["late_handovers"]
    assert [row["clip_id"] for row in late["recent"]] == [world.clip_c]


@pytest.mark.parametrize("username", ["auditor", "supervisor-u2"])
def test_the_audit_log_leaves_out_entries_about_objects_hidden_from_the_reader(
    world: World, username: str
) -> None:
    looker, _ = signed_in(world.station, "supervisor")  # U1's supervisor looks at the secret case and clip
    assert looker.get(f"/api/cases/{world.case_state_u1}").status_code == 200
    assert looker.get(f"/api/clips/{world.clip_c}").status_code == 200
    client, _ = signed_in(world.station, username)
    words = secret_words(world, user_of(world.station, username))
    events = client.get("/api/audit", params={"limit": 500}).json()["events"]
    assert events
    about = {(e["object_type"], e["object_id"]) for e in events}
    assert ("case", str(world.case_state_u1)) not in about
    assert ("clip", str(world.clip_c)) not in about
    assert ("case", str(world.case_normal)) in about or ("clip", str(world.clip_a)) in about
    assert_no_secret(json.dumps(events, ensure_ascii=False), words, "api audit")
    assert_no_secret(client.get("/audit").text, words, "audit page")
    cleared, _ = signed_in(world.station, "supervisor")
    seen = cleared.get("/api/audit", params={"limit": 500}).json()["events"]
    assert ("case", str(world.case_state_u1)) in {(e["object_type"], e["object_id"]) for e in seen}


def test_the_sql_forms_of_the_rule_agree_with_the_pure_rule_on_every_object(world: World) -> None:
    """`may_see` over each object's `Facts` and the SQL conditions of `queries.visibility` pick the same
    clips (seen and named), cases, documents, draw items and audit entries, for every role and unit."""
    station = world.station
    supervisor, _ = signed_in(station, "supervisor")  # entries about the secret case, clip and item
    supervisor.get(f"/api/cases/{world.case_state_u1}")
    supervisor.get(f"/api/clips/{world.clip_c}")
    investigator, _ = signed_in(station, "investigator")
    investigator.get(f"/api/clips/{world.clip_c}")  # a refusal about the hidden clip
    with station.engine.connect() as connection:
        all_clips = list(connection.scalars(select(clips.c.id)))
        all_cases = list(connection.scalars(select(cases.c.id)))
        all_documents = list(connection.scalars(select(documents.c.id)))
        all_items = list(connection.scalars(select(supervision_items.c.id)))
        entries = connection.execute(
            select(audit_events.c.seq, audit_events.c.object_type, audit_events.c.object_id)
        ).all()
        assert {e.object_type for e in entries} >= {"clip", "case", "supervision_draw"}
        facts = {
            "clip": {i: clip_facts(connection, i) for i in all_clips},
            "named clip": {i: clip_facts(connection, i, Kind.DASHBOARD_ROW) for i in all_clips},
            "case": {i: case_facts(connection, i) for i in all_cases},
            "document": {i: document_facts(connection, i) for i in all_documents},
            "item": {i: item_facts(connection, i) for i in all_items},
            "entry": {e.seq: audit_entry_facts(connection, e.object_type, e.object_id) for e in entries},
        }
        checked = 0
        for role in Role:
            for unit in ("U1", "U2", ""):
                for officer_id in (None, *{f.recorded_by for f in facts["clip"].values() if f}):
                    user = User(1, "u", "", role, unit, officer_id)
                    in_sql = {
                        "clip": set(connection.scalars(select(clips.c.id).where(visible_clip_clause(user)))),
                        "named clip": set(
                            connection.scalars(select(clips.c.id).where(cleared_clip_clause(user)))
                        ),
                        "case": set(connection.scalars(select(cases.c.id).where(visible_case_clause(user)))),
                        "document": set(
                            connection.scalars(select(documents.c.id).where(visible_document_clause(user)))
                        ),
                        "item": set(
                            connection.scalars(
                                select(supervision_items.c.id).where(visible_item_clause(user))
                            )
                        ),
                        "entry": set(
                            connection.scalars(select(audit_events.c.seq).where(visible_audit_clause(user)))
                        ),
                    }
                    for kind, of_kind in facts.items():
                        pure = {key for key, fact in of_kind.items() if sees(user, fact)}
                        assert in_sql[kind] == pure, (kind, user)
                        checked += len(pure)
                    assert (world.clip_c in in_sql["clip"]) is (
                        role in (Role.APPROVER, Role.SUPERVISOR) and unit == "U1"
                    )
    assert checked > 0


def test_an_export_names_only_what_its_requester_and_its_approver_may_see(world: World) -> None:
    station = world.station
    with pytest.raises(NotFoundError) as hidden:
        request_export(station, user="investigator", items=[{"clip_id": world.clip_c}], purpose="court")
    with pytest.raises(NotFoundError) as missing:
        request_export(station, user="investigator", items=[{"clip_id": MISSING}], purpose="court")
    assert str(hidden.value) == str(missing.value).replace(str(MISSING), str(world.clip_c))
    with pytest.raises(NotFoundError, match="no case numbered"):
        request_export(
            station,
            user="investigator",
            items=[{"clip_id": world.clip_a}],
            purpose="court",
            case_number="VIS-2026-U1STATE",
        )
    # U2's investigator asks for U2's private clip: U1's approver may not see it, so may not decide
    asked = request_export(station, user="investigator-u2", items=[{"clip_id": world.clip_b}], purpose="x")
    assert asked.id is not None
    with pytest.raises(ExportRefusedError, match="may not see"):
        approve_export(station, asked.id, user="approver")
    plain = request_export(station, user="investigator", items=[{"clip_id": world.clip_a}], purpose="court")
    assert plain.id is not None
    assert approve_export(station, plain.id, user="approver").status == ExportStatus.APPROVED


def test_a_documents_coverage_flags_do_not_give_away_the_times_of_hidden_footage(world: World) -> None:
    # clip_c (state secret, 01:10-01:15) is filed to the normal case's document (01:00-01:30) beside
    # clip_a (01:00-01:05): the early end is computed from both clips
    with world.station.transaction() as session:
        session.execute(
            clip_links.update()
            .where(clip_links.c.id == world.link_c_normal)
            .values(document_id=world.document)
        )
        refresh_flags(session, world.station, document_ids=[world.document])
    cleared, _ = signed_in(world.station, "approver")
    seen = {f["kind"]: f["details"] for f in cleared.get(f"/api/cases/{world.case_normal}").json()["flags"]}
    assert seen["ends_early"]["footage_end"].startswith("2026-03-02T01:15")  # the cleared see it all
    client, _ = signed_in(world.station, "investigator")
    detail = client.get(f"/api/cases/{world.case_normal}").json()
    flags = {f["kind"]: f["details"] for f in detail["flags"]}
    text = json.dumps(detail["flags"], ensure_ascii=False)
    # the flags stay (the document's own window is the investigator's to see); what hidden footage
    # implies does not
    assert "ends_early" in flags, flags
    assert "01:10" not in text and "01:15" not in text, text
    for details in flags.values():
        assert not {"footage_start", "footage_end", "gaps", "uncovered_seconds"} & set(details), details
    assert flags["ends_early"]["withheld"] == "computed with footage you may not see"
    assert flags["ends_early"]["document_end"].startswith("2026-03-02T01:30")


def test_a_list_filled_with_hidden_requests_still_shows_the_visible_ones_behind_them(world: World) -> None:
    """R13: requests hidden from the reader are left out of a list; the list then reaches further back,
    so hidden requests never push a visible one out of it (they were cut before being filtered)."""
    station = world.station
    visible = request_export(station, user="investigator", items=[{"clip_id": world.clip_a}], purpose="court")
    for _ in range(3):  # newer, naming U2's private clip: hidden from U1's investigator
        request_export(station, user="investigator-u2", items=[{"clip_id": world.clip_b}], purpose="x")
    listed = list_exports(station, limit=2, seen_by=user_of(station, "investigator"))
    assert [row["id"] for row in listed] == [visible.id]
    assert len(list_exports(station, limit=2)) == 2  # unfiltered, the limit still holds
