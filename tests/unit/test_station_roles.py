"""`evidence station` (issue #19, item 0): which roles it runs, how long it waits before starting a
role that died again, and how it names an exit in its log."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from entrypoints.station import station_roles
from entrypoints.supervisor import describe_exit, restart_delay
from evidence_store.settings import Settings


def settings(**values: object) -> Settings:
    return Settings(home=Path("/nonexistent/station"), station_name="roles", **values)  # type: ignore[arg-type]


def test_the_station_runs_dock_workers_and_web_each_as_its_own_command() -> None:
    roles = {role.name: role.argv for role in station_roles(settings(), host="0.0.0.0", port=8443)}

    command = (sys.executable, "-m", "entrypoints")
    assert roles == {
        "dock": (*command, "dock"),
        "worker": (*command, "worker"),
        "web": (*command, "web", "--host", "0.0.0.0", "--port", "8443"),
    }


def test_roles_can_be_left_out_and_no_worker_runs_without_a_queue() -> None:
    assert [r.name for r in station_roles(settings(), host="h", port=1, without=["dock"])] == [
        "worker",
        "web",
    ]
    no_queue = settings(processing_queue="none")
    assert [r.name for r in station_roles(no_queue, host="h", port=1)] == ["dock", "web"]


def test_a_role_that_keeps_dying_waits_longer_each_time_up_to_a_minute() -> None:
    assert [restart_delay(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert restart_delay(3, first=0.5, longest=1.5) == 1.5


def test_exits_are_named_in_words() -> None:
    assert describe_exit(3) == "exited with code 3"
    assert describe_exit(-signal.SIGKILL) == "killed by SIGKILL"


def test_with_a_shared_backend_the_station_forwards_its_spool_periodically() -> None:
    shared = settings(database_url="postgresql://evidence@db.internal/evidence", spool_forward_interval_s=30)
    roles = {role.name: role.argv for role in station_roles(shared, host="h", port=1)}
    assert roles["forward"] == (sys.executable, "-m", "entrypoints", "spool", "forward", "--every", "30")
    off = settings(database_url="postgresql://evidence@db.internal/evidence", spool_enabled=False)
    assert "forward" not in {role.name for role in station_roles(off, host="h", port=1)}
    assert "forward" not in {r.name for r in station_roles(shared, host="h", port=1, without=["forward"])}
