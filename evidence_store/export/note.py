"""The provenance note for people (提取说明), as HTML and PDF, Chinese and English in one document.

One bilingual document rather than two: every label is given in Chinese, then English, so the two
languages can never say different things, and one file is handed over (R12, R14). The note is rendered
from the same dictionary that becomes ``manifest.json`` (`note_model` turns it into sections of rows,
which both renderers draw), so the note and the manifest state the same facts.

PDF: reportlab. The Chinese font is embedded (a subset of WenQuanYi Zen Hei from Debian's
fonts-wqy-zenhei, TrueType outlines, which reportlab can embed; Noto CJK's CFF outlines it cannot), so
the PDF renders the same on any machine; if that font file is missing, reportlab's built-in CID font
``STSong-Light`` is used instead (not embedded: the reader supplies a Song face). The PDF is made with
``invariant=1`` (no random id in it) and dated with its extraction time: the same facts give the same
bytes.
"""

from __future__ import annotations

import html
import io
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from evidence_store.export.manifest import SHA256SUMS_HELP, fingerprint_line

REFUSAL_ACTIONS = frozenset({"access.denied"})
EMBEDDED_FONT_CANDIDATES = (
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
    Path("/usr/share/fonts/truetype/arphic/uming.ttc"),
)
CID_FALLBACK = "STSong-Light"
TITLE_ZH = "执法记录仪视音频资料提取说明"
TITLE_EN = "Provenance note for extracted body-worn camera footage"
# a disclosure package (R15): a party's redacted copy, never an original
DISCLOSURE_TITLE_ZH = "当事人申请复制执法记录信息（已遮蔽副本）说明"
DISCLOSURE_TITLE_EN = "Disclosure to a party: redacted copies of enforcement records (no originals)"

DERIVATIVE_LABELS = {
    ("segment", "exact"): ("片段（精确剪辑，重新编码）", "Segment (exact cut, re-encoded)"),
    ("segment", "keyframe"): (
        "片段（关键帧剪辑，流复制，未重新编码）",
        "Segment (keyframe cut by stream copy, not re-encoded)",
    ),
    ("disclosure", "exact"): (
        "公开副本（叠加水印，重新编码）",
        "Disclosure copy (burnt-in overlay, re-encoded)",
    ),
    ("disclosure", "keyframe"): (
        "公开副本（叠加水印，重新编码）",
        "Disclosure copy (burnt-in overlay, re-encoded)",
    ),
    ("redacted", "exact"): (
        "遮蔽副本（人脸、区域、声音已遮蔽，重新编码）",
        "Redacted copy (faces, areas, voices hidden; re-encoded)",
    ),
}


def titles(body: dict[str, Any]) -> tuple[str, str]:
    """The note's title: a disclosure package says it is one (R15)."""
    if body.get("disclosure"):
        return DISCLOSURE_TITLE_ZH, DISCLOSURE_TITLE_EN
    return TITLE_ZH, TITLE_EN


@dataclass
class Row:
    zh: str
    en: str
    value: str
    mono: bool = False  # hashes, paths: a fixed-width face, broken anywhere


@dataclass
class Table:
    headers: list[tuple[str, str]]
    rows: list[list[str]]


@dataclass
class Section:
    zh: str
    en: str
    rows: list[Row] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    text: list[str] = field(default_factory=list)


# ------------------------------------------------------------------ values


def show_time(value: str | None, zone: str) -> str:
    """An ISO time as local time in `zone` and as UTC; a naive (device-reported) time as given."""
    if not value:
        return "—"
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        return f"{moment.isoformat(sep=' ')}（设备时钟 device clock）"
    local = moment.astimezone(ZoneInfo(zone))
    utc = moment.astimezone(ZoneInfo("UTC"))
    return f"{local.strftime('%Y-%m-%d %H:%M:%S')} ({zone}) = {utc.strftime('%Y-%m-%dT%H:%M:%SZ')}"


def _person(person: dict[str, Any] | None) -> str:
    if not person:
        return "—"
    parts = [
        person.get("name") or "",
        f"执法证号/ID {person['badge_number']}" if person.get("badge_number") else "",
    ]
    if person.get("unit"):
        parts.append(str(person["unit"]))
    return "，".join(p for p in parts if p) or "—"


def _seconds(value: Any) -> str:
    if value is None:
        return "—"
    return f"{float(value):+.1f} s"


def _size(value: Any) -> str:
    return f"{int(value):,} bytes" if value is not None else "—"


def _segment(start: Any, end: Any) -> str:
    start_text = f"{float(start or 0):.3f} s"
    end_text = f"{float(end):.3f} s" if end is not None else "末尾 end"
    return f"{start_text} - {end_text}"


# ------------------------------------------------------------------ the model


def note_model(body: dict[str, Any]) -> tuple[list[Section], dict[str, str]]:
    """Sections of rows for the renderers, and the header facts."""
    zone = body["station"]["timezone"]
    export = body["export"]
    case = body.get("case") or {}
    header = {
        "export_id": str(export["id"]),
        "unit": body.get("producing_unit") or "—",
        "fingerprint": fingerprint_line(body["station"]["public_key_fingerprint"]),
    }
    sections: list[Section] = []
    sections.append(
        Section(
            "提取与审批",
            "Extraction and approval",
            rows=[
                Row("制作单位", "Producing unit", body.get("producing_unit") or "—"),
                Row("案件名称", "Case name", case.get("title") or "—"),
                Row("案号", "Case number", case.get("number") or "—"),
                Row("用途", "Purpose", export.get("purpose") or "—"),
                Row("接收人", "Recipient", export.get("recipient") or "—"),
                Row("申请人", "Requested by", _station_user(export, "requested_by")),
                Row("申请时间", "Requested at", show_time(export.get("requested_at"), zone)),
                Row("批准人", "Approved by", _station_user(export, "approved_by")),
                Row("批准时间", "Approved at", show_time(export.get("approved_at"), zone)),
                Row("批准意见", "Approval note", export.get("approval_reason") or "—"),
                Row("提取人", "Extracted by", _station_user(export, "extracted_by")),
                Row("提取时间", "Extraction time", show_time(export.get("extracted_at"), zone)),
                Row("导出编号", "Export number", str(export["id"])),
            ],
        )
    )
    for number, item in enumerate(body["items"], start=1):
        sections.append(_item_section(number, item, zone))
    trust = body.get("trust") or {}
    sections.append(
        Section(
            "核验方法",
            "How to verify",
            rows=[
                Row(
                    "站点公钥指纹",
                    "Station public key fingerprint (SHA-256)",
                    header["fingerprint"],
                    mono=True,
                ),
                Row("站点公钥", "Station public key", body["station"]["public_key"], mono=True),
                Row("时间戳证书", "Time-stamping CA", trust.get("tsa_ca") or "—", mono=True),
                Row("C2PA 证书", "C2PA CA", trust.get("c2pa_ca") or "—", mono=True),
            ],
            text=SHA256SUMS_HELP,
        )
    )
    return sections, header


def _item_section(number: int, item: dict[str, Any], zone: str) -> Section:
    clip = item["clip"]
    original = item.get("original")
    recording = clip.get("recording") or {}
    device = clip.get("device") or {}
    handover = clip.get("handover") or {}
    dock = handover.get("dock_station") or {}
    if original:
        about_original = [
            Row("包内路径", "File in this package", original["path"], mono=True),
            Row("SHA-256", "SHA-256 of the original", original["sha256"], mono=True),
            Row("大小", "Size", _size(original.get("size"))),
        ]
    else:  # a disclosure: the original is named, not included
        about_original = [
            Row(
                "原始文件SHA-256（未包含）",
                "SHA-256 of the original (not included)",
                str(item.get("original_sha256") or "—"),
                mono=True,
            )
        ]
    rows = [
        Row("原始文件名", "Original file name", clip.get("original_name") or "—"),
        *about_original,
        Row("制作人（拍摄民警）", "Producer (recording officer)", _person(clip.get("producer"))),
        Row(
            "执法记录仪",
            "Recorder",
            " ".join(str(device.get(k) or "") for k in ("vendor", "model")).strip()
            + (f" S/N {device['serial']}" if device.get("serial") else "")
            or "—",
        ),
        Row("录制开始（设备时钟）", "Start (device clock)", show_time(recording.get("device_start"), zone)),
        Row("录制结束（设备时钟）", "End (device clock)", show_time(recording.get("device_end"), zone)),
        Row("时钟偏差", "Device clock offset (device - station)", _seconds(recording.get("clock_offset_s"))),
        Row("时钟状态", "Clock status", str(recording.get("clock_status") or "—")),
        Row("校正后开始", "Start (corrected)", show_time(recording.get("utc_start"), zone)),
        Row("校正后结束", "End (corrected)", show_time(recording.get("utc_end"), zone)),
        Row("移交人", "Handed over by", _person(handover.get("handed_over_by"))),
        Row("移交时间", "Handed over at", show_time(handover.get("started_at"), zone)),
        Row(
            "采集工作站",
            "Dock station",
            " / ".join(str(dock.get(k)) for k in ("name", "location", "unit") if dock.get(k)) or "—",
        ),
        Row("逾期移交", "Late handover", "是 yes" if handover.get("late_handover") else "否 no"),
    ]
    if clip.get("tags"):
        rows.append(Row("标签", "Tags", ", ".join(clip["tags"])))
    if item.get("segment"):
        seg = item["segment"]
        rows.append(Row("申请片段", "Requested segment", _segment(seg.get("start_s"), seg.get("end_s"))))
    tables: list[Table] = []
    documents = clip.get("documents") or []
    if documents:
        tables.append(
            Table(
                [("案号", "Case"), ("文书", "Document"), ("类型", "Kind"), ("时间", "Time")],
                [
                    [
                        d.get("case_number") or "—",
                        " ".join(x for x in (d.get("external_id"), d.get("title")) if x) or "—",
                        _kind(d),
                        f"{show_time(d.get('start'), zone)} - {show_time(d.get('end'), zone)}",
                    ]
                    for d in documents
                ],
            )
        )
    markers = clip.get("markers") or []
    if markers:
        tables.append(
            Table(
                [
                    ("标记时间点", "Marker at"),
                    ("备注", "Note"),
                    ("添加人", "Added by"),
                    ("添加时间", "Added"),
                ],
                [
                    [
                        _clip_moment(m.get("offset_s")),
                        m.get("note") or "",
                        _marker_author(m),
                        show_time(m.get("at"), zone),
                    ]
                    for m in markers
                ],
            )
        )
    for stamp in item.get("timestamps") or []:
        kind = (
            "RFC 3161 可信时间戳 trusted time-stamp"
            if stamp["kind"] == "rfc3161"
            else "站点签名时间戳 station-signed (not an independent TSA)"
        )
        rows.append(
            Row(
                "时间戳",
                "Time-stamp",
                f"{kind}; {stamp['authority']}; {show_time(stamp['gen_time'], zone)}; "
                f"serial {stamp['serial']}; {stamp['path']}",
                mono=False,
            )
        )
    for derived in item.get("derivatives") or []:
        zh, en = DERIVATIVE_LABELS[(derived["kind"], derived.get("cut") or "exact")]
        detail = (
            f"{zh} / {en}; {_segment(derived.get('start_s'), derived.get('end_s'))}; "
            f"{derived['path']}; SHA-256 {derived['sha256']}; "
            f"源自原始文件 derived from {derived['derived_from_sha256']}; "
            f"C2PA 内容凭证 Content Credential: {derived.get('content_credential', {}).get('signer', '—')}"
        )
        if derived.get("overlay_text"):
            detail += f"; 叠加文字 overlay: {derived['overlay_text'].replace(chr(10), ' | ')}"
        rows.append(Row("衍生文件（非原始）", "Derivative (not the original)", detail))
    # a refused attempt (someone denied a view) touched nothing: the manifest keeps every event of the
    # chain for verification, the note for people lists what was done with the clip
    events = [e for e in item.get("custody_events") or [] if e["action"] not in REFUSAL_ACTIONS]
    tables.append(
        Table(
            [("序号", "Seq"), ("时间", "Time"), ("操作人", "Actor"), ("事件", "Event")],
            [[str(e["seq"]), show_time(_audit_time(e["at"]), zone), e["actor"], e["action"]] for e in events],
        )
    )
    return Section(f"资料 {number}", f"Item {number} (clip {clip['clip_id']})", rows=rows, tables=tables)


def _clip_moment(seconds: Any) -> str:
    """A moment of the clip as its player shows it (H:MM:SS.s)."""
    if not isinstance(seconds, int | float):
        return "—"
    whole, tenth = divmod(round(float(seconds) * 10), 10)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}.{tenth}"


def _marker_author(marker: dict[str, Any]) -> str:
    login = str(marker.get("by") or "").removeprefix("web:")
    name = marker.get("by_name")
    return f"{name} ({login})" if name else login or "—"


def _kind(document: dict[str, Any]) -> str:
    """A document's kind by its form title, with the code the records hold when they differ."""
    code, name = document.get("kind") or "", document.get("kind_name") or ""
    if name and code and name != code:
        return f"{name} ({code})"
    return name or code or "—"


def _station_user(export: dict[str, Any], field_name: str) -> str:
    """A station user as people know them: their name, with the login the records name in brackets."""
    login = export.get(field_name)
    if not login:
        return "—"
    name = (export.get("names") or {}).get(login)
    return f"{name} ({login})" if name else str(login)


def _audit_time(text: str) -> str:
    return text[:-1] + "+00:00" if text.endswith("Z") else text


# ------------------------------------------------------------------ HTML

_CSS = """
body { font-family: "Noto Sans CJK SC", "WenQuanYi Zen Hei", "Source Han Sans SC", sans-serif;
       margin: 2em auto; max-width: 60em; color: #111; line-height: 1.45; }
h1 { font-size: 1.5em; margin-bottom: 0.1em; } h1 small { display: block; font-size: 0.7em; color: #444; }
h2 { font-size: 1.15em; border-bottom: 1px solid #999; margin-top: 1.6em; }
table { border-collapse: collapse; width: 100%; margin: 0.5em 0; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.5em; vertical-align: top; text-align: left; }
th { background: #f1f1f1; width: 14em; font-weight: normal; }
th .en, td .en { color: #555; font-size: 0.85em; }
.mono { font-family: "DejaVu Sans Mono", monospace; word-break: break-all; }
.note { font-size: 0.9em; }
pre { white-space: pre-wrap; font-size: 0.85em; background: #f7f7f7; padding: 0.5em; }
"""


def render_html(body: dict[str, Any]) -> bytes:
    sections, header = note_model(body)
    esc = html.escape
    title_zh, title_en = titles(body)
    out = [
        "<!DOCTYPE html>",
        '<html lang="zh-CN"><head><meta charset="utf-8">',
        f"<title>{esc(title_zh)} / {esc(title_en)} #{esc(header['export_id'])}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{esc(title_zh)}<small>{esc(title_en)}</small></h1>",
        f"<p>导出编号 Export no. {esc(header['export_id'])} · "
        f"制作单位 Producing unit: {esc(header['unit'])}</p>",
    ]
    for section in sections:
        out.append(f'<h2>{esc(section.zh)} <span class="en">{esc(section.en)}</span></h2>')
        if section.rows:
            out.append("<table>")
            for row in section.rows:
                cls = ' class="mono"' if row.mono else ""
                out.append(
                    f'<tr><th>{esc(row.zh)}<br><span class="en">{esc(row.en)}</span></th>'
                    f"<td{cls}>{esc(row.value)}</td></tr>"
                )
            out.append("</table>")
        for table in section.tables:
            out.append("<table><tr>")
            out.extend(f'<th>{esc(zh)} <span class="en">{esc(en)}</span></th>' for zh, en in table.headers)
            out.append("</tr>")
            for cells in table.rows:
                out.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>")
            out.append("</table>")
        if section.text:
            out.append("<pre>" + esc("\n".join(section.text)) + "</pre>")
    out.append("</body></html>\n")
    return "\n".join(out).encode("utf-8")


# ------------------------------------------------------------------ PDF


def _font() -> tuple[str, bool]:
    """Register the CJK font once; (name, embedded)."""
    # lazy: reportlab loads only when a note is rendered, not for every command that imports exports
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfbase.ttfonts import TTFont

    for path in EMBEDDED_FONT_CANDIDATES:
        if path.is_file():
            name = "EvidenceCJK"
            if name not in pdfmetrics.getRegisteredFontNames():
                pdfmetrics.registerFont(TTFont(name, str(path), subfontIndex=0))
            return name, True
    if CID_FALLBACK not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(CID_FALLBACK))
    return CID_FALLBACK, False


def pdf_font_embedded() -> bool:
    return _font()[1]


def render_pdf(body: dict[str, Any]) -> bytes:
    # lazy: reportlab, as in _font
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer
    from reportlab.platypus import Table as PdfTable

    font, _embedded = _font()
    sections, header = note_model(body)
    title_zh, title_en = titles(body)
    base = ParagraphStyle("base", fontName=font, fontSize=8.5, leading=11.5, wordWrap="CJK")
    small = ParagraphStyle(
        "small", parent=base, fontSize=7.5, leading=10, textColor=colors.HexColor("#444444")
    )
    title = ParagraphStyle("title", parent=base, fontSize=15, leading=20)
    heading = ParagraphStyle("heading", parent=base, fontSize=11, leading=15, spaceBefore=8, spaceAfter=3)

    def para(text: str, style: ParagraphStyle = base) -> Paragraph:
        return Paragraph(html.escape(text).replace("\n", "<br/>"), style)

    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=16 * mm,
        rightMargin=16 * mm,
        topMargin=15 * mm,
        bottomMargin=15 * mm,
        title=f"{title_zh} / {title_en} #{header['export_id']}",
        author=header["unit"],
        invariant=1,
        # the pages' initial font is the CJK one too, so no unembedded standard font is referenced
        initialFontName=font,
        initialFontSize=8.5,
    )
    width = A4[0] - 32 * mm
    grid = [
        ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#999999")),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LEFTPADDING", (0, 0), (-1, -1), 3),
        ("RIGHTPADDING", (0, 0), (-1, -1), 3),
    ]
    story: list[Any] = [
        para(title_zh, title),
        para(title_en, heading),
        para(f"导出编号 Export no. {header['export_id']} · 制作单位 Producing unit: {header['unit']}", base),
        Spacer(1, 4 * mm),
    ]
    for section in sections:
        story.append(para(f"{section.zh}  {section.en}", heading))
        if section.rows:
            data = [[[para(row.zh), para(row.en, small)], para(row.value)] for row in section.rows]
            table = PdfTable(data, colWidths=[0.3 * width, 0.7 * width])
            table.setStyle([*grid, ("BACKGROUND", (0, 0), (0, -1), colors.HexColor("#f1f1f1"))])
            story.append(table)
        for extra in section.tables:
            columns = len(extra.headers)
            data = [[[para(zh), para(en, small)] for zh, en in extra.headers]]
            data += [[para(cell, small) for cell in cells] for cells in extra.rows]
            widths = [width / columns] * columns
            if columns == 4:
                widths = [0.1 * width, 0.4 * width, 0.2 * width, 0.3 * width]
            table = PdfTable(data, colWidths=widths, repeatRows=1)
            table.setStyle([*grid, ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#f1f1f1"))])
            story.append(Spacer(1, 2 * mm))
            story.append(table)
        if section.text:
            story.append(Spacer(1, 2 * mm))
            story.append(para("\n".join(section.text), small))
    extracted = _pdf_date(body["export"].get("extracted_at"))

    def dated(canvas: Any, _document: Any) -> None:
        # invariant mode dates every PDF 2000-01-01; the note's true date is its extraction time, a
        # fact of the manifest, so the bytes stay the same for the same facts
        if extracted is not None:
            canvas._doc.setDateFormatter(lambda *_: extracted)

    document.build(story, onFirstPage=dated, onLaterPages=dated)
    return buffer.getvalue()


def _pdf_date(moment: str | None) -> str | None:
    """An ISO 8601 time as a PDF date (ISO 32000 section 7.9.4), in UTC."""
    if not moment:
        return None
    utc = datetime.fromisoformat(moment).astimezone(ZoneInfo("UTC"))
    return utc.strftime("D:%Y%m%d%H%M%S+00'00'")
