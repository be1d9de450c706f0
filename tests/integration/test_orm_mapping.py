"""The domain classes are mapped once per process, even when several threads open the station at
once (a worker with `--threads 2` does)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

CHILD = """
import threading
from evidence_store.db.orm import start_mappers

barrier = threading.Barrier(8)
errors = []

def open_station():
    barrier.wait()
    try:
        start_mappers()
    except Exception as exc:
        errors.append(repr(exc))

threads = [threading.Thread(target=open_station) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print("\\n".join(errors) or "ok")
"""


def test_threads_mapping_at_once_all_succeed() -> None:
    for _ in range(3):  # a fresh process each time: mapping happens once per process
        child = subprocess.run(
            [sys.executable, "-c", CHILD], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
        )
        assert child.returncode == 0, child.stderr
        assert child.stdout.strip() == "ok", child.stdout
