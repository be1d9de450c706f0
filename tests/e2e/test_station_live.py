"""Must hold (issue 19, item 1): a docking from a slowed-down recorder, watched in Chromium on the
station page: the progress rises and then "safe to unplug" shows, without a reload.

The recorder is slowed at the device: its FAT image is served through a FUSE file whose reads wait
(`tests.fixtures.faulty_fuse`, `read_bytes_per_s`; this kernel has no dm-delay), that file is attached
as a loop device, and the station (`evidence station`, alone, with our udev rules) docks it, mounts it
read-only and pulls it as it would a slow USB card. The page is never reloaded: a marker set in the
page at the start is still there at the end. The station then stops promptly although the page's event
stream is still open."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.e2e.test_browser import CHROMIUM, CHROMIUM_ARGS, sign_in
from tests.e2e.test_station_docking import Station, processes_of
from tests.fixtures.faulty_fuse import FaultyImage
from tests.fixtures.recorders import (  # noqa: F401  (fixtures)
    LoopDevice,
    RecorderSpec,
    build_recorder_image,
    dock_tools,
    udevd,
)
from tests.fixtures.services import free_port, require

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("dock_tools")]

PASSWORD = "a long custodian password"
BIG_MB = 16
RATE = 2 * 1024 * 1024  # bytes a second the slowed recorder gives: the copy takes several seconds


@pytest.fixture
def station_without_workers(tmp_path: Path) -> Iterator[Station]:
    require(Path(CHROMIUM).exists(), "Debian's chromium is not installed (deploy/install-system-packages.sh)")
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
    env.update(
        {
            "EVIDENCE_HOME": str(home),
            "EVIDENCE_STATION_NAME": "station-live",
            "EVIDENCE_PROCESSING_QUEUE": "none",  # the dock and the web are what this test watches
        }
    )
    assert run_cli(["init"], env).code == 0
    added = run_cli(
        ["users", "add", "custodian1", "--role", "custodian", "--password-stdin"], env, input=PASSWORD + "\n"
    )
    assert added.code == 0, added.stderr
    station = Station(env, home, free_port())
    try:
        yield station
    finally:
        if station.proc.poll() is None:
            station.stop()
        for pid in processes_of(home):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.usefixtures("udevd")
def test_the_station_page_shows_a_slow_docking_rise_to_safe_to_unplug_without_a_reload(
    station_without_workers: Station, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    station = station_without_workers
    image = build_recorder_image(
        tmp_path, RecorderSpec("DSJ1990", "319990", "vfat", clips=1, big_file_mb=BIG_MB)
    )
    station.wait_until(station.serving, "the web UI answers", timeout=60)
    station.wait_until(lambda: bool(station.started("dock")), "the dock runs")

    profile = tempfile.mkdtemp(prefix="evidence-chromium-")
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
            context.set_default_timeout(20_000)
            page = context.pages[0] if context.pages else context.new_page()
            try:
                sign_in(page, station.base, "custodian1", PASSWORD)
                page.click("#nav-station")
                page.wait_for_url(f"{station.base}/station")
                page.locator("#bays-empty").wait_for()
                page.evaluate("() => { window.stillThisPage = true; }")  # gone if the page reloads

                seen: list[tuple[str, int]] = []  # (state, bytes done) as the page showed them
                with FaultyImage(image.path, tmp_path, read_bytes_per_s=RATE) as served, LoopDevice(served):
                    bay = page.locator("article.bay")
                    bay.wait_for(timeout=60_000)
                    deadline = time.monotonic() + 180
                    while time.monotonic() < deadline:
                        # one look at the one element (an update replaces it between two looks)
                        state, done_text, safe = page.evaluate(
                            "() => { const b = document.querySelector('article.bay');"
                            " return [b.dataset.state, b.dataset.bytesDone, b.dataset.safe === 'yes']; }"
                        )
                        done = int(done_text)
                        if not seen or seen[-1] != (state, done):
                            seen.append((state, done))
                        if safe:
                            break
                        time.sleep(0.2)
                    page.locator(".bay-safe").wait_for(timeout=30_000)
                    safe_text = page.locator(".bay-safe").inner_text()
                    assert page.evaluate("() => window.stillThisPage === true"), "the page was reloaded"
                total = sum(image.sizes.values())
                copying = [done for state, done in seen if state == "copying"]
                # the progress rose while the copy ran: several values between nothing and everything
                assert len({d for d in copying if 0 < d < total}) >= 3, seen
                assert copying == sorted(copying), seen
                # "safe" came last, once all was stored: never while copying or verifying
                assert seen[-1][0] == "done" and seen[-1][1] >= total, seen
                assert safe_text == "可以拔出"
                assert "DSJ1990" in page.locator("article.bay").inner_text()
                # the station stops promptly with the page's event stream still open
                stopping = time.monotonic()
                assert station.stop() == 0, station.text()[-4000:]
                assert time.monotonic() - stopping < 15, station.text()[-4000:]
                assert "SIGKILL" not in station.text(), station.text()[-4000:]  # nothing had to be killed
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
