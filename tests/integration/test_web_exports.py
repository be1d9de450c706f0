"""Certified exports in the browser and the API (issue 19 item 5; R11, R12, R13, R17): an investigator
requests, an approver (never the requester) approves or rejects with a reason, the requester builds
and downloads the package, which verifies offline; the approver's dashboard says what waits; a clip or
an export hidden from the user answers 404 like a missing one. The web calls the same workflow as the
CLI, so the refusals and the audit record are the CLI's."""

from __future__ import annotations

import json
import re
import zipfile
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select, update

from evidence_store.accounts import set_role
from evidence_store.db.tables import export_requests, users
from evidence_store.domain.model import ExportRequest, ExportStatus
from evidence_store.export.verify import verify_package
from tests.integration import test_web_access as access
from tests.integration.test_web_access import World, client_for, events, login

world = access.world  # the access tests' station: every role in U1, clips a-d, normal and secret cases


def _status(world: World, export_id: int) -> str:
    with world.station.engine.connect() as connection:
        return str(
            connection.scalar(select(export_requests.c.status).where(export_requests.c.id == export_id))
        )


def _count(world: World) -> int:
    with world.station.engine.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(export_requests)) or 0)


def _page_request(world: World, client: object, csrf: str, **form: str) -> int:
    response = client.post(  # type: ignore[attr-defined]
        "/exports",
        data={"csrf_token": csrf, "clip_id": str(world.clip_a), "purpose": "court hearing", **form},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text[:500]
    match = re.fullmatch(r"/exports/(\d+)", response.headers["location"])
    assert match, response.headers["location"]
    return int(match.group(1))


def test_request_approve_build_and_download_in_the_browser_verifies_offline(
    world: World, tmp_path: Path
) -> None:
    with world.station.transaction() as session:  # people have names; the records name their logins
        for login_name, name in (("investigator", "钱调查"), ("approver", "孙审批")):
            session.execute(update(users).where(users.c.username == login_name).values(display_name=name))
    investigator, approver = client_for(world.station), client_for(world.station)
    i_csrf, a_csrf = login(investigator, "investigator"), login(approver, "approver")

    # the request form is on the clip page and on the case page
    assert 'action="/exports"' in investigator.get(f"/clips/{world.clip_a}").text
    case_page = investigator.get(f"/cases/{world.case_normal}").text
    assert 'action="/exports"' in case_page and f'value="{world.case_normal}"' in case_page

    export_id = _page_request(world, investigator, i_csrf, case_id=str(world.case_normal), recipient="court")
    assert _status(world, export_id) == "pending"
    listed = investigator.get("/exports")
    assert listed.status_code == 200 and f'href="/exports/{export_id}"' in listed.text

    # the approver is told that a request waits
    dashboard = approver.get("/dashboard").text
    assert re.search(r'id="exports-waiting-count">\s*1\s*<', dashboard), dashboard
    assert f'href="/exports/{export_id}"' in dashboard
    detail = approver.get(f"/exports/{export_id}").text
    assert f'action="/exports/{export_id}/approve"' in detail and "court hearing" in detail
    # the investigator's page offers no decision
    assert "/approve" not in investigator.get(f"/exports/{export_id}").text

    approved = approver.post(
        f"/exports/{export_id}/approve", data={"csrf_token": a_csrf, "reason": "ok"}, follow_redirects=False
    )
    assert approved.status_code == 303 and _status(world, export_id) == "approved"
    assert not re.search(r'id="exports-waiting-count">\s*1\s*<', approver.get("/dashboard").text)

    built = investigator.post(
        f"/exports/{export_id}/build", data={"csrf_token": i_csrf}, follow_redirects=False
    )
    assert built.status_code == 303 and _status(world, export_id) == "built"
    assert f'href="/exports/{export_id}/package"' in investigator.get(f"/exports/{export_id}").text

    package = investigator.get(f"/exports/{export_id}/package")
    assert package.status_code == 200, package.text[:300]
    assert package.headers["content-type"] == "application/zip"
    assert f"export-{export_id:06d}.zip" in package.headers["content-disposition"]
    saved = tmp_path / "package.zip"
    saved.write_bytes(package.content)
    verdict = verify_package(saved)
    assert verdict.ok, verdict.as_dict()
    # the note names the station users by their names, with the logins the records use (issue 19)
    with zipfile.ZipFile(saved) as archive:
        note = archive.read(next(n for n in archive.namelist() if n.endswith("/note.html"))).decode()
    names = {"investigator": "钱调查", "approver": "孙审批"}
    assert f"{names['investigator']} (investigator)" in note and f"{names['approver']} (approver)" in note

    # the same audit as the CLI's workflow (actor: the station user), plus the download (R12, R17)
    station = world.station
    assert len(events(station, "export.requested", actor="investigator")) == 1
    assert len(events(station, "export.approved", actor="approver")) == 1
    assert len(events(station, "export.built", actor="investigator")) == 1
    # from the web, each step names where it came from, as the web's own events do (R17)
    steps = ("export.requested", "export.approved", "export.built", "export.downloaded")
    assert {e.source for action in steps for e in events(station, action)} == {"testclient"}
    downloads = events(station, "export.downloaded", actor="web:investigator")
    assert len(downloads) == 1 and json.loads(downloads[0].details)["manifest_sha256"]
    # only the requester takes the copy: the approver may see the export but not download it
    assert approver.get(f"/exports/{export_id}/package").status_code == 403


def test_the_api_requests_a_segment_approves_and_builds(world: World, tmp_path: Path) -> None:
    investigator, approver = client_for(world.station), client_for(world.station)
    i_csrf, a_csrf = login(investigator, "investigator"), login(approver, "approver")
    created = investigator.post(
        "/api/exports",
        json={"items": [{"clip_id": world.clip_d}], "purpose": "inquiry", "recipient": "bureau"},
        headers={"X-CSRF-Token": i_csrf},
    )
    assert created.status_code == 200, created.text
    export_id = created.json()["id"]
    assert created.json()["status"] == "pending"
    assert [e["id"] for e in approver.get("/api/exports?status=pending").json()["exports"]] == [export_id]
    decided = approver.post(
        f"/api/exports/{export_id}/approve", json={"reason": ""}, headers={"X-CSRF-Token": a_csrf}
    )
    assert decided.status_code == 200 and decided.json()["status"] == "approved", decided.text
    built = investigator.post(f"/api/exports/{export_id}/build", headers={"X-CSRF-Token": i_csrf})
    assert built.status_code == 200 and built.json()["status"] == "built", built.text
    again = investigator.post(f"/api/exports/{export_id}/build", headers={"X-CSRF-Token": i_csrf})
    assert again.status_code == 409 and "already built" in again.json()["error"]
    package = investigator.get(f"/api/exports/{export_id}/package")
    (tmp_path / "p.zip").write_bytes(package.content)
    assert package.status_code == 200 and verify_package(tmp_path / "p.zip").ok

    # a segment, as the CLI's ID@START-END: stored on the request's item
    segment = investigator.post(
        "/api/exports",
        json={"items": [{"clip_id": world.clip_a, "start_s": 1, "end_s": 2.5}], "purpose": "short"},
        headers={"X-CSRF-Token": i_csrf},
    )
    assert segment.status_code == 200, segment.text
    assert segment.json()["items"] == [
        {"clip_id": world.clip_a, "start_s": 1.0, "end_s": 2.5, "cut": "exact"}
    ]
    page_segment = _page_request(world, investigator, i_csrf, segment_start="00:01", segment_end="00:02")
    assert investigator.get(f"/api/exports/{page_segment}").json()["items"][0]["end_s"] == 2.0


def test_nobody_approves_their_own_request(world: World) -> None:
    station = world.station
    investigator = client_for(station)
    csrf = login(investigator, "investigator")
    export_id = _page_request(world, investigator, csrf)
    # an investigator has no decision to make at all (R11): 403, audited as access.denied
    refused = investigator.post(
        f"/exports/{export_id}/approve", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert refused.status_code == 403
    # the same person, later made an approver, still may not decide their own request (R12)
    set_role(station, "investigator", "approver", actor="test")
    csrf = login(investigator, "investigator")
    page = investigator.post(
        f"/exports/{export_id}/approve", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert page.status_code == 409 and "nobody decides their own request" in page.text
    api = investigator.post(f"/api/exports/{export_id}/approve", json={}, headers={"X-CSRF-Token": csrf})
    assert api.status_code == 409 and "nobody decides their own request" in api.json()["error"]
    assert _status(world, export_id) == "pending"
    refusals = events(station, "export.refused", actor="investigator", object_id=str(export_id))
    assert [json.loads(r.details)["reason"] for r in refusals] == ["nobody decides their own request"] * 2


def test_a_rejection_states_its_reason_and_cannot_be_built(world: World) -> None:
    investigator, approver = client_for(world.station), client_for(world.station)
    i_csrf, a_csrf = login(investigator, "investigator"), login(approver, "approver")
    export_id = _page_request(world, investigator, i_csrf)
    blank = approver.post(
        f"/exports/{export_id}/reject", data={"csrf_token": a_csrf, "reason": "  "}, follow_redirects=False
    )
    assert blank.status_code == 303 and "error=" in blank.headers["location"]
    assert _status(world, export_id) == "pending"
    assert (
        approver.post(
            f"/api/exports/{export_id}/reject", json={"reason": ""}, headers={"X-CSRF-Token": a_csrf}
        ).status_code
        == 422
    )
    rejected = approver.post(
        f"/exports/{export_id}/reject",
        data={"csrf_token": a_csrf, "reason": "purpose too vague"},
        follow_redirects=False,
    )
    assert rejected.status_code == 303 and _status(world, export_id) == "rejected"
    detail = investigator.get(f"/exports/{export_id}").text
    assert "purpose too vague" in detail and f"/exports/{export_id}/build" not in detail
    build = investigator.post(f"/api/exports/{export_id}/build", headers={"X-CSRF-Token": i_csrf})
    assert build.status_code == 409 and "rejected" in build.json()["error"]
    assert len(events(world.station, "export.rejected", actor="approver")) == 1


def test_a_hidden_clip_or_export_answers_like_a_missing_one(world: World) -> None:
    station = world.station
    investigator = client_for(station)
    csrf = login(investigator, "investigator")
    before = _count(world)

    def page_answer(clip_id: int) -> tuple[int, str]:
        response = investigator.post(
            "/exports",
            data={"csrf_token": csrf, "clip_id": str(clip_id), "purpose": "x"},
            follow_redirects=False,
        )
        return response.status_code, response.text

    def api_answer(clip_id: int) -> tuple[int, object]:
        response = investigator.post(
            "/api/exports",
            json={"items": [{"clip_id": clip_id}], "purpose": "x"},
            headers={"X-CSRF-Token": csrf},
        )
        return response.status_code, response.json()

    # clip_c is linked to U1's state-secret case: not the investigator's to see (R13)
    assert page_answer(world.clip_c) == page_answer(999_999) and page_answer(999_999)[0] == 404
    assert api_answer(world.clip_c) == api_answer(999_999) and api_answer(999_999)[0] == 404
    assert _count(world) == before
    hidden_case = investigator.post(
        "/exports",
        data={
            "csrf_token": csrf,
            "clip_id": str(world.clip_a),
            "purpose": "x",
            "case_id": str(world.case_state_u1),
        },
        follow_redirects=False,
    )
    assert hidden_case.status_code == 404 and _count(world) == before

    # an export naming the secret clip (requested before the clip was linked to the secret case)
    with station.transaction() as session:
        hidden = ExportRequest(
            requested_by="investigator",
            purpose="secret-purpose-zq",
            items=[{"clip_id": world.clip_c}],
            status=ExportStatus.PENDING,
            created_at=datetime.now(UTC),
        )
        session.add(hidden)
        session.flush()
        hidden_id = hidden.id
    for path in (f"/exports/{hidden_id}", f"/api/exports/{hidden_id}", f"/exports/{hidden_id}/package"):
        missing = path.replace(str(hidden_id), "999999")
        assert investigator.get(path).status_code == investigator.get(missing).status_code == 404
    assert "secret-purpose-zq" not in investigator.get("/exports").text
    assert "secret-purpose-zq" not in investigator.get("/api/exports").text
    # the approver of U1 may see the secret case: the request is listed and counted for them
    approver = client_for(station)
    login(approver, "approver")
    assert "secret-purpose-zq" in approver.get("/exports").text
    # an approver of another unit is not told of it
    set_role(station, "custodian-u2", "approver", actor="test")
    other = client_for(station)
    login(other, "custodian-u2")
    assert other.get(f"/exports/{hidden_id}").status_code == 404
    assert "secret-purpose-zq" not in other.get("/dashboard").text
    denied = events(station, "access.denied")
    assert any(json.loads(d.details)["reason"] == "confidential" for d in denied)
