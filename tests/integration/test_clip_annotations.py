"""Markers and tags (issue 19 item 3) through the web, on both databases: added on the clip page and by
the API, audited with what they state, found by search (only on clips the searcher may see), drawn on
the case timeline, carried into an export's provenance note; bad input is refused and writes nothing."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

from sqlalchemy import func, select, update

from evidence_store.db.tables import clip_markers, clip_tags, clips
from evidence_store.domain.model import ClipStatus
from evidence_store.export.verify import verify_package
from tests.integration import test_web_access as access
from tests.integration.test_web_access import World, client_for, events, login

world = access.world

NOTE = "当事人拒绝在笔录上签字"


def _count(world: World, table: object) -> int:
    with world.station.engine.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(table)) or 0)  # type: ignore[arg-type]


def test_a_marker_and_a_tag_added_on_the_clip_page_are_audited_found_and_drawn(world: World) -> None:
    custodian = client_for(world.station)
    csrf = login(custodian, "custodian")
    added = custodian.post(
        f"/clips/{world.clip_a}/markers",
        data={"csrf_token": csrf, "at": "0:01.5", "note": f"  {NOTE}  "},
        follow_redirects=False,
    )
    assert added.status_code == 303 and added.headers["location"].endswith("#markers")
    tagged = custodian.post(
        f"/clips/{world.clip_a}/tags",
        data={"csrf_token": csrf, "tag": " Kitchen  Hygiene "},
        follow_redirects=False,
    )
    assert tagged.status_code == 303

    page = custodian.get(f"/clips/{world.clip_a}").text
    assert NOTE in page and "0:01.5" in page and 'data-offset="1.5"' in page
    assert "kitchen hygiene" in page and "/search?go=1&amp;tag=kitchen%20hygiene" in page

    marker_events = events(world.station, "clip.marker_added", object_id=str(world.clip_a))
    assert len(marker_events) == 1 and marker_events[0].actor == "web:custodian"
    details = json.loads(marker_events[0].details)
    assert details["note"] == NOTE and details["offset_s"] == 1.5 and len(details["sha256"]) == 64
    assert json.loads(events(world.station, "clip.tag_added")[0].details)["tag"] == "kitchen hygiene"

    # search by tag and by words of a note, page and API
    for params in ({"tag": "KITCHEN hygiene"}, {"note": "拒绝在笔录"}):
        hits = custodian.get("/api/clips", params=params).json()["items"]
        assert [h["id"] for h in hits] == [world.clip_a], params
        assert hits[0]["tags"] == ["kitchen hygiene"]
        assert f'data-clip-id="{world.clip_a}"' in custodian.get("/search", params={"go": 1, **params}).text
    assert custodian.get("/api/clips", params={"note": "100%"}).json()["items"] == []  # LIKE's % is literal

    # the case timeline shows the marker on the clip's bar
    svg = custodian.get(f"/cases/{world.case_normal}/timeline.svg").text
    assert svg.count('class="marker"') == 1 and NOTE in svg


def test_a_marker_on_a_clip_the_searcher_may_not_see_is_not_found(world: World) -> None:
    supervisor = client_for(world.station)  # cleared for U1's state secrets
    s_csrf = login(supervisor, "supervisor")
    response = supervisor.post(
        f"/api/clips/{world.clip_c}/markers",
        json={"at": "3", "note": "secret-marker-word"},
        headers={"X-CSRF-Token": s_csrf},
    )
    assert response.status_code == 200, response.text
    custodian = client_for(world.station)
    login(custodian, "custodian")
    assert custodian.get("/api/clips", params={"note": "secret-marker-word"}).json()["items"] == []
    assert [
        h["id"] for h in supervisor.get("/api/clips", params={"note": "secret-marker-word"}).json()["items"]
    ] == [world.clip_c]
    # nor can the custodian annotate it: hidden answers as missing, and nothing is written
    before = _count(world, clip_markers)
    c_csrf = login(custodian, "custodian")
    hidden = custodian.post(
        f"/api/clips/{world.clip_c}/markers", json={"at": "1", "note": "x"}, headers={"X-CSRF-Token": c_csrf}
    )
    assert hidden.status_code == 404 and _count(world, clip_markers) == before


def test_bad_markers_and_tags_are_refused_and_write_nothing(world: World) -> None:
    investigator = client_for(world.station)
    csrf = login(investigator, "investigator")
    headers = {"X-CSRF-Token": csrf}
    with world.station.engine.connect() as connection:
        duration = connection.scalar(select(clips.c.duration_s).where(clips.c.id == world.clip_a))
    assert duration is not None
    before = (_count(world, clip_markers), _count(world, clip_tags))
    late = investigator.post(
        f"/api/clips/{world.clip_a}/markers",
        json={"at": str(int(duration) + 60), "note": "late"},
        headers=headers,
    )
    assert late.status_code == 409 and "after its end" in late.json()["error"]  # the clip's length decides
    for body in (
        {"at": "-1", "note": "before the start"},
        {"at": "ten", "note": "no time"},
        {"at": "1", "note": "   "},
        {"at": "1", "note": "x", "colour": "red"},
    ):
        response = investigator.post(f"/api/clips/{world.clip_a}/markers", json=body, headers=headers)
        assert response.status_code in (400, 422), (body, response.status_code)
    for tag in ("a,b", "a，b", "x" * 41, "   ", "bell\x07"):
        response = investigator.post(f"/api/clips/{world.clip_a}/tags", json={"tag": tag}, headers=headers)
        assert response.status_code in (400, 422), tag
    page = investigator.post(
        f"/clips/{world.clip_a}/markers", data={"csrf_token": csrf, "at": "99999", "note": "late"}
    )
    assert page.status_code == 400 and 'id="clip-error"' in page.text and 'id="marker-form"' in page.text
    assert (_count(world, clip_markers), _count(world, clip_tags)) == before
    assert events(world.station, "clip.marker_added") == []

    # a deleted clip (retention) takes no new marker
    with world.station.transaction() as session:
        session.execute(update(clips).where(clips.c.id == world.clip_d).values(status=ClipStatus.DELETED))
    gone = investigator.post(f"/api/clips/{world.clip_d}/tags", json={"tag": "late"}, headers=headers)
    assert gone.status_code == 409


def test_a_removed_marker_stays_on_record_and_leaves_the_page(world: World) -> None:
    custodian = client_for(world.station)
    csrf = login(custodian, "custodian")
    headers = {"X-CSRF-Token": csrf}
    marker_id = custodian.post(
        f"/api/clips/{world.clip_a}/markers", json={"at": "4", "note": "to be removed"}, headers=headers
    ).json()["marker_id"]
    removed = custodian.post(
        f"/clips/{world.clip_a}/markers/{marker_id}/remove", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert removed.status_code == 303
    page = custodian.get(f"/clips/{world.clip_a}").text
    markers = re.search(r'<section id="markers">.*?</section>', page, re.S)
    assert markers is not None and "to be removed" not in markers.group(0)
    assert 'id="no-markers"' in markers.group(0) and "marker-list" not in markers.group(0)
    with world.station.engine.connect() as connection:
        row = connection.execute(select(clip_markers).where(clip_markers.c.id == marker_id)).one()
    assert row.removed_by == "web:custodian" and row.note == "to be removed"
    assert len(events(world.station, "clip.marker_removed")) == 1
    again = custodian.post(f"/api/clips/{world.clip_a}/markers/{marker_id}/remove", headers=headers)
    assert again.status_code == 409
    assert custodian.get("/api/clips", params={"note": "to be removed"}).json()["items"] == []


def test_markers_and_tags_travel_into_the_export_note(world: World, tmp_path: Path) -> None:
    investigator, approver = client_for(world.station), client_for(world.station)
    i_csrf, a_csrf = login(investigator, "investigator"), login(approver, "approver")
    headers = {"X-CSRF-Token": i_csrf}
    investigator.post(f"/api/clips/{world.clip_a}/markers", json={"at": "2.5", "note": NOTE}, headers=headers)
    investigator.post(f"/api/clips/{world.clip_a}/tags", json={"tag": "后厨"}, headers=headers)
    created = investigator.post(
        "/api/exports", json={"items": [{"clip_id": world.clip_a}], "purpose": "court"}, headers=headers
    )
    export_id = created.json()["id"]
    approved = approver.post(
        f"/api/exports/{export_id}/approve", json={"reason": "ok"}, headers={"X-CSRF-Token": a_csrf}
    )
    assert approved.status_code == 200, approved.text
    assert investigator.post(f"/api/exports/{export_id}/build", headers=headers).status_code == 200
    package = tmp_path / "package.zip"
    package.write_bytes(investigator.get(f"/api/exports/{export_id}/package").content)
    assert verify_package(package).ok
    with zipfile.ZipFile(package) as archive:
        names = archive.namelist()
        note = archive.read(next(n for n in names if n.endswith("/note.html"))).decode()
        manifest = json.loads(archive.read(next(n for n in names if n.endswith("manifest.json"))))
    clip_facts = json.dumps(manifest, ensure_ascii=False)
    assert NOTE in clip_facts and "后厨" in clip_facts
    assert NOTE in note and "0:00:02.5" in note and "后厨" in note
    assert re.search(r"investigator", note)
