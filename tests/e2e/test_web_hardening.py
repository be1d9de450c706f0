"""The web server as `evidence web` starts it (uvicorn on a real socket), against forged proxy headers and
oversized request bodies: the defaults of the HTTP server are part of what is tested here, which an
in-process test client would bypass."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from evidence_store.accounts import create_user
from evidence_store.bootstrap import Station
from evidence_store.db.tables import audit_events
from tests.conftest import REPO
from tests.fixtures.services import free_port

PASSWORD = "correct horse battery"
MIB = 1024 * 1024


@dataclass
class Server:
    url: str
    port: int
    proc: subprocess.Popen[str]

    def rss_kib(self) -> int:
        return _status_kib(self.proc.pid, "VmRSS")

    def peak_rss_kib(self) -> int:
        return _status_kib(self.proc.pid, "VmHWM")

    def reset_peak(self) -> None:
        Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS (proc(5))


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


@pytest.fixture
def serve(station: Station, station_env: dict[str, str]) -> Iterator[Callable[..., Server]]:
    """Start `evidence web` on a free port with extra settings; stopped at the end of the test."""
    create_user(station, username="admin", password=PASSWORD, role="admin", unit="U1", actor="test")
    started: list[subprocess.Popen[str]] = []

    def start(**settings: str) -> Server:
        port = free_port()
        env = {**station_env, **{f"EVIDENCE_{k.upper()}": v for k, v in settings.items()}}
        proc = subprocess.Popen(
            [sys.executable, "-m", "entrypoints", "web", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(proc.stderr.read() if proc.stderr else "server exited")
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    return Server(url, port, proc)
            except httpx.TransportError:
                time.sleep(0.2)
        raise AssertionError("server did not start")

    yield start
    for proc in started:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def try_login(
    client: httpx.Client, username: str, password: str, forwarded_for: str | None = None
) -> httpx.Response:
    token = client.get("/api/csrf").json()["csrf_token"]
    headers = {"X-CSRF-Token": token}
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    return client.post("/api/login", json={"username": username, "password": password}, headers=headers)


def sources(station: Station, action: str) -> list[str]:
    with station.engine.connect() as connection:
        return list(
            connection.scalars(
                select(audit_events.c.source)
                .where(audit_events.c.action == action)
                .order_by(audit_events.c.seq)
            )
        )


# -- behind a proxy, by configuration only ----------------------------------------------------------------


def test_forged_forwarded_for_from_an_untrusted_peer_changes_neither_rate_limit_nor_audit_source(
    station: Station, serve: Callable[..., Server]
) -> None:
    server = serve()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        answers = [
            # a different user name each time: only the per-client limit (20 within the window) applies
            try_login(client, f"nobody{i}", "wrong", forwarded_for=f"203.0.113.{i}").status_code
            for i in range(30)
        ]
        assert answers[:20] == [401] * 20
        assert answers[20:] == [429] * 10, answers
        assert set(sources(station, "auth.login_failed")) == {"127.0.0.1"}
        assert set(sources(station, "auth.login_rate_limited")) == {"127.0.0.1"}
        # locked out: a forged address does not get the client back in, even with the right password
        locked = try_login(client, "admin", PASSWORD, forwarded_for="198.51.100.99")
        assert locked.status_code == 429
        assert sources(station, "auth.login") == []


def test_a_configured_proxy_has_its_forwarded_address_used(
    station: Station, serve: Callable[..., Server]
) -> None:
    server = serve(web_trusted_proxies="127.0.0.1, 10.0.0.0/8")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert try_login(client, "nobody", "wrong", forwarded_for="203.0.113.7").status_code == 401
        # the client may put anything in front; the right-most address the trusted proxies did not add wins
        chain = "192.0.2.1, 203.0.113.8, 10.1.2.3"
        assert try_login(client, "admin", PASSWORD, forwarded_for=chain).status_code == 200
    assert sources(station, "auth.login_failed") == ["203.0.113.7"]
    assert sources(station, "auth.login") == ["203.0.113.8"]


# -- limits -----------------------------------------------------------------------------------------------


def _send_huge_body(server: Server, *, chunked: bool, total: int = 300 * MIB) -> tuple[int, int]:
    """POST /api/login with a `total`-byte body on a raw socket, stopping when the server answers; return
    the status and how many bytes were sent."""
    head = [
        "POST /api/login HTTP/1.1",
        f"Host: 127.0.0.1:{server.port}",
        "Content-Type: application/json",
        "X-CSRF-Token: x",
        "Cookie: evidence_login_csrf=x",
    ]
    head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}")
    block = b"[" + b"1," * (MIB // 2 - 1) + b"1"  # about 1 MiB of valid-looking JSON
    sent = 0
    answer = b""
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        try:
            while sent < total:
                readable, _, _ = _select(sock)
                if readable:
                    break
                piece = block[: total - sent]
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                sent += len(piece)
            else:
                if chunked:
                    sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        sock.settimeout(60)
        try:
            while b"\r\n" not in answer:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
        except ConnectionResetError:
            pass
    assert answer.startswith(b"HTTP/1.1 "), (answer[:200], sent)
    return int(answer.split()[1]), sent


def _select(sock: socket.socket) -> tuple[list[socket.socket], list[socket.socket], list[socket.socket]]:
    import select as select_module

    return select_module.select([sock], [], [], 0)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_300_mib_login_body_is_refused_with_413_while_memory_stays_flat(
    serve: Callable[..., Server], chunked: bool
) -> None:
    server = serve()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        try_login(client, "nobody", "wrong")  # warm the login path (argon2, the database) first
    server.reset_peak()
    before = server.rss_kib()
    started = time.monotonic()
    status, sent = _send_huge_body(server, chunked=chunked)
    elapsed = time.monotonic() - started
    after, peak = server.rss_kib(), server.peak_rss_kib()
    assert status == 413
    assert sent < 300 * MIB  # refused while the body was still coming
    assert after - before < 32 * 1024, (before, after)
    assert peak - before < 32 * 1024, (before, peak)
    assert elapsed < 30
    # and the server still answers
    assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200
    assert os.path.exists(f"/proc/{server.proc.pid}")
