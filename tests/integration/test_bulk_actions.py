"""Bulk actions from the search results (issue 19 item 4), on both databases: one action and one reason
for many clips, each clip audited as if acted on alone, refused per clip where the user may not act
(a hidden clip as a missing one, with the refusal on record), a role without the action refused whole."""

from __future__ import annotations

import json

from sqlalchemy import select

from evidence_store.db.tables import clip_links, clip_tags, export_requests, legal_holds
from tests.integration import test_web_access as access
from tests.integration.test_web_access import World, client_for, events, login

world = access.world

MISSING = 999_999


def _bulk(client: object, csrf: str, **body: object) -> dict:  # type: ignore[type-arg]
    response = client.post("/api/clips/bulk", json=body, headers={"X-CSRF-Token": csrf})  # type: ignore[attr-defined]
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _outcomes(result: dict) -> dict[int, bool]:  # type: ignore[type-arg]
    return {o["clip_id"]: o["done"] for o in result["outcomes"]}


def test_tagging_many_clips_is_done_per_clip_and_a_hidden_one_is_refused_as_missing(world: World) -> None:
    custodian = client_for(world.station)
    csrf = login(custodian, "custodian")
    ids = [world.clip_a, world.clip_c, world.clip_d, MISSING]  # clip_c: U1's state secret, hidden
    denials_before = len(events(world.station, "access.denied", actor="web:custodian"))
    result = _bulk(custodian, csrf, action="tag", clip_ids=ids, reason="重点核查", tag="Batch 7")
    assert _outcomes(result) == {world.clip_a: True, world.clip_c: False, world.clip_d: True, MISSING: False}
    refused = {o["clip_id"]: o["message"] for o in result["outcomes"] if not o["done"]}
    assert refused[world.clip_c] == refused[MISSING]  # hidden answers exactly like missing (R13)
    assert result["done"] == 2 and result["refused"] == 2
    with world.station.engine.connect() as connection:
        tagged = set(connection.scalars(select(clip_tags.c.clip_id).where(clip_tags.c.tag == "batch 7")))
    assert tagged == {world.clip_a, world.clip_d}
    added = events(world.station, "clip.tag_added")
    assert {int(e.object_id) for e in added} == tagged
    assert all(json.loads(e.details)["reason"] == "重点核查" for e in added)
    # each refusal of a hidden or missing clip is on the audit record, naming the clip
    denials = events(world.station, "access.denied", actor="web:custodian")[denials_before:]
    assert {d.object_id for d in denials} == {str(world.clip_c), str(MISSING)}


def test_holds_placed_and_released_in_bulk(world: World) -> None:
    custodian = client_for(world.station)
    csrf = login(custodian, "custodian")
    placed = _bulk(
        custodian, csrf, action="hold", clip_ids=[world.clip_a, world.clip_d], reason="复议期间保全"
    )
    assert _outcomes(placed) == {world.clip_a: True, world.clip_d: True}
    with world.station.engine.connect() as connection:
        active = set(
            connection.scalars(select(legal_holds.c.clip_id).where(legal_holds.c.released_at.is_(None)))
        )
    assert active == {world.clip_a, world.clip_d}
    assert len(events(world.station, "hold.placed")) == 2
    released = _bulk(custodian, csrf, action="release", clip_ids=[world.clip_a], reason="复议结束")
    assert _outcomes(released) == {world.clip_a: True}
    again = _bulk(custodian, csrf, action="release", clip_ids=[world.clip_a], reason="again")
    assert _outcomes(again) == {world.clip_a: False} and "no hold" in again["outcomes"][0]["message"]
    assert len(events(world.station, "hold.released")) == 1


def test_linking_many_clips_to_a_case_and_one_export_request(world: World) -> None:
    investigator = client_for(world.station)
    csrf = login(investigator, "investigator")
    with world.station.engine.connect() as connection:
        from evidence_store.db.tables import cases

        number = connection.scalar(select(cases.c.number).where(cases.c.id == world.case_normal))
        secret = connection.scalar(select(cases.c.number).where(cases.c.id == world.case_state_u1))
    linked = _bulk(
        investigator,
        csrf,
        action="link",
        clip_ids=[world.clip_d, world.clip_b],
        reason="同一次检查",
        case_number=number,
    )
    outcomes = _outcomes(linked)
    assert outcomes[world.clip_d] is True
    assert outcomes[world.clip_b] is False  # U2's private clip: refused as missing, the other linked
    with world.station.engine.connect() as connection:
        assert connection.scalar(
            select(clip_links.c.id).where(
                clip_links.c.clip_id == world.clip_d,
                clip_links.c.case_id == world.case_normal,
                clip_links.c.removed_at.is_(None),
            )
        )
    # a case the investigator may not see is refused as a whole, as a missing one
    hidden_case = investigator.post(
        "/api/clips/bulk",
        json={"action": "link", "clip_ids": [world.clip_d], "reason": "x", "case_number": secret},
        headers={"X-CSRF-Token": csrf},
    )
    assert hidden_case.status_code == 404

    exported = _bulk(
        investigator, csrf, action="export", clip_ids=[world.clip_a, world.clip_d], reason="法院调取"
    )
    assert set(_outcomes(exported).values()) == {True}
    with world.station.engine.connect() as connection:
        requests = connection.execute(select(export_requests)).all()
    assert len(requests) == 1 and requests[0].purpose == "法院调取"
    assert sorted(item["clip_id"] for item in requests[0].items) == sorted([world.clip_a, world.clip_d])


def test_a_role_without_the_action_is_refused_whole_and_bad_requests_write_nothing(world: World) -> None:
    approver = client_for(world.station)
    csrf = login(approver, "approver")
    refused = approver.post(
        "/api/clips/bulk",
        json={"action": "tag", "clip_ids": [world.clip_a], "reason": "x", "tag": "t"},
        headers={"X-CSRF-Token": csrf},
    )
    assert refused.status_code == 403
    custodian = client_for(world.station)
    c_csrf = login(custodian, "custodian")
    for body in (
        {"action": "tag", "clip_ids": [], "reason": "x", "tag": "t"},
        {"action": "tag", "clip_ids": [world.clip_a], "reason": "   ", "tag": "t"},
        {"action": "tag", "clip_ids": [world.clip_a], "reason": "x", "tag": "a,b"},
        {"action": "link", "clip_ids": [world.clip_a], "reason": "x", "case_number": ""},
        {"action": "delete", "clip_ids": [world.clip_a], "reason": "x"},
        {"action": "tag", "clip_ids": list(range(1, 202)), "reason": "x", "tag": "t"},
    ):
        response = custodian.post("/api/clips/bulk", json=body, headers={"X-CSRF-Token": c_csrf})
        assert response.status_code in (400, 422), (body, response.status_code)
    with world.station.engine.connect() as connection:
        assert connection.execute(select(clip_tags)).all() == []


def test_the_search_page_offers_the_actions_of_the_role_and_shows_each_outcome(world: World) -> None:
    custodian = client_for(world.station)
    csrf = login(custodian, "custodian")
    page = custodian.get("/search", params={"go": 1}).text
    assert 'id="bulk-form"' in page and f'name="clip_id" value="{world.clip_a}"' in page
    offered = set(
        __import__("re").findall(
            r'<option value="(\w+)">', page.split('id="bulk-action"')[1].split("</select>")[0]
        )
    )
    assert offered == {"link", "hold", "release", "tag"}  # a custodian requests no exports
    answer = custodian.post(
        "/clips/bulk",
        data={
            "csrf_token": csrf,
            "action": "tag",
            "clip_id": [str(world.clip_a), str(world.clip_c)],
            "reason": "r",
            "tag": "夜查",
        },
    )
    assert answer.status_code == 200
    assert f'<tr data-clip-id="{world.clip_a}" class="done">' in answer.text
    assert f'<tr data-clip-id="{world.clip_c}" class="refused">' in answer.text
    officer = client_for(world.station)
    login(officer, "officer")
    assert 'id="bulk-form"' not in officer.get("/search", params={"go": 1}).text
