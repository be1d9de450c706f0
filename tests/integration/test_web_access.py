"""The web UI and API against a real station (SQLite and PostgreSQL): access control per role, the
confidentiality rule, CSRF, login rate limiting, session expiry, password hashing, security headers,
Range playback, and the audit record of every look at footage (R11, R13, R16, R17, R18)."""

from __future__ import annotations

import io
import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select, update

from evidence_store.accounts import create_user
from evidence_store.bootstrap import Station
from evidence_store.db.tables import (
    audit_events,
    cases,
    clip_links,
    clips,
    compliance_flags,
    export_requests,
    supervision_items,
    users,
)
from evidence_store.disclosure import record_application
from evidence_store.domain.access import (
    PERMISSIONS,
    Permission,
    Role,
    User,
    case_visible,
    clip_visible_to,
)
from evidence_store.domain.model import (
    Clip,
    Confidentiality,
    Derivative,
    DerivativeKind,
)
from evidence_store.domain.sampling import DrawRequest
from evidence_store.queries.visibility import clip_visible, visible_case_clause, visible_clip_clause
from evidence_store.review_holds import clips_under_review
from evidence_store.supervision import create_draw
from tests import factories
from tests.conftest import REPO, run_cli
from tests.fakes import FixedClock
from web.app import create_app
from web.auth import WebConfig

PASSWORD = "correct horse battery"
P = Permission
DISCLOSURE_ANY = {P.DISCLOSURE_RECORD, P.DISCLOSURE_DECIDE, P.DISCLOSURE_DELIVER}
PROXY_SIZE = 300_000


# -- the station's contents ------------------------------------------------------------------------------


@dataclass
class World:
    station: Station
    clip_a: int  # officer 1001 (unit U1), normal, linked to the normal case; proxy, poster, contact sheet
    clip_b: int  # officer 2002 (unit U2), linked to U2's personal-privacy case
    clip_c: int  # officer 1001, linked to U1's state-secret case
    clip_d: int  # officer 2002, normal, no links
    case_normal: int
    case_private_u2: int
    case_state_u1: int
    proxy: bytes
    item_id: int  # an open supervision item (clip_d), assigned to the supervisor


def _officer(station: Station, badge: str, unit: str) -> int:
    return factories.add_officer(station, badge, name=f"officer {badge}", unit=unit)


def _derivative(station: Station, clip_id: int, kind: DerivativeKind, data: bytes, mime: str) -> None:
    blob = station.blobs.put(io.BytesIO(data))
    with station.transaction() as session:
        original = session.get(Clip, clip_id)
        assert original is not None
        session.add(
            Derivative(
                clip_id=clip_id,
                kind=kind,
                sha256=blob.sha256,
                size=blob.size,
                mime_type=mime,
                derived_from_sha256=original.sha256,
                tool="ffmpeg",
                tool_version="test",
                arguments=[],
                created_at=station.clock(),
            )
        )


def _link(station: Station, clip_id: int, case_id: int, document_id: int | None = None) -> None:
    factories.add_link(station, clip_id, case_id, document_id=document_id)


@pytest.fixture
def world(station: Station) -> World:
    o1 = _officer(station, "1001", "U1")
    o2 = _officer(station, "2002", "U2")
    device_id = factories.add_device(station, "DSJ-1", model="test")
    t0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    clip_a = factories.ready_clip(station, o1, device_id, t0, "clip-a")
    clip_b = factories.ready_clip(station, o2, device_id, t0 + timedelta(hours=1), "clip-b")
    clip_c = factories.ready_clip(station, o1, device_id, t0 + timedelta(hours=2), "clip-c")
    clip_d = factories.ready_clip(station, o2, device_id, t0 + timedelta(hours=3), "clip-d")
    proxy = os.urandom(PROXY_SIZE)
    _derivative(station, clip_a, DerivativeKind.PROXY, proxy, "video/mp4")
    _derivative(station, clip_a, DerivativeKind.POSTER, b"\xff\xd8poster-a\xff\xd9", "image/jpeg")
    _derivative(station, clip_a, DerivativeKind.CONTACT_SHEET, b"\xff\xd8sheet-a\xff\xd9", "image/jpeg")
    _derivative(station, clip_b, DerivativeKind.PROXY, os.urandom(1000), "video/mp4")
    _derivative(station, clip_b, DerivativeKind.POSTER, b"\xff\xd8poster-b\xff\xd9", "image/jpeg")
    case_normal = factories.unit_case(station, "卫监-2026-001", "U1", Confidentiality.NORMAL, "普通检查")
    case_private = factories.unit_case(
        station, "卫监-2026-U2-SECRET", "U2", Confidentiality.PERSONAL_PRIVACY, "隐私案件标题"
    )
    case_state = factories.unit_case(
        station, "卫监-2026-STATE", "U1", Confidentiality.STATE_SECRET, "国家秘密案件标题"
    )
    document_id = factories.add_document(
        station,
        "DOC-1",
        case_normal,
        kind="现场检查笔录",
        officer_ids=[o1],
        start=t0,
        end=t0 + timedelta(minutes=30),
        requires_video=True,
        indexed=False,  # no linking runs in this world: the officer index stays as it was, empty
    )
    # clip A's probe as processing writes it: a frame size and a length to redact in (issue 20)
    probe = {"video_decodable": True, "width": 320, "height": 240, "duration_s": 3.0, "frame_rate": 25.0}
    with station.engine.begin() as connection:
        connection.execute(update(clips).where(clips.c.id == clip_a).values(media_info={"probe": probe}))
    _link(station, clip_a, case_normal, document_id)
    _link(station, clip_b, case_private)
    _link(station, clip_c, case_state)
    for role in Role:
        factories.create_account(
            station,
            role.value,
            PASSWORD,
            role=role,
            unit="U1",
            officer_badge="1001" if role is Role.OFFICER else None,
        )
    factories.create_account(station, "custodian-u2", PASSWORD, role="custodian", unit="U2")
    with station.engine.connect() as connection:
        supervisor_id = connection.scalar(select(users.c.id).where(users.c.username == "supervisor"))
    drawer = User(supervisor_id, "supervisor", "", Role.SUPERVISOR, "U1")
    draw_id = create_draw(
        station,
        DrawRequest(kind="clip", size=1, officer="2002", reviewer="supervisor", seed=7),
        drawer,
        source="test",
    )
    with station.engine.connect() as connection:
        item_id = connection.scalar(
            select(supervision_items.c.id).where(supervision_items.c.draw_id == draw_id)
        )
    return World(
        station, clip_a, clip_b, clip_c, clip_d, case_normal, case_private, case_state, proxy, item_id
    )


def client_for(station: Station, *, config: WebConfig | None = None, https: bool = False) -> TestClient:
    return TestClient(
        create_app(station, config=config), base_url="https://testserver" if https else "http://testserver"
    )


def login(client: TestClient, username: str, password: str = PASSWORD) -> str:
    """Sign in through the API; return the session's CSRF token."""
    token = client.get("/api/csrf").json()["csrf_token"]
    response = client.post(
        "/api/login", json={"username": username, "password": password}, headers={"X-CSRF-Token": token}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["csrf_token"])


def events(station: Station, action: str | None = None, **where: str) -> list[Any]:
    query = select(audit_events).order_by(audit_events.c.seq)
    if action:
        query = query.where(audit_events.c.action == action)
    for key, value in where.items():
        query = query.where(audit_events.c[key] == value)
    with station.engine.connect() as connection:
        return list(connection.execute(query).all())


# -- every role against every endpoint ------------------------------------------------------------------


@dataclass
class Endpoint:
    method: str
    path: str
    permission: Permission
    json: dict[str, Any] | None = None
    form: dict[str, str] | None = None


def endpoints(w: World) -> list[Endpoint]:
    a, case = w.clip_a, w.case_normal
    application = record_application(
        w.station,
        user="custodian",
        party_name="party",
        id_document_type="passport",
        id_document_number="E1",
        kind="copy",
        purpose="court",
        clip_ids=[a],
    )["id"]
    return [
        Endpoint("GET", "/search?go=1", P.CLIP_SEARCH),
        Endpoint("GET", "/api/clips", P.CLIP_SEARCH),
        Endpoint("GET", f"/clips/{a}", P.CLIP_VIEW),
        Endpoint("GET", f"/api/clips/{a}", P.CLIP_VIEW),
        Endpoint("GET", f"/clips/{a}/derivative/poster", P.CLIP_VIEW),
        Endpoint("GET", f"/clips/{a}/derivative/proxy", P.CLIP_PLAY),
        Endpoint("POST", f"/clips/{a}/verify", P.CLIP_VERIFY, form={}),
        Endpoint("POST", f"/api/clips/{a}/verify", P.CLIP_VERIFY, json={}),
        Endpoint("POST", f"/clips/{a}/original", P.CLIP_DOWNLOAD_ORIGINAL, form={"reason": "court"}),
        Endpoint("POST", f"/clips/{a}/markers", P.CLIP_ANNOTATE, form={"at": "0:01", "note": "refusal"}),
        Endpoint("POST", f"/api/clips/{a}/markers", P.CLIP_ANNOTATE, json={"at": "2", "note": "n"}),
        Endpoint("POST", f"/clips/{a}/tags", P.CLIP_ANNOTATE, form={"tag": "kitchen"}),
        Endpoint("POST", f"/api/clips/{a}/tags", P.CLIP_ANNOTATE, json={"tag": "yard"}),
        Endpoint("POST", f"/api/clips/{a}/tags/remove", P.CLIP_ANNOTATE, json={"tag": "yard"}),
        Endpoint("POST", f"/clips/{a}/tags/remove", P.CLIP_ANNOTATE, form={"tag": "kitchen"}),
        Endpoint("GET", f"/clips/{a}/redaction", P.REDACTION_EDIT),
        Endpoint("GET", f"/api/clips/{a}/redaction", P.REDACTION_EDIT),
        Endpoint(
            "POST",
            f"/api/clips/{a}/redaction",
            P.REDACTION_EDIT,
            json={"width": 320, "height": 240, "duration_s": 3.0, "frames": [{"start_s": 1, "end_s": 2}]},
        ),
        Endpoint(
            "POST",
            "/api/clips/bulk",
            P.CLIP_ANNOTATE,
            json={"action": "tag", "clip_ids": [a], "reason": "r", "tag": "bulk"},
        ),
        Endpoint(
            "POST", "/api/clips/bulk", P.HOLD_MANAGE, json={"action": "hold", "clip_ids": [a], "reason": "r"}
        ),
        Endpoint(
            "POST",
            "/clips/bulk",
            P.HOLD_MANAGE,
            form={"action": "release", "clip_id": str(a), "reason": "r"},
        ),
        Endpoint("GET", "/cases", P.CASE_VIEW),
        Endpoint("GET", f"/cases/{case}", P.CASE_VIEW),
        Endpoint("GET", f"/api/cases/{case}", P.CASE_VIEW),
        Endpoint(
            "POST", f"/api/cases/{case}/links", P.CASE_LINK, json={"clip_id": a, "reason": "seen on it"}
        ),
        Endpoint("POST", f"/cases/{case}/links", P.CASE_LINK, form={"clip_id": str(a), "reason": "seen"}),
        Endpoint("GET", "/dashboard", P.DASHBOARD_VIEW),
        Endpoint("GET", "/api/dashboard", P.DASHBOARD_VIEW),
        Endpoint("GET", "/supervision", P.SUPERVISION_VIEW),
        Endpoint("GET", "/api/supervision/draws", P.SUPERVISION_VIEW),
        Endpoint("POST", "/api/supervision/draws", P.SUPERVISION_DRAW, json={"kind": "clip", "size": 1}),
        Endpoint(
            "POST",
            f"/api/supervision/items/{w.item_id}/review",
            P.SUPERVISION_REVIEW,
            json={"outcome": "pass", "notes": ""},
        ),
        Endpoint("GET", "/stats?year=2026", P.STATS_VIEW),
        Endpoint("GET", "/stats.csv?year=2026", P.STATS_VIEW),
        Endpoint("GET", "/api/stats?year=2026", P.STATS_VIEW),
        Endpoint("GET", "/audit", P.AUDIT_VIEW),
        Endpoint("GET", "/api/audit", P.AUDIT_VIEW),
        Endpoint("GET", "/admin/users", P.USERS_MANAGE),
        Endpoint("GET", "/api/users", P.USERS_MANAGE),
        Endpoint(
            "POST",
            "/api/users",
            P.USERS_MANAGE,
            json={"username": "newbie", "password": PASSWORD, "role": "auditor", "unit": "U1"},
        ),
        Endpoint("GET", "/exports", P.EXPORT_VIEW),
        Endpoint("GET", "/api/exports", P.EXPORT_VIEW),
        Endpoint(
            "POST",
            "/api/exports",
            P.EXPORT_REQUEST,
            json={"items": [{"clip_id": w.clip_d}], "purpose": "court"},
        ),
        # a party's applications (R15); list and show: any of the three disclosure permissions
        Endpoint("GET", "/disclosures", P.DISCLOSURE_RECORD),
        Endpoint("GET", f"/disclosures/{application}", P.DISCLOSURE_RECORD),
        Endpoint(
            "POST",
            "/disclosures",
            P.DISCLOSURE_RECORD,
            form={
                "party_name": "party",
                "id_document_type": "resident_id",
                "id_document_number": "1",
                "kind": "read",
                "purpose": "review",
                "clip_id": str(a),
            },
        ),
        Endpoint("POST", f"/disclosures/{application}/approve", P.DISCLOSURE_DECIDE, form={"reason": ""}),
        Endpoint("GET", "/station", P.STATION_VIEW),
        Endpoint("GET", "/station/kiosk", P.STATION_VIEW),
        Endpoint("GET", "/api/station", P.STATION_VIEW),
        Endpoint("GET", "/api/station/events", P.STATION_VIEW),
        Endpoint("GET", "/admin/settings", P.SETTINGS_MANAGE),
        Endpoint("GET", "/api/status", P.SETTINGS_MANAGE),
        Endpoint("POST", "/admin/settings", P.SETTINGS_MANAGE, form={"session_idle_minutes": "30"}),
    ]


def call(client: TestClient, endpoint: Endpoint, csrf: str) -> Any:
    if endpoint.method == "GET":
        return client.get(endpoint.path, follow_redirects=False)
    if endpoint.form is not None:
        return client.post(endpoint.path, data={**endpoint.form, "csrf_token": csrf}, follow_redirects=False)
    return client.post(
        endpoint.path, json=endpoint.json, headers={"X-CSRF-Token": csrf}, follow_redirects=False
    )


@pytest.mark.parametrize("role", list(Role))
def test_each_role_is_refused_every_endpoint_it_may_not_use_and_the_refusal_is_logged(
    world: World, role: Role
) -> None:
    client = client_for(world.station)
    csrf = login(client, role.value)
    for endpoint in endpoints(world):
        before = len(events(world.station, "access.denied", actor=f"web:{role.value}"))
        response = call(client, endpoint, csrf)
        allowed = endpoint.permission in PERMISSIONS[role]
        if endpoint.permission is P.CLIP_DOWNLOAD_ORIGINAL and role is Role.INVESTIGATOR:
            allowed = False  # only with an approved export request, which this investigator lacks
        if endpoint.method == "GET" and endpoint.path.startswith("/disclosures"):
            allowed = bool(DISCLOSURE_ANY & PERMISSIONS[role])
        denials = events(world.station, "access.denied", actor=f"web:{role.value}")
        if allowed:
            assert response.status_code < 400, (
                role,
                endpoint.path,
                response.status_code,
                response.text[:300],
            )
            assert len(denials) == before, (role, endpoint.path)
        else:
            assert response.status_code == 403, (role, endpoint.path, response.status_code)
            assert len(denials) == before + 1, (role, endpoint.path)
            details = json.loads(denials[-1].details)
            assert details["path"] == endpoint.path.split("?")[0]
            assert details["role"] == role.value
            assert denials[-1].source == "testclient"


def test_there_is_no_delete_endpoint_at_all(world: World) -> None:
    app = create_app(world.station)
    # every route, those of the included routers too (FastAPI lists an included router as one entry)
    methods = {m for route in iter_route_contexts(app.routes) for m in route.methods or ()}
    assert "GET" in methods and "POST" in methods
    assert "DELETE" not in methods and "PUT" not in methods and "PATCH" not in methods
    client = TestClient(app)
    csrf = login(client, "admin")
    response = client.delete(f"/api/clips/{world.clip_a}", headers={"X-CSRF-Token": csrf})
    assert response.status_code == 405
    with world.station.engine.connect() as connection:
        from evidence_store.db.tables import clips

        assert connection.scalar(select(func.count()).select_from(clips)) == 4


def test_unauthenticated_requests_get_nothing(world: World) -> None:
    client = client_for(world.station)
    assert client.get("/api/clips").status_code == 401
    assert client.get(f"/clips/{world.clip_a}/derivative/proxy", follow_redirects=False).status_code == 303
    response = client.get(f"/clips/{world.clip_a}", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/login?next=")
    assert client.get("/healthz").status_code == 200
    # the station's configuration and store totals are its administrator's (issue 16)
    status = client.get("/api/status")
    assert status.status_code == 401 and "database" not in status.text


# -- confidentiality (R13) -------------------------------------------------------------------------------


def test_the_sql_visibility_conditions_agree_with_the_pure_rules(world: World) -> None:
    with world.station.engine.connect() as connection:
        recorded_by = dict(connection.execute(select(clips.c.id, clips.c.officer_id)).tuples().all())
        links: dict[int, list[tuple[str, str]]] = {clip_id: [] for clip_id in recorded_by}
        for clip_id, unit, level in connection.execute(
            select(clip_links.c.clip_id, cases.c.unit, cases.c.confidentiality)
            .join(cases, cases.c.id == clip_links.c.case_id)
            .where(clip_links.c.removed_at.is_(None))
        ):
            links[clip_id].append((unit, str(level)))
        case_rows = connection.execute(select(cases.c.id, cases.c.unit, cases.c.confidentiality)).all()
        officers = {None, *recorded_by.values()}
        checked = 0
        for role in Role:
            for unit in ("U1", "U2", ""):
                for officer_id in officers:
                    user = User(1, "u", "", role, unit, officer_id)
                    for clip_id, officer in recorded_by.items():
                        expected = clip_visible_to(user, officer, links[clip_id])
                        in_sql = connection.scalar(
                            select(clips.c.id).where(clips.c.id == clip_id, visible_clip_clause(user))
                        )
                        assert (in_sql is not None) is expected, (user, clip_id)
                        assert clip_visible(connection, user, clip_id) is expected, (user, clip_id)
                        checked += expected
                    seen = set(connection.scalars(select(cases.c.id).where(visible_case_clause(user))))
                    assert seen == {c.id for c in case_rows if case_visible(user, c.unit, c.confidentiality)}
    assert checked > 0


def test_another_units_confidential_case_and_its_clips_cannot_be_seen_by_guessing_ids(world: World) -> None:
    client = client_for(world.station)
    login(client, "custodian")  # unit U1
    secret_words = ["U2-SECRET", "隐私案件标题", "clip-b"]
    probes = [
        f"/cases/{world.case_private_u2}",
        f"/api/cases/{world.case_private_u2}",
        f"/clips/{world.clip_b}",
        f"/api/clips/{world.clip_b}",
        f"/clips/{world.clip_b}/derivative/proxy",
        f"/clips/{world.clip_b}/derivative/poster",
        f"/cases/{world.case_private_u2}/timeline.svg",
    ]
    for path in probes:
        response = client.get(path)
        assert response.status_code == 404, path
        assert not any(word in response.text for word in secret_words), path
    # a case id that does not exist answers exactly the same
    missing = client.get("/api/cases/999999")
    hidden = client.get(f"/api/cases/{world.case_private_u2}")
    assert missing.status_code == hidden.status_code == 404 and missing.json() == hidden.json()
    # nor does it show in searches, case lists or by its sha256
    found = client.get("/api/clips", params={"limit": 200}).json()["items"]
    assert world.clip_b not in {hit["id"] for hit in found}
    assert world.clip_c not in {hit["id"] for hit in found}  # U1's state secret: custodians are not cleared
    assert client.get("/api/clips", params={"case_number": "卫监-2026-U2-SECRET"}).json()["items"] == []
    assert "U2-SECRET" not in client.get("/cases").text
    assert "U2-SECRET" not in json.dumps(client.get("/api/cases").json(), ensure_ascii=False)
    clip_b_sha = client_sha(world.station, world.clip_b)
    assert client.get(f"/api/clips/by-sha256/{clip_b_sha}").status_code == 404
    denials = events(world.station, "access.denied", actor="web:custodian")
    assert {json.loads(d.details)["reason"] for d in denials} == {"confidential", "missing"}

    same_unit = client_for(world.station)
    login(same_unit, "custodian-u2")
    assert same_unit.get(f"/api/cases/{world.case_private_u2}").status_code == 200
    assert same_unit.get(f"/api/clips/{world.clip_b}").status_code == 200
    # state secret of U1: only the approver and the supervisor of U1
    for username, status in (("approver", 200), ("supervisor", 200), ("investigator", 404)):
        other = client_for(world.station)
        login(other, username)
        assert other.get(f"/api/cases/{world.case_state_u1}").status_code == status, username
        assert other.get(f"/api/clips/{world.clip_c}").status_code == status, username


def test_flag_and_case_searches_apply_the_confidentiality_rule_and_page_correctly(world: World) -> None:
    now = datetime.now(UTC)
    with world.station.transaction() as session:
        for clip_id in (world.clip_a, world.clip_b, world.clip_c, world.clip_d):
            session.execute(
                insert(compliance_flags).values(
                    kind="coverage_gap",
                    clip_id=clip_id,
                    details={},
                    opened_at=now,
                    updated_at=now,
                    # as the flag refresh writes it: the clip's start, which the flag search pages by
                    clip_start=select(clips.c.utc_start).where(clips.c.id == clip_id).scalar_subquery(),
                )
            )
    u1 = client_for(world.station)
    login(u1, "custodian")
    ids = [hit["id"] for hit in u1.get("/api/clips", params={"flag": "coverage_gap"}).json()["items"]]
    assert ids == [world.clip_d, world.clip_a]  # b: U2's private case; c: U1's state secret
    assert [h["id"] for h in u1.get("/api/clips", params={"flag": "any"}).json()["items"]] == ids
    first = u1.get("/api/clips", params={"flag": "coverage_gap", "limit": 1}).json()
    second = u1.get("/api/clips", params={"flag": "coverage_gap", "limit": 1, "offset": 1}).json()
    assert [h["id"] for h in first["items"]] == [world.clip_d] and first["has_next"]
    assert [h["id"] for h in second["items"]] == [world.clip_a] and not second["has_next"]
    after = {"flag": "coverage_gap", "limit": 1, "after": first["next_after"]}
    by_cursor = u1.get("/api/clips", params=after).json()  # keyset paging: the same page
    assert (by_cursor["items"], by_cursor["has_next"]) == (second["items"], second["has_next"])
    assert u1.get("/api/clips", params={**after, "after": "yesterday"}).status_code == 422
    asc = u1.get("/api/clips", params={"flag": "coverage_gap", "sort": "start_asc"}).json()["items"]
    assert [h["id"] for h in asc] == [world.clip_a, world.clip_d]
    u2 = client_for(world.station)
    login(u2, "custodian-u2")
    ids = [hit["id"] for hit in u2.get("/api/clips", params={"flag": "coverage_gap"}).json()["items"]]
    assert ids == [world.clip_d, world.clip_b, world.clip_a]
    by_case = u2.get("/api/clips", params={"case_number": "卫监-2026-U2-SECRET"}).json()["items"]
    assert [h["id"] for h in by_case] == [world.clip_b]


def client_sha(station: Station, clip_id: int) -> str:
    with station.engine.connect() as connection:
        from evidence_store.db.tables import clips

        return str(connection.scalar(select(clips.c.sha256).where(clips.c.id == clip_id)))


def test_an_officer_sees_only_their_own_footage(world: World) -> None:
    client = client_for(world.station)
    login(client, "officer")  # officer 1001 of U1
    ids = {hit["id"] for hit in client.get("/api/clips").json()["items"]}
    assert ids == {world.clip_a}  # clip_c is theirs too, but linked to a state-secret case
    assert client.get(f"/api/clips/{world.clip_a}").status_code == 200
    assert client.get(f"/api/clips/{world.clip_d}").status_code == 404  # another officer's, normal
    assert client.get(f"/clips/{world.clip_d}/derivative/proxy").status_code == 404
    # the clip page names the linked case but an officer has no case pages
    page = client.get(f"/clips/{world.clip_a}").text
    assert "卫监-2026-001" in page and f'href="/cases/{world.case_normal}"' not in page


# -- files: traversal, Range -----------------------------------------------------------------------------


def test_file_routes_refuse_path_traversal_and_bad_hashes(world: World) -> None:
    client = client_for(world.station)
    login(client, "custodian")
    for path in (
        f"/clips/{world.clip_a}/derivative/..%2F..%2Fetc%2Fpasswd",
        f"/clips/{world.clip_a}/derivative/../../etc/passwd",
        f"/clips/{world.clip_a}/derivative/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        f"/clips/{world.clip_a}/derivative/original",
        "/clips/..%2F..%2Fetc%2Fpasswd/derivative/proxy",
        "/static/..%2F..%2F..%2Fetc%2Fpasswd",
        "/static/../../etc/passwd",
        "/api/clips/by-sha256/..%2F..%2Fetc%2Fpasswd",
    ):
        response = client.get(path)
        assert response.status_code in (400, 404, 422), (path, response.status_code)
        assert "root:" not in response.text, path
    for bad in ("not-hex", "G" * 64, "a" * 63, "A" * 64, "a" * 65):
        response = client.get(f"/api/clips/by-sha256/{bad}")
        assert response.status_code in (400, 404), bad
    assert client.get(f"/api/clips/by-sha256/{client_sha(world.station, world.clip_a)}").status_code == 200


def test_range_requests_serve_the_exact_bytes_and_refuse_bad_ranges(world: World) -> None:
    client = client_for(world.station)
    login(client, "investigator")
    url = f"/clips/{world.clip_a}/derivative/proxy"
    size = len(world.proxy)
    whole = client.get(url)
    assert whole.status_code == 200 and whole.content == world.proxy
    assert whole.headers["accept-ranges"] == "bytes" and whole.headers["content-type"] == "video/mp4"
    for header, start, end in (
        ("bytes=0-0", 0, 0),
        ("bytes=100-199", 100, 199),
        ("bytes=1000-", 1000, size - 1),
        ("bytes=-500", size - 500, size - 1),
        (f"bytes={size - 10}-{size + 5000}", size - 10, size - 1),
        ("bytes=262000-262300", 262000, 262300),  # across the server's chunk boundary
    ):
        response = client.get(url, headers={"Range": header})
        assert response.status_code == 206, header
        assert response.headers["content-range"] == f"bytes {start}-{end}/{size}", header
        assert response.headers["content-length"] == str(end - start + 1)
        assert response.content == world.proxy[start : end + 1], header
    # (a unit other than bytes is ignored, RFC 9110 section 14.2: see tests/integration/test_web_input.py)
    for header in (f"bytes={size}-", "bytes=500-100", "bytes=abc", "bytes=-0"):
        response = client.get(url, headers={"Range": header})
        assert response.status_code == 416, header
        assert response.headers["content-range"] == f"bytes */{size}"


# -- CSRF, login limits, sessions, passwords, headers ------------------------------------------------------


def test_state_changing_requests_without_the_csrf_token_are_refused(world: World) -> None:
    client = client_for(world.station)
    csrf = login(client, "custodian")
    verify = f"/api/clips/{world.clip_a}/verify"
    assert client.post(verify).status_code == 403
    assert client.post(verify, headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert client.post(f"/clips/{world.clip_a}/verify", data={"csrf_token": "forged"}).status_code == 403
    assert client.post(f"/clips/{world.clip_a}/verify", data={}).status_code == 403
    link = client.post(f"/api/cases/{world.case_normal}/links", json={"clip_id": world.clip_d, "reason": "x"})
    assert link.status_code == 403
    assert not events(world.station, "clip.verified")
    reasons = [json.loads(e.details)["reason"] for e in events(world.station, "access.denied")]
    assert reasons.count("csrf") == 5
    # the token of another session does not do either
    other = client_for(world.station)
    login(other, "supervisor")
    assert other.post(verify, headers={"X-CSRF-Token": csrf}).status_code == 403
    assert client.post(verify, headers={"X-CSRF-Token": csrf}).status_code == 200
    # login forms: double-submit token
    fresh = client_for(world.station)
    response = fresh.post("/login", data={"username": "custodian", "password": PASSWORD})
    assert response.status_code == 403
    response = fresh.post("/api/login", json={"username": "custodian", "password": PASSWORD})
    assert response.status_code == 403
    page = fresh.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    response = fresh.post(
        "/login",
        data={"username": "custodian", "password": PASSWORD, "csrf_token": token.group(1)},
        follow_redirects=False,
    )
    assert response.status_code == 303 and response.headers["location"] == "/dashboard"


def test_login_rate_limits_per_user_and_per_client_address(world: World) -> None:
    config = WebConfig(login_user_failures=5, login_client_failures=8, login_window_minutes=15)
    client = client_for(world.station, config=config)
    token = client.get("/api/csrf").json()["csrf_token"]

    def attempt(username: str, password: str) -> int:
        response = client.post(
            "/api/login", json={"username": username, "password": password}, headers={"X-CSRF-Token": token}
        )
        return response.status_code

    assert [attempt("custodian", "wrong password") for _ in range(5)] == [401] * 5
    assert attempt("custodian", PASSWORD) == 429  # locked even with the right password
    assert attempt("investigator", PASSWORD) == 200
    client.cookies.clear()
    client.cookies.set("evidence_login_csrf", token)
    assert [attempt("nobody-here", "x") for _ in range(3)] == [401] * 3  # 8 failures from this address
    assert attempt("approver", PASSWORD) == 429  # the address is limited now, whoever it names
    assert len(events(world.station, "auth.login_failed")) == 8
    assert len(events(world.station, "auth.login_rate_limited")) == 2
    assert json.loads(events(world.station, "auth.login_failed")[0].details) == {"reason": "bad_credentials"}
    assert len(events(world.station, "auth.login")) == 1


def test_sessions_expire_when_idle_and_after_their_lifetime(world: World) -> None:
    clock = FixedClock(datetime(2026, 11, 24, 8, 0, tzinfo=UTC))
    world.station.clock = clock
    config = WebConfig(session_idle_minutes=30, session_max_hours=2)
    client = client_for(world.station, config=config)
    login(client, "auditor")
    clock.now += timedelta(minutes=29)
    assert client.get("/api/me").status_code == 200
    clock.now += timedelta(minutes=31)
    assert client.get("/api/me").status_code == 401  # idle too long
    assert len(events(world.station, "auth.session_expired")) == 1
    assert client.get("/api/me").status_code == 401  # and it stays ended
    login(client, "auditor")
    for _ in range(5):  # active all along, but past the absolute lifetime
        clock.now += timedelta(minutes=25)
        response = client.get("/api/me")
    assert response.status_code == 401
    assert len(events(world.station, "auth.session_expired")) == 2
    csrf = login(client, "auditor")
    assert client.post("/api/logout", headers={"X-CSRF-Token": csrf}).status_code == 200
    assert client.get("/api/me").status_code == 401
    assert len(events(world.station, "auth.logout")) == 1
    assert len(events(world.station, "auth.login")) == 3


def test_passwords_are_stored_as_argon2_hashes_only(world: World) -> None:
    with world.station.engine.connect() as connection:
        hashes = list(connection.scalars(select(users.c.password_hash)))
    assert len(hashes) == len(Role) + 1
    assert all(h.startswith("$argon2id$") and PASSWORD not in h for h in hashes)
    assert len(set(hashes)) == len(hashes)  # salted


def test_security_headers_and_cookie_flags(world: World) -> None:
    client = client_for(world.station)
    login(client, "custodian")
    for path in (
        "/login",
        "/dashboard",
        "/api/me",
        "/static/app.css",
        f"/clips/{world.clip_a}/derivative/poster",
    ):
        headers = client.get(path).headers
        assert "default-src 'self'" in headers["content-security-policy"], path
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "script-src 'self'" in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert "strict-transport-security" not in headers  # plain HTTP here
    secure = client_for(world.station, https=True)
    token = secure.get("/api/csrf").json()["csrf_token"]
    response = secure.post(
        "/api/login", json={"username": "custodian", "password": PASSWORD}, headers={"X-CSRF-Token": token}
    )
    assert response.headers["strict-transport-security"].startswith("max-age=")
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=strict" in cookie


# -- the audit record of every look (R17) ------------------------------------------------------------------


def test_every_search_view_playback_and_download_is_an_audit_event(world: World) -> None:
    station = world.station
    client = client_for(station)
    csrf = login(client, "custodian")
    found = client.get("/api/clips", params={"officer": "1001"}).json()
    assert [hit["id"] for hit in found["items"]] == [world.clip_a]
    assert found["items"][0]["poster"] is True and found["items"][0]["cases"] == ["卫监-2026-001"]
    searched = events(station, "clip.searched", actor="web:custodian")
    assert len(searched) == 1
    assert json.loads(searched[0].details)["results"] == [world.clip_a]
    assert json.loads(searched[0].details)["filters"] == {"officer": "1001"}
    assert searched[0].source == "testclient"
    page = client.get("/search", params={"go": "1", "device": "DSJ-1"})
    assert page.status_code == 200 and f"/clips/{world.clip_a}/derivative/poster" in page.text
    assert len(events(station, "clip.searched", actor="web:custodian")) == 2

    detail = client.get(f"/api/clips/{world.clip_a}").json()
    assert len(events(station, "clip.viewed", object_id=str(world.clip_a))) == 1
    assert detail["verification"]["verified"] is None
    assert [d["kind"] for d in detail["derivatives"]] == ["proxy", "poster", "contact_sheet"]
    assert detail["links"][0]["case_number"] == "卫监-2026-001"
    html = client.get(f"/clips/{world.clip_a}")
    assert '<video id="player"' in html.text and "Range" not in html.text
    assert len(events(station, "clip.viewed", object_id=str(world.clip_a))) == 2

    client.get(f"/clips/{world.clip_a}/derivative/proxy", headers={"Range": "bytes=0-"})
    client.get(f"/clips/{world.clip_a}/derivative/proxy", headers={"Range": "bytes=5000-"})
    played = events(station, "clip.played", object_id=str(world.clip_a))
    assert len(played) == 1  # one event for the playback, not one per Range request
    assert played[0].actor == "web:custodian" and played[0].source == "testclient"

    response = client.post(
        f"/clips/{world.clip_a}/original", data={"csrf_token": csrf, "reason": "court file"}
    )
    original = io.BytesIO()
    with station.blobs.open(client_sha(station, world.clip_a)) as handle:
        original.write(handle.read())
    assert response.status_code == 200 and response.content == original.getvalue()
    assert response.headers["content-disposition"].startswith("attachment;")
    downloads = events(station, "clip.original_downloaded", object_id=str(world.clip_a))
    assert len(downloads) == 1 and json.loads(downloads[0].details)["reason"] == "court file"
    # a download without a reason is refused
    assert client.post(f"/clips/{world.clip_a}/original", data={"csrf_token": csrf}).status_code == 400

    # the chain of custody lists every event of the clip, in order
    custody = client.get(f"/api/clips/{world.clip_a}").json()["custody"]
    seqs = [e["seq"] for e in custody]
    assert seqs == sorted(seqs)
    actions = [e["action"] for e in custody]
    for action in ("clip.viewed", "clip.played", "clip.original_downloaded"):
        assert action in actions
    with station.engine.connect() as connection:
        all_for_clip = connection.scalar(
            select(func.count())
            .select_from(audit_events)
            .where(audit_events.c.object_type == "clip", audit_events.c.object_id == str(world.clip_a))
        )
    assert len(custody) == all_for_clip


def test_an_investigator_downloads_an_original_only_under_an_approved_export(world: World) -> None:
    station = world.station
    client = client_for(station)
    csrf = login(client, "investigator")
    assert (
        client.post(f"/clips/{world.clip_a}/original", data={"csrf_token": csrf, "reason": "x"}).status_code
        == 403
    )
    with station.transaction() as session:
        session.execute(
            insert(export_requests).values(
                requested_by="web:investigator",
                purpose="court",
                items=[{"clip_id": world.clip_a}],
                status="approved",
                valid_until=datetime.now(UTC) + timedelta(days=1),
                created_at=datetime.now(UTC),
            )
        )
    response = client.post(f"/clips/{world.clip_a}/original", data={"csrf_token": csrf, "reason": "court"})
    assert response.status_code == 200
    assert len(events(station, "clip.original_downloaded", actor="web:investigator")) == 1
    assert (
        client.post(f"/clips/{world.clip_d}/original", data={"csrf_token": csrf, "reason": "x"}).status_code
        == 403
    )


def test_verify_now_rehashes_the_blob_and_records_the_result(world: World) -> None:
    station = world.station
    client = client_for(station)
    csrf = login(client, "custodian")
    result = client.post(f"/api/clips/{world.clip_d}/verify", headers={"X-CSRF-Token": csrf}).json()
    assert result["ok"] is True
    path = station.blobs.path_for(client_sha(station, world.clip_d))  # type: ignore[attr-defined]
    path.chmod(0o600)
    path.write_bytes(b"tampered")
    result = client.post(f"/api/clips/{world.clip_d}/verify", headers={"X-CSRF-Token": csrf}).json()
    assert result["ok"] is False and result["problem"] == "altered"
    verified = events(station, "clip.verified", object_id=str(world.clip_d))
    assert [json.loads(e.details)["ok"] for e in verified] == [True, False]
    page = client.get(f"/clips/{world.clip_d}").text
    assert 'id="verified"' in page and "不一致" in page


# -- cases, supervision, statistics, audit browsing ----------------------------------------------------------


def test_case_page_manual_link_unlink_and_mark_as_evidence(world: World) -> None:
    station = world.station
    client = client_for(station)
    csrf = login(client, "custodian")
    page = client.get(f"/cases/{world.case_normal}")
    assert page.status_code == 200 and "DOC-1" in page.text and "clip-a.MP4" in page.text
    assert len(events(station, "case.viewed", object_id=str(world.case_normal))) == 1
    response = client.post(
        f"/api/cases/{world.case_normal}/links",
        json={"clip_id": world.clip_d, "reason": "seen on site", "document": "DOC-1"},
        headers={"X-CSRF-Token": csrf},
    )
    assert response.status_code == 200, response.text
    link_id = response.json()["link_id"]
    assert (
        client.post(
            f"/api/cases/{world.case_normal}/links/{link_id}/evidence",
            json={"reason": "shows the violation"},
            headers={"X-CSRF-Token": csrf},
        ).status_code
        == 200
    )
    assert (
        client.post(
            f"/api/cases/{world.case_normal}/links/{link_id}/unlink",
            json={"reason": "wrong clip"},
            headers={"X-CSRF-Token": csrf},
        ).status_code
        == 200
    )
    with station.engine.connect() as connection:
        row = connection.execute(select(clip_links).where(clip_links.c.id == link_id)).one()
    assert row.is_evidence and row.removed_at is not None and row.removed_by == "web:custodian"
    assert str(row.origin) == "manual" and "seen on site" in row.reason
    actions = [e.action for e in events(station, object_type="clip", object_id=str(world.clip_d))]
    assert {"clip.linked_manually", "clip.evidence_marked", "clip.unlinked_manually"} <= set(actions)
    linked = events(station, "clip.linked_manually", object_id=str(world.clip_d))[0]
    assert linked.actor == "web:custodian" and json.loads(linked.details)["reason"] == "seen on site"
    svg = client.get(f"/cases/{world.case_normal}/timeline.svg")
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert "<svg" in svg.text and "clip-a.MP4" in svg.text
    # a reason is required, and a hidden clip cannot be linked into a visible case
    assert (
        client.post(
            f"/api/cases/{world.case_normal}/links",
            json={"clip_id": world.clip_d, "reason": ""},
            headers={"X-CSRF-Token": csrf},
        ).status_code
        == 422
    )
    assert (
        client.post(
            f"/api/cases/{world.case_normal}/links",
            json={"clip_id": world.clip_b, "reason": "x"},
            headers={"X-CSRF-Token": csrf},
        ).status_code
        == 404
    )


def test_supervision_draws_are_reproducible_and_hold_clips_under_review(world: World) -> None:
    station = world.station
    client = client_for(station)
    csrf = login(client, "supervisor")
    body = {"kind": "clip", "size": 2, "seed": 424242, "reviewer": "supervisor"}
    first = client.post("/api/supervision/draws", json=body, headers={"X-CSRF-Token": csrf}).json()
    second = client.post("/api/supervision/draws", json=body, headers={"X-CSRF-Token": csrf}).json()
    sample = [i["clip_id"] for i in first["items"]]
    assert len(sample) == 2 and sample == [i["clip_id"] for i in second["items"]]
    # the population is what this supervisor may see: not clip_b, in U2's personal-privacy case
    assert first["seed"] == 424242 and first["population"] == 3
    assert world.clip_b not in sample
    redraw = client.get(f"/api/supervision/draws/{first['id']}/redraw").json()
    assert redraw["population_matches"] and redraw["sample_matches"]
    drawn = events(station, "supervision.drawn", object_id=str(first["id"]))
    assert json.loads(drawn[0].details)["seed"] == 424242
    with station.engine.connect() as connection:
        held = clips_under_review(connection, [world.clip_a, world.clip_b, world.clip_c, world.clip_d])
    assert set(sample) | {world.clip_d} <= held  # clip_d: the fixture's open item
    for item in first["items"] + second["items"]:
        outcome = {"outcome": "issues", "notes": "no announcement on camera"}
        response = client.post(
            f"/api/supervision/items/{item['id']}/review", json=outcome, headers={"X-CSRF-Token": csrf}
        )
        assert response.status_code == 200
    response = client.post(
        f"/api/supervision/items/{world.item_id}/review",
        json={"outcome": "pass"},
        headers={"X-CSRF-Token": csrf},
    )
    assert response.status_code == 200
    with station.engine.connect() as connection:
        assert (
            clips_under_review(connection, [world.clip_a, world.clip_b, world.clip_c, world.clip_d]) == set()
        )
    # a case under review holds every clip linked to it
    case_draw = client.post(
        "/api/supervision/draws",
        json={"kind": "case", "size": 5, "seed": 1, "unit": "U1"},
        headers={"X-CSRF-Token": csrf},
    ).json()
    assert {i["case_id"] for i in case_draw["items"]} == {world.case_normal, world.case_state_u1}
    with station.engine.connect() as connection:
        assert clips_under_review(connection, [world.clip_a, world.clip_b, world.clip_c]) == {
            world.clip_a,
            world.clip_c,
        }
    reviewed = events(station, "supervision.reviewed")
    assert len(reviewed) == 5 and reviewed[0].object_type == "clip"


def test_a_review_assigned_to_someone_else_is_refused(world: World) -> None:
    station = world.station
    create_user(station, username="supervisor2", password=PASSWORD, role="supervisor", unit="U1", actor="t")
    client = client_for(station)
    csrf = login(client, "supervisor2")
    response = client.post(
        f"/api/supervision/items/{world.item_id}/review",
        json={"outcome": "pass"},
        headers={"X-CSRF-Token": csrf},
    )
    assert response.status_code == 403
    assert (
        json.loads(events(station, "access.denied")[-1].details)["reason"] == "assigned to another reviewer"
    )


def test_annual_statistics_page_api_and_csv(world: World) -> None:
    client = client_for(world.station)
    login(client, "approver")
    stats = client.get("/api/stats", params={"year": 2026}).json()
    rows = {(r["unit"], r["month"]): r for r in stats["rows"]}
    march = rows[("U1", "3")]
    assert march["cases_total"] == 2 and march["cases_by_category"]["行政检查"] == 2
    assert march["documents"] == 1 and march["documents_needing_video"] == 1
    assert march["documents_with_footage"] == 1 and march["coverage_rate"] == 1.0
    assert march["footage_hours"] == pytest.approx(10 / 60, abs=0.005)  # clips a and c, 5 minutes each
    assert rows[("U2", "3")]["footage_hours"] == pytest.approx(10 / 60, abs=0.005)
    assert rows[("U1", "total")]["cases_total"] == 2
    csv_text = client.get("/stats.csv", params={"year": 2026}).text.lstrip("\ufeff")
    header = csv_text.splitlines()[0].split(",")
    assert header[:3] == ["unit", "month", "cases_total"] and "coverage_rate" in header
    assert any(line.startswith("U1,3,2,") for line in csv_text.splitlines())
    assert client.get("/stats", params={"year": 2026}).status_code == 200
    assert len(events(world.station, "stats.viewed")) == 3


def test_the_auditor_browses_and_filters_the_audit_log(world: World) -> None:
    station = world.station
    custodian = client_for(station)
    login(custodian, "custodian")
    custodian.get(f"/api/clips/{world.clip_a}")
    auditor = client_for(station)
    login(auditor, "auditor")
    result = auditor.get("/api/audit", params={"actor": "web:custodian"}).json()
    assert {e["action"] for e in result["events"]} == {"auth.login", "clip.viewed"}
    result = auditor.get("/api/audit", params={"object_type": "clip", "object_id": str(world.clip_a)}).json()
    assert result["events"][0]["action"] == "clip.viewed"
    assert auditor.get("/api/audit", params={"action": "auth."}).json()["events"][0]["action"] == "auth.login"
    since = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert auditor.get("/api/audit", params={"since": since}).json()["events"] == []
    page = auditor.get("/audit", params={"actor": "web:custodian"})
    assert page.status_code == 200 and "clip.viewed" in page.text
    paged = auditor.get("/api/audit", params={"limit": 3}).json()
    assert len(paged["events"]) == 3 and paged["next_before_seq"] == paged["events"][-1]["seq"]
    older = auditor.get("/api/audit", params={"limit": 3, "before_seq": paged["next_before_seq"]}).json()
    assert older["events"][0]["seq"] < paged["events"][-1]["seq"]


# -- the UI language, the message catalogue, the dashboard ------------------------------------------------


def test_the_ui_is_chinese_by_default_and_switches_to_english(world: World) -> None:
    client = client_for(world.station)
    login(client, "custodian")
    assert "工作台" in client.get("/dashboard").text
    response = client.get("/lang/en", params={"next": "/dashboard"})
    assert response.status_code == 200 and "Dashboard" in response.text and "工作台" not in response.text
    assert (
        client.get("/lang/en", params={"next": "https://evil.example/"}, follow_redirects=False).headers[
            "location"
        ]
        == "/"
    )
    assert (
        client.get("/lang/en", params={"next": "//evil.example/"}, follow_redirects=False).headers["location"]
        == "/"
    )


def test_message_catalogues_are_complete_and_templates_hold_no_text() -> None:
    from web.i18n import EN, ZH

    assert set(ZH) == set(EN)
    templates = Path(REPO / "web" / "templates").glob("*.html")
    for template in templates:
        text = template.read_text()
        text = re.sub(r"{#.*?#}|{%.*?%}|{{.*?}}", " ", text, flags=re.S)
        text = re.sub(r"<[^>]*>", " ", text)
        leftover = re.sub(r"[\s#·:%()|–→\-,.]+", "", text)
        assert leftover == "", (template.name, leftover[:80])
        used = set(re.findall(r"t\('([a-z_.A-Z0-9-]+)'\)", template.read_text()))
        assert used <= set(ZH), (template.name, used - set(ZH))


def test_the_dashboard_shows_processing_and_transfers(world: World) -> None:
    client = client_for(world.station)
    login(client, "custodian")
    data = client.get("/api/dashboard").json()
    # counted: what is not confidential to the user (R13): not U2's private clip_b nor U1's secret clip_c
    assert data["processing"]["clips_by_status"] == {"ready": 2}
    other_unit = client_for(world.station)
    login(other_unit, "custodian-u2")
    assert other_unit.get("/api/dashboard").json()["processing"]["clips_by_status"] == {"ready": 3}
    assert data["retention_runs"] == [] and data["late_handovers"]["count_30d"] == 0
    assert client.get("/dashboard").status_code == 200


# -- the command line ---------------------------------------------------------------------------------------


def test_users_and_clips_search_on_the_command_line(world: World, station_env: dict[str, str]) -> None:
    done = run_cli(
        ["users", "add", "chief", "--role", "admin", "--unit", "U1", "--password-stdin"],
        station_env,
        input=PASSWORD + "\n",
    )
    assert done.code == 0, done.stderr
    weak = run_cli(
        ["users", "add", "weak", "--role", "admin", "--password-stdin"], station_env, input="short\n"
    )
    assert weak.code == 2 and "at least" in weak.stderr
    listed = json.loads(run_cli(["users", "list", "--json"], station_env).stdout)["users"]
    assert {u["username"] for u in listed} >= {"chief", "officer", "custodian-u2"}
    assert run_cli(["users", "set-role", "chief", "auditor"], station_env).code == 0
    assert run_cli(["users", "disable", "chief"], station_env).code == 0
    client = client_for(world.station)
    token = client.get("/api/csrf").json()["csrf_token"]
    refused = client.post(
        "/api/login", json={"username": "chief", "password": PASSWORD}, headers={"X-CSRF-Token": token}
    )
    assert refused.status_code == 401
    assert run_cli(["users", "disable", "chief", "--enable"], station_env).code == 0
    reset = run_cli(
        ["users", "reset-password", "chief", "--password-stdin"], station_env, input="another long one\n"
    )
    assert reset.code == 0
    assert login(client, "chief", "another long one")
    actions = [e.action for e in events(world.station, object_type="user", object_id="chief")]
    assert actions[:5] == [
        "user.created",
        "user.role_changed",
        "user.disabled",
        "auth.login_failed",
        "user.enabled",
    ]
    found = run_cli(["clips", "search", "--officer", "2002", "--json"], station_env)
    assert found.code == 0, found.stderr
    ids = [hit["id"] for hit in json.loads(found.stdout)["items"]]
    assert ids == [world.clip_d, world.clip_b]  # newest first
    prefix = client_sha(world.station, world.clip_b)[:6]
    found = json.loads(run_cli(["clips", "search", "--sha256", prefix, "--json"], station_env).stdout)
    assert world.clip_b in [hit["id"] for hit in found["items"]]
    assert run_cli(["clips", "search", "--sha256", "xyz"], station_env).code == 2
    assert events(world.station, "clip.searched")[-1].actor.startswith("cli:")
