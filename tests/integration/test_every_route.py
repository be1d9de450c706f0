"""Must hold (issue 16): EVERY route of the web application, enumerated from `app.routes` itself (so a
new route is covered without touching this test), called by an anonymous client and by a user of each
role, with each object it names set in turn to one the user sees, one hidden from them, one of the other
unit and a missing id:

* a hidden object answers exactly like a missing one (same status, same body once the path itself is
  taken out of it), R13;
* no POST on a hidden or missing object changes the records, and the only audit entries it leaves are
  refusals (R17);
* no response names an object hidden from the user, whatever the route (lists, counts, dashboards).

One station and one application for the module (SQLite): the calls are many, the world is built once.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import insert, select
from starlette.routing import Mount

from evidence_store.accounts import create_user
from evidence_store.annotations import add_marker
from evidence_store.bootstrap import initialise
from evidence_store.db.tables import (
    audit_events,
    cases,
    clip_links,
    clip_markers,
    clip_tags,
    clips,
    compliance_flags,
    disclosure_applications,
    disclosure_handovers,
    documents,
    export_requests,
    redaction_renders,
    redaction_specs,
    supervision_draws,
    supervision_items,
    users,
    web_settings,
)
from evidence_store.domain.access import Role
from evidence_store.domain.model import ExportRequest, ExportStatus
from evidence_store.export.workflow import request_export
from evidence_store.queries.visibility import (
    case_facts,
    clip_facts,
    item_facts,
    sees,
)
from evidence_store.settings import load_settings
from tests.integration.visibility_world import PASSWORD, World, build_world, secret_words, user_of
from web.app import create_app

MISSING = 999_999
SPARE_USER = "spare-user"  # the account the admin routes act on
WATCHED = (
    cases,
    clip_links,
    clip_markers,
    clip_tags,
    clips,
    compliance_flags,
    disclosure_applications,
    disclosure_handovers,
    documents,
    export_requests,
    redaction_renders,
    redaction_specs,
    supervision_draws,
    supervision_items,
    users,
    web_settings,
)
REFUSALS = {"access.denied"}
PARAM = re.compile(r"{([^}:]+)(?::[^}]*)?}")
# path parameters that name no confidential object: one fixed value each
# (a redacted copy is looked up within the clip of the path, which is varied)
FIXED = {"kind": "poster", "username": SPARE_USER, "code": "en", "number": "1", "render_id": "1"}
# query strings that make a route show what it lists
QUERIES = {
    "/search": "?go=1",
    "/stats": "?year=2026",
    "/stats.csv": "?year=2026",
    "/api/stats": "?year=2026",
    "/api/audit": "?limit=500",
    "/audit": "?limit=500",
}
BODY_CLIP = "body:clip_id"  # the clip named in the body of a link or export request
# besides the links: export requests and parties' applications name clips
BODY_CLIP_ROUTES = {"/exports", "/api/exports", "/disclosures"}
LAST = {"/logout", "/api/logout"}  # they end the session: called after everything else


@dataclass(frozen=True)
class Variant:
    label: str  # visible / hidden / other_unit / missing
    value: str
    visible_to: frozenset[str]  # the users (by name; "" anonymous) who may see it


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    home = tmp_path_factory.mktemp("routes")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
    env.update(
        {
            "EVIDENCE_HOME": str(home / "home"),
            "EVIDENCE_DATABASE_URL": f"sqlite:///{Path(home) / 'evidence.db'}",
            "EVIDENCE_STATION_NAME": "route-station",
            "EVIDENCE_PROCESSING_QUEUE": "none",
        }
    )
    station, _ = initialise(load_settings(env))
    built = build_world(station)
    built.app = create_app(station)
    create_user(station, username=SPARE_USER, password=PASSWORD, role="auditor", unit="U1", actor="test")
    built.exports = _exports(built)
    built.applications = _applications(built)
    built.markers = {
        label: add_marker(station, clip_id, offset_s=0.5, note=f"marker {label}", actor="test")
        for label, clip_id in (
            ("visible", built.clip_a),
            ("hidden", built.clip_c),
            ("other_unit", built.clip_b),
        )
    }
    yield built
    station.close()


def _exports(world: World) -> dict[str, tuple[int, list[int], int | None]]:
    """Export requests naming the visible clip, the secret clip, and the other unit's private clip and
    case: label -> (id, clips, case)."""
    station = world.station
    made = request_export(station, user="investigator", items=[{"clip_id": world.clip_a}], purpose="route")
    found: dict[str, tuple[int, list[int], int | None]] = {"visible": (made.id or 0, [world.clip_a], None)}
    for label, clip_id, case_id, requester in (
        ("hidden", world.clip_c, None, "investigator"),
        ("other_unit", world.clip_b, world.case_private_u2, "investigator-u2"),
    ):
        with station.transaction() as session:  # requested before the clip became confidential
            request = ExportRequest(
                case_id=case_id,
                requested_by=requester,
                purpose="route",
                items=[{"clip_id": clip_id}],
                status=ExportStatus.PENDING,
                created_at=station.clock(),
            )
            session.add(request)
            session.flush()
            found[label] = (request.id or 0, [clip_id], case_id)
    return found


def _applications(world: World) -> dict[str, tuple[int, list[int], int | None]]:
    """Parties' applications (R15) naming the visible clip, the secret clip, and the other unit's
    private clip and case, recorded before the clips became confidential: label -> (id, clips, case)."""
    found: dict[str, tuple[int, list[int], int | None]] = {}
    for label, clip_id, case_id in (
        ("visible", world.clip_a, None),
        ("hidden", world.clip_c, None),
        ("other_unit", world.clip_b, world.case_private_u2),
    ):
        with world.station.transaction() as session:
            application_id = session.execute(
                insert(disclosure_applications).values(
                    party_name="route party",
                    id_document_type="passport",
                    id_document_number="E0000",
                    contact="",
                    kind="copy",
                    purpose="route",
                    case_id=case_id,
                    clip_ids=[clip_id],
                    received_at=world.station.clock(),
                    recorded_by="custodian",
                    recorded_at=world.station.clock(),
                    state="received",
                    decided_by="",
                    decision_reason="",
                )
            ).inserted_primary_key[0]
        found[label] = (int(application_id), [clip_id], case_id)
    return found


@pytest.fixture(scope="module")
def clients(world: World) -> dict[str, tuple[TestClient, str]]:
    app = world.app
    signed: dict[str, tuple[TestClient, str]] = {"": (TestClient(app), "")}
    for role in Role:
        client = TestClient(app)
        token = client.get("/api/csrf").json()["csrf_token"]
        response = client.post(
            "/api/login",
            json={"username": role.value, "password": PASSWORD},
            headers={"X-CSRF-Token": token},
        )
        assert response.status_code == 200, response.text
        signed[role.value] = (client, str(response.json()["csrf_token"]))
    return signed


def users_seeing(world: World, facts_of: Any) -> frozenset[str]:
    seeing = set()
    with world.station.engine.connect() as connection:
        facts = facts_of(connection)
    for role in Role:
        if sees(user_of(world.station, role.value), facts):
            seeing.add(role.value)
    return frozenset(seeing)


def sha(world: World, clip_id: int) -> str:
    with world.station.engine.connect() as connection:
        return str(connection.scalar(select(clips.c.sha256).where(clips.c.id == clip_id)))


def variants(world: World) -> dict[str, list[Variant]]:
    """For each kind of path parameter (or body field) that names an object: the four objects."""
    everyone = frozenset(role.value for role in Role)

    def clip(label: str, clip_id: int, value: str | None = None) -> Variant:
        seeing = users_seeing(world, lambda c: clip_facts(c, clip_id))
        return Variant(label, value or str(clip_id), seeing)

    def case(label: str, case_id: int) -> Variant:
        return Variant(label, str(case_id), users_seeing(world, lambda c: case_facts(c, case_id)))

    def export(label: str) -> Variant:
        export_id, clip_ids, case_id = world.exports[label]
        seeing = everyone
        for clip_id in clip_ids:
            seeing &= users_seeing(world, lambda c, clip_id=clip_id: clip_facts(c, clip_id))
        if case_id is not None:
            seeing &= users_seeing(world, lambda c: case_facts(c, case_id))
        return Variant(label, str(export_id), seeing)

    def application(label: str) -> Variant:
        application_id, clip_ids, case_id = world.applications[label]
        seeing = everyone
        for clip_id in clip_ids:
            seeing &= users_seeing(world, lambda c, clip_id=clip_id: clip_facts(c, clip_id))
        if case_id is not None:
            seeing &= users_seeing(world, lambda c: case_facts(c, case_id))
        return Variant(label, str(application_id), seeing)

    def item(label: str, item_id: int) -> Variant:
        return Variant(label, str(item_id), users_seeing(world, lambda c: item_facts(c, item_id)))

    nobody: frozenset[str] = frozenset()
    clip_c_seen = users_seeing(world, lambda c: clip_facts(c, world.clip_c))
    return {
        "clip_id": [
            clip("visible", world.clip_a),
            clip("hidden", world.clip_c),
            clip("other_unit", world.clip_b),
            Variant("missing", str(MISSING), nobody),
        ],
        "sha256": [
            clip("visible", world.clip_a, sha(world, world.clip_a)),
            clip("hidden", world.clip_c, sha(world, world.clip_c)),
            clip("other_unit", world.clip_b, sha(world, world.clip_b)),
            Variant("missing", "f" * 64, nobody),
        ],
        "case_id": [
            case("visible", world.case_normal),
            case("hidden", world.case_state_u1),
            case("other_unit", world.case_private_u2),
            Variant("missing", str(MISSING), nobody),
        ],
        "link_id": [  # links of the normal case; link_b belongs to another case: missing here
            Variant("visible", str(world.link_a), everyone),
            Variant("hidden", str(world.link_c_normal), clip_c_seen),
            Variant("other_unit", str(world.link_b), nobody),
            Variant("missing", str(MISSING), nobody),
        ],
        "item_id": [
            item("visible", world.item_a),
            item("hidden", world.item_c),
            item("other_unit", world.item_b),
            Variant("missing", str(MISSING), nobody),
        ],
        "export_id": [  # an export is seen by who sees every clip and the case it names
            export("visible"),
            export("hidden"),
            export("other_unit"),
            Variant("missing", str(MISSING), nobody),
        ],
        "application_id": [  # a party's application is seen by who sees every clip and the case it names
            application("visible"),
            application("hidden"),
            application("other_unit"),
            Variant("missing", str(MISSING), nobody),
        ],
        "marker_id": [  # markers are taken off the visible clip: one of another clip is missing there
            Variant("visible", str(world.markers["visible"]), clip("visible", world.clip_a).visible_to),
            Variant("hidden", str(world.markers["hidden"]), nobody),
            Variant("other_unit", str(world.markers["other_unit"]), nobody),
            Variant("missing", str(MISSING), nobody),
        ],
        "draw_id": [  # a draw is seen by every supervision role; its hidden items are left out
            Variant("visible", str(world.clip_draw), everyone),
            Variant("other_unit", str(world.u2_draw), everyone),
            Variant("missing", str(MISSING), nobody),
        ],
    }


def body_for(path: str, method: str, csrf: str, clip_value: str) -> dict[str, Any]:
    """A request body that the route accepts for a visible object (so a refusal is the rule's doing)."""
    if method in ("GET", "HEAD"):
        return {}
    # each body exactly as its route takes it: a field the route does not know is refused (422)
    reason = {"reason": "route check"}
    api: dict[str, dict[str, Any]] = {
        "/api/login": {"username": "nobody", "password": "wrong"},
        "/api/cases/{case_id}/links": {"clip_id": int(clip_value), "reason": "route check"},
        "/api/cases/{case_id}/links/{link_id}/unlink": reason,
        "/api/cases/{case_id}/links/{link_id}/evidence": {**reason, "is_evidence": True},
        "/api/supervision/draws": {"kind": "clip", "size": 5},
        "/api/supervision/items/{item_id}/review": {"outcome": "pass", "notes": ""},
        "/api/users": {"username": "made-by-route-check", "password": PASSWORD, "role": "auditor"},
        "/api/exports": {"items": [{"clip_id": int(clip_value)}], "purpose": "route check"},
        "/api/exports/{export_id}/approve": {"reason": "route check"},
        "/api/exports/{export_id}/reject": {"reason": "route check"},
        "/api/clips/{clip_id}/markers": {"at": "1", "note": "route check"},
        "/api/clips/{clip_id}/tags": {"tag": "route check"},
        "/api/clips/{clip_id}/tags/remove": {"tag": "route check"},
        "/api/clips/{clip_id}/redaction": {"width": 320, "height": 240, "duration_s": 3.0},
        "/api/clips/{clip_id}/redaction/render": {"start_s": 0.0, "end_s": 1.0},
        "/api/clips/bulk": {
            "action": "tag",
            "clip_ids": [int(clip_value)],
            "reason": "route check",
            "tag": "route check",
        },
    }
    if path.startswith("/api/"):
        return {"json": api.get(path, {}), "headers": {"X-CSRF-Token": csrf}}
    form: dict[str, str] = {
        "csrf_token": csrf,
        "reason": "route check",
        "outcome": "pass",
        "evidence": "1",
        "reviewer": "supervisor",
        "kind": "clip",
        "size": "5",
        "draw_id": str(0),
        "purpose": "route check",
        "at": "1",
        "note": "route check",
        "tag": "route check",
        "party_name": "route party",
        "id_document_type": "passport",
        "id_document_number": "E0000",
    }
    if path.startswith("/disclosures"):
        form["kind"] = "copy"  # a party's application (the draws' "kind" is "clip")
    if ("{case_id}/links" in path and "{link_id}" not in path) or path in BODY_CLIP_ROUTES:
        form["clip_id"] = clip_value
    return {"data": form}


def snapshot(world: World) -> list[list[Any]]:
    with world.station.engine.connect() as connection:
        return [
            [tuple(row) for row in connection.execute(select(table).order_by(*table.primary_key.columns))]
            for table in WATCHED
        ]


def last_seq(world: World) -> int:
    with world.station.engine.connect() as connection:
        return int(connection.scalar(select(audit_events.c.seq).order_by(audit_events.c.seq.desc())) or 0)


def actions_since(world: World, seq: int) -> set[str]:
    with world.station.engine.connect() as connection:
        return set(connection.scalars(select(audit_events.c.action).where(audit_events.c.seq > seq)))


def shape(response: Any, concrete: str, template: str) -> tuple[int, str, str]:
    """Status, body and redirect target with the request's own path put back as its template."""

    def generic(text: str) -> str:
        return text.replace(concrete, template).replace(quote(concrete, safe=""), quote(template, safe=""))

    return response.status_code, generic(response.text), generic(response.headers.get("location", ""))


def words_hidden_from(world: World, username: str) -> list[str]:
    if not username:  # anonymous: no object's name at all
        return [*world.names.values(), "vis-plain-a", "vis-plain-d", "VIS-2026-NORMAL"]
    words = secret_words(world, user_of(world.station, username))
    if username == Role.OFFICER.value:
        words.append("vis-plain-d")  # officer 2002's clip
    return words


def routes(app: Any) -> list[tuple[str, str]]:
    """(method, path) of every route of the application, those under included routers too."""
    found = []
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, Mount):
            continue
        for method in sorted(route.methods or ()):
            if method not in ("HEAD", "OPTIONS"):
                found.append((method, str(route.path)))
    assert len(found) > 40, found
    return sorted(found, key=lambda mp: (mp[1] in LAST, mp[1], mp[0]))


@dataclass
class Tally:
    alike: int = 0
    writes_refused: int = 0
    answered: set[str] = field(default_factory=set)


def fill(template: str, values: dict[str, str]) -> str:
    path = template
    for name, value in values.items():
        path = re.sub(r"{" + name + r"(?::[^}]*)?}", value, path)
    return path


def probe(
    world: World,
    objects: dict[str, list[Variant]],
    call: tuple[str, str, str],
    client: tuple[TestClient, str],
    tally: Tally,
) -> None:
    """Call one route as one user, with each object slot of it set in turn to each variant."""
    method, template, username = call
    http, csrf = client
    params = PARAM.findall(template)
    unknown = [p for p in params if p not in objects and p not in FIXED]
    assert not unknown, f"{method} {template}: add a value for {unknown} to this test"
    visible = {p: objects[p][0].value if p in objects else FIXED[p] for p in params}
    slots: list[str | None] = [p for p in params if p in objects]
    if (template.endswith("/links") or template in BODY_CLIP_ROUTES) and method == "POST":
        slots.append(BODY_CLIP)
    words = words_hidden_from(world, username)
    for slot in slots or [None]:
        answers: dict[str, tuple[int, str, str]] = {}
        for variant in objects["clip_id" if slot == BODY_CLIP else slot] if slot else [None]:
            values = dict(visible)
            body_clip = str(world.clip_d)  # linked to nothing: a link to the normal case can be made
            if variant is not None and slot == BODY_CLIP:
                body_clip = variant.value
            elif variant is not None and slot is not None:
                values[slot] = variant.value
            path = fill(template, values)
            hidden = variant is not None and username not in variant.visible_to
            watch = method not in ("GET", "HEAD") and hidden
            before, seq = (snapshot(world), last_seq(world)) if watch else (None, 0)
            response = http.request(
                method,
                path + QUERIES.get(template, ""),
                follow_redirects=False,
                **body_for(template, method, csrf, body_clip),
            )
            where = (method, path, username or "anonymous", variant.label if variant else "-")
            assert response.status_code < 500, (where, response.text[:300])
            leaked = [w for w in words if w in response.text]
            assert not leaked, (where, leaked)
            if variant is not None and variant.label == "visible" and response.status_code < 400:
                tally.answered.add(template)
            if hidden and variant is not None:
                answers[variant.label] = shape(response, path, template)
            if before is not None:
                assert snapshot(world) == before, (where, "changed the records")
                assert actions_since(world, seq) <= REFUSALS, (where, actions_since(world, seq))
                tally.writes_refused += 1
        missing = answers.pop("missing", None)
        for label, answer in answers.items():
            assert answer == missing, (method, template, username or "anonymous", slot, label)
            tally.alike += 1


def test_every_route_answers_a_hidden_object_like_a_missing_one_and_changes_nothing(
    world: World, clients: dict[str, tuple[TestClient, str]]
) -> None:
    objects = variants(world)
    tally = Tally()
    for method, template in routes(world.app):
        for username, client in clients.items():
            probe(world, objects, (method, template, username), client, tally)
    assert tally.alike > 300 and tally.writes_refused > 50, tally
    # not vacuous: the routes that name an object do answer for a visible one, for some role
    for needed in (
        "/api/clips/{clip_id}",
        "/clips/{clip_id}",
        "/api/cases/{case_id}",
        "/cases/{case_id}",
        "/api/supervision/draws/{draw_id}",
        "/api/cases/{case_id}/links/{link_id}/evidence",
        "/api/supervision/items/{item_id}/review",
        "/api/exports/{export_id}",
        "/exports/{export_id}",
        "/exports",
        "/disclosures/{application_id}",
        "/disclosures/{application_id}/approve",
        "/disclosures",
    ):
        assert needed in tally.answered, needed
