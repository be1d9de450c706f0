"""Must hold (issue 20): in Chromium, a custodian opens a clip's redaction page, draws a box on the
video with the mouse, and renders: the rendered copy exists, the box's region (in the ORIGINAL's pixels,
scaled from the proxy's display size) is strongly changed in every frame and the rest of the frame
stays close to the original. The served station of `test_browser` (a 4 s 320x240 clip)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evidence_store.bootstrap import open_station
from evidence_store.settings import load_settings
from tests.e2e.test_browser import ARTIFACTS, PASSWORD, chromium_page, served_station, sign_in
from tests.integration.redaction_media import box_and_rest, decoded_frames

__all__ = ["served_station"]

DRAWN = (0.25, 0.3, 0.6, 0.7)  # left, top, right, bottom as shares of the displayed picture


def test_a_box_drawn_with_the_mouse_is_hidden_in_the_rendered_copy(
    served_station: dict[str, Any], tmp_path: Path
) -> None:
    base, clip_id, env = served_station["base"], served_station["clip_id"], served_station["env"]
    with chromium_page() as page:
        try:
            sign_in(page, base, "custodian1", PASSWORD)
            page.goto(f"{base}/clips/{clip_id}")
            page.click("#redaction-link")
            page.wait_for_url(f"{base}/clips/{clip_id}/redaction")
            page.wait_for_function("() => document.getElementById('redact-player').readyState >= 2")
            page.select_option("#redact-box-effect", "black")
            frame = page.locator("#redact-overlay").bounding_box()
            assert frame is not None and frame["width"] > 320  # shown larger than the original
            left, top, right, bottom = (
                frame["x"] + DRAWN[0] * frame["width"],
                frame["y"] + DRAWN[1] * frame["height"],
                frame["x"] + DRAWN[2] * frame["width"],
                frame["y"] + DRAWN[3] * frame["height"],
            )
            page.mouse.move(left, top)
            page.mouse.down()
            page.mouse.move(right, bottom, steps=8)
            page.mouse.up()
            assert page.locator("#redact-boxes li[data-box-id]").count() == 1
            page.click("#redact-render")
            page.wait_for_url(lambda url: "rendered=" in url, timeout=180_000)
            assert page.locator("#copy-list li").count() == 1
            state = page.evaluate(
                "async (id) => (await fetch('/api/clips/' + id + '/redaction')).json()", clip_id
            )
        except Exception:
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "redaction-browser-failure.png"), full_page=True)
            raise
    spec = state["spec"]
    assert (spec["width"], spec["height"]) == (320, 240) and spec["box_effect"] == "black"
    keyframe = spec["boxes"][0]["keyframes"][0]
    # the box in the original's pixels: the drawn shares of the picture, whatever size it was shown at
    assert abs(keyframe["x"] - DRAWN[0] * 320) <= 3 and abs(keyframe["y"] - DRAWN[1] * 240) <= 3
    assert abs(keyframe["w"] - (DRAWN[2] - DRAWN[0]) * 320) <= 4
    assert abs(keyframe["h"] - (DRAWN[3] - DRAWN[1]) * 240) <= 4
    made = state["versions"][-1]["renders"][0]
    station = open_station(load_settings(env))
    try:
        with station.connect() as connection:
            from sqlalchemy import select

            from evidence_store.db.tables import clips

            original_sha = connection.scalar(select(clips.c.sha256).where(clips.c.id == clip_id))
        copy = tmp_path / "copy.mp4"
        with station.blobs.open(made["sha256"]) as source:
            copy.write_bytes(source.read())
        before = decoded_frames(station.blobs.path_for(original_sha))  # type: ignore[attr-defined]
    finally:
        station.close()
    after = decoded_frames(copy)
    assert len(after) == len(before) and after[0].shape == before[0].shape == (240, 320, 3)
    box = (round(keyframe["x"]), round(keyframe["y"]), round(keyframe["w"]), round(keyframe["h"]))
    measures = [box_and_rest(b, a, box) for b, a in zip(before, after, strict=True)]
    hidden, kept = min(m[0] for m in measures), max(m[1] for m in measures)
    print(f"browser-drawn box: MAD inside min {hidden:.1f}; outside max {kept:.2f}")
    assert hidden > 40, "the drawn box is hidden in every frame of the copy"
    assert kept < 3, "the rest of the frame stays as it was"
