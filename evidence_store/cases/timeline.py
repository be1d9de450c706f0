"""The coverage timeline of a case as an SVG picture, as a pure function over plain data (R5-R7).

One lane per officer: the officer's document windows as bands, the clips they recorded as bars below
them, the parts of a window without footage (late start, early end, gaps, missing video) in red, clips
whose document does not match its footage outlined in red, approved exceptions (R6) marked, and a time
axis labelled in the station's zone. The SVG is written by hand (no drawing library): plain elements,
classes and `data-` attributes so that the web UI can embed and style it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from xml.sax.saxutils import escape, quoteattr

RED = "#d62728"
COLOURS = {
    "document": "#9ecae1",  # needs video (R7)
    "document_optional": "#d9d9d9",
    "clip": "#31a354",
    "clip_uncertain": "#fd8d3c",
    "exception": "#6a3d9a",
    "axis": "#444444",
    "grid": "#e5e5e5",
}
LEFT = 170
RIGHT = 30
TOP = 56
LANE_HEIGHT = 74
AXIS_HEIGHT = 46
_STEPS = [timedelta(minutes=m) for m in (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720)] + [
    timedelta(days=d) for d in (1, 2, 7, 14, 30, 91, 182, 365)
]


@dataclass(frozen=True)
class Span:
    start: datetime
    end: datetime


@dataclass(frozen=True)
class TimelineDocument:
    """A document's window in one officer's lane; `uncovered` are the parts without footage (R5/R7)."""

    document_id: int
    label: str
    start: datetime
    end: datetime | None
    requires_video: bool
    uncovered: tuple[Span, ...] = ()
    flags: tuple[str, ...] = ()
    exception: str | None = None  # the reason of an approved exception (R6)


@dataclass(frozen=True)
class TimelineClip:
    clip_id: int
    start: datetime
    end: datetime | None
    label: str = ""
    uncertain: bool = False  # the recorder's clock was not read at docking
    evidence: bool = False
    mismatch: bool = False  # linked to a document whose footage does not match its times (R5)
    markers: tuple[tuple[float, str], ...] = ()  # (seconds into the clip, note): users' markers


@dataclass(frozen=True)
class TimelineLane:
    officer: str
    documents: tuple[TimelineDocument, ...] = ()
    clips: tuple[TimelineClip, ...] = ()


# Activity separated by more than this is drawn as separate stretches of the axis, with a break
# between them: a case of two visits a week apart stays readable instead of two slivers.
BREAK_GAP = timedelta(hours=2)
BREAK_WIDTH = 24  # px between two stretches


@dataclass(frozen=True)
class Stretch:
    """One stretch of the axis: the moments `first`..`last`, drawn from `x` over `width` pixels."""

    first: datetime
    last: datetime
    x: float
    width: float

    def x_of(self, moment: datetime) -> float:
        share = (moment - self.first).total_seconds() / (self.last - self.first).total_seconds()
        return self.x + share * self.width


def _intervals(lanes: Sequence[TimelineLane]) -> list[tuple[datetime, datetime]]:
    spans: list[tuple[datetime, datetime]] = []
    for lane in lanes:
        for document in lane.documents:
            spans.append((document.start, document.end or document.start))
        for clip in lane.clips:
            spans.append((clip.start, clip.end or clip.start))
    return sorted((min(a, b), max(a, b)) for a, b in spans)


def axis_stretches(lanes: Sequence[TimelineLane], left: float, width: float) -> list[Stretch]:
    """R5 (reading the picture at any span): the axis cut into stretches of activity, so that a case
    whose documents and clips lie days apart keeps every bar and label visible. Activity less than
    `BREAK_GAP` apart shares a stretch; each stretch is padded by 5 % of its span (at least 5 minutes)
    and gets half its width from an equal share and half in proportion to its span."""
    groups: list[list[datetime]] = []
    for start, end in _intervals(lanes):
        if groups and start - groups[-1][1] <= BREAK_GAP:
            groups[-1][1] = max(groups[-1][1], end)
        else:
            groups.append([start, end])
    if not groups:
        return []
    padded = []
    for start, end in groups:
        pad = max((end - start) / 20, timedelta(minutes=5))
        padded.append((start - pad, end + pad))
    available = width - BREAK_WIDTH * (len(padded) - 1)
    spans = [(end - start).total_seconds() for start, end in padded]
    total = sum(spans)
    stretches = []
    x = left
    for (start, end), span in zip(padded, spans, strict=True):
        share = 0.5 / len(padded) + 0.5 * span / total
        stretches.append(Stretch(start, end, x, available * share))
        x += available * share + BREAK_WIDTH
    return stretches


def choose_step(span: timedelta, max_ticks: int = 10) -> timedelta:
    """R5 (reading the picture): the smallest round tick step that gives at most `max_ticks` ticks."""
    for step in _STEPS:
        if span / step <= max_ticks:
            return step
    return _STEPS[-1]


def axis_ticks(
    first: datetime, last: datetime, zone: tzinfo, max_ticks: int = 10, *, dated: bool = False
) -> list[tuple[datetime, str]]:
    """R5 (reading the picture): round tick times between `first` and `last`, labelled in the
    station's zone (times of day within one day, else dates with times, else dates; `dated`: dates
    with times even within one day, for a stretch of an axis that spans several days)."""
    step = choose_step(last - first, max_ticks)
    local_first = first.astimezone(zone)
    if step >= timedelta(days=1):
        tick = local_first.replace(hour=0, minute=0, second=0, microsecond=0)
    else:
        midnight = local_first.replace(hour=0, minute=0, second=0, microsecond=0)
        steps_in = (local_first - midnight) // step
        tick = midnight + steps_in * step
    one_day = not dated and first.astimezone(zone).date() == last.astimezone(zone).date()
    ticks: list[tuple[datetime, str]] = []
    while tick <= last.astimezone(zone):
        if tick >= local_first:
            if step >= timedelta(days=1):
                label = f"{tick:%Y-%m-%d}"
            elif one_day:
                label = f"{tick:%H:%M}"
            else:
                label = f"{tick:%m-%d %H:%M}"
            ticks.append((tick, label))
        tick = (
            (tick + step).astimezone(zone) if step < timedelta(days=1) else _add_days(tick, step.days, zone)
        )
    return ticks


def _add_days(moment: datetime, days: int, zone: tzinfo) -> datetime:
    naive = moment.replace(tzinfo=None) + timedelta(days=days)
    return naive.replace(tzinfo=zone)


def _fmt(value: float) -> str:
    return f"{value:.1f}"


LEGEND = (
    "document (video required)",
    "document",
    "clip",
    "clip, clock unknown",
    "no footage / mismatch",
    "approved exception (R6)",
)


def render_timeline(
    title: str,
    lanes: Sequence[TimelineLane],
    zone: tzinfo,
    *,
    width: int = 1200,
    zone_name: str = "",
    legend: Sequence[str] | None = None,
) -> str:
    """R5-R7 at a glance: the coverage timeline of a case as a standalone SVG document (text).

    Red marks what breaks a rule: parts of a document window without footage (R5 late start, early end,
    gaps; R7 missing video) and clips linked to a document whose footage does not match it. Approved
    exceptions (R6) are marked with a purple diamond. Clips with an unknown clock are orange, dashed.
    `legend`: the six legend labels in the reader's language (in `LEGEND`'s order; English without).
    """
    height = TOP + LANE_HEIGHT * max(len(lanes), 1) + AXIS_HEIGHT
    plot_width = width - LEFT - RIGHT
    out: list[str] = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12" class="coverage-timeline">',
        f"<title>{escape(title)}</title>",
        f'<rect class="background" x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text class="heading" x="{LEFT}" y="24" font-size="16" font-weight="bold">{escape(title)}</text>',
        _legend(LEFT, 42, legend or LEGEND),
    ]
    axis_y = TOP + LANE_HEIGHT * max(len(lanes), 1)
    stretches = axis_stretches(lanes, LEFT, plot_width)
    if not stretches:
        out.append(f'<text class="empty" x="{LEFT}" y="{TOP + 30}">no documents or clips</text>')
        out.append("</svg>")
        return "\n".join(out)

    def x_of(moment: datetime) -> float:
        for stretch in stretches:
            if moment <= stretch.last:
                return stretch.x_of(max(moment, stretch.first))
        return stretches[-1].x_of(stretches[-1].last)

    several_days = stretches[0].first.astimezone(zone).date() != stretches[-1].last.astimezone(zone).date()
    out.append('<g class="axis">')
    for index, stretch in enumerate(stretches):
        max_ticks = max(1, int(stretch.width // 110))
        for tick, label in axis_ticks(stretch.first, stretch.last, zone, max_ticks, dated=several_days):
            x = stretch.x_of(tick)
            out.append(
                f'<line class="grid" x1="{_fmt(x)}" y1="{TOP}" x2="{_fmt(x)}" y2="{axis_y}" '
                f'stroke="{COLOURS["grid"]}" stroke-width="1"/>'
            )
            out.append(
                f'<text class="tick" x="{_fmt(x)}" y="{axis_y + 16}" text-anchor="middle" '
                f'data-time="{tick.isoformat()}">{escape(label)}</text>'
            )
        out.append(
            f'<line x1="{_fmt(stretch.x)}" y1="{axis_y}" x2="{_fmt(stretch.x + stretch.width)}" '
            f'y2="{axis_y}" stroke="{COLOURS["axis"]}" stroke-width="1"/>'
        )
        if index:
            gap_x = stretch.x - BREAK_WIDTH / 2
            skipped = stretch.first - stretches[index - 1].last
            out.append(
                f'<g class="axis-break" data-skipped-s="{skipped.total_seconds():.0f}">'
                f'<line x1="{_fmt(gap_x - 4)}" y1="{axis_y + 5}" x2="{_fmt(gap_x + 1)}" y2="{axis_y - 5}" '
                f'stroke="{COLOURS["axis"]}"/><line x1="{_fmt(gap_x - 1)}" y1="{axis_y + 5}" '
                f'x2="{_fmt(gap_x + 4)}" y2="{axis_y - 5}" stroke="{COLOURS["axis"]}"/>'
                f'<line x1="{_fmt(gap_x)}" y1="{TOP}" x2="{_fmt(gap_x)}" y2="{axis_y}" stroke="#bbbbbb" '
                f'stroke-dasharray="2,4"/><title>{escape(_skipped_text(skipped))}</title></g>'
            )
    out.append(
        f'<text class="zone" x="{LEFT + plot_width}" y="{axis_y + 34}" text-anchor="end">'
        f"{escape(zone_name or str(zone))}</text>"
    )
    out.append("</g>")
    for index, lane in enumerate(lanes):
        out.extend(_lane(lane, TOP + index * LANE_HEIGHT, x_of, width))
    out.append("</svg>")
    return "\n".join(out)


def _skipped_text(skipped: timedelta) -> str:
    hours = skipped.total_seconds() / 3600
    return f"{hours / 24:.1f} days without activity" if hours >= 48 else f"{hours:.1f} h without activity"


def fit_label(text: str, room: float) -> str:
    """R5 (reading the picture): a label cut to the room it has (about `room` px at font size 10), with
    an ellipsis; nothing when not even one character and the ellipsis fit. The full label stays in the
    shape's tooltip."""
    if _text_width(text) <= room:
        return text
    kept = ""
    for ch in text:
        if _text_width(kept + ch) + 6 > room:
            break
        kept += ch
    return kept + "…" if kept else ""


def _text_width(text: str) -> int:
    """Roughly how wide a label is at font size 10: CJK characters take about twice a Latin one."""
    return sum(10 if ord(ch) >= 0x2E80 else 6 for ch in text)


def _legend(x: int, y: int, labels: Sequence[str]) -> str:
    colours = (
        COLOURS["document"],
        COLOURS["document_optional"],
        COLOURS["clip"],
        COLOURS["clip_uncertain"],
        RED,
        COLOURS["exception"],
    )
    items = list(zip(labels, colours, strict=False))
    parts = ['<g class="legend" font-size="10">']
    offset = x
    for label, colour in items:
        parts.append(f'<rect x="{offset}" y="{y - 8}" width="10" height="8" fill="{colour}"/>')
        parts.append(f'<text x="{offset + 13}" y="{y}">{escape(label)}</text>')
        offset += 14 + _text_width(label) + 12
    parts.append("</g>")
    return "".join(parts)


def _span_text(start: datetime, end: datetime | None, missing: str) -> str:
    return f"{start.isoformat()} – {end.isoformat() if end is not None else missing}"


def _document_parts(
    document: TimelineDocument, x_of: Callable[[datetime], float], band_y: int, room: float = 1e9
) -> list[str]:
    band_h = 24
    x1 = x_of(document.start)
    x2 = x_of(document.end) if document.end is not None else x1
    colour = COLOURS["document"] if document.requires_video else COLOURS["document_optional"]
    tip = f"{document.label}: {_span_text(document.start, document.end, '(no end)')}"
    if document.flags:
        tip += f" [{', '.join(document.flags)}]"
    dash = ' stroke-dasharray="3,2"' if document.end is None else ""
    ident = f'data-document-id="{document.document_id}"'
    out = [
        f'<rect class="document" {ident} x="{_fmt(x1)}" y="{band_y}" width="{_fmt(max(x2 - x1, 2.0))}" '
        f'height="{band_h}" fill="{colour}" stroke="#3182bd" stroke-width="1"{dash}>'
        f"<title>{escape(tip)}</title></rect>"
    ]
    for span in document.uncovered:
        u1, u2 = x_of(span.start), x_of(span.end)
        out.append(
            f'<rect class="uncovered" {ident} x="{_fmt(u1)}" y="{band_y}" width="{_fmt(max(u2 - u1, 2.0))}" '
            f'height="{band_h}" fill="{RED}" fill-opacity="0.75">'
            f"<title>{escape('no footage ' + _span_text(span.start, span.end, ''))}</title></rect>"
        )
    label = fit_label(document.label, room - 6)
    if label:
        out.append(
            f'<text class="document-label" x="{_fmt(x1 + 3)}" y="{band_y + 16}" font-size="10">'
            f"{escape(label)}</text>"
        )
    if document.exception is not None:
        cx, cy = x1, band_y - 2
        diamond = f"M {_fmt(cx)} {cy - 6} L {_fmt(cx + 6)} {cy} L {_fmt(cx)} {cy + 6} L {_fmt(cx - 6)} {cy} Z"
        out.append(
            f'<path class="exception" {ident} d="{diamond}" fill="{COLOURS["exception"]}">'
            f"<title>{escape('R6 exception: ' + document.exception)}</title></path>"
        )
    return out


def _clip_parts(clip: TimelineClip, x_of: Callable[[datetime], float], clip_y: int) -> list[str]:
    clip_h = 22
    x1 = x_of(clip.start)
    x2 = x_of(clip.end) if clip.end is not None else x1
    colour = COLOURS["clip_uncertain"] if clip.uncertain else COLOURS["clip"]
    stroke = RED if clip.mismatch else "#006d2c"
    extra = ' stroke-dasharray="4,2"' if clip.uncertain else ""
    marks = [
        mark
        for mark, on in (
            ("evidence", clip.evidence),
            ("clock unknown", clip.uncertain),
            ("mismatch", clip.mismatch),
        )
        if on
    ]
    tip = f"clip {clip.clip_id} {clip.label}: {_span_text(clip.start, clip.end, '?')}"
    if marks:
        tip += f" [{', '.join(marks)}]"
    classes = " ".join(["clip", *(mark.replace(" ", "-") for mark in marks)])
    out = [
        f'<rect class="{classes}" data-clip-id="{clip.clip_id}" x="{_fmt(x1)}" y="{clip_y}" '
        f'width="{_fmt(max(x2 - x1, 2.0))}" height="{clip_h}" fill="{colour}" stroke="{stroke}" '
        f'stroke-width="{2 if clip.mismatch else 1}"{extra}><title>{escape(tip)}</title></rect>'
    ]
    if clip.evidence:
        out.append(
            f'<text class="evidence-mark" x="{_fmt(x1 + 2)}" y="{clip_y + 15}" font-size="11">★</text>'
        )
    for offset_s, note in clip.markers:
        # a marker is a moment of the clip: drawn on the corrected time line, above the clip's bar
        x = x_of(clip.start + timedelta(seconds=offset_s))
        out.append(
            f'<path class="marker" data-clip-id="{clip.clip_id}" d="M{_fmt(x - 4)},{clip_y - 7} '
            f'L{_fmt(x + 4)},{clip_y - 7} L{_fmt(x)},{clip_y} Z" fill="#d95f02">'
            f"<title>{escape(f'{_clip_moment(offset_s)} {note}')}</title></path>"
        )
    return out


def _clip_moment(seconds: float) -> str:
    whole = int(seconds)
    return f"+{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def _lane(lane: TimelineLane, top: int, x_of: Callable[[datetime], float], width: int) -> list[str]:
    shade = "#fafafa" if (top // LANE_HEIGHT) % 2 else "#ffffff"
    out = [
        f"<g class={quoteattr('lane')} data-officer={quoteattr(lane.officer)}>",
        f'<rect class="lane-background" x="0" y="{top}" width="{width}" height="{LANE_HEIGHT}" '
        f'fill="{shade}"/>',
        f'<text class="officer" x="10" y="{top + LANE_HEIGHT // 2 + 4}">{escape(lane.officer)}</text>',
    ]
    starts = sorted(x_of(document.start) for document in lane.documents)
    for document in lane.documents:
        x1 = x_of(document.start)
        # a label runs until the next document of the lane begins, or to the picture's edge
        following = [x for x in starts if x > x1 + 0.5]
        room = (following[0] if following else width - RIGHT) - x1
        out.extend(_document_parts(document, x_of, top + 8, room))
    for clip in lane.clips:
        out.extend(_clip_parts(clip, x_of, top + 40))
    out.append("</g>")
    return out
