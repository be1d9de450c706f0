"""Must hold (issue 19): an export requested, approved and downloaded entirely in the browser verifies
offline. `evidence web` on a station with a real processed clip, Debian's Chromium driven by
Playwright: an investigator requests the clip from its page, an approver finds the request waiting on
their dashboard and approves it, the investigator builds the package and downloads the zip, which
`evidence verify` accepts. Screenshots of a failing run are kept under test-artifacts/."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

from evidence_store.export.verify import verify_package
from tests.conftest import REPO, run_cli
from tests.e2e.test_browser import ARTIFACTS, UNIT, page, served_station, sign_in

__all__ = ["page", "served_station"]  # the browser session's fixtures, shared

PASSWORD = "a long export password"
MARKER_NOTE = "当事人拒绝签字"


def _add_user(env: dict[str, str], username: str, role: str, name: str) -> None:
    added = subprocess.run(
        [sys.executable, "-m", "entrypoints", "users", "add", username, "--role", role,
         "--unit", UNIT, "--name", name, "--password-stdin"],
        env=env, input=PASSWORD + "\n", capture_output=True, text=True, cwd=REPO, timeout=120, check=False,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr


def _sign_out(page: Any) -> None:
    page.click("#logout")
    page.wait_for_url(re.compile(r".*/login"))


def test_an_export_requested_approved_and_downloaded_in_the_browser_verifies_offline(
    served_station: dict[str, Any], page: Any, tmp_path: Path
) -> None:
    base, clip_id, env = served_station["base"], served_station["clip_id"], served_station["env"]
    _add_user(env, "inv1", "investigator", "调查员")
    _add_user(env, "appr1", "approver", "审批负责人")
    try:
        # the investigator marks a moment of the clip (the player's own time), finds it by the note's
        # words, and asks for the clip from its page (issue 19 item 3)
        sign_in(page, base, "inv1", PASSWORD, lands_on=None)
        page.goto(f"{base}/clips/{clip_id}")
        page.wait_for_function("() => document.getElementById('player').readyState >= 1")
        page.evaluate("() => { document.getElementById('player').currentTime = 1.5; }")
        page.wait_for_function("() => Math.abs(document.getElementById('player').currentTime - 1.5) < 0.01")
        page.click("#marker-now")
        assert page.input_value("#marker-at") == "0:01.5"
        page.fill("#marker-note", MARKER_NOTE)
        page.click("#marker-add")
        page.wait_for_url(re.compile(re.escape(f"{base}/clips/{clip_id}") + r"\?message=marker_added"))
        assert MARKER_NOTE in page.locator("#marker-list").inner_text()
        page.click("#marker-list a.seek")
        assert abs(page.evaluate("() => document.getElementById('player').currentTime") - 1.5) < 0.01
        page.goto(f"{base}/search")
        page.fill("#search-note", "拒绝签字")
        page.click("#search-submit")
        page.wait_for_url(re.compile(r".*/search\?.*note=.*"))
        page.wait_for_selector("#results, #no-results")
        assert page.locator(f"tr.hit[data-clip-id='{clip_id}']").count() == 1
        page.goto(f"{base}/clips/{clip_id}")
        page.fill("#export-purpose", "行政复议证据")
        page.fill("#export-recipient", "复议机关")
        page.click("#export-submit")
        page.wait_for_url(re.compile(re.escape(base) + r"/exports/\d+$"))
        export_id = int(page.url.rsplit("/", 1)[1])
        assert page.locator("#export-status").inner_text() == "待审批"
        assert page.locator("#approve").count() == 0  # nobody decides their own request
        _sign_out(page)

        # the approver is told on the dashboard that it waits, and approves it
        sign_in(page, base, "appr1", PASSWORD, lands_on=None)
        page.goto(f"{base}/dashboard")
        assert page.locator("#exports-waiting-count").inner_text().strip() == "1"
        page.click(f"#exports-waiting a[href='/exports/{export_id}']")
        page.wait_for_url(f"{base}/exports/{export_id}")
        page.fill("#approve-reason", "同意提取")
        page.click("#approve")
        page.wait_for_function("() => document.getElementById('export-status').innerText === '已批准'")
        page.goto(f"{base}/dashboard")
        assert page.locator("#exports-waiting-count").inner_text().strip() == "0"
        _sign_out(page)

        # the investigator builds the package and downloads it
        sign_in(page, base, "inv1", PASSWORD, lands_on=None)
        page.click("#nav-exports")
        page.click(f"tr[data-export-id='{export_id}'] a")
        page.wait_for_url(f"{base}/exports/{export_id}")
        page.click("#build")
        page.wait_for_function("() => document.getElementById('export-status').innerText === '已制作'")
        with page.expect_download() as download:
            page.click("#download-package")
        saved = tmp_path / download.value.suggested_filename
        download.value.save_as(saved)
        assert saved.name == f"export-{export_id:06d}.zip"
    except Exception:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "export-browser-failure.png"), full_page=True)
        raise

    # offline: the function `evidence verify` calls, and the command itself, with no station at all
    verdict = verify_package(saved)
    assert verdict.ok, verdict.as_dict()
    offline = {k: v for k, v in env.items() if not k.startswith("EVIDENCE_")}
    verified = run_cli(["verify", str(saved)], offline)
    assert verified.code == 0 and "VALID" in verified.stdout, verified.stderr
    # the marker made in the browser is in the package's provenance note
    with zipfile.ZipFile(saved) as archive:
        note = archive.read(next(n for n in archive.namelist() if n.endswith("/note.html"))).decode()
    assert MARKER_NOTE in note and "0:00:01.5" in note
