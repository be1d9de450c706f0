"""`evidence cases import` as a user runs it, on both backends: the shipped examples, upserts, every kind
of bad input (named by file, line or pointer, and field; nothing applied), GBK files, and times with and
without a zone stored as the right UTC."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from evidence_store.bootstrap import Station
from evidence_store.db.tables import (
    audit_events,
    cases,
    compliance_flags,
    document_officers,
    documents,
    officers,
    recording_exceptions,
)
from tests.conftest import REPO, CliResult, run_cli

EXAMPLES = REPO / "docs" / "examples"
HEADER = (
    "record,case_number,title,category,subject,unit,officers,opened,closed,archived,retention,"
    "confidentiality,document_id,kind,start,end,reason,requested_by,approved_by,approved_at"
)
CASE_LINE = (
    "case,{number},{title},行政检查,某某公司,金普新区卫生健康监督所,310777;310778,"
    "2026-03-02,,,10y,normal,,,,,,,,"
)
DOC_LINE = "document,{number},,,,,{officers},,,,,,{doc},on_site_inspection,{start},{end},,,,"


def csv_text(*lines: str) -> str:
    return "\n".join([HEADER, *lines]) + "\n"


def case_line(number: str, title: str = "检查") -> str:
    return CASE_LINE.format(number=number, title=title)


def doc_line(number: str, doc: str, start: str, end: str = "", officers_: str = "310777;310778") -> str:
    return DOC_LINE.format(number=number, doc=doc, start=start, end=end, officers=officers_)


def counts(station: Station) -> dict[str, int]:
    with station.engine.connect() as connection:
        return {
            table.name: int(connection.scalar(select(func.count()).select_from(table)) or 0)
            for table in (
                cases,
                documents,
                document_officers,
                officers,
                recording_exceptions,
                compliance_flags,
            )
        }


NOTHING = {
    "cases": 0,
    "documents": 0,
    "document_officers": 0,
    "officers": 0,
    "recording_exceptions": 0,
    "compliance_flags": 0,
}


def import_file(station_env: dict[str, str], path: Path) -> CliResult:
    return run_cli(["cases", "import", str(path), "--json"], station_env)


def rejected(station_env: dict[str, str], path: Path) -> list[dict[str, Any]]:
    result = import_file(station_env, path)
    assert result.code == 2, (result.stdout, result.stderr)
    report = json.loads(result.stdout)
    assert report["ok"] is False
    problems: list[dict[str, Any]] = report["problems"]
    return problems


def stored_document(station: Station, external_id: str) -> Any:
    with station.engine.connect() as connection:
        return connection.execute(select(documents).where(documents.c.external_id == external_id)).one()


def test_the_shipped_examples_import_cleanly_and_agree(station: Station, station_env: dict[str, str]) -> None:
    first = import_file(station_env, EXAMPLES / "cases-example.json")
    assert first.code == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["ok"] and summary["format"] == "json" and summary["encoding"] == "utf-8"
    assert sorted(summary["cases"]["created"]) == ["金普卫监检〔2026〕31号", "金普卫监罚〔2026〕12号"]
    assert len(summary["documents"]["created"]) == 5
    assert summary["documents"]["without_end"] == ["JPWS-2026-0012-04"]
    assert summary["exceptions"] == {"added": 1, "already_on_file": 0}
    assert summary["officers_created"] == ["310777", "310778", "310779", "310780"]
    after_json = counts(station)
    assert after_json["cases"] == 2 and after_json["documents"] == 5 and after_json["document_officers"] == 10

    # the CSV example holds the same cases: importing it changes nothing
    second = import_file(station_env, EXAMPLES / "cases-example.csv")
    assert second.code == 0, second.stderr
    again = json.loads(second.stdout)
    assert again["format"] == "csv"
    assert (
        len(again["cases"]["unchanged"]) == 2
        and not again["cases"]["created"]
        and not again["cases"]["updated"]
    )
    assert len(again["documents"]["unchanged"]) == 5 and not again["documents"]["updated"]
    assert again["exceptions"] == {"added": 0, "already_on_file": 1}
    assert again["officers_created"] == []
    assert counts(station) == after_json

    inspection = stored_document(station, "JPWS-2026-0012-01")
    assert inspection.kind == "on_site_inspection" and inspection.requires_video
    assert inspection.start == datetime(2026, 3, 2, 1, 30, tzinfo=UTC)
    inquiry = stored_document(station, "JPWS-2026-0012-03")
    assert inquiry.kind == "inquiry" and not inquiry.requires_video
    with station.engine.connect() as connection:
        imports = connection.execute(
            select(audit_events).where(audit_events.c.action == "cases.imported").order_by(audit_events.c.seq)
        ).all()
    assert [json.loads(e.details)["file"] for e in imports] == ["cases-example.json", "cases-example.csv"]
    assert run_cli(["audit", "verify"], station_env).code == 0


def test_a_second_import_updates_and_does_not_duplicate(
    station: Station, station_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "cases.csv"
    path.write_text(
        csv_text(case_line("C-1", "初查"), doc_line("C-1", "D-1", "2026-03-02 09:00", "2026-03-02 09:30")),
        encoding="utf-8",
    )
    assert import_file(station_env, path).code == 0
    path.write_text(
        csv_text(
            case_line("C-1", "复查"),
            doc_line("C-1", "D-1", "2026-03-02 09:00", "2026-03-02 10:00", officers_="310779"),
            doc_line("C-1", "D-2", "2026-03-03 09:00", "2026-03-03 09:20"),
        ),
        encoding="utf-8",
    )
    second = import_file(station_env, path)
    assert second.code == 0, second.stderr
    summary = json.loads(second.stdout)
    assert summary["cases"]["updated"] == ["C-1"]
    assert summary["documents"] == {
        "created": ["D-2"],
        "updated": ["D-1"],
        "unchanged": [],
        "moved_to_another_case": [],
        "without_end": [],
    }
    assert summary["officers_created"] == ["310779"]
    assert counts(station)["cases"] == 1 and counts(station)["documents"] == 2
    updated = stored_document(station, "D-1")
    assert updated.end == datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
    with station.engine.connect() as connection:
        assert connection.scalar(select(cases.c.title)) == "复查"
        badge = connection.scalar(
            select(officers.c.badge_number)
            .join(document_officers, document_officers.c.officer_id == officers.c.id)
            .where(document_officers.c.document_id == updated.id)
        )
        index_rows = connection.scalar(
            select(func.count())
            .select_from(document_officers)
            .where(document_officers.c.document_id == updated.id)
        )
    assert badge == "310779" and index_rows == 1  # the officer index follows the record


def test_end_before_start_is_rejected_naming_line_and_field(
    station: Station, station_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "cases.csv"
    path.write_text(
        csv_text(
            case_line("C-1"),
            doc_line("C-1", "D-1", "2026-03-02 09:00", "2026-03-02 09:30"),
            doc_line("C-1", "D-2", "2026-03-02 11:00", "2026-03-02 10:00"),
        ),
        encoding="utf-8",
    )
    problems = rejected(station_env, path)
    assert [(p["file"], p["line"], p["field"]) for p in problems] == [("cases.csv", 4, "end")]
    assert problems[0]["text"].startswith("cases.csv: line 4, field end: ends before it starts")
    assert counts(station) == NOTHING  # the good rows before it were not applied either
    human = run_cli(["cases", "import", str(path)], station_env)
    assert human.code == 2
    assert "cases.csv: line 4, field end: ends before it starts" in human.stderr
    assert "nothing was applied" in human.stderr


def test_end_before_start_in_json_is_named_by_pointer(
    station: Station, station_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "cases.json"
    path.write_text(
        json.dumps(
            {
                "cases": [
                    {
                        "number": "C-1",
                        "category": "行政检查",
                        "documents": [
                            {"id": "D-1", "kind": "sampling", "officers": ["1"], "start": "2026-03-02 09:00"},
                            {
                                "id": "D-2",
                                "kind": "sampling",
                                "officers": ["1"],
                                "start": "2026-03-02T10:00:00+08:00",
                                "end": "2026-03-02T01:00:00Z",
                            },
                        ],
                    }
                ]
            }
        ),
        encoding="utf-8",
    )
    problems = rejected(station_env, path)
    assert [(p["pointer"], p["field"]) for p in problems] == [("/cases/0/documents/1", "end")]
    assert problems[0]["text"].startswith("cases.json: /cases/0/documents/1/end: ends before it starts")
    assert counts(station) == NOTHING


def test_duplicate_case_numbers_are_rejected_naming_both_lines(
    station: Station, station_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "cases.csv"
    path.write_text(
        csv_text(
            case_line("C-1"), case_line("C-2"), doc_line("C-1", "D-1", "2026-03-02 09:00"), case_line("C-1")
        ),
        encoding="utf-8",
    )
    problems = rejected(station_env, path)
    assert [(p["line"], p["field"]) for p in problems] == [(5, "case_number")]
    assert "appears twice in the file (line 2 and line 5)" in problems[0]["message"]
    assert counts(station) == NOTHING

    as_json = tmp_path / "cases.json"
    as_json.write_text(
        json.dumps(
            {"cases": [{"number": "C-1", "category": "行政检查"}, {"number": "C-1", "category": "行政检查"}]}
        ),
        encoding="utf-8",
    )
    problems = rejected(station_env, as_json)
    assert "(/cases/0/number and /cases/1/number)" in problems[0]["message"]
    assert counts(station) == NOTHING


def test_unknown_officers_are_created_and_reported(
    station: Station, station_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "cases.csv"
    path.write_text(
        csv_text(case_line("C-1"), doc_line("C-1", "D-1", "2026-03-02 09:00", officers_="399001、399002")),
        encoding="utf-8",
    )
    result = import_file(station_env, path)
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["officers_created"] == ["310777", "310778", "399001", "399002"]
    with station.engine.connect() as connection:
        assert set(connection.scalars(select(officers.c.badge_number))) == {
            "310777",
            "310778",
            "399001",
            "399002",
        }
    human = run_cli(["cases", "import", str(path)], station_env)
    assert human.code == 0 and "officers created" not in human.stdout  # known now


def test_documents_without_end_are_accepted_and_flagged(
    station: Station, station_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "cases.csv"
    path.write_text(csv_text(case_line("C-1"), doc_line("C-1", "D-1", "2026-03-02 09:00")), encoding="utf-8")
    result = import_file(station_env, path)
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["documents"]["without_end"] == ["D-1"]
    assert stored_document(station, "D-1").end is None
    with station.engine.connect() as connection:
        kinds = set(
            connection.scalars(select(compliance_flags.c.kind).where(compliance_flags.c.cleared_at.is_(None)))
        )
    # the act is months before the station's clock and no footage was filed for it: R8's monitor
    # (issue 17) flags the document as overdue for filing too
    assert kinds == {"document_without_end", "missing_video", "filing_overdue"}


def test_overlapping_documents_are_fine(
    station: Station, station_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "cases.csv"
    path.write_text(
        csv_text(
            case_line("C-1"),
            doc_line("C-1", "D-1", "2026-03-02 09:00", "2026-03-02 10:00"),
            doc_line("C-1", "D-2", "2026-03-02 09:30", "2026-03-02 10:30"),
            doc_line("C-1", "D-3", "2026-03-02 09:45", "2026-03-02 09:50", officers_="310779"),
        ),
        encoding="utf-8",
    )
    result = import_file(station_env, path)
    assert result.code == 0, result.stderr
    assert counts(station)["documents"] == 3


def test_times_with_and_without_a_zone_are_stored_in_utc(
    station: Station, station_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "cases.csv"
    path.write_text(
        csv_text(
            case_line("C-1"),
            doc_line("C-1", "NAIVE", "2026-03-02 09:30", "2026/3/2 9:45"),
            doc_line("C-1", "OFFSET", "2026-03-02T09:30:00+08:00", "2026-03-02T09:45+0800"),
            doc_line("C-1", "ZULU", "2026-03-02T01:30:00Z", "2026-03-02T01:45:00Z"),
            doc_line("C-1", "OTHER", "2026-03-02T03:30:00+02:00", "2026-03-02T03:45:00+02:00"),
        ),
        encoding="utf-8",
    )
    assert import_file(station_env, path).code == 0
    for name in ("NAIVE", "OFFSET", "ZULU", "OTHER"):
        stored = stored_document(station, name)
        assert (stored.start, stored.end) == (
            datetime(2026, 3, 2, 1, 30, tzinfo=UTC),
            datetime(2026, 3, 2, 1, 45, tzinfo=UTC),
        ), name
    with station.engine.connect() as connection:
        opened = connection.scalar(select(cases.c.opened_at))
    assert opened == datetime(2026, 3, 1, 16, 0, tzinfo=UTC)  # midnight in Asia/Shanghai

    # a station in another zone reads the same unzoned text as its own time
    berlin = {**station_env, "EVIDENCE_TIMEZONE": "Europe/Berlin"}
    path.write_text(
        csv_text(case_line("C-2"), doc_line("C-2", "BERLIN", "2026-03-02 09:30")), encoding="utf-8"
    )
    assert run_cli(["cases", "import", str(path)], berlin).code == 0
    assert stored_document(station, "BERLIN").start == datetime(2026, 3, 2, 8, 30, tzinfo=UTC)


def test_a_gbk_file_is_detected(station: Station, station_env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "cases-gbk.csv"
    path.write_bytes(
        csv_text(
            case_line("金普卫监检〔2026〕7号", "某某宾馆公共场所卫生检查"),
            doc_line("金普卫监检〔2026〕7号", "GBK-1", "2026-03-02 09:00", "2026-03-02 09:30"),
        ).encode("gbk")
    )
    result = import_file(station_env, path)
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["encoding"] == "gbk"
    with station.engine.connect() as connection:
        row = connection.execute(select(cases.c.number, cases.c.title, cases.c.unit)).one()
    assert tuple(row) == ("金普卫监检〔2026〕7号", "某某宾馆公共场所卫生检查", "金普新区卫生健康监督所")

    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(HEADER.encode() + b"\n\xff\xfe\xff,\x81\n")
    problems = rejected(station_env, garbage)
    assert "neither UTF-8 nor GBK" in problems[0]["message"]


def test_other_bad_input_is_rejected_with_its_place(
    station: Station, station_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "cases.csv"
    path.write_text(
        csv_text(
            case_line("C-1"),
            "document,C-1,,,,,310777,,,,,,D-1,现场勘验,2026-03-02 09:00,,,,,",
            "document,C-9,,,,,310777,,,,,,D-2,sampling,2026-03-02 09:00,,,,,",
            "document,C-1,,,,,,,,,,,D-3,sampling,not a time,,,,,",
            "exception,C-1,,,,,,,,,,,D-1,,,,,,,",
        ),
        encoding="utf-8",
    )
    problems = rejected(station_env, path)
    found = {(p["line"], p["field"]) for p in problems}
    assert {(3, "kind"), (5, "officers"), (5, "start"), (6, "reason"), (6, "approved_by")} <= found
    assert counts(station) == NOTHING
    # what the file refers to must exist (checked against the database, still nothing applied)
    path.write_text(csv_text(case_line("C-1"), doc_line("C-9", "D-2", "2026-03-02 09:00")), encoding="utf-8")
    problems = rejected(station_env, path)
    assert [(p["line"], p["field"]) for p in problems] == [(3, "case_number")]
    assert "no case 'C-9'" in problems[0]["message"]
    assert counts(station) == NOTHING
    with station.engine.connect() as connection:
        rejections = connection.scalar(
            select(func.count())
            .select_from(audit_events)
            .where(audit_events.c.action == "cases.import_rejected")
        )
    assert rejections == 2  # every import is an audit event, a rejected one too
    assert run_cli(["audit", "verify"], station_env).code == 0
