"""Bad input is a 4xx, always (issue #16): ids and integers beyond the databases' range, times at the
edges of the calendar, absurd or foreign Range headers, and the one error shape of the API."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts

from evidence_store.domain.access import Role
from tests.integration import test_web_access as access
from web.app import create_app

world = access.world  # the same station contents as the access tests (a pytest fixture)

BAD_IDS = (str(2**31), str(2**63), str(2**64 + 1), "9" * 40, "-1", "0", "abc", "1e3")
EDGE_TIMES = (
    "0001-01-01T00:00:00+01:00",
    "0001-01-01T00:00:00",  # naive: the station's zone (+08:00) puts it before year 1
    "9999-12-31T23:00:00-02:00",
    "9999-12-31T23:59:59",
)
ROLES = (Role.ADMIN, Role.CUSTODIAN, Role.SUPERVISOR, Role.INVESTIGATOR, Role.AUDITOR)


def _signed_in(w: access.World, role: Role) -> tuple[Any, str]:
    client = access.client_for(w.station)
    return client, access.login(client, role.value)


def _request(client: Any, method: str, path: str, csrf: str, **kwargs: Any) -> Any:
    if method == "GET":
        return client.get(path, follow_redirects=False, **kwargs)
    if path.startswith("/api/"):
        return client.post(path, json={}, headers={"X-CSRF-Token": csrf}, follow_redirects=False)
    return client.post(path, data={"csrf_token": csrf}, follow_redirects=False)


def test_every_id_in_every_route_answers_4xx_for_numbers_no_database_holds(world: access.World) -> None:
    app = create_app(world.station)
    routes = [
        (method, route.path)
        for route in iter_route_contexts(app.routes)
        if re.search(r"\{\w+_id\}", route.path)
        for method in sorted(route.methods or ())
        if method in ("GET", "POST")
    ]
    assert len(routes) >= 15  # every route with an id, pages and API (read from the app itself)
    for role in ROLES:
        client, csrf = _signed_in(world, role)
        for method, template in routes:
            for bad in BAD_IDS:
                path = re.sub(
                    r"\{(\w+)\}", lambda m, bad=bad: "proxy" if m.group(1) == "kind" else bad, template
                )
                response = _request(client, method, path, csrf)
                assert 400 <= response.status_code < 500, (role, method, path, response.status_code)
                if path.startswith("/api/"):
                    assert "type" in response.json(), (method, path, response.text[:200])


def test_integer_query_parameters_and_body_ids_beyond_the_database_range_answer_4xx(
    world: access.World,
) -> None:
    client, _ = _signed_in(world, Role.ADMIN)
    for bad in BAD_IDS:
        for path in (
            f"/api/clips?transfer_id={bad}",
            f"/api/audit?before_seq={bad}",
            f"/api/cases?offset={bad}",
            f"/api/clips?limit={bad}",
            f"/api/stats?year={bad}",
            f"/search?go=1&transfer_id={bad}",
            f"/audit?before_seq={bad}",
            f"/stats?year={bad}",
            f"/cases?offset={bad}",
        ):
            response = client.get(path, follow_redirects=False)
            assert 400 <= response.status_code < 500, (path, response.status_code)
    custodian, token = _signed_in(world, Role.CUSTODIAN)
    for bad_id in (2**63, -1, "abc", True):
        response = custodian.post(
            f"/api/cases/{world.case_normal}/links",
            json={"clip_id": bad_id, "reason": "seen on it"},
            headers={"X-CSRF-Token": token},
        )
        assert response.status_code == 422, (bad_id, response.text)
        response = custodian.post(
            f"/cases/{world.case_normal}/links",
            data={"clip_id": str(bad_id), "reason": "seen", "csrf_token": token},
            follow_redirects=False,
        )
        assert 400 <= response.status_code < 500 or response.status_code == 303, (
            bad_id,
            response.status_code,
        )


def test_times_at_the_edges_of_the_calendar_are_accepted_as_filters(world: access.World) -> None:
    auditor, _ = _signed_in(world, Role.AUDITOR)
    custodian, _ = _signed_in(world, Role.CUSTODIAN)
    for moment in EDGE_TIMES:
        for name in ("since", "until"):
            assert auditor.get("/api/audit", params={name: moment}).status_code == 200, (name, moment)
            assert auditor.get("/audit", params={name: moment}).status_code < 500, (name, moment)
        for name in ("start_from", "start_to"):
            assert custodian.get("/api/clips", params={name: moment}).status_code == 200, (name, moment)
            assert custodian.get("/search", params={"go": "1", name: moment}).status_code < 500
    everything = custodian.get("/api/clips", params={"start_from": EDGE_TIMES[0], "start_to": EDGE_TIMES[2]})
    assert (
        len(everything.json()["items"]) >= 2
    )  # a filter from before year 1 to after 9999 selects everything


def test_a_draw_over_a_period_at_the_edges_of_the_calendar_is_made(world: access.World) -> None:
    supervisor, csrf = _signed_in(world, Role.SUPERVISOR)
    for start, end in ((EDGE_TIMES[0], EDGE_TIMES[2]), (EDGE_TIMES[1], EDGE_TIMES[3])):
        response = supervisor.post(
            "/api/supervision/draws",
            json={"kind": "clip", "size": 1, "period_from": start, "period_to": end},
            headers={"X-CSRF-Token": csrf},
        )
        assert response.status_code == 200, response.text
        draw_id = response.json()["id"]
        assert supervisor.get(f"/api/supervision/draws/{draw_id}").status_code == 200
        assert supervisor.get(f"/supervision/draws/{draw_id}").status_code == 200
        assert supervisor.get(f"/api/supervision/draws/{draw_id}/redraw").status_code == 200
    page = supervisor.post(
        "/supervision/draws",
        data={"kind": "clip", "size": "1", "period_from": EDGE_TIMES[0], "csrf_token": csrf},
        follow_redirects=False,
    )
    assert page.status_code < 500


def test_a_seed_is_a_number_not_a_boolean_or_text(world: access.World) -> None:
    supervisor, csrf = _signed_in(world, Role.SUPERVISOR)
    for seed in (False, True, "7", 1.5, -1, 2**63, 2**53):
        response = supervisor.post(
            "/api/supervision/draws",
            json={"kind": "clip", "size": 1, "seed": seed},
            headers={"X-CSRF-Token": csrf},
        )
        assert response.status_code == 422, (seed, response.text)
        assert response.json()["type"] == "invalid"
    accepted = supervisor.post(
        "/api/supervision/draws",
        json={"kind": "clip", "size": 1.0, "seed": 2**53 - 1},
        headers={"X-CSRF-Token": csrf},
    )
    assert accepted.status_code == 200 and accepted.json()["seed"] == 2**53 - 1  # 1.0 is a JSON integer
    for size in (True, "1"):
        response = supervisor.post(
            "/api/supervision/draws", json={"kind": "clip", "size": size}, headers={"X-CSRF-Token": csrf}
        )
        assert response.status_code == 422, (size, response.text)


def test_range_headers_follow_rfc_9110(world: access.World) -> None:
    client, _ = _signed_in(world, Role.INVESTIGATOR)
    url = f"/clips/{world.clip_a}/derivative/proxy"
    size = len(world.proxy)
    huge = "9" * 4301  # more digits than Python turns into an int by default
    # a last position past the end means "to the end" (RFC 9110 section 14.1.2)
    to_the_end = client.get(url, headers={"Range": f"bytes=0-{huge}"})
    assert to_the_end.status_code == 206 and to_the_end.content == world.proxy
    assert to_the_end.headers["content-range"] == f"bytes 0-{size - 1}/{size}"
    suffix = client.get(url, headers={"Range": f"bytes=-{huge}"})
    assert suffix.status_code == 206 and suffix.content == world.proxy
    beyond = client.get(url, headers={"Range": f"bytes={huge}-"})
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{size}"
    # a range unit the server does not know is ignored: the whole body (section 14.2)
    for header in ("items=0-1", "lines=0-5", "Items=0-1"):
        whole = client.get(url, headers={"Range": header})
        assert whole.status_code == 200 and whole.content == world.proxy, header


def test_schema_valid_input_is_not_refused_and_invalid_input_is_422(world: access.World) -> None:
    custodian, _ = _signed_in(world, Role.CUSTODIAN)
    for text in ("0", "abc", "a" * 64):  # the hash of no clip
        response = custodian.get(f"/api/clips/by-sha256/{text}")
        assert response.status_code == 404 and response.json()["type"] == "not_found", text
    admin, csrf = _signed_in(world, Role.ADMIN)
    for name in ("", " ", "x", "a b", "-abc", "Auditor2", " auditor2"):
        response = admin.post(
            "/api/users",
            json={"username": name, "password": access.PASSWORD, "role": "auditor"},
            headers={"X-CSRF-Token": csrf},
        )
        assert response.status_code == 422, (name, response.text)
    officer = admin.post(
        "/api/users",
        json={"username": "officer2", "password": access.PASSWORD, "role": "officer"},
        headers={"X-CSRF-Token": csrf},
    )
    assert officer.status_code == 422  # an officer account names its officer, as the schema says
    # a field the route does not know is refused, not ignored (the schema says additionalProperties false)
    unknown = admin.post(
        "/api/users",
        json={"username": "auditor3", "password": access.PASSWORD, "role": "auditor", "rank": [None, 1.5]},
        headers={"X-CSRF-Token": csrf},
    )
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"][-1] == "rank", unknown.text
    assert "auditor3" not in {user["username"] for user in admin.get("/api/users").json()["users"]}
    # an unknown key holding a NUL is named in the answer with the NUL written out: no text the API
    # describes holds one, its answers included (web.text_rules)
    nul_key = admin.post(
        "/api/users",
        json={"username": "auditor4", "password": access.PASSWORD, "role": "auditor", "r\x00nk": 1},
        headers={"X-CSRF-Token": csrf},
    )
    # (JSON writes a NUL as the escape \u0000, never raw: the escape is what must not be there)
    assert nul_key.status_code == 422 and "\\u0000" not in nul_key.text, nul_key.text
    assert nul_key.json()["detail"][0]["loc"][-1] == "r\\x00nk"
    body = {"username": "auditor2", "password": access.PASSWORD, "role": "auditor"}
    assert admin.post("/api/users", json=body, headers={"X-CSRF-Token": csrf}).status_code == 200
    again = admin.post("/api/users", json=body, headers={"X-CSRF-Token": csrf})
    assert again.status_code == 409 and again.json()["type"] == "conflict"


def test_errors_share_one_shape_and_405_names_the_allowed_methods(world: access.World) -> None:
    client, csrf = _signed_in(world, Role.CUSTODIAN)
    invalid = client.get("/api/clips", params={"limit": "many"})
    assert invalid.status_code == 422
    assert invalid.json()["type"] == "invalid" and invalid.json()["error"]
    assert invalid.json()["detail"][0]["loc"] == ["query", "limit"]
    missing = client.get("/api/no-such-thing")
    assert missing.status_code == 404 and missing.json() == {
        "error": missing.json()["error"],
        "type": "not_found",
    }
    wrong = client.put(f"/api/clips/{world.clip_a}", headers={"X-CSRF-Token": csrf})
    assert wrong.status_code == 405 and wrong.json()["type"] == "method_not_allowed"
    assert wrong.headers["allow"] == "GET"
    anonymous = access.client_for(world.station).get("/api/me")
    assert anonymous.status_code == 401 and anonymous.json()["type"] == "login_required"
    forbidden = client.get("/api/users")
    assert forbidden.status_code == 403 and forbidden.json()["type"] == "forbidden"
    too_large = client.post(
        "/api/supervision/draws",
        content=b"{" + b" " * (2 * 1024 * 1024) + b"}",
        headers={"X-CSRF-Token": csrf},
    )
    assert too_large.status_code == 413 and too_large.json()["type"] == "too_large"


def test_every_error_status_the_api_answers_is_in_its_description(world: access.World) -> None:
    description = access.client_for(world.station).get("/api/openapi.json").json()
    for path, operations in description["paths"].items():
        for method, operation in operations.items():
            documented = set(operation["responses"])
            expected = {"400", "401", "403", "404", "413", "422"}
            assert expected <= documented, (method, path, sorted(documented))
    error = description["components"]["schemas"]["ErrorBody"]
    assert set(error["required"]) == {"error", "type"}


@pytest.mark.parametrize("path", ["/api/clips/{id}", "/clips/{id}"])
def test_the_issue_reproducer_for_ids(world: access.World, path: str) -> None:
    client, _ = _signed_in(world, Role.CUSTODIAN)
    response = client.get(path.replace("{id}", "9223372036854775808"), follow_redirects=False)
    assert 400 <= response.status_code < 500


def test_a_failed_login_with_the_longest_user_name_the_schema_allows_is_recorded(world: access.World) -> None:
    client = access.client_for(world.station)
    token = client.get("/api/csrf").json()["csrf_token"]
    response = client.post(
        "/api/login", json={"username": "0" * 200, "password": "wrong"}, headers={"X-CSRF-Token": token}
    )
    assert response.status_code == 401 and response.json()["type"] == "bad_credentials"
    assert access.events(world.station, "auth.login_failed")[-1].actor == ("web:" + "0" * 200)[:200]


def test_a_database_that_fails_for_a_moment_is_a_503_with_retry_after(
    world: access.World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from evidence_store.errors import TransientError
    from web import api

    def restarting(*_args: Any, **_kwargs: Any) -> Any:
        raise TransientError("the database failed, try again later: server closed the connection")

    client, _ = _signed_in(world, Role.AUDITOR)
    monkeypatch.setattr(api, "browse", restarting)
    response = client.get("/api/audit")
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "5"
    assert response.json()["type"] == "try_again"


def test_text_with_a_nul_character_is_refused_alike_on_every_database(world: access.World) -> None:
    # PostgreSQL cannot store NUL in text (found by schemathesis as 500s), SQLite can: the API states
    # and enforces one rule, in its description and at the edge, so both answer the same 422
    client, _ = _signed_in(world, Role.AUDITOR)
    for params in ({"actor": "a\x00b"}, {"action": "\x00"}):
        response = client.get("/api/audit", params=params)
        assert response.status_code == 422, response.text
        assert response.json()["type"] == "invalid"
        assert "NUL" in response.json()["error"]
    custodian, token = _signed_in(world, Role.CUSTODIAN)
    before = custodian.get(f"/api/cases/{world.case_normal}").json()
    response = custodian.post(
        f"/api/cases/{world.case_normal}/links",
        content=f'{{"clip_id": {world.clip_a}, "reason": "seen\\u0000 on it"}}',
        headers={"X-CSRF-Token": token, "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert custodian.get(f"/api/cases/{world.case_normal}").json() == before
    # an escaped backslash before "u0000" is text, not a NUL: it reaches the route
    response = custodian.post(
        f"/api/cases/{world.case_normal}/links",
        content=f'{{"clip_id": {world.clip_a}, "reason": "path C:\\\\u0000"}}',
        headers={"X-CSRF-Token": token, "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text  # linked: the reason is text, not a NUL
    assert custodian.get(f"/api/cases/{world.case_normal}").json() != before
    schema = create_app(world.station).openapi()
    actor = next(p for p in schema["paths"]["/api/audit"]["get"]["parameters"] if p["name"] == "actor")
    assert "\\x00" in json.dumps(actor["schema"])
