"""The JSON API against its own OpenAPI description (schemathesis), on a real station with clips, cases,
users of every role and a supervision draw: no input reaches a 500, every status, content type and body
the server answers is in the description, input the description allows is not refused, input it forbids
is, and an undocumented method answers 405 with `Allow`.

schemathesis' own engine runs the phases its command line runs (examples, coverage, fuzzing; the
stateful phase is off, for time) with all of its checks, inside pytest (its pytest plugin's lazy loader
does not work with pytest 9). Bounded: 3 examples per operation and phase, a fixed seed, and
`MAX_SECONDS` per role: on a loaded machine the limit may end a run before its last operations, which
are then not exercised in that run."""

from __future__ import annotations

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
    failures: list[str] = []
    event: EngineEvent
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, ScenarioFinished) and event.status in (Status.FAILURE, Status.ERROR):
            for case_id, checks in event.recorder.checks.items():
                for check in checks:
                    if check.status is Status.FAILURE and check.failure_info is not None:
                        failure = check.failure_info.failure
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
