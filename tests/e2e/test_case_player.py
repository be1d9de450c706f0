"""Must hold (issue 19 item 2): two officers' clips of one case, with recorder clocks off by different
amounts: seeking the case player to a document's start puts each clip at the right moment (checked
through the players' `currentTime`); a clip whose recorder clock is unknown is shown apart, not placed.

Three folders are imported and processed with the real commands; the clock facts a docking would have
measured (offsets +12 s and -7 s, one clock not read) are then set on the clips' rows, since a folder
import reads no recorder clock. Chromium through Playwright; a failing run leaves a screenshot."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.e2e.test_browser import ARTIFACTS, CHROMIUM, UNIT, chromium_page, serving, sign_in
from tests.fixtures.media import make_video
from tests.fixtures.services import require

PASSWORD = "a long case player password"
CASE = "金普卫监检〔2026〕9号"
T0 = datetime.fromisoformat("2026-03-02T01:00:00+00:00")
# officer -> (corrected start after T0 in s, recorder clock offset in s, clock status)
CLIPS = {"5005": (0.0, 12.0, "measured"), "6006": (1.5, -7.0, "measured"), "7007": (0.5, 0.0, "unknown")}
DOCUMENT_START_S = 2.5  # after T0: inside both measured clips (0-4 s and 1.5-5.5 s)


@pytest.fixture
def case_station(tmp_path: Path) -> Iterator[dict[str, Any]]:
    require(
        Path(CHROMIUM).exists(), "Debian's chromium is not installed (deploy/install-system-packages.sh test)"
    )
    require(shutil.which("ffmpeg") is not None, "ffmpeg is not installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
    env.update(
        {
            "EVIDENCE_HOME": str(tmp_path / "home"),
            "EVIDENCE_STATION_NAME": "case-player-e2e",
            "EVIDENCE_PROCESSING_QUEUE": "none",
        }
    )
    assert run_cli(["init"], env).code == 0
    for officer in CLIPS:
        volume = tmp_path / f"volume-{officer}"
        make_video(volume / "DCIM" / f"clip-{officer}.mp4", seconds=4, size="320x240", tag=f"case-{officer}")
        done = run_cli(
            ["import", str(volume), "--device", f"DSJ-{officer}", "--officer", officer], env, timeout=600
        )
        assert done.code == 0, done.stderr
    assert run_cli(["process"], env, timeout=600).code == 0
    added = run_cli(
        [
            "users",
            "add",
            "custodian2",
            "--role",
            "custodian",
            "--unit",
            UNIT,
            "--name",
            "证据管理员",
            "--password-stdin",
        ],
        env,
        input=PASSWORD + "\n",
    )
    assert added.code == 0, added.stderr
    clip_ids = _make_case(env)
    with serving(env) as base:
        yield {"base": base, "clip_ids": clip_ids}


def _make_case(env: dict[str, str]) -> dict[str, int]:
    """The clock facts a docking would have measured, and a case with a document both officers recorded."""
    from sqlalchemy import select, update

    from evidence_store.bootstrap import open_station
    from evidence_store.cases.manual import link_manually
    from evidence_store.db.tables import clips, officers
    from evidence_store.domain.model import Case, CaseCategory, ClockStatus, Document
    from evidence_store.settings import load_settings

    station = open_station(load_settings(env))
    try:
        ids: dict[str, int] = {}
        with station.transaction() as session:
            for officer, (start_s, offset_s, clock) in CLIPS.items():
                officer_id = session.scalar(select(officers.c.id).where(officers.c.badge_number == officer))
                clip_id = session.scalar(select(clips.c.id).where(clips.c.officer_id == officer_id))
                assert clip_id is not None
                ids[officer] = int(clip_id)
                start = T0 + timedelta(seconds=start_s)
                session.execute(
                    update(clips)
                    .where(clips.c.id == clip_id)
                    .values(
                        clock_status=ClockStatus(clock),
                        clock_offset_s=offset_s if clock == "measured" else None,
                        # the recorder's own (naive, local) clock: the corrected time plus its offset
                        device_start=(start + timedelta(hours=8, seconds=offset_s)).replace(tzinfo=None),
                        device_end=(start + timedelta(hours=8, seconds=offset_s + 4)).replace(tzinfo=None),
                        utc_start=start,
                        utc_end=start + timedelta(seconds=4),
                    )
                )
            officer_ids = list(session.scalars(select(officers.c.id)))
            case = Case(
                number=CASE,
                title="联合检查",
                category=CaseCategory.INSPECTION,
                unit=UNIT,
                officer_ids=officer_ids,
                opened_at=T0 - timedelta(hours=1),
            )
            session.add(case)
            session.flush()
            session.add(
                Document(
                    external_id="JP-2026-9-1",
                    case_id=case.id or 0,
                    kind="现场检查笔录",
                    title="现场检查笔录",
                    officer_ids=officer_ids,
                    start=T0 + timedelta(seconds=DOCUMENT_START_S),
                    end=T0 + timedelta(seconds=60),
                    requires_video=True,
                )
            )
        for clip_id in ids.values():
            link_manually(station, clip_id, CASE, document="JP-2026-9-1", reason="联合检查录像", actor="test")
        return ids
    finally:
        station.close()


def test_seeking_the_case_player_to_a_document_puts_each_clip_at_its_moment(
    case_station: dict[str, Any],
) -> None:
    base, ids = case_station["base"], case_station["clip_ids"]
    with chromium_page() as page:
        try:
            sign_in(page, base, "custodian2", PASSWORD)
            page.click("#nav-cases")
            page.click(f"text={CASE}")
            player = page.locator("#case-player")
            player.wait_for()
            # the two measured clips are on the line; the unknown clock is apart, with its own controls
            placed = page.eval_on_selector_all("figure.synced", "fs => fs.map(f => +f.dataset.clipId)")
            assert sorted(placed) == sorted([ids["5005"], ids["6006"]])
            assert page.eval_on_selector_all("figure.apart", "fs => fs.map(f => +f.dataset.clipId)") == [
                ids["7007"]
            ]
            page.wait_for_function(
                "() => [...document.querySelectorAll('figure.synced video')].every(v => v.readyState >= 1)"
            )

            page.click("button.jump[data-document='JP-2026-9-1'][data-edge='start']")
            expected = {ids["5005"]: DOCUMENT_START_S - 0.0, ids["6006"]: DOCUMENT_START_S - 1.5}
            page.wait_for_function(
                """(expected) => Object.entries(expected).every(([id, t]) => {
                    const v = document.querySelector(`figure.synced[data-clip-id='${id}'] video`);
                    return Math.abs(v.currentTime - t) < 0.05;
                })""",
                arg={str(k): v for k, v in expected.items()},
            )
            # the master clock reads the document's start in the station's zone (UTC+8)
            assert page.input_value("#sync-seek") == "2.5"
            assert page.locator("#sync-time").inner_text() == "2026-03-02 09:00:02"

            # a moment only one officer recorded: the other player waits, marked idle
            page.evaluate(
                "() => { const s = document.getElementById('sync-seek'); s.value = '0.5';"
                " s.dispatchEvent(new Event('input')); }"
            )
            idle = page.eval_on_selector_all("figure.synced.idle", "fs => fs.map(f => +f.dataset.clipId)")
            assert idle == [ids["6006"]]

            # playing moves every player on together
            page.click("#sync-play")
            later = f"figure.synced[data-clip-id='{ids['6006']}'] video"
            page.wait_for_function(f'() => document.querySelector("{later}").currentTime > 0.3')
            page.click("#sync-play")
            times = page.evaluate(
                "() => [...document.querySelectorAll('figure.synced')].map(f => "
                "[+f.dataset.offset, f.querySelector('video').currentTime])"
            )
            positions = {round(offset + current, 1) for offset, current in times}
            assert max(positions) - min(positions) <= 0.3, times  # one moment of the real world
        except Exception:
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "case-player-failure.png"), full_page=True)
            raise
