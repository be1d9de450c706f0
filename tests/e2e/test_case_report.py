"""A custodian's day with cases, as a user drives the product: import the example case file, import a
recorder's footage, process it (which links it to the documents, R5), then look at the case, draw its
coverage timeline and produce the compliance report in every format (R1, R5-R7)."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from evidence_store.bootstrap import Station
from tests.conftest import REPO, run_cli
from tests.fixtures.media import make_video

CASE = "金普卫监罚〔2026〕12号"
SHANGHAI = ZoneInfo("Asia/Shanghai")
# station times the recorder wrote into the file names (its clock is read at docking: measured)
INSPECTION = ["20260302093100", "20260302093300"]  # the inspection runs 09:30-10:15: footage stops early
SAMPLING = ["20260302102400", "20260302102800", "20260302103200", "20260302103600"]  # 10:20-10:40: covered
ELSEWHERE = ["20260304150000"]  # no document of anyone's: unassigned footage


def stage_recorder(root: Path) -> None:
    now = datetime.now(SHANGHAI).replace(tzinfo=None, microsecond=0)
    root.mkdir(parents=True)
    (root / "DeviceInfo.txt").write_text(
        "Serial=DSJA1\nOfficer=310777\nUnit=金普新区卫生健康监督所\nModel=DSJ-T9\n"
        f"Time={now:%Y-%m-%d %H:%M:%S}\n",
        encoding="utf-8",
    )
    for seq, stamp in enumerate(INSPECTION + SAMPLING + ELSEWHERE, start=1):
        make_video(
            root / "DCIM" / "100MEDIA" / f"DSJA1_310777_{stamp}_{seq:04d}.MP4", seconds=2, tag=f"e2e-{seq}"
        )


def test_import_cases_and_footage_then_show_draw_and_report(
    station: Station, station_env: dict[str, str], tmp_path: Path, ffmpeg_available: None
) -> None:
    imported = run_cli(
        ["cases", "import", str(REPO / "docs" / "examples" / "cases-example.json")], station_env
    )
    assert imported.code == 0, imported.stderr
    assert "officers created (unknown numbers): 310777, 310778, 310779, 310780" in imported.stdout

    volume = tmp_path / "recorder"
    stage_recorder(volume)
    pulled = run_cli(["import", str(volume), "--json"], station_env, timeout=300)
    assert pulled.code == 0, pulled.stderr
    pull = json.loads(pulled.stdout)
    # seven videos; DeviceInfo.txt is a sidecar, kept as an attachment of the transfer (issue 17, item 2)
    assert (pull["files_ingested"], pull["files_attached"]) == (7, 1), pulled.stdout
    processed = run_cli(["process", "--json"], station_env, timeout=600)
    assert processed.code == 0, processed.stderr
    assert json.loads(processed.stdout)["failed_jobs"] == []

    shown = run_cli(["cases", "show", CASE, "--json"], station_env)
    assert shown.code == 0, shown.stderr
    view = json.loads(shown.stdout)
    documents = {d["id"]: d for d in view["documents"]}
    clips = {c["original_name"]: c for c in view["clips"]}
    assert len(documents["JPWS-2026-0012-01"]["linked_clips"]) == 2
    assert len(documents["JPWS-2026-0012-02"]["linked_clips"]) == 4
    assert documents["JPWS-2026-0012-03"]["linked_clips"] == []
    assert len(clips) == 6 and not any(c["uncertain"] for c in clips.values())
    assert all(c["officer"] == "310777" and c["late_handover"] for c in clips.values())
    flags = {(f["kind"], f["document"]): f for f in view["flags"] if f["document"]}
    ends_early = flags[("ends_early", "JPWS-2026-0012-01")]["details"]
    assert 2400 < ends_early["uncovered_seconds"] < 2600  # 09:33:02 to 10:15, give or take the clock
    assert not {k for k, d in flags if d == "JPWS-2026-0012-02"}  # covered: no flag at all
    assert {k for k, d in flags if d == "JPWS-2026-0012-04"} == {
        "missing_video",
        "document_without_end",
        "filing_overdue",  # R8: an act of March, nothing filed 30 days on (the station's clock is today)
    }
    late = [f for f in view["flags"] if f["kind"] == "late_handover"]
    assert len(late) == 6 and all(f["details"]["hours_after_recording"] > 24 for f in late)

    # the custodian marks a sampling clip as evidence; the case view shows it
    sampling_clip = clips[f"DSJA1_310777_{SAMPLING[0]}_0003.MP4"]["clip_id"]
    marked = run_cli(
        ["cases", "mark-evidence", str(sampling_clip), CASE, "--reason", "抽样过程完整"], station_env
    )
    assert marked.code == 0, marked.stderr
    view = json.loads(run_cli(["cases", "show", CASE, "--json"], station_env).stdout)
    assert {c["clip_id"] for c in view["clips"] if c["evidence"]} == {sampling_clip}
    human = run_cli(["cases", "show", CASE], station_env)
    assert human.code == 0 and "ends_early" in human.stdout and "evidence" in human.stdout

    picture = tmp_path / "timeline.svg"
    drawn = run_cli(["cases", "timeline", CASE, "--svg", str(picture)], station_env)
    assert drawn.code == 0, drawn.stderr
    root = ET.fromstring(picture.read_bytes())
    lanes = root.findall("{http://www.w3.org/2000/svg}g[@class='lane']")
    assert [lane.get("data-officer") for lane in lanes] == ["310777", "310778"]
    bars = [
        r for r in root.iter("{http://www.w3.org/2000/svg}rect") if "clip" in (r.get("class") or "").split()
    ]
    assert len(bars) == 6
    assert any(r.get("class") == "uncovered" for r in root.iter("{http://www.w3.org/2000/svg}rect"))

    period = ["report", "compliance", "--from", "2026-03-01", "--to", "2026-03-31"]
    as_json = run_cli([*period, "--format", "json"], station_env)
    assert as_json.code == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["counts"] == {
        "documents": 5,
        "needing_video": 4,
        "covered": 1,
        "covered_with_mismatch": 1,
        "missing_with_exception": 1,
        "missing_without_exception": 1,
        "documents_without_end": 1,
        "late_handovers": 7,
        "filing_overdue": 1,  # R8: JPWS-2026-0012-04 (the exception excuses JPWS-2026-0031-01)
        "unfiled_footage": 1,  # R8: the footage of 4 March, of no document, linked to no case
    }
    assert [c["case"] for c in report["filing"]["overdue_cases"]] == [CASE]
    assert report["filing"]["overdue_cases"][0]["documents"] == ["JPWS-2026-0012-04"]
    as_csv = run_cli([*period, "--format", "csv"], station_env)
    assert as_csv.code == 0, as_csv.stderr
    rows = {row["document"]: row for row in csv.DictReader(io.StringIO(as_csv.stdout))}
    assert {d: r["status"] for d, r in rows.items()} == {
        "JPWS-2026-0012-01": "covered_with_mismatch",
        "JPWS-2026-0012-02": "covered",
        "JPWS-2026-0031-01": "missing_with_exception",
        "JPWS-2026-0012-03": "not_required",
        "JPWS-2026-0012-04": "missing_without_exception",
    }
    assert rows["JPWS-2026-0012-02"]["linked_clips"] == "4"
    assert {d for d, r in rows.items() if r["filing_overdue"] == "yes"} == {"JPWS-2026-0012-04"}
    page = tmp_path / "report.html"
    as_html = run_cli([*period, "--format", "html", "--output", str(page)], station_env)
    assert as_html.code == 0, as_html.stderr
    html = page.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and 'data-document="JPWS-2026-0012-04"' in html
    assert 'class="missing_without_exception"' in html and "Late handovers (R1)" in html
    assert "Filing overdue (R8)" in html and f'data-case="{CASE}"' in html
    one_officer = json.loads(run_cli([*period, "--officer", "310779"], station_env).stdout)
    assert [d["document"] for d in one_officer["documents"]] == ["JPWS-2026-0031-01"]
    assert one_officer["counts"]["late_handovers"] == 0

    assert run_cli(["audit", "verify"], station_env).code == 0
