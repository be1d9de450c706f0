"""The compliance report as CSV and HTML text, as pure functions over the report's data (R1, R5-R8)."""

from __future__ import annotations

import csv
import io
from html import escape
from typing import Any

CSV_COLUMNS = (
    "case",
    "unit",
    "document",
    "kind",
    "kind_name",
    "officers",
    "start_local",
    "end_local",
    "requires_video",
    "status",
    "linked_clips",
    "exception",
    "uncovered_seconds",
    "flags",
    "filing_overdue",
    "filing_due",
)
STATUS_TITLES = {
    "covered": "covered",
    "covered_with_mismatch": "covered, times do not match (R5)",
    "missing_with_exception": "no video, approved exception (R6)",
    "missing_without_exception": "no video, no exception (R6, R7)",
    "not_required": "video not required",
}
COUNT_TITLES = {
    "documents": "documents in the period",
    "needing_video": "documents needing video (R7)",
    "covered": "covered",
    "covered_with_mismatch": "covered with a time mismatch (R5)",
    "missing_with_exception": "missing, with an approved exception (R6)",
    "missing_without_exception": "missing, without an exception (R6, R7)",
    "documents_without_end": "documents without an end time",
    "late_handovers": "clips handed over late (R1)",
    "filing_overdue": "documents whose footage was not filed within the filing window (R8)",
    "unfiled_footage": "clips linked to no case after the filing window (R8)",
}


def report_csv(report: dict[str, Any]) -> str:
    """R5-R7: one row per document of the period with its status; the counts are the rows by status
    (`needing_video` = every row with requires_video true). Late handovers (R1) are in JSON and HTML."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in report["documents"]:
        writer.writerow(
            [
                row["case"],
                row["unit"],
                row["document"],
                row["kind"],
                row["kind_name"],
                ";".join(row["officers"]),
                row["start_local"] or "",
                row["end_local"] or "",
                "yes" if row["requires_video"] else "no",
                row["status"],
                row["linked_clips"],
                "yes" if row["exception"] else "no",
                f"{row['uncovered_seconds']:g}",
                ";".join(flag["kind"] for flag in row["flags"]),
                "yes" if row["filing_overdue"] else "no",
                row["filing_due"] or "",
            ]
        )
    return out.getvalue()


def _cell(value: Any) -> str:
    return f"<td>{escape('' if value is None else str(value))}</td>"


def report_html(report: dict[str, Any]) -> str:
    """R1, R5-R8: the report as one self-contained HTML page (counts, documents, late handovers, the
    cases whose footage was not filed in time)."""
    period = report["period"]
    filters = ", ".join(f"{k} {v}" for k, v in report["filters"].items() if v) or "all officers and units"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="zh-CN"><head><meta charset="utf-8">',
        f"<title>Compliance report {escape(period['from'])} – {escape(period['to'])}</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:2em}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}th{background:#f0f0f0}"
        ".missing_without_exception{background:#fde0dd}.covered_with_mismatch{background:#fff3cd}"
        ".missing_with_exception{background:#efe6f7}</style>",
        "</head><body>",
        f"<h1>Compliance report: {escape(period['from'])} – {escape(period['to'])}</h1>",
        f"<p>Times in {escape(period['timezone'])}; {escape(filters)}.</p>",
        '<h2>Counts</h2><table class="counts"><tr><th>measure</th><th>count</th></tr>',
    ]
    for key, title in COUNT_TITLES.items():
        parts.append(f'<tr data-count="{escape(key)}">{_cell(title)}{_cell(report["counts"][key])}</tr>')
    parts.append("</table>")
    parts.append('<h2>Documents</h2><table class="documents"><tr>')
    headers = (
        "case",
        "document",
        "kind",
        "officers",
        "start",
        "end",
        "status",
        "clips",
        "uncovered s",
        "flags",
    )
    parts.extend(f"<th>{escape(h)}</th>" for h in headers)
    parts.append("</tr>")
    for row in report["documents"]:
        flags = "; ".join(
            f"{f['kind']} ({f['details'].get('uncovered_seconds', '')}s)"
            if "uncovered_seconds" in f["details"]
            else f["kind"]
            for f in row["flags"]
        )
        parts.append(
            f'<tr class="{escape(row["status"])}" data-document="{escape(row["document"])}">'
            + _cell(row["case"])
            + _cell(row["document"])
            + _cell(row["kind_name"])
            + _cell(", ".join(row["officers"]))
            + _cell(row["start_local"])
            + _cell(row["end_local"] or "(no end)")
            + _cell(STATUS_TITLES.get(row["status"], row["status"]))
            + _cell(row["linked_clips"])
            + _cell(f"{row['uncovered_seconds']:g}")
            + _cell(flags)
            + "</tr>"
        )
    parts.append("</table>")
    parts.append('<h2>Late handovers (R1)</h2><table class="late-handovers"><tr>')
    parts.extend(
        f"<th>{escape(h)}</th>" for h in ("clip", "file", "officer", "recorded", "handed over", "hours after")
    )
    parts.append("</tr>")
    for clip in report["late_handovers"]:
        parts.append(
            f'<tr data-clip-id="{clip["clip_id"]}">'
            + _cell(clip["clip_id"])
            + _cell(clip["original_name"])
            + _cell(clip["officer"])
            + _cell(clip["recorded_local"])
            + _cell(clip["handed_over_at"])
            + _cell(clip["hours_after_recording"])
            + "</tr>"
        )
    parts.append("</table>")
    filing = report["filing"]
    parts.append(
        f"<h2>Filing overdue (R8)</h2><p>Footage not linked and filed within {filing['window_days']} days "
        f"after the act, as of {escape(filing['as_of'])}.</p>"
        '<table class="filing-overdue"><tr>'
    )
    parts.extend(f"<th>{escape(h)}</th>" for h in ("case", "unit", "documents", "due"))
    parts.append("</tr>")
    for case in filing["overdue_cases"]:
        parts.append(
            f'<tr data-case="{escape(case["case"])}">'
            + _cell(case["case"])
            + _cell(case["unit"])
            + _cell(", ".join(case["documents"]))
            + _cell(case["due"])
            + "</tr>"
        )
    parts.append("</table></body></html>")
    return "\n".join(parts)
