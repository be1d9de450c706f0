"""Parsing a case import file (CSV or JSON) into an `ImportPlan`; pure: bytes in, a plan or every problem
found out (R5-R7 inputs).

Times without a zone are in the station's zone (passed in); all come out in UTC. The file may be UTF-8
or GBK. The formats are described in docs/cases-import.md.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from evidence_store.cases.import_plan import (
    CaseRecord,
    DocumentRecord,
    ExceptionRecord,
    ImportPlan,
    ImportProblem,
    ImportRejected,
    Place,
)
from evidence_store.cases.kinds import KindTable
from evidence_store.domain.model import CaseCategory, Confidentiality, RetentionPeriod

CSV_COLUMNS = (
    "record",
    "case_number",
    "title",
    "category",
    "subject",
    "unit",
    "officers",
    "opened",
    "closed",
    "archived",
    "retention",
    "confidentiality",
    "document_id",
    "kind",
    "start",
    "end",
    "reason",
    "requested_by",
    "approved_by",
    "approved_at",
)
CASE_FIELDS = (
    "number",
    "title",
    "category",
    "subject",
    "unit",
    "officers",
    "opened",
    "closed",
    "archived",
    "retention",
    "confidentiality",
    "documents",
    "exceptions",
)
DOCUMENT_FIELDS = ("id", "case", "kind", "title", "officers", "start", "end")
EXCEPTION_FIELDS = ("case", "document", "reason", "requested_by", "approved_by", "approved_at")

_CATEGORY_NAMES = {
    "licensing": CaseCategory.LICENSING,
    "punishment": CaseCategory.PUNISHMENT,
    "coercion": CaseCategory.COERCION,
    "inspection": CaseCategory.INSPECTION,
    "expropriation": CaseCategory.EXPROPRIATION,
    "fees": CaseCategory.FEES,
}
_RETENTION_NAMES = {
    "10年": RetentionPeriod.YEARS_10,
    "30年": RetentionPeriod.YEARS_30,
    "永久": RetentionPeriod.PERMANENT,
}
_CONFIDENTIALITY_NAMES = {
    "一般": Confidentiality.NORMAL,
    "个人隐私": Confidentiality.PERSONAL_PRIVACY,
    "商业秘密": Confidentiality.COMMERCIAL_SECRET,
    "国家秘密": Confidentiality.STATE_SECRET,
}
_OFFICER_SPLIT = re.compile(r"[;；,，、\s]+")
_DATE_ONLY = re.compile(r"^\d{4}-\d{1,2}-\d{1,2}$")
_FALLBACK_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M:%S%z",
    "%Y-%m-%dT%H:%M:%S%z",
    "%Y-%m-%d",
)


def decode_text(data: bytes) -> tuple[str, str]:
    """R5-R7 inputs: the file's text and its encoding: UTF-8 (with or without BOM) first, then GBK
    (what Excel writes on a Chinese Windows)."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8"), "utf-8"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as first:
        try:
            return data.decode("gbk"), "gbk"
        except UnicodeDecodeError:
            raise first from None


def parse_time(text: str, zone: ZoneInfo, *, date_only: bool = False) -> datetime:
    """R5: a document's time as written, to UTC; a time without a zone is in the station's zone.

    Accepts ISO 8601 (`T` or a space, seconds optional, `Z` or `+08:00`), `/` between date parts, and
    unpadded numbers; a bare date only where `date_only` allows it (midnight in the station's zone).
    """
    value = text.strip()
    if not value:
        raise ValueError("is empty")
    date_part, sep, rest = value.partition(" ") if " " in value else value.partition("T")
    value = date_part.replace("/", "-") + sep + rest.strip()
    if _DATE_ONLY.match(value) and not date_only:
        raise ValueError(f"{text!r} is a date without a time of day")
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    moment: datetime | None = None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        for pattern in _FALLBACK_FORMATS:
            try:
                moment = datetime.strptime(value, pattern)
                break
            except ValueError:
                continue
    if moment is None:
        raise ValueError(
            f"{text!r} is not a date and time (e.g. 2026-03-02 09:30 or 2026-03-02T09:30:00+08:00)"
        )
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


def split_officers(value: Any) -> list[str]:
    """R5: the officers who wrote a document (footage of theirs is what links to it), from a list or
    from text separated by `;`, `,`, `、` or spaces."""
    if isinstance(value, list):
        return [str(item).strip() for item in value if str(item).strip()]
    return [part for part in _OFFICER_SPLIT.split(str(value).strip()) if part]


def _enum_value(value: str, enum_class: type[Any], names: dict[str, Any]) -> Any:
    wanted = value.strip()
    for member in enum_class:
        if wanted in (member.value, member.name.lower()):
            return member
    if wanted.lower() in names:
        return names[wanted.lower()]
    if wanted in names:
        return names[wanted]
    allowed = ", ".join(m.value for m in enum_class)
    raise ValueError(f"{value!r} is not one of: {allowed}")


class _Parser:
    def __init__(self, file: str, zone: ZoneInfo, kinds: KindTable) -> None:
        self.file = file
        self.zone = zone
        self.kinds = kinds
        self.problems: list[ImportProblem] = []

    # one value each; a bad value is recorded as a problem and None is returned

    def text(
        self, place: Place, name: str, value: Any, *, required: bool = False, limit: int = 0
    ) -> str | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self.problems.append(place.problem(name, "is required"))
            return None
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            self.problems.append(place.problem(name, f"must be text, not {type(value).__name__}"))
            return None
        result = str(value).strip()
        if limit and len(result) > limit:
            self.problems.append(place.problem(name, f"is longer than {limit} characters"))
            return None
        return result

    def time(
        self, place: Place, name: str, value: Any, *, required: bool = False, date_only: bool = False
    ) -> datetime | None:
        raw = self.text(place, name, value, required=required)
        if raw is None:
            return None
        try:
            return parse_time(raw, self.zone, date_only=date_only)
        except ValueError as exc:
            self.problems.append(place.problem(name, str(exc)))
            return None

    def choice(
        self, place: Place, name: str, value: Any, enum_class: type[Any], names: dict[str, Any]
    ) -> Any:
        raw = self.text(place, name, value)
        if raw is None:
            return None
        try:
            return _enum_value(raw, enum_class, names)
        except ValueError as exc:
            self.problems.append(place.problem(name, str(exc)))
            return None

    def officer_list(
        self, place: Place, name: str, value: Any, *, required: bool = False
    ) -> list[str] | None:
        if value is None or value in ("", []):
            if required:
                self.problems.append(place.problem(name, "is required (one or more officer numbers)"))
            return None
        if not isinstance(value, (str, int, list)) or isinstance(value, bool):
            self.problems.append(place.problem(name, "must be a list of officer numbers"))
            return None
        found = split_officers(value)
        too_long = [badge for badge in found if len(badge) > 64]
        if too_long:
            self.problems.append(place.problem(name, f"officer number {too_long[0]!r} is too long"))
            return None
        if required and not found:
            self.problems.append(place.problem(name, "is required (one or more officer numbers)"))
            return None
        return list(dict.fromkeys(found))

    # records

    def case(self, place: Place, raw: dict[str, Any], number_field: str) -> CaseRecord | None:
        number = self.text(place, number_field, raw.get("number"), required=True, limit=128)
        values: dict[str, Any] = {}
        for name, attribute in (("title", "title"), ("subject", "subject")):
            given = self.text(place, name, raw.get(name))
            if given is not None:
                values[attribute] = given
        unit = self.text(place, "unit", raw.get("unit"), limit=200)
        if unit is not None:
            values["unit"] = unit
        for name, attribute, enum_class, names in (
            ("category", "category", CaseCategory, _CATEGORY_NAMES),
            ("retention", "retention_period", RetentionPeriod, _RETENTION_NAMES),
            ("confidentiality", "confidentiality", Confidentiality, _CONFIDENTIALITY_NAMES),
        ):
            chosen = self.choice(place, name, raw.get(name), enum_class, names)
            if chosen is not None:
                values[attribute] = chosen
        for name, attribute in (
            ("opened", "opened_at"),
            ("closed", "closed_at"),
            ("archived", "archived_at"),
        ):
            moment = self.time(place, name, raw.get(name), date_only=True)
            if moment is not None:
                values[attribute] = moment
        opened, closed = values.get("opened_at"), values.get("closed_at")
        if opened is not None and closed is not None and closed < opened:
            self.problems.append(place.problem("closed", "the case is closed before it was opened"))
        case_officers = self.officer_list(place, "officers", raw.get("officers"))
        if number is None:
            return None
        return CaseRecord(place, number, values, case_officers)

    def document(
        self, place: Place, raw: dict[str, Any], case_number: str | None, id_field: str
    ) -> DocumentRecord | None:
        before = len(self.problems)
        external_id = self.text(place, id_field, raw.get("id"), required=True, limit=128)
        kind_name = self.text(place, "kind", raw.get("kind"), required=True)
        kind = None
        if kind_name is not None:
            kind = self.kinds.resolve(kind_name)
            if kind is None:
                self.problems.append(
                    place.problem(
                        "kind", f"unknown document kind {kind_name!r}; known: {', '.join(self.kinds.names())}"
                    )
                )
        title = self.text(place, "title", raw.get("title"))
        doc_officers = self.officer_list(place, "officers", raw.get("officers"), required=True)
        start = self.time(place, "start", raw.get("start"), required=True)
        end = self.time(place, "end", raw.get("end"))
        if start is not None and end is not None and end < start:
            self.problems.append(
                place.problem(
                    "end", f"ends before it starts (start {start.isoformat()}, end {end.isoformat()}, UTC)"
                )
            )
        if len(self.problems) > before or case_number is None:
            return None
        assert external_id is not None and kind is not None and doc_officers is not None and start is not None
        return DocumentRecord(place, external_id, case_number, kind, doc_officers, start, end, title)

    def exception(
        self, place: Place, raw: dict[str, Any], case_number: str | None, document_field: str
    ) -> ExceptionRecord | None:
        before = len(self.problems)
        document_id = self.text(place, document_field, raw.get("document"), limit=128)
        reason = self.text(place, "reason", raw.get("reason"), required=True)
        approved_by = self.text(place, "approved_by", raw.get("approved_by"), required=True, limit=200)
        requested_by = self.text(place, "requested_by", raw.get("requested_by"), limit=200) or ""
        approved_at = self.time(place, "approved_at", raw.get("approved_at"))
        if len(self.problems) > before or case_number is None:
            return None
        assert reason is not None and approved_by is not None
        return ExceptionRecord(
            place, case_number, document_id, reason, approved_by, requested_by, approved_at
        )


def _check_duplicates(parser: _Parser, plan: ImportPlan, number_field: str, id_field: str) -> None:
    _once_each(parser, ((r.number, r.place) for r in plan.cases), "case number", number_field)
    _once_each(parser, ((d.external_id, d.place) for d in plan.documents), "document", id_field)


def _once_each(parser: _Parser, keyed: Iterable[tuple[str, Place]], what: str, field: str) -> None:
    """A problem for every record whose key an earlier record of the file already had."""
    seen: dict[str, Place] = {}
    for key, place in keyed:
        first = seen.setdefault(key, place)
        if first is not place:
            parser.problems.append(
                place.problem(
                    field,
                    f"{what} {key!r} appears twice in the file "
                    f"({first.describe(field)} and {place.describe(field)})",
                )
            )


def _csv_columns(parser: _Parser, plan: ImportPlan, header: list[str]) -> list[str] | None:
    columns = [name.strip().lower() for name in header]
    for name in columns:
        if name not in CSV_COLUMNS:
            parser.problems.append(
                ImportProblem(
                    plan.file,
                    f"unknown column {name!r} (known: {', '.join(CSV_COLUMNS)})",
                    line=1,
                    field=name or "(empty)",
                )
            )
    for required in ("record", "case_number"):
        if required not in columns:
            parser.problems.append(
                ImportProblem(plan.file, f"the header has no {required!r} column", line=1, field=required)
            )
    return None if parser.problems else columns


def _csv_record(parser: _Parser, plan: ImportPlan, place: Place, row: dict[str, str]) -> None:
    kind = row["record"].strip().lower()
    number = row["case_number"].strip() or None
    if kind == "case":
        record = parser.case(place, {**row, "number": row["case_number"]}, "case_number")
        if record is not None:
            plan.cases.append(record)
        return
    if kind not in ("document", "exception"):
        parser.problems.append(
            place.problem("record", f"{row['record']!r} is not case, document or exception")
        )
        return
    if number is None:
        parser.problems.append(place.problem("case_number", "is required"))
    if kind == "document":
        document = parser.document(place, {**row, "id": row.get("document_id")}, number, "document_id")
        if document is not None:
            plan.documents.append(document)
    else:
        found = parser.exception(place, {**row, "document": row.get("document_id")}, number, "document_id")
        if found is not None:
            plan.exceptions.append(found)


def _parse_csv(parser: _Parser, plan: ImportPlan, text: str) -> None:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        parser.problems.append(ImportProblem(plan.file, "the file is empty", line=1))
        return
    except csv.Error as exc:
        parser.problems.append(ImportProblem(plan.file, f"not valid CSV: {exc}", line=1))
        return
    columns = _csv_columns(parser, plan, header)
    if columns is None:
        return
    previous_end = reader.line_num
    while True:
        line = previous_end + 1  # a quoted cell may span lines: the record starts after the last one
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            parser.problems.append(ImportProblem(plan.file, f"not valid CSV: {exc}", line=line))
            return
        previous_end = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        place = Place(plan.file, line=line)
        if len(cells) > len(columns):
            parser.problems.append(
                place.problem(None, f"{len(cells)} cells, but the header names {len(columns)} columns")
            )
            continue
        _csv_record(
            parser, plan, place, {name: cells[i] if i < len(cells) else "" for i, name in enumerate(columns)}
        )
    _check_duplicates(parser, plan, "case_number", "document_id")


def _unknown_keys(parser: _Parser, place: Place, raw: dict[str, Any], known: Iterable[str]) -> None:
    for key in sorted(set(raw) - set(known)):
        parser.problems.append(place.problem(key, f"unknown field (known: {', '.join(known)})"))


def _parse_json(parser: _Parser, plan: ImportPlan, text: str) -> None:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        parser.problems.append(
            ImportProblem(
                plan.file,
                f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
                line=exc.lineno,
            )
        )
        return
    if isinstance(data, list):
        data = {"cases": data}
    root = Place(plan.file, pointer="")
    if not isinstance(data, dict):
        parser.problems.append(root.problem(None, "expected an object with 'cases' (or a list of cases)"))
        return
    _unknown_keys(parser, root, data, ("cases", "documents", "exceptions"))
    for key in ("cases", "documents", "exceptions"):
        if key in data and not isinstance(data[key], list):
            parser.problems.append(root.problem(key, "must be a list"))
            return
    for i, raw in enumerate(data.get("cases", [])):
        _json_case(parser, plan, i, raw)
    for key, handler in (("documents", _json_document), ("exceptions", _json_exception)):
        for j, item in enumerate(data.get(key, [])):
            place = Place(plan.file, pointer=f"/{key}/{j}")
            number = (
                parser.text(place, "case", item.get("case"), required=True)
                if isinstance(item, dict)
                else None
            )
            handler(parser, plan, place, item, number, nested=False)
    _check_duplicates(parser, plan, "number", "id")


def _json_case(parser: _Parser, plan: ImportPlan, index: int, raw: Any) -> None:
    place = Place(plan.file, pointer=f"/cases/{index}")
    if not isinstance(raw, dict):
        parser.problems.append(place.problem(None, "a case must be an object"))
        return
    _unknown_keys(parser, place, raw, CASE_FIELDS)
    record = parser.case(place, raw, "number")
    if record is not None:
        plan.cases.append(record)
    number = record.number if record else None
    for key, handler in (("documents", _json_document), ("exceptions", _json_exception)):
        items = raw.get(key, [])
        if not isinstance(items, list):
            parser.problems.append(place.problem(key, "must be a list"))
            continue
        for j, item in enumerate(items):
            handler(
                parser, plan, Place(plan.file, pointer=f"/cases/{index}/{key}/{j}"), item, number, nested=True
            )


def _json_document(
    parser: _Parser, plan: ImportPlan, place: Place, raw: Any, number: str | None, *, nested: bool
) -> None:
    if not isinstance(raw, dict):
        parser.problems.append(place.problem(None, "a document must be an object"))
        return
    _unknown_keys(parser, place, raw, [f for f in DOCUMENT_FIELDS if f != "case" or not nested])
    document = parser.document(place, raw, number, "id")
    if document is not None:
        plan.documents.append(document)


def _json_exception(
    parser: _Parser, plan: ImportPlan, place: Place, raw: Any, number: str | None, *, nested: bool
) -> None:
    if not isinstance(raw, dict):
        parser.problems.append(place.problem(None, "an exception must be an object"))
        return
    _unknown_keys(parser, place, raw, [f for f in EXCEPTION_FIELDS if f != "case" or not nested])
    found = parser.exception(place, raw, number, "document")
    if found is not None:
        plan.exceptions.append(found)


def parse_import(
    name: str, data: bytes, *, zone: ZoneInfo, kinds: KindTable, file_format: str | None = None
) -> ImportPlan:
    """R5-R7 inputs: the cases, documents (with their windows) and approved exceptions of one file.

    Every problem is collected (file, CSV line or JSON pointer, field); any problem rejects the file.
    """
    try:
        text, encoding = decode_text(data)
    except UnicodeDecodeError as exc:
        raise ImportRejected(
            name, [ImportProblem(name, f"neither UTF-8 nor GBK text (bad byte at offset {exc.start})")]
        ) from exc
    chosen = file_format or (
        "json" if name.lower().endswith(".json") else "csv" if name.lower().endswith(".csv") else ""
    )
    if not chosen:
        chosen = "json" if text.lstrip().startswith(("{", "[")) else "csv"
    plan = ImportPlan(name, chosen, encoding, hashlib.sha256(data).hexdigest())
    parser = _Parser(name, zone, kinds)
    if chosen == "json":
        _parse_json(parser, plan, text)
    else:
        _parse_csv(parser, plan, text)
    if parser.problems:
        raise ImportRejected(name, parser.problems)
    return plan
