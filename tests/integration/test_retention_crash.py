"""Killing the retention run between any two steps, then running again, ends exactly where one clean run
ends, with nothing that should be kept missing (R9, R10). Property-tested with hypothesis on SQLite and
PostgreSQL, plus real SIGKILLs of a child process."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from evidence_store.audit import verify_audit_log
from evidence_store.bootstrap import Station, initialise
from evidence_store.db.tables import clips, derivatives, retention_decisions, tombstones
from evidence_store.domain.model import ClipStatus, DecisionState, RetentionPeriod
from evidence_store.settings import load_settings
from retention.policy import add_months
from retention.run import run_retention
from tests.conftest import REPO
from tests.integration.retention_helpers import add_case, add_clip, link, request_export

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
_counter = itertools.count()


class Crash(BaseException):
    """Stands for SIGKILL inside the process: nothing after it runs, no handler sees it."""


@pytest.fixture(params=["sqlite", "postgresql"])
def new_station(request: pytest.FixtureRequest) -> Callable[[], tuple[Station, dict[str, str]]]:
    made: list[Station] = []
    base = Path(tempfile.mkdtemp(prefix="evidence-retention-crash-"))

    def make() -> tuple[Station, dict[str, str]]:
        n = next(_counter)
        url = (
            f"sqlite:///{base / f'{n}.db'}"
            if request.param == "sqlite"
            else request.getfixturevalue("postgres_database")()
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
        env.update(
            {
                "EVIDENCE_HOME": str(base / f"home{n}"),
                "EVIDENCE_DATABASE_URL": url,
                "EVIDENCE_RETENTION_MAX_DELETE_SHARE": "1.0",
                "EVIDENCE_PROCESSING_QUEUE": "none",
            }
        )
        station, _ = initialise(load_settings(env))
        made.append(station)
        return station, env

    yield make
    for station in made:
        station.close()


Scenario = list[tuple[int, str]]  # (age in days, kind) per clip


def build(station: Station, scenario: Scenario) -> list[int]:
    archived_case = add_case(station, "ARCH", archived=add_months(NOW, -130), period=RetentionPeriod.YEARS_10)
    open_case = add_case(station, "OPEN", archived=None, period=RetentionPeriod.YEARS_10)
    ids = []
    for age_days, kind in scenario:
        clip_id = add_clip(station, NOW - timedelta(days=age_days), size=512)
        if kind == "evidence_archived":
            link(station, clip_id, archived_case, evidence=True)
        elif kind == "evidence_open":
            link(station, clip_id, open_case, evidence=True)
        elif kind == "export":
            request_export(station, clip_id)
        ids.append(clip_id)
    return ids


def final_state(station: Station, ids: list[int]) -> list[tuple[str, bool, int]]:
    """Per clip (in scenario order): status, whether its bytes exist, how many derivatives it has."""
    with station.engine.connect() as connection:
        rows = {r.id: r for r in connection.execute(select(clips.c.id, clips.c.status, clips.c.sha256))}
        derived = dict.fromkeys(ids, 0)
        for (clip_id,) in connection.execute(select(derivatives.c.clip_id)):
            derived[clip_id] += 1
        in_flight = connection.scalar(
            select(retention_decisions.c.id)
            .where(retention_decisions.c.state.in_([DecisionState.PLANNED, DecisionState.DELETING]))
            .limit(1)
        )
        tomb = set(connection.scalars(select(tombstones.c.clip_id)))
    assert in_flight is None
    state = []
    for clip_id in ids:
        row = rows[clip_id]
        deleted = row.status == ClipStatus.DELETED
        assert deleted == (clip_id in tomb)
        state.append((str(row.status), station.blobs.exists(row.sha256), derived[clip_id]))
    return state


scenarios = st.lists(
    st.tuples(
        st.sampled_from([30, 170, 190, 400, 4000]),
        st.sampled_from(["plain", "plain", "evidence_archived", "evidence_open", "export"]),
    ),
    min_size=1,
    max_size=6,
)


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenario=scenarios, crash_points=st.lists(st.integers(1, 25), min_size=1, max_size=3))
def test_crashes_anywhere_end_like_one_clean_run(
    new_station: Callable[[], tuple[Station, dict[str, str]]], scenario: Scenario, crash_points: list[int]
) -> None:
    clean, _ = new_station()
    clean_ids = build(clean, scenario)
    run_retention(clean, NOW)
    expected = final_state(clean, clean_ids)

    crashy, _ = new_station()
    crashy_ids = build(crashy, scenario)
    for point in crash_points:
        steps = itertools.count(1)

        def checkpoint(step: str, point: int = point, steps: itertools.count[int] = steps) -> None:
            if next(steps) == point:
                raise Crash(step)

        with contextlib.suppress(Crash):
            run_retention(crashy, NOW, checkpoint=checkpoint)
        # between crashes nothing that the policy keeps may be gone
        for (status, exists, _), (want_status, _, _) in zip(
            final_state_loose(crashy, crashy_ids), expected, strict=True
        ):
            if want_status != "deleted":
                assert exists and status != "deleted"
    run_retention(crashy, NOW)
    assert final_state(crashy, crashy_ids) == expected
    assert verify_audit_log(crashy.engine, crashy.key).ok


def final_state_loose(station: Station, ids: list[int]) -> list[tuple[str, bool, int]]:
    with station.engine.connect() as connection:
        rows = {r.id: r for r in connection.execute(select(clips.c.id, clips.c.status, clips.c.sha256))}
    return [(str(rows[i].status), station.blobs.exists(rows[i].sha256), 0) for i in ids]


KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from datetime import datetime
    from evidence_store.bootstrap import open_station
    from evidence_store.settings import load_settings
    from retention.run import run_retention

    kill_at = sys.argv[1]
    def checkpoint(step):
        if step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
    run_retention(open_station(load_settings()), datetime.fromisoformat(sys.argv[2]), checkpoint=checkpoint)
    print("finished without being killed")
    """
)


@pytest.mark.parametrize(
    "kill_at", ["planned_batch", "marked_deleting", "purged_original", "purged_derivatives"]
)
def test_sigkill_then_rerun(new_station: Callable[[], tuple[Station, dict[str, str]]], kill_at: str) -> None:
    station, env = new_station()
    scenario: Scenario = [
        (400, "plain"),
        (30, "plain"),
        (4000, "evidence_open"),
        (400, "export"),
        (4000, "plain"),
    ]
    ids = build(station, scenario)
    proc = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, kill_at, NOW.isoformat()],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    run_retention(station, NOW)
    state = final_state(station, ids)
    assert [s[0] == "deleted" for s in state] == [True, False, False, False, True]
    assert all(exists for status, exists, _ in state if status != "deleted")
    assert not any(exists for status, exists, _ in state if status == "deleted")
    assert verify_audit_log(station.engine, station.key).ok
