"""The processing actors are wired by the entry layer (issue #14): nothing in `workers/` reads the
settings or installs a broker, importing the actors connects to nothing, and the actors send through
the broker they were declared on (dramatiq binds an actor to a broker when it is declared)."""

from __future__ import annotations

import ast
import subprocess
import sys
from typing import Any

import pytest
from dramatiq import Message
from dramatiq.brokers.stub import StubBroker

from evidence_store.bootstrap import Station
from evidence_store.domain.model import MediaType
from evidence_store.errors import ConfigurationError
from tests.conftest import REPO
from tests.factories import add_clip_row
from tests.fakes import fake_station
from workers.actors import QUEUE, ProcessingActors
from workers.broker import NAMESPACE

WIRING_ONLY = {"load_settings", "set_broker", "get_broker", "install_broker"}


def test_nothing_in_workers_reads_settings_or_installs_a_broker() -> None:
    found = []
    for path in sorted((REPO / "workers").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            name = (
                node.id
                if isinstance(node, ast.Name)
                else node.attr
                if isinstance(node, ast.Attribute)
                else ""
            )
            if name in WIRING_ONLY:
                found.append(f"{path.relative_to(REPO)}:{node.lineno}: {name}")
        for statement in tree.body:  # an actor declared at import binds to whatever broker is global
            if isinstance(statement, ast.FunctionDef) and statement.decorator_list:
                found.extend(
                    f"{path.relative_to(REPO)}:{statement.lineno}: @{ast.unparse(d)}"
                    for d in statement.decorator_list
                    if "actor" in ast.unparse(d)
                )
    assert found == []


IMPORTED = """
import dramatiq.broker
import workers.actors, workers.broker, workers.queue, workers.service
print(dramatiq.broker.global_broker)
"""


def test_importing_the_workers_package_installs_no_broker() -> None:
    child = subprocess.run(
        [sys.executable, "-c", IMPORTED],
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "EVIDENCE_REDIS_URL": "redis://127.0.0.1:1/0"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "None"


class Resources:
    def __init__(self, station: Station) -> None:
        self._station = station

    def station(self) -> Station:
        return self._station

    def toolkit(self) -> Any:
        raise AssertionError("planning runs no step")


def queued(broker: StubBroker) -> list[Message[Any]]:
    waiting = broker.queues[QUEUE]
    return [Message.decode(waiting.get_nowait()) for _ in range(waiting.qsize())]


def test_the_actors_send_through_the_broker_they_were_declared_on() -> None:
    station = fake_station()
    clip_id = add_clip_row(station, "notes", media_type=MediaType.OTHER)  # one step: the time-stamp
    broker = StubBroker()
    actors = ProcessingActors(broker, Resources(station))

    actors.plan_new_clips([clip_id])  # as a worker runs the message the dock sent

    sent = queued(broker)
    assert [(m.actor_name, m.queue_name) for m in sent] == [("run_processing_job", QUEUE)]
    assert set(broker.actors) == {"run_processing_job", "plan_new_clips", "detect_faces", "render_redaction"}
    assert NAMESPACE == "evidence"


def test_a_sending_process_cannot_run_the_actors() -> None:
    broker = StubBroker()
    sender = ProcessingActors(broker)  # the dock's: it sends, a worker runs

    sender.plan_new_clips.send([1])
    assert [m.actor_name for m in queued(broker)] == ["plan_new_clips"]
    with pytest.raises(ConfigurationError, match="evidence worker"):
        sender.plan_new_clips([1])
