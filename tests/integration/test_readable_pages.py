"""Readable pages (issue 19, item 6): no untranslated code in the Chinese pages (a must-hold of the
issue), flags once and as sentences, audit details with real Chinese, sizes for people, the custody
events as sentences in the station's zone with the raw event one click away."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, select, update

from evidence_store.bootstrap import Station
from evidence_store.cases.kinds import load_kinds
from evidence_store.cases.linking_service import AUTO_REASON, SYSTEM_ACTOR
from evidence_store.db.tables import (
    audit_events,
    clip_links,
    clips,
    compliance_flags,
    processing_jobs,
    retention_runs,
)
from evidence_store.domain.compliance import FlagKind
from evidence_store.domain.model import (
    Clip,
    ClipStatus,
    JobStatus,
    LinkOrigin,
    ProcessingStep,
    RecordWarning,
    RetentionRunStatus,
    WarningCode,
)
from retention.policy import Rule
from tests import factories
from tests.integration.visibility_world import PASSWORD, World, build_world
from web.app import create_app

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
CHINESE_NOTE = "现场照片已核对"


@dataclass
class Readable:
    world: World
    documents: dict[str, int]  # kind code -> document id


def _flag_details(kind: FlagKind) -> dict[str, object]:
    base: dict[str, object] = {"document_kind": "on_site_inspection"}
    details: dict[FlagKind, dict[str, object]] = {
        FlagKind.MISSING_VIDEO: {**base, "reason": "the act requires video", "window_start": T0.isoformat()},
        FlagKind.STARTS_LATE: {
            **base,
            "document_start": T0.isoformat(),
            "footage_start": (T0 + timedelta(minutes=2)).isoformat(),
            "uncovered_seconds": 120.0,
        },
        FlagKind.ENDS_EARLY: {
            **base,
            "document_end": (T0 + timedelta(minutes=30)).isoformat(),
            "footage_end": (T0 + timedelta(minutes=15)).isoformat(),
            "uncovered_seconds": 900.0,
        },
        FlagKind.COVERAGE_GAP: {
            **base,
            "gaps": [
                {
                    "from": (T0 + timedelta(minutes=5)).isoformat(),
                    "to": (T0 + timedelta(minutes=10)).isoformat(),
                    "seconds": 300.0,
                }
            ],
            "uncovered_seconds": 300.0,
        },
        FlagKind.LATE_HANDOVER: {
            "recording_end": (T0 + timedelta(minutes=5)).isoformat(),
            "handed_over_at": (T0 + timedelta(hours=30)).isoformat(),
            "hours_after_recording": 29.92,
        },
        FlagKind.UNASSIGNED_FOOTAGE: {"reason": "linked to no case"},
        FlagKind.DOCUMENT_WITHOUT_END: {**base, "start": T0.isoformat()},
        FlagKind.FILING_OVERDUE: {
            **base,
            "act_end": T0.isoformat(),
            "due": (T0 + timedelta(days=30)).isoformat(),
            "window_days": 30,
            "reason": "no footage linked and filed within the filing window after the act (R8)",
        },
    }
    return details[kind]


CLIP_FLAGS = {FlagKind.LATE_HANDOVER, FlagKind.UNASSIGNED_FOOTAGE}


@pytest.fixture
def readable(station: Station) -> Readable:
    world = build_world(station)
    kinds = load_kinds(station.settings.home)
    documents = {
        code: factories.add_document(
            station, f"DOC-{code}", world.case_normal, kind=code, start=T0 + timedelta(days=1), indexed=False
        )
        for code in kinds.kinds
    }
    now = station.clock()
    with station.transaction() as session:
        session.execute(update(clips).where(clips.c.id == world.clip_a).values(late_handover=True))
        clip_a = session.get(Clip, world.clip_a)
        assert clip_a is not None
        clip_a.warnings = [RecordWarning(code.value, f"message of {code.value}") for code in WarningCode]
        for kind in FlagKind:
            target = (
                {"clip_id": world.clip_a, "case_id": None}
                if kind in CLIP_FLAGS
                else {"document_id": world.document, "case_id": world.case_normal}
            )
            session.execute(
                insert(compliance_flags).values(
                    kind=kind.value, details=_flag_details(kind), opened_at=now, updated_at=now, **target
                )
            )
        # clip_c (a state secret) filed to the document: what its times imply is withheld from U1's
        # custodian and investigator, not from the approver
        session.execute(
            update(clip_links)
            .where(clip_links.c.id == world.link_c_normal)
            .values(document_id=world.document)
        )
        station.audit.record(
            session,
            actor="test",
            action="clip.noted",
            object_type="clip",
            object_id=world.clip_a,
            details={"note": CHINESE_NOTE},
        )
    factories.add_link(
        station,
        world.clip_d,
        world.case_normal,
        document_id=world.document,
        origin=LinkOrigin.AUTO,
        reason=AUTO_REASON,
        created_by=SYSTEM_ACTOR,
    )
    for status in ClipStatus:
        factories.add_clip_row(station, f"status-{status.value}", status=status, utc_start=T0)
    with station.transaction() as session:
        # the dashboard's failed jobs (one per step) and retention runs (one per status, the newest
        # keeping clips by every rule)
        for step in ProcessingStep:
            session.execute(
                insert(processing_jobs).values(
                    clip_id=world.clip_a,
                    step=step.value,
                    status=JobStatus.FAILED,
                    attempts=3,
                    permanent=True,
                    last_error="ffmpeg exited 1",
                    created_at=now,
                    updated_at=now,
                )
            )
        for status in RetentionRunStatus:
            report = {
                "kept_by_rule": {rule.value: 1 for rule in Rule},
                "kept_until": {rule.value: {"next": T0.isoformat(), "last": T0.isoformat()} for rule in Rule},
            }
            session.execute(
                insert(retention_runs).values(
                    started_at=now,
                    as_of=now,
                    dry_run=status == RetentionRunStatus.DRY_RUN,
                    policy_version="test",
                    status=status.value,
                    report=report,
                )
            )
    return Readable(world, documents)


def signed_in(station: Station, username: str, lang: str = "zh-CN") -> TestClient:
    client = TestClient(create_app(station))
    client.cookies.set("lang", lang)
    token = client.get("/api/csrf").json()["csrf_token"]
    response = client.post(
        "/api/login", json={"username": username, "password": PASSWORD}, headers={"X-CSRF-Token": token}
    )
    assert response.status_code == 200, response.text
    return client


class VisibleText(HTMLParser):
    """The text a reader sees: no tags, no attribute values, nothing of a `<details class="raw-event">`
    (the raw record, one click away)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._raw_depth = 0
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "details" and (self._raw_depth or "raw-event" in (dict(attrs).get("class") or "").split()):
            self._raw_depth += 1
        if tag in ("script", "style"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "details" and self._raw_depth:
            self._raw_depth -= 1
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._raw_depth and not self._skip:
            self.parts.append(data)


def visible_text(html: str) -> str:
    parser = VisibleText()
    parser.feed(html)
    return " ".join(parser.parts)


def known_codes(station: Station) -> set[str]:
    """Every code a page may show, from the enums and tables themselves (new codes are covered)."""
    return (
        {k.value for k in FlagKind}
        | set(load_kinds(station.settings.home).kinds)
        | {o.value for o in LinkOrigin}
        | {s.value for s in ClipStatus}
        | {w.value for w in WarningCode}
        | {s.value for s in RetentionRunStatus}
        | {s.value for s in ProcessingStep}
        | {rule.value for rule in Rule}
        | {AUTO_REASON}
    )


def codes_shown(text: str, codes: set[str]) -> set[str]:
    return {
        code for code in codes if re.search(rf"(?<![\w-]){re.escape(code)}(?![\w-])", text, flags=re.ASCII)
    }


def main_pages(r: Readable) -> list[tuple[str, str]]:
    w = r.world
    return [
        ("custodian", "/search?go=1"),
        ("custodian", "/search?go=1&flag=any"),
        ("custodian", f"/clips/{w.clip_a}"),
        ("custodian", f"/clips/{w.clip_d}"),
        ("custodian", f"/cases/{w.case_normal}"),
        ("approver", f"/cases/{w.case_normal}"),
        ("custodian", "/dashboard"),
        ("custodian", "/station"),
        ("auditor", "/audit"),
    ]


def test_no_untranslated_code_appears_in_the_chinese_pages(readable: Readable) -> None:
    station = readable.world.station
    codes = known_codes(station)
    clients = {name: signed_in(station, name) for name in ("custodian", "approver", "auditor")}
    for username, path in main_pages(readable):
        response = clients[username].get(path)
        assert response.status_code == 200, (path, response.text[:400])
        text = visible_text(response.text)
        assert not codes_shown(text, codes), (username, path, sorted(codes_shown(text, codes)))
    # the pages did show the things whose codes they must not show
    case_page = visible_text(clients["approver"].get(f"/cases/{readable.world.case_normal}").text)
    assert "现场检查笔录" in case_page and "抽样记录" in case_page
    assert "逾期移交" in visible_text(clients["custodian"].get(f"/clips/{readable.world.clip_a}").text)
    dashboard = visible_text(clients["custodian"].get("/dashboard").text)
    assert "等待确认" in dashboard and "播放副本" in dashboard and "证据：案件尚未归档" in dashboard


def test_the_english_pages_translate_the_codes_too(readable: Readable) -> None:
    station = readable.world.station
    # in English, a code that is a word ("failed", "ready", "hearing") is also the translation's
    codes = {code for code in known_codes(station) if "_" in code}
    clients = {name: signed_in(station, name, "en") for name in ("custodian", "approver", "auditor")}
    for username, path in main_pages(readable):
        text = visible_text(clients[username].get(path).text)
        assert not codes_shown(text, codes), (username, path, sorted(codes_shown(text, codes)))


def test_a_flag_is_shown_once_in_the_search_results(readable: Readable) -> None:
    client = signed_in(readable.world.station, "custodian")
    page = client.get("/search", params={"go": 1, "flag": "late_handover"}).text
    row = re.search(rf'<tr class="hit" data-clip-id="{readable.world.clip_a}">(.*?)</tr>', page, re.S)
    assert row is not None
    assert visible_text(row.group(1)).count("逾期移交") == 1


def test_flag_details_read_as_sentences_and_say_what_is_withheld(readable: Readable) -> None:
    station = readable.world.station
    approver = signed_in(station, "approver", "en")
    table = _section(approver.get(f"/cases/{readable.world.case_normal}").text, "case-flags")
    assert "footage ends 15 min before the document's end" in table
    assert "{" not in table and '"' not in table
    assert "09:15:00" in table  # the footage's end, in the station's zone (Asia/Shanghai)
    custodian = signed_in(station, "custodian", "en")
    hidden = _section(custodian.get(f"/cases/{readable.world.case_normal}").text, "case-flags")
    assert "computed with footage you may not see" in hidden
    assert "09:15:00" not in hidden and "09:30:00" in hidden  # the document's own end stays


def _section(html: str, element_id: str) -> str:
    found = re.search(rf'<table[^>]* id="{element_id}".*?</table>', html, re.S)
    assert found is not None, element_id
    return visible_text(found.group(0))


def test_audit_details_show_real_chinese(readable: Readable) -> None:
    auditor = signed_in(readable.world.station, "auditor")
    page = auditor.get("/audit", params={"action": "clip.noted"}).text
    assert CHINESE_NOTE in page and "\\u73b0" not in page


def test_the_audit_log_shows_times_in_the_station_zone(readable: Readable) -> None:
    station = readable.world.station
    with station.connect() as connection:
        at = connection.execute(
            select(audit_events.c.at).where(audit_events.c.action == "clip.noted")
        ).scalar_one()
    moment = datetime.fromisoformat(at) if isinstance(at, str) else at
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    local = moment.astimezone(ZoneInfo(station.settings.timezone)).strftime("%Y-%m-%d %H:%M:%S")
    utc = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    assert local != utc  # Asia/Shanghai is 8 hours ahead
    auditor = signed_in(station, "auditor")
    table = _section(auditor.get("/audit", params={"action": "clip.noted"}).text, "audit-events")
    assert local in table and utc not in table


def test_sizes_are_for_people(readable: Readable) -> None:
    station = readable.world.station
    with station.transaction() as session:
        session.execute(update(clips).where(clips.c.id == readable.world.clip_a).values(size=1_288_490_189))
    client = signed_in(station, "custodian", "en")
    metadata = _section(client.get(f"/clips/{readable.world.clip_a}").text, "metadata")
    assert "1.2 GB" in metadata and "1288490189" not in metadata


def test_the_custody_events_are_sentences_in_the_station_zone_with_the_raw_event_at_hand(
    readable: Readable,
) -> None:
    station = readable.world.station
    client = signed_in(station, "custodian")
    html = client.get(f"/clips/{readable.world.clip_a}").text
    custody = re.search(r'<table id="custody".*?</table>', html, re.S)
    assert custody is not None
    with station.engine.connect() as connection:
        viewed = connection.execute(
            select(audit_events)
            .where(
                audit_events.c.action == "clip.viewed", audit_events.c.object_id == str(readable.world.clip_a)
            )
            .order_by(audit_events.c.seq.desc())
        ).first()
    assert viewed is not None
    local = datetime.fromisoformat(viewed.at).astimezone(ZoneInfo(station.settings.timezone))
    shown = visible_text(custody.group(0))
    assert local.strftime("%Y-%m-%d %H:%M:%S") in shown
    assert "clip.viewed" not in shown and "web:custodian" in shown
    row = re.search(rf'<tr data-seq="{viewed.seq}".*?</tr>', custody.group(0), re.S)
    assert row is not None and '<details class="raw-event">' in row.group(0)
    assert "clip.viewed" in row.group(0) and viewed.at in row.group(0)  # the raw event, one click away
    assert CHINESE_NOTE in custody.group(0) and "\\u73b0" not in custody.group(0)


def test_the_timeline_legend_follows_the_language(readable: Readable) -> None:
    client = signed_in(readable.world.station, "custodian")
    page = visible_text(client.get(f"/cases/{readable.world.case_normal}").text)
    svg = client.get(f"/cases/{readable.world.case_normal}/timeline.svg").text
    assert "approved exception" not in svg and "approved exception" not in page
    from web.i18n import ZH

    assert ZH["legend.exception"] in svg and ZH["legend.exception"] in page
