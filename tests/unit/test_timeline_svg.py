"""The coverage timeline picture (R5-R7) as a pure function: valid SVG, one lane per officer, a bar per
clip, red where footage is missing or does not match, exceptions marked, the axis in the station's zone."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from evidence_store.cases.timeline import (
    RED,
    Span,
    TimelineClip,
    TimelineDocument,
    TimelineLane,
    _text_width,
    axis_ticks,
    fit_label,
    render_timeline,
)

NS = {"svg": "http://www.w3.org/2000/svg"}
T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # 09:00 in Asia/Shanghai
SHANGHAI = ZoneInfo("Asia/Shanghai")


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def lanes() -> list[TimelineLane]:
    inspection = TimelineDocument(
        1,
        "JPWS-01 现场检查笔录",
        minutes(0),
        minutes(45),
        True,
        uncovered=(Span(minutes(0), minutes(12)), Span(minutes(20), minutes(30))),
        flags=("starts_late", "coverage_gap"),
    )
    sampling = TimelineDocument(
        2,
        "JPWS-02 抽样记录",
        minutes(50),
        minutes(70),
        True,
        uncovered=(Span(minutes(50), minutes(70)),),
        flags=("missing_video",),
        exception="记录仪故障 <已报告>",
    )
    return [
        TimelineLane(
            "310777",
            (inspection, sampling),
            (
                TimelineClip(11, minutes(12), minutes(20), "A.MP4", mismatch=True, evidence=True),
                TimelineClip(12, minutes(30), minutes(45), "B.MP4", mismatch=True),
            ),
        ),
        TimelineLane(
            "310778 <&>",
            (inspection,),
            (TimelineClip(13, minutes(1), minutes(44), "C.MP4", uncertain=True),),
        ),
    ]


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg.encode("utf-8"))


def test_the_picture_is_svg_with_one_lane_per_officer_and_a_bar_per_clip() -> None:
    root = parse(render_timeline("金普卫监罚〔2026〕12号", lanes(), SHANGHAI, zone_name="Asia/Shanghai"))
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    found = root.findall("svg:g[@class='lane']", NS)
    assert [lane.get("data-officer") for lane in found] == ["310777", "310778 <&>"]
    bars = {
        lane.get("data-officer"): [
            int(rect.get("data-clip-id", "0"))
            for rect in lane.findall("svg:rect", NS)
            if "clip" in (rect.get("class") or "").split()
        ]
        for lane in found
    }
    assert bars == {"310777": [11, 12], "310778 <&>": [13]}
    documents = [r for r in root.iter("{http://www.w3.org/2000/svg}rect") if r.get("class") == "document"]
    assert len(documents) == 3  # the inspection in both officers' lanes, the sampling in one


def test_gaps_and_mismatches_are_red() -> None:
    root = parse(render_timeline("case", lanes(), SHANGHAI))
    rects = list(root.iter("{http://www.w3.org/2000/svg}rect"))
    uncovered = [r for r in rects if r.get("class") == "uncovered"]
    assert len(uncovered) == 3 + 2  # late start, gap and missing sampling; late start and gap again in lane 2
    assert all(r.get("fill") == RED for r in uncovered)
    mismatched = [r for r in rects if "mismatch" in (r.get("class") or "").split()]
    assert [r.get("data-clip-id") for r in mismatched] == ["11", "12"]
    assert all(r.get("stroke") == RED for r in mismatched)
    fine = [r for r in rects if r.get("data-clip-id") == "13"]
    assert fine[0].get("stroke") != RED and "clock-unknown" in (fine[0].get("class") or "")
    # red spans sit inside their document's band, in proportion to their time
    inspection = next(r for r in rects if r.get("class") == "document" and r.get("data-document-id") == "1")
    late = next(r for r in uncovered if r.get("data-document-id") == "1")
    x, width = float(inspection.get("x", "0")), float(inspection.get("width", "0"))
    assert float(late.get("x", "0")) == x
    assert abs(float(late.get("width", "0")) - width * 12 / 45) < 0.5


def test_exceptions_are_marked_and_text_is_escaped() -> None:
    svg = render_timeline("case <x>", lanes(), SHANGHAI)
    root = parse(svg)
    marks = [p for p in root.iter("{http://www.w3.org/2000/svg}path") if p.get("class") == "exception"]
    assert [p.get("data-document-id") for p in marks] == ["2"]
    assert marks[0].findtext("svg:title", namespaces=NS) == "R6 exception: 记录仪故障 <已报告>"
    assert "case &lt;x&gt;" in svg


def test_the_axis_is_labelled_in_the_station_zone() -> None:
    root = parse(render_timeline("case", lanes(), SHANGHAI, zone_name="Asia/Shanghai"))
    labels = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text") if t.get("class") == "tick"]
    assert "09:00" in labels and "10:00" in labels  # 01:00 and 02:00 UTC
    zone = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text") if t.get("class") == "zone"]
    assert zone == ["Asia/Shanghai"]
    ticks = axis_ticks(minutes(-30), minutes(60 * 30), SHANGHAI)
    assert all(len(label) == len("03-02 09:00") for _, label in ticks)  # more than one day: dates too
    assert all(tick.tzinfo is not None for tick, _ in ticks)


def test_an_empty_case_still_draws() -> None:
    root = parse(render_timeline("empty", [], SHANGHAI))
    assert root.findall("svg:g[@class='lane']", NS) == []
    assert any(t.get("class") == "empty" for t in root.iter("{http://www.w3.org/2000/svg}text"))


def _bars(svg: str, kind: str) -> list[tuple[float, float]]:
    return [
        (float(x), float(w))
        for x, w in re.findall(rf'<rect class="{kind}[^"]*"[^>]*? x="([\d.]+)"[^>]*? width="([\d.]+)"', svg)
    ]


def test_a_case_spanning_days_keeps_every_bar_visible_with_a_break_in_the_axis() -> None:
    """Issue 19: at spans over a day the clip bars vanished and the labels overlapped."""
    visits = [minutes(0), minutes(60 * 24 * 6)]  # two visits six days apart
    lane = TimelineLane(
        "1001",
        documents=tuple(
            TimelineDocument(
                document_id=i,
                label=f"JP-2026-{i} 现场检查笔录（第{i}次）",
                start=at,
                end=at + timedelta(minutes=40),
                requires_video=True,
            )
            for i, at in enumerate(visits, 1)
        ),
        clips=tuple(
            TimelineClip(clip_id=i, start=at + timedelta(minutes=5), end=at + timedelta(minutes=12))
            for i, at in enumerate(visits, 1)
        ),
    )
    svg = render_timeline("case", [lane], SHANGHAI)
    clips = _bars(svg, "clip")
    assert len(clips) == 2 and all(width > 40 for _, width in clips)  # a 7-minute clip, not a sliver
    assert svg.count('class="axis-break"') == 1 and "days without activity" in svg
    # each stretch has its own ticks, dated since the case spans several days
    ticks = re.findall(r'class="tick"[^>]*>([^<]+)<', svg)
    assert len(ticks) >= 4 and all(re.fullmatch(r"\d\d-\d\d \d\d:\d\d", t) for t in ticks)


def test_document_labels_never_run_into_the_next_document() -> None:
    long_label = "JP-2026-1 " + "现场检查笔录" * 6
    lane = TimelineLane(
        "1001",
        documents=(
            TimelineDocument(
                document_id=1, label=long_label, start=minutes(0), end=minutes(10), requires_video=True
            ),
            TimelineDocument(
                document_id=2, label="JP-2026-2", start=minutes(12), end=minutes(20), requires_video=False
            ),
        ),
    )
    svg = render_timeline("case", [lane], SHANGHAI)
    labels = re.findall(r'<text class="document-label" x="([\d.]+)"[^>]*>([^<]+)<', svg)
    assert len(labels) == 2
    (x1, first), (x2, _second) = sorted((float(x), text) for x, text in labels)
    assert first.endswith("…") and _text_width(first) <= x2 - x1
    assert long_label in svg  # the whole label stays in the tooltip


def test_fit_label() -> None:
    assert fit_label("JP-1", 100) == "JP-1"
    assert fit_label("JP-2026-123456", 40).endswith("…")
    assert fit_label("现场检查", 5) == ""
