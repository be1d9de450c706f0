"""The station as `make run` starts it: initialises itself and serves its status over HTTP."""

from __future__ import annotations

import http.cookiejar
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.fixtures.redis import RedisServer
from tests.fixtures.services import free_port


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def signed_in_json(base: str, username: str, password: str, path: str) -> dict:
    """Sign in as a browser's script would (CSRF token, then login), then GET `path` as that user."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    with opener.open(f"{base}/api/csrf", timeout=5) as response:
        token = json.loads(response.read())["csrf_token"]
    login = urllib.request.Request(
        f"{base}/api/login",
        data=json.dumps({"username": username, "password": password}).encode(),
        headers={"Content-Type": "application/json", "X-CSRF-Token": token},
    )
    opener.open(login, timeout=5).close()
    with opener.open(f"{base}{path}", timeout=5) as response:
        return json.loads(response.read())


def test_station_starts_on_embedded_defaults_and_serves(tmp_path: Path, redis_server: RedisServer) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
    env.update({"EVIDENCE_HOME": str(tmp_path / "home"), "EVIDENCE_STATION_NAME": "dock-e2e"})
    env["EVIDENCE_REDIS_URL"] = redis_server.url  # its workers use a Redis of their own, not the machine's
    proc = subprocess.Popen(
        [sys.executable, "-m", "entrypoints", "station", "--port", str(port)],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        health = None
        while time.monotonic() < deadline:
            try:
                health = get_json(f"http://127.0.0.1:{port}/healthz")
                break
            except OSError:
                if proc.poll() is not None:
                    break
                time.sleep(0.3)
        assert health == {"ok": True, "station": "dock-e2e"}, (
            proc.stdout.read() if proc.poll() is not None else ""
        )
        base = f"http://127.0.0.1:{port}"
        # the status names the database and the store: its administrator's, so anonymous is refused
        with pytest.raises(urllib.error.HTTPError) as refused:
            get_json(f"{base}/api/status")
        assert refused.value.code == 401
        added = subprocess.run(
            [
                sys.executable,
                "-m",
                "entrypoints",
                "users",
                "add",
                "chief",
                "--role",
                "admin",
                "--password-stdin",
            ],
            check=False,
            env=env,
            cwd=REPO,
            input="a long station password\n",
            capture_output=True,
            text=True,
        )
        assert added.returncode == 0, added.stderr
        status = signed_in_json(base, "chief", "a long station password", "/api/status")
        assert status["database"]["backend"] == "sqlite"
        assert status["store"] == {"kind": "local", "path": str(tmp_path / "home" / "blobs")}
        assert status["audit"]["head_seq"] >= 1
        assert (tmp_path / "home" / "evidence.db").is_file()
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C: the station stops its dock, workers and web, then exits
        try:
            assert proc.wait(timeout=45) == 0
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
