"""Issue 19 item 6: the pages work on a phone. At 390 px wide (an iPhone 12-15 in portrait) no page is
wider than the screen (wide tables scroll inside themselves), and the clip page is not a tower of
thumbnails. Chromium through Playwright, the served station of `test_browser`."""

from __future__ import annotations

from typing import Any

from tests.e2e.test_browser import ARTIFACTS, PASSWORD, chromium_page, served_station

__all__ = ["served_station"]

WIDTH, HEIGHT = 390, 844
WIDTH_OF_PAGE = "() => document.documentElement.scrollWidth"


def test_every_main_page_fits_a_phone(served_station: dict[str, Any]) -> None:
    base, clip_id = served_station["base"], served_station["clip_id"]
    with chromium_page(WIDTH, HEIGHT) as page:
        try:
            page.goto(f"{base}/login")
            assert page.evaluate(WIDTH_OF_PAGE) <= WIDTH
            page.fill("#username", "custodian1")
            page.fill("#password", PASSWORD)
            page.click("#login-submit")
            page.wait_for_url(f"{base}/dashboard")
            case_href = None
            widths = {}
            redaction = f"/clips/{clip_id}/redaction"
            for path in ("/dashboard", "/search?go=1", f"/clips/{clip_id}", redaction, "/cases"):
                page.goto(f"{base}{path}")
                page.wait_for_load_state("load")
                widths[path] = page.evaluate(WIDTH_OF_PAGE)
                if path == "/cases":
                    case_href = page.get_attribute("table a[href^='/cases/']", "href")
            assert case_href is not None
            page.goto(f"{base}{case_href}")
            page.wait_for_load_state("load")
            widths[case_href] = page.evaluate(WIDTH_OF_PAGE)
            assert all(width <= WIDTH for width in widths.values()), widths

            page.goto(f"{base}/clips/{clip_id}")
            page.wait_for_load_state("load")
            height = page.evaluate("() => document.documentElement.scrollHeight")
            assert height < 12 * HEIGHT, height  # was 25,600 px
            # the player takes the screen's width, not more
            box = page.locator("#player").bounding_box()
            assert box is not None and box["width"] <= WIDTH
            # so does the redaction editor's picture, its drawing canvas exactly over it (issue 20)
            page.goto(f"{base}/clips/{clip_id}/redaction")
            page.wait_for_function("() => document.getElementById('redact-player').readyState >= 1")
            video = page.locator("#redact-player").bounding_box()
            canvas = page.locator("#redact-overlay").bounding_box()
            assert video is not None and canvas is not None and video["width"] <= WIDTH
            assert abs(video["width"] - canvas["width"]) < 1 and abs(video["height"] - canvas["height"]) < 1
        except Exception:
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "small-screen-failure.png"), full_page=True)
            raise
