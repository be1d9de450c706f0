"""Codes and records as people read them (issue 19, item 6), in the page's language and the station's zone.

Every code a page shows (flag kinds, document kinds, link origins and the automatic link reason, warning
codes, clip statuses) goes through `Readable.code` or one of its helpers: a code the catalogue knows
reads as its text, an unknown one as the code itself (never an error). A flag's details read as a
sentence ("footage ends 15 min before the document's end"), including `withheld` when some footage
behind them is hidden from the user (R13); an audit event reads as a sentence, its raw record staying
one click away on the page.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, pass_context
from jinja2.runtime import Context

from evidence_store.cases.kinds import KindTable
from evidence_store.cases.linking_service import AUTO_REASON
from evidence_store.domain.compliance import FlagKind
from evidence_store.domain.model import (
    ClipStatus,
    LinkOrigin,
    ProcessingStep,
    RetentionRunStatus,
    WarningCode,
)
from retention.policy import Rule
from web.i18n import CATALOGUES, ZH, translate

LEGEND_KEYS = (
    "legend.document_video",
    "legend.document",
    "legend.clip",
    "legend.clip_uncertain",
    "legend.uncovered",
    "legend.exception",
)
_UNITS = ("KB", "MB", "GB", "TB", "PB")


def code_keys(kinds: KindTable) -> set[str]:
    """The catalogue keys of every code the pages show (the shipped document kinds among them)."""
    return (
        {f"flag.{k.value}" for k in FlagKind}
        | {f"doc_kind.{code}" for code in kinds.kinds}
        | {f"origin.{o.value}" for o in LinkOrigin}
        | {f"status.{s.value}" for s in ClipStatus}
        | {f"warning.{w.value}" for w in WarningCode}
        | {f"run_status.{s.value}" for s in RetentionRunStatus}
        | {f"step.{s.value}" for s in ProcessingStep}
        | {f"rule.{rule.value}" for rule in Rule}
    )


def human_bytes(size: int | None, lang: str) -> str:
    """A byte count as a size (1024-based): "999 B", "1.5 KB", "345 MB", "1.2 GB"."""
    if size is None:
        return ""
    if abs(size) < 1024:
        return translate(lang, "unit.b", n=size)
    value = float(size)
    unit = _UNITS[-1]
    for candidate in _UNITS:
        value /= 1024
        if abs(value) < 1024 or candidate == _UNITS[-1]:
            unit = candidate
            break
    text = f"{value:.1f}".removesuffix(".0") if abs(value) < 100 else f"{value:.0f}"
    return f"{text} {unit}"


def human_duration(seconds: float | None, lang: str) -> str:
    """A duration in words: "42 s", "15 min", "15 min 30 s", "1 h 2 min"."""
    if seconds is None:
        return ""
    total = round(abs(seconds))
    if total < 60:
        return translate(lang, "unit.s", n=total)
    if total < 3600:
        minutes, rest = divmod(total, 60)
        text = translate(lang, "unit.min", n=minutes)
        return f"{text} {translate(lang, 'unit.s', n=rest)}" if rest else text
    hours, rest = divmod(total, 3600)
    text = translate(lang, "unit.h", n=hours)
    return f"{text} {translate(lang, 'unit.min', n=rest // 60)}" if rest // 60 else text


def raw_json(value: Any) -> str:
    """A record's raw data as JSON with its real characters (no \\uXXXX escapes)."""
    return json.dumps(value, ensure_ascii=False, indent=1, sort_keys=True, default=str)


class Readable:
    """The texts of one page: its language, the station's zone, the station's document kinds."""

    def __init__(self, lang: str, zone: ZoneInfo, kinds: KindTable) -> None:
        self.lang = lang
        self.zone = zone
        self.kinds = kinds
        self._catalogue = CATALOGUES.get(lang, ZH)

    def t(self, key: str, **values: Any) -> str:
        return translate(self.lang, key, **values)

    def knows(self, key: str) -> bool:
        return key in self._catalogue or key in ZH

    def code(self, prefix: str, value: Any) -> str:
        """The text of a code (`prefix.value` in the catalogue); an unknown code is itself."""
        text = "" if value is None else str(value)
        key = f"{prefix}.{text}"
        return self.t(key) if text and self.knows(key) else text

    def doc_kind(self, value: str | None) -> str:
        """A document's kind, given by code, form title or alias: the catalogue's text, else the title in
        the station's own kinds table, else what the document says."""
        if not value:
            return ""
        kind = self.kinds.resolve(value)
        code = kind.code if kind is not None else value
        key = f"doc_kind.{code}"
        if self.knows(key):
            return self.t(key)
        return kind.name if kind is not None else value

    def link_reason(self, reason: str | None) -> str:
        """A link's reason: the automatic linking's own reason in the page's language; a person's as
        written."""
        if reason == AUTO_REASON:
            return self.t("link_reason.auto")
        return reason or ""

    def local(self, value: datetime | str | None) -> str:
        """A time (aware, naive UTC or ISO text) in the station's zone; text that is no time stays."""
        if value is None or value == "":
            return ""
        moment = value
        if isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                return value
        assert isinstance(moment, datetime)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(self.zone).strftime("%Y-%m-%d %H:%M:%S")

    def event_time(self, at: str) -> str:
        return self.local(at)

    def duration(self, seconds: Any) -> str:
        return human_duration(float(seconds), self.lang) if isinstance(seconds, int | float) else ""

    # -- flags -------------------------------------------------------------------------------------------

    def flag_text(self, kind: str, details: Mapping[str, Any] | None) -> str:
        """A flag's details as a sentence in the page's language (times in the station's zone)."""
        d = dict(details or {})
        withheld = d.pop("withheld", None)
        sentence = self._flag_sentence(kind, d)
        if sentence is None:
            shown = {k: v for k, v in d.items() if k != "document_kind"}
            sentence = "; ".join(f"{k}: {self._plain(v)}" for k, v in shown.items())
        elif d.get("document_kind"):
            sentence = self.t("flag_detail.of_kind", kind=self.doc_kind(d["document_kind"]), text=sentence)
        if withheld:
            sentence = f"{sentence} {self.t('flag_detail.withheld')}".strip()
        return sentence

    def _plain(self, value: Any) -> str:
        if isinstance(value, list):
            return ", ".join(self._plain(v) for v in value)
        if isinstance(value, dict):
            return ", ".join(f"{k} {self._plain(v)}" for k, v in value.items())
        return str(value)

    def _flag_sentence(self, kind: str, d: dict[str, Any]) -> str | None:
        sentence = {
            FlagKind.MISSING_VIDEO.value: self._missing_video,
            FlagKind.STARTS_LATE.value: self._starts_late,
            FlagKind.ENDS_EARLY.value: self._ends_early,
            FlagKind.COVERAGE_GAP.value: self._coverage_gap,
            FlagKind.LATE_HANDOVER.value: self._late_handover,
            FlagKind.UNASSIGNED_FOOTAGE.value: lambda _: self.t("flag_detail.unassigned_footage"),
            FlagKind.DOCUMENT_WITHOUT_END.value: lambda d: self.t(
                "flag_detail.document_without_end", start=self.local(d.get("start"))
            ),
            FlagKind.FILING_OVERDUE.value: self._filing_overdue,
        }.get(kind)
        return sentence(d) if sentence is not None else None

    def _missing_video(self, d: dict[str, Any]) -> str:
        text = self.t("flag_detail.missing_video")
        if d.get("window_start"):
            text += self.t(
                "flag_detail.window", start=self.local(d["window_start"]), end=self.local(d.get("window_end"))
            )
        return text

    def _starts_late(self, d: dict[str, Any]) -> str:
        document = self.local(d.get("document_start"))
        if "uncovered_seconds" not in d or "footage_start" not in d:  # withheld (R13)
            return self.t("flag_detail.starts_late_short", document=document)
        return self.t(
            "flag_detail.starts_late",
            duration=self.duration(d["uncovered_seconds"]),
            document=document,
            footage=self.local(d["footage_start"]),
        )

    def _ends_early(self, d: dict[str, Any]) -> str:
        document = self.local(d.get("document_end"))
        if "uncovered_seconds" not in d or "footage_end" not in d:  # withheld (R13)
            return self.t("flag_detail.ends_early_short", document=document)
        return self.t(
            "flag_detail.ends_early",
            duration=self.duration(d["uncovered_seconds"]),
            document=document,
            footage=self.local(d["footage_end"]),
        )

    def _coverage_gap(self, d: dict[str, Any]) -> str:
        gaps = [g for g in d.get("gaps") or [] if isinstance(g, dict)]
        if not gaps:  # withheld (R13)
            return self.t("flag_detail.coverage_gap_short")
        listed = "; ".join(
            self.t(
                "flag_detail.gap",
                start=self.local(g.get("from")),
                end=self.local(g.get("to")),
                duration=self.duration(g.get("seconds")),
            )
            for g in gaps
        )
        return self.t(
            "flag_detail.coverage_gap", gaps=listed, duration=self.duration(d.get("uncovered_seconds"))
        )

    def _late_handover(self, d: dict[str, Any]) -> str:
        if "hours_after_recording" not in d:
            return self.t("flag_detail.late_handover_short")
        return self.t(
            "flag_detail.late_handover",
            hours=d["hours_after_recording"],
            end=self.local(d.get("recording_end")),
            at=self.local(d.get("handed_over_at")),
        )

    def _filing_overdue(self, d: dict[str, Any]) -> str:
        days = d.get("window_days", 30)
        if not d.get("act_end") or not d.get("due"):
            return self.t("flag_detail.filing_overdue_short", days=days)
        return self.t(
            "flag_detail.filing_overdue", days=days, end=self.local(d["act_end"]), due=self.local(d["due"])
        )

    # -- audit events ------------------------------------------------------------------------------------

    def event_sentence(self, event: Mapping[str, Any]) -> str:
        """An audit event as a sentence: who did what (and why, when a reason was given)."""
        actor = str(event.get("actor", ""))
        action = str(event.get("action", ""))
        key = f"event.{action}"
        if self.knows(key):
            sentence = self.t(key, actor=actor)
        else:
            sentence = self.t("event.other", actor=actor, action=action)
        details = event.get("details")
        if isinstance(details, Mapping) and isinstance(details.get("reason"), str) and details["reason"]:
            sentence += self.t("event.reason", reason=self.link_reason(details["reason"]))
        return sentence

    def raw_event(self, event: Mapping[str, Any]) -> str:
        return raw_json(dict(event))

    def timeline_legend(self) -> tuple[str, ...]:
        return tuple(self.t(key) for key in LEGEND_KEYS)


def clip_clock(seconds: float | None) -> str:
    """A moment of a clip as a player shows it: `M:SS`, `H:MM:SS`, tenths when there are some."""
    if seconds is None:
        return ""
    tenths = round(float(seconds) * 10)
    whole, tenth = divmod(tenths, 10)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
    return f"{text}.{tenth}" if tenth else text


def install_filters(env: Environment) -> None:
    """The templates' filters: `filesize` (a byte count as a size in the page's language), `rawjson`
    (a record's raw data with its real characters) and `clock` (a moment of a clip)."""

    @pass_context
    def filesize(context: Context, size: int | None) -> str:
        return human_bytes(size, str(context.get("lang", "zh-CN")))

    env.filters["filesize"] = filesize
    env.filters["rawjson"] = raw_json
    env.filters["clock"] = clip_clock
