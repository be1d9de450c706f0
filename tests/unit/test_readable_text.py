"""Readable pages (issue 19, item 6) as pure functions: every code the pages show has a text in both
languages (an unknown one falls back to the code), flag details and custody events read as sentences in
the station's zone, byte counts are human sizes."""

from __future__ import annotations

import ast
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from evidence_store.cases.kinds import load_kinds
from evidence_store.cases.linking_service import AUTO_REASON
from evidence_store.domain.access import WITHHELD
from evidence_store.domain.compliance import FlagKind
from evidence_store.domain.model import (
    ClipStatus,
    LinkOrigin,
    ProcessingStep,
    RetentionRunStatus,
    WarningCode,
)
from retention.policy import Rule
from web.i18n import EN, ZH
from web.readable import (
    Readable,
    code_keys,
    human_bytes,
    human_duration,
)

REPO = Path(__file__).resolve().parents[2]
SHANGHAI = ZoneInfo("Asia/Shanghai")
KINDS = load_kinds(None)


def readable(lang: str) -> Readable:
    return Readable(lang, SHANGHAI, KINDS)


def test_every_code_the_pages_show_has_a_text_in_both_languages() -> None:
    keys = code_keys(KINDS)
    assert {f"flag.{k.value}" for k in FlagKind} <= keys
    assert {f"doc_kind.{code}" for code in KINDS.kinds} <= keys
    assert {f"origin.{o.value}" for o in LinkOrigin} <= keys
    assert {f"status.{s.value}" for s in ClipStatus} <= keys
    assert {f"warning.{w.value}" for w in WarningCode} <= keys
    assert {f"run_status.{s.value}" for s in RetentionRunStatus} <= keys
    assert {f"step.{s.value}" for s in ProcessingStep} <= keys
    assert {f"rule.{rule.value}" for rule in Rule} <= keys
    missing = {key for key in keys if key not in ZH or key not in EN}
    assert not missing, sorted(missing)


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_codes_are_translated_and_an_unknown_code_is_itself(lang: str) -> None:
    r = readable(lang)
    assert r.code("flag", "late_handover") not in ("late_handover", "flag.late_handover")
    assert r.code("flag", "never_heard_of") == "never_heard_of"
    assert r.code("warning", "") == ""
    assert r.doc_kind("on_site_inspection") != "on_site_inspection"
    # a document may carry the form's title, or a kind only the station's own table names
    assert r.doc_kind("现场检查笔录") == r.doc_kind("on_site_inspection")
    assert r.doc_kind("station_special") == "station_special"
    assert r.link_reason(AUTO_REASON) not in ("", AUTO_REASON)
    assert r.link_reason("seen on the recording") == "seen on the recording"


def test_byte_counts_and_durations_are_human() -> None:
    assert human_bytes(0, "en") == "0 B"
    assert human_bytes(999, "en") == "999 B"
    assert human_bytes(345 * 1024**2, "en") == "345 MB"
    assert human_bytes(int(1.2 * 1024**3), "en") == "1.2 GB"
    assert human_bytes(1536, "zh-CN") == "1.5 KB"
    assert human_bytes(999, "zh-CN") == "999 字节"
    assert human_duration(900, "en") == "15 min"
    assert human_duration(3725, "en") == "1 h 2 min"
    assert human_duration(42.4, "en") == "42 s"
    assert human_duration(900, "zh-CN") == "15 分钟"


def test_flag_details_read_as_sentences_in_the_station_zone() -> None:
    ends_early = {
        "document_kind": "on_site_inspection",
        "document_end": "2026-03-02T01:30:00+00:00",
        "footage_end": "2026-03-02T01:15:00+00:00",
        "uncovered_seconds": 900.0,
    }
    en = readable("en").flag_text("ends_early", ends_early)
    assert "footage ends 15 min before the document's end" in en
    assert "09:30:00" in en and "09:15:00" in en  # Asia/Shanghai
    zh = readable("zh-CN").flag_text("ends_early", ends_early)
    assert "15 分钟" in zh and "{" not in zh and "ends_early" not in zh
    gap = readable("en").flag_text(
        "coverage_gap",
        {
            "gaps": [
                {"from": "2026-03-02T01:05:00+00:00", "to": "2026-03-02T01:10:00+00:00", "seconds": 300}
            ],
            "uncovered_seconds": 300,
        },
    )
    assert "09:05:00" in gap and "5 min" in gap
    late = readable("zh-CN").flag_text("late_handover", {"hours_after_recording": 30.5})
    assert "30.5" in late


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_withheld_details_say_so(lang: str) -> None:
    r = readable(lang)
    shown = r.flag_text("ends_early", {"document_end": "2026-03-02T01:30:00+00:00", "withheld": WITHHELD})
    assert r.t("flag_detail.withheld") in shown and "09:30:00" in shown
    assert WITHHELD not in shown if lang == "zh-CN" else True


def test_every_flag_kind_reads_without_codes_or_json() -> None:
    for lang in ("zh-CN", "en"):
        r = readable(lang)
        for kind in FlagKind:
            text = r.flag_text(kind.value, {"document_kind": "sampling", "reason": "x", "window_days": 30})
            assert "{" not in text and "sampling" not in text, (lang, kind, text)
        # details no sentence knows are still text, not JSON
        assert r.flag_text("brand_new_kind", {"size": 3}) == "size: 3"


def test_custody_events_read_as_sentences_in_the_station_zone() -> None:
    event: dict[str, Any] = {
        "seq": 7,
        "at": "2026-03-02T01:00:00.123456+00:00",
        "actor": "web:custodian",
        "action": "clip.viewed",
        "details": {"sha256": "ab" * 32},
    }
    r = readable("zh-CN")
    assert r.event_time(event["at"]) == "2026-03-02 09:00:00"
    sentence = r.event_sentence(event)
    assert "web:custodian" in sentence and "clip.viewed" not in sentence
    unknown = r.event_sentence({**event, "action": "something.new"})
    assert "web:custodian" in unknown and "something.new" in unknown
    assert "理由" in r.event_sentence(
        {**event, "action": "clip.original_downloaded", "details": {"reason": "复核"}}
    )


def _writes_a_warning(func: ast.expr) -> bool:
    if isinstance(func, ast.Name):
        return func.id == "RecordWarning"
    if isinstance(func, ast.Attribute):
        return func.attr == "add_warning" or (
            func.attr == "add" and isinstance(func.value, ast.Name) and func.value.id == "findings"
        )
    return False


def _warning_codes_in_source() -> set[str]:
    """The warning codes the code writes as literals: `RecordWarning("code", ...)`, `add_warning("code",
    ...)` and the probe's `findings.add("code", ...)`."""
    found: set[str] = set()
    for package in ("evidence_store", "ingest", "workers", "retention"):
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call) and node.args and _writes_a_warning(node.func):
                    first = node.args[0]
                    if isinstance(first, ast.Constant) and isinstance(first.value, str):
                        found.add(first.value)
    return found


def test_every_warning_code_written_anywhere_is_a_known_code() -> None:
    written = _warning_codes_in_source()
    assert len(written) > 20
    assert written <= {w.value for w in WarningCode}, sorted(written - {w.value for w in WarningCode})


def test_the_timeline_legend_is_given_in_the_pages_language() -> None:
    from evidence_store.cases.timeline import render_timeline

    legend = readable("zh-CN").timeline_legend()
    svg = render_timeline("case", [], SHANGHAI, legend=legend)
    assert all(label in svg for label in legend) and "approved exception" not in svg
    assert "approved exception (R6)" in render_timeline("case", [], SHANGHAI)


def test_times_from_the_record_accept_naive_and_aware_text() -> None:
    r = readable("en")
    assert r.event_time(datetime(2026, 3, 2, 1, 0, tzinfo=UTC).isoformat()) == "2026-03-02 09:00:00"
    assert r.event_time("not a time") == "not a time"


_ACTION = re.compile(r"^[a-z_]+\.[a-z_]+$")
_SOURCE_PACKAGES = ("evidence_store", "ingest", "retention", "workers", "web", "entrypoints")


def _action_texts(node: ast.expr) -> list[str]:
    """The action names an expression can give: a literal, or either side of `a if c else b`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and _ACTION.match(node.value):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _action_texts(node.body) + _action_texts(node.orelse)
    return []


def _audit_actions_in_the_source() -> set[str]:
    """Every action written to the audit log: `action=` of any call, the first argument of a call to
    something named `audit`/`*_audit*`, and the module constants named `*ACTION` / `STATION_*`."""
    found: set[str] = set()
    for package in _SOURCE_PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            module_level = set(map(id, tree.body))  # an enum member (`STATION_VIEW = ...`) is no action
            for node in ast.walk(tree):
                if isinstance(node, ast.Call):
                    func = node.func
                    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                    for keyword in node.keywords:
                        if keyword.arg == "action":
                            found.update(_action_texts(keyword.value))
                    if "audit" in name and name != "audit_browse":
                        for arg in node.args:
                            found.update(_action_texts(arg))
                elif isinstance(node, ast.Assign) and len(node.targets) == 1 and id(node) in module_level:
                    target = node.targets[0]
                    if isinstance(target, ast.Name) and (
                        target.id.endswith("ACTION") or target.id.startswith("STATION_")
                    ):
                        found.update(_action_texts(node.value))
    return found


def test_every_audit_action_reads_as_a_sentence_in_both_languages() -> None:
    actions = _audit_actions_in_the_source()
    # retention/run_record.py writes `retention.run_{status}` for the statuses a real run records
    actions |= {f"retention.run_{s.value}" for s in RetentionRunStatus if s != RetentionRunStatus.PLANNING}
    # the scan must see the actions it is about, or it proves nothing
    assert {"clip.stored", "auth.login_failed", "export.rejected", "station.approved"} <= actions
    for lang, table in (("zh-CN", ZH), ("en", EN)):
        missing = sorted(a for a in actions if f"event.{a}" not in table)
        assert not missing, f"{lang}: audit actions without a sentence: {missing}"
        r = readable(lang)
        for action in actions:
            sentence = r.event_sentence({"actor": "qian", "action": action})
            assert action not in sentence and "qian" in sentence
