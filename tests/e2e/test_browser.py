"""The custodian's browser session, end to end: a real processed clip, `evidence web`, Debian's Chromium
driven by Playwright. Sign in, search, open the clip and play it (it reaches a playing state and
seeks), open a case and see its coverage timeline, switch the language. Screenshots of a failing run
are kept under test-artifacts/."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, run_cli
from tests.fixtures.media import make_video
from tests.fixtures.services import free_port, require

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO / "test-artifacts"
PASSWORD = "a long custodian password"
UNIT = "金普新区卫生健康监督所"
CASE_NUMBER = "金普卫监检〔2026〕7号"
IMAGE_LOADED = "() => { const i = %s; return !!i && i.complete && i.naturalWidth > 0; }"


@pytest.fixture
def served_station(tmp_path: Path) -> Iterator[dict[str, Any]]:
    require(
        Path(CHROMIUM).exists(), "Debian's chromium is not installed (deploy/install-system-packages.sh test)"
    )
    require(shutil.which("ffmpeg") is not None, "ffmpeg is not installed")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        require(False, "the playwright Python package is not installed (pip install -e '.[dev]')")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
    env.update(
        {
            "EVIDENCE_HOME": str(tmp_path / "home"),
            "EVIDENCE_STATION_NAME": "browser-e2e",
            "EVIDENCE_PROCESSING_QUEUE": "none",
        }
    )
    volume = tmp_path / "volume"
    make_video(volume / "DCIM" / "clip-0001.mp4", seconds=4, size="320x240", tag="browser-e2e")
    for args in (
        ["init"],
        ["import", str(volume), "--device", "DSJ-E2E", "--officer", "5005"],
        ["process"],
    ):
        done = run_cli(args, env, timeout=600)
        assert done.code == 0, (args, done.stderr)
    added = subprocess.run(
        [sys.executable, "-m", "entrypoints", "users", "add", "custodian1", "--role", "custodian",
         "--unit", UNIT, "--name", "证据管理员", "--password-stdin"],
        env=env, input=PASSWORD + "\n", capture_output=True, text=True, cwd=REPO, timeout=120, check=False,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    clip_id = _make_case(env)

    with serving(env) as base:
        yield {"base": base, "env": env, "clip_id": clip_id}


@contextlib.contextmanager
def serving(env: dict[str, str]) -> Iterator[str]:
    """`evidence web` on a free port of 127.0.0.1 for the station of `env`, until the block ends; its
    base URL."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "entrypoints", "web", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    output = server.stdout.read() if server.stdout else ""
                    pytest.fail(f"evidence web did not start: {output[-3000:]}")
                time.sleep(0.2)
        yield base
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def _make_case(env: dict[str, str]) -> int:
    """A case with a document covering the clip's recording, and the clip linked to it by hand."""
    from sqlalchemy import select

    from evidence_store.bootstrap import open_station
    from evidence_store.cases.manual import link_manually
    from evidence_store.db.tables import clips, officers
    from evidence_store.domain.model import Case, CaseCategory, Document
    from evidence_store.settings import load_settings

    station = open_station(load_settings(env))
    try:
        with station.engine.connect() as connection:
            clip = connection.execute(select(clips)).one()
            officer_id = connection.scalar(select(officers.c.id).where(officers.c.badge_number == "5005"))
        assert clip.utc_start is not None and officer_id is not None
        with station.transaction() as session:
            case = Case(
                number=CASE_NUMBER,
                title="现场检查",
                category=CaseCategory.INSPECTION,
                unit=UNIT,
                officer_ids=[officer_id],
                opened_at=clip.utc_start - timedelta(hours=1),
            )
            session.add(case)
            session.flush()
            session.add(
                Document(
                    external_id="JP-2026-7-1",
                    case_id=case.id or 0,
                    kind="现场检查笔录",
                    title="现场检查笔录",
                    officer_ids=[officer_id],
                    start=clip.utc_start - timedelta(seconds=30),
                    end=clip.utc_start + timedelta(seconds=30),
                    requires_video=True,
                )
            )
        link_manually(station, clip.id, CASE_NUMBER, document="JP-2026-7-1", reason="现场录像", actor="test")
        return int(clip.id)
    finally:
        station.close()


def sign_in(
    page: Any, base: str, username: str, password: str, *, lands_on: str | None = "/dashboard"
) -> None:
    """Sign in through the login page as a user would; wait for the page the role lands on."""
    page.goto(f"{base}/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#login-submit")
    if lands_on is None:
        page.wait_for_url(lambda url: "/login" not in url)
    else:
        page.wait_for_url(f"{base}{lands_on}")


@pytest.fixture
def page(served_station: dict[str, Any]) -> Iterator[Any]:
    with chromium_page() as browser_page:
        yield browser_page  # the test saves a screenshot under test-artifacts/ when it fails


@contextlib.contextmanager
def chromium_page(width: int = 1400, height: int = 1000, *, bypass_csp: bool = False) -> Iterator[Any]:
    """A page of Debian's Chromium driven by Playwright, in a throw-away profile (`bypass_csp`: a test
    tool such as axe-core may be injected although the pages' CSP allows no inline script)."""
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="evidence-chromium-")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": width, "height": height},
            bypass_csp=bypass_csp,
        )
        context.set_default_timeout(20_000)
        browser_page = context.pages[0] if context.pages else context.new_page()
        try:
            yield browser_page
        finally:
            context.close()
    shutil.rmtree(profile, ignore_errors=True)


def test_a_custodian_signs_in_searches_plays_seeks_opens_a_case_and_switches_language(
    served_station: dict[str, Any], page: Any
) -> None:
    base, clip_id = served_station["base"], served_station["clip_id"]
    try:
        page.goto(f"{base}/")
        assert page.url.startswith(f"{base}/login")
        assert page.locator("#login-submit").inner_text() == "登录"  # Chinese by default
        page.fill("#username", "custodian1")
        page.fill("#password", PASSWORD)
        page.click("#login-submit")
        page.wait_for_url(f"{base}/dashboard")
        assert "工作台" in page.locator("h1").inner_text()

        page.click("#nav-search")
        page.fill("input[name=officer]", "5005")
        page.click("#search-submit")
        row = page.locator(f"tr.hit[data-clip-id='{clip_id}']")
        row.wait_for()
        page.wait_for_function(IMAGE_LOADED % "document.querySelector('img.thumb')")
        row.locator("a.clip-link").click()
        page.wait_for_url(f"{base}/clips/{clip_id}")

        video = page.locator("#player")
        video.wait_for()
        page.evaluate(
            "() => { const v = document.getElementById('player'); v.muted = true; return v.play(); }"
        )
        page.wait_for_function(
            "() => { const v = document.getElementById('player'); return v.currentTime > 0 && !v.paused; }"
        )
        assert page.evaluate("() => document.getElementById('player').duration") == pytest.approx(4, abs=0.5)
        seeked = page.evaluate(
            """() => new Promise((resolve, reject) => {
                const v = document.getElementById('player');
                v.pause();
                v.addEventListener('seeked', () => resolve(v.currentTime), { once: true });
                v.addEventListener('error', () => reject(new Error('media error ' + v.error.code)));
                v.currentTime = 2.5;
            })"""
        )
        assert seeked == pytest.approx(2.5, abs=0.35)
        page.wait_for_function(IMAGE_LOADED % "document.getElementById('contact-sheet')")
        assert len(page.locator("#sha256").inner_text().strip()) == 64
        # the chain of custody reads as sentences; each raw event is one click away
        actions = page.eval_on_selector_all(
            "#custody tr[data-action]", "rows => rows.map(r => r.dataset.action)"
        )
        assert "clip.stored" in actions or any(a.startswith("transfer.") for a in actions)
        viewed = page.locator("#custody tr[data-action='clip.viewed']").last
        assert "查看了本记录" in viewed.inner_text() and "clip.viewed" not in viewed.inner_text()
        viewed.locator("details.raw-event summary").click()
        assert "clip.viewed" in viewed.locator("details.raw-event pre").inner_text()

        page.click("#nav-cases")
        page.click(f"text={CASE_NUMBER}")
        page.wait_for_function(IMAGE_LOADED % "document.getElementById('timeline')")
        assert "JP-2026-7-1" in page.locator("#documents").inner_text()
        assert "clip-0001.mp4" in page.locator("#case-links").inner_text()

        assert page.locator("#nav-dashboard").inner_text() == "工作台"
        page.click("#lang-en")
        page.wait_for_function("() => document.getElementById('nav-dashboard').innerText === 'Dashboard'")
        assert page.locator("h1").inner_text().startswith("Case")
        assert page.evaluate("() => document.documentElement.lang") == "en"
    except Exception:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "browser-session-failure.png"), full_page=True)
        raise
