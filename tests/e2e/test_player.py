"""The clip page's player in Chromium (issue 19 item 6): speed 0.25x-4x from the menu and the keyboard,
frame steps by the probed frame rate, keyboard shortcuts that leave form fields alone, a thumbnail strip
that seeks, and `M` marking the current moment. Screenshots of a failing run go to test-artifacts/."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.test_browser import ARTIFACTS, PASSWORD, page, served_station, sign_in

__all__ = ["page", "served_station"]

NOW = "document.getElementById('player').currentTime"
CURRENT = f"() => {NOW}"
RATE = "() => document.getElementById('player').playbackRate"


def _seek(page: Any, seconds: float) -> None:
    page.evaluate(
        """(t) => new Promise((resolve) => {
            const v = document.getElementById('player');
            v.pause();
            v.addEventListener('seeked', () => resolve(), { once: true });
            v.currentTime = t;
        })""",
        seconds,
    )


def test_speed_frame_steps_shortcuts_and_the_thumbnail_strip(
    served_station: dict[str, Any], page: Any
) -> None:
    base, clip_id = served_station["base"], served_station["clip_id"]
    try:
        sign_in(page, base, "custodian1", PASSWORD)
        page.goto(f"{base}/clips/{clip_id}")
        page.wait_for_function("() => document.getElementById('player').readyState >= 1")
        fps = float(page.get_attribute("#player", "data-fps") or 0)
        assert fps == pytest.approx(15, abs=0.5)  # the test clip's probed rate (testsrc rate=15)

        page.select_option("#player-speed", "0.25")
        assert page.evaluate(RATE) == 0.25
        page.select_option("#player-speed", "4")
        assert page.evaluate(RATE) == 4
        page.locator("#player").focus()
        page.keyboard.press("[")
        assert page.evaluate(RATE) == 2 and page.input_value("#player-speed") == "2"
        page.keyboard.press("]")
        assert page.evaluate(RATE) == 4

        _seek(page, 1.0)
        page.click("#frame-forward")
        page.wait_for_function(f"() => Math.abs({NOW} - {1 + 1 / fps}) < 0.01")
        page.locator("#player").focus()
        page.keyboard.press(",")
        page.keyboard.press(",")
        page.wait_for_function(f"() => Math.abs({NOW} - {1 - 1 / fps}) < 0.01")
        page.keyboard.press("l")
        page.wait_for_function(f"() => {NOW} > 3.5")  # 5 s on, at most the end (4 s)

        # typing in a form field is typing, not a shortcut
        page.fill("#marker-note", "")
        page.locator("#marker-note").press("l")
        assert page.input_value("#marker-note") == "l"

        # the strip: 16 cells cut from the contact sheet; a click seeks to its slot
        cells = page.locator("#thumb-strip .thumb-cell")
        assert cells.count() == 16
        assert "contact_sheet" in (cells.nth(0).evaluate("c => getComputedStyle(c).backgroundImage"))
        cells.nth(8).click()
        duration = float(page.get_attribute("#thumb-strip", "data-duration") or 0)
        page.wait_for_function(f"() => Math.abs({NOW} - {duration / 2}) < 0.1")

        # M: the current moment into the marker form, the note field focused
        _seek(page, 2.5)
        page.locator("#player").focus()
        page.keyboard.press("m")
        assert page.input_value("#marker-at") == "0:02.5"
        assert page.evaluate("() => document.activeElement.id") == "marker-note"
        # the contact sheet is one click away, no longer the page's largest part
        assert not page.locator("#contact-sheet").is_visible()
        page.click("#contact-sheet-box summary")
        assert page.locator("#contact-sheet").is_visible()
    except Exception:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "player-failure.png"), full_page=True)
        raise
