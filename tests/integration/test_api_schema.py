"""The JSON API against its own OpenAPI description (schemathesis), on a real station with clips, cases,
users of every role and a supervision draw: no input reaches a 500, every status, content type and body
the server answers is in the description, input the description allows is not refused, input it forbids
is, and an undocumented method answers 405 with `Allow`.

schemathesis' own engine runs the phases its command line runs (examples, coverage, fuzzing; the
stateful phase is off, for time) with all of its checks, inside pytest (its pytest plugin's lazy loader
does not work with pytest 9). Bounded: 3 examples per operation and phase, a fixed seed, and
`MAX_SECONDS` per role: on a loaded machine the limit may end a run before its last operations, which
are then not exercised in that run. A request schemathesis calls negative is not counted as accepted
negative data when the description in fact allows it (`_allowed_by_the_description`: its mutations of a
`oneOf` can land in another branch); a test below shows a forbidden body is never excused."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status
from schemathesis.engine.events import EngineEvent, FatalError, NonFatalError, ScenarioFinished

from evidence_store.domain.access import Role
from tests.integration import test_web_access as access
from web.app import create_app
from web.auth import WebConfig
from web.context import LOGIN_CSRF_COOKIE, SESSION_COOKIE

world = access.world  # the same station contents as the access tests (a pytest fixture)

MAX_EXAMPLES = 3
MAX_SECONDS = 45


def _run(world: access.World, role: Role) -> list[str]:
    """Run schemathesis as `role` against the app; the failures found, one line each."""
    client = access.client_for(world.station)
    csrf = access.login(client, role.value)
    session = client.cookies.get(SESSION_COOKIE)
    # the session's CSRF token doubles as the login form's double-submit token, so that the fuzzed
    # logins reach the credential check
    cookie = f"{SESSION_COOKIE}={session}; {LOGIN_CSRF_COOKIE}={csrf}"
    config = SchemathesisConfig.from_dict(
        {
            "seed": 16,
            "max-time": MAX_SECONDS,
            "headers": {"Cookie": cookie, "X-CSRF-Token": csrf},
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True},
            "phases": {
                "coverage": {"unexpected-methods": ["PUT", "PATCH", "DELETE"]},
                "stateful": {"enabled": False},
            },
        }
    )
    # the fuzzer's failed logins must not lock the test client out of signing in
    limits = WebConfig(login_client_failures=10**6, login_user_failures=10**6)
    app = create_app(world.station, config=limits)
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", app, config=config)
    # signing out would end the session the other operations run under (it is tested in test_web_access)
    schema = schema.exclude(method="POST", path="/api/logout")
    description = app.openapi()
    failures: list[str] = []
    event: EngineEvent
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, ScenarioFinished) and event.status in (Status.FAILURE, Status.ERROR):
            for case_id, checks in event.recorder.checks.items():
                for check in checks:
                    if check.status is Status.FAILURE and check.failure_info is not None:
                        failure = check.failure_info.failure
                        interaction = event.recorder.interactions.get(case_id)
                        if check.name == "negative_data_rejection" and _allowed_by_the_description(
                            description, failure.operation, interaction
                        ):
                            continue
                        message = failure.message.splitlines()[0]
                        failures.append(
                            f"{failure.operation}: {check.name}: {failure.title}: {message}"
                            + _exchange(event.recorder.interactions.get(case_id))
                        )
            if event.status is Status.ERROR:
                failures.append(f"{event.label}: error")
        elif isinstance(event, NonFatalError):
            failures.append(f"{event.label}: {event.info.format()}")
        elif isinstance(event, FatalError):
            failures.append(f"fatal: {event.exception!r}")
    return sorted(set(failures))


def _allowed_by_the_description(description: dict[str, Any], operation: str, interaction: Any) -> bool:
    """Whether a request schemathesis sent as "negative" is in fact one the description allows.

    Its mutations of a `oneOf` can produce a body that another branch accepts (a user body whose role
    was mutated from `officer` to `investigator` is a valid staff user body), and the server is then
    right to accept it. Only requests that are a JSON body alone are judged here (no path, query or
    header parameter that could have been the mutated part); the body is validated against the
    operation's published schema with a JSON Schema validator (2020-12, as OpenAPI 3.1 uses)."""
    if interaction is None or not interaction.request.body:
        return False
    method, _, path = operation.partition(" ")
    spec = description["paths"].get(path, {}).get(method.lower())
    if spec is None or spec.get("parameters"):
        return False
    schema = spec.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    if schema is None:
        return False
    try:
        body = json.loads(interaction.request.body)
    except ValueError:
        return False
    validator = jsonschema_rs.Draft202012Validator({**schema, "components": description["components"]})
    return bool(validator.is_valid(body))


def _exchange(interaction: object) -> str:
    """The request and the answer that failed, short."""
    if interaction is None:
        return ""
    request, response = interaction.request, interaction.response  # type: ignore[attr-defined]
    body = (request.body or b"")[:500]
    answered = f"{response.status_code} {response.content[:300]!r}" if response is not None else "no answer"
    return f"\n    {request.method} {request.uri} {body!r}\n    -> {answered}"


@pytest.mark.parametrize("role", [Role.ADMIN, Role.SUPERVISOR, Role.CUSTODIAN], ids=lambda r: r.value)
def test_the_api_answers_as_its_description_says(world: access.World, role: Role) -> None:
    failures = _run(world, role)
    assert not failures, "\n".join(failures)


def test_only_a_body_the_description_allows_is_excused(world: access.World) -> None:
    """The excuse above cannot hide a real failure: a body the description forbids is not excused."""
    description = create_app(world.station).openapi()

    def sent(body: dict[str, Any]) -> Any:
        return SimpleNamespace(request=SimpleNamespace(body=json.dumps(body).encode()))

    staff = {"username": "i6", "password": "long enough pw", "role": "investigator"}
    assert _allowed_by_the_description(description, "POST /api/users", sent(staff))
    assert not _allowed_by_the_description(description, "POST /api/users", sent({**staff, "x": [None]}))
    officer_without_badge = {"username": "o6", "password": "long enough pw", "role": "officer"}
    assert not _allowed_by_the_description(description, "POST /api/users", sent(officer_without_badge))
    assert not _allowed_by_the_description(description, "POST /api/users", sent({"role": "nobody"}))
    # an operation with a path parameter is never excused: that parameter may be the mutated part
    reason = {"reason": "ok"}
    path = "/api/cases/{case_id}/links/{link_id}/unlink"
    assert not _allowed_by_the_description(description, f"POST {path}", sent(reason))
