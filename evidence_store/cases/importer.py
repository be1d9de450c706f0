"""`evidence cases import`: cases, their documents and recording exceptions from CSV or JSON.

Parsing is pure (`import_parsing.parse_import`: bytes in, a plan or every problem found out); applying
the plan (`import_cases`, here) is one transaction: a file with any bad row changes nothing. Cases are
upserted by number and documents by external id; a value given in the file replaces the stored one, a
value left out (absent or empty) keeps it. Unknown officer numbers create the officer (reported in the
summary). The formats are described in docs/cases-import.md.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from evidence_store.bootstrap import Station
from evidence_store.cases.import_parsing import parse_import
from evidence_store.cases.import_plan import ImportPlan, ImportProblem, ImportRejected
from evidence_store.cases.kinds import load_kinds
from evidence_store.cases.linking_service import link_documents_in
from evidence_store.db.tables import (
    cases,
    clip_links,
    document_officers,
    documents,
    officers,
    recording_exceptions,
)
from evidence_store.domain.model import Case, Document, Officer, RecordingException
from evidence_store.domain.record_facts import FACTS_KEY, TRACKED, row_fact

# ImportRejected is raised here too; callers catch it from this module alongside import_cases
__all__ = ["ImportRejected", "ImportSummary", "apply_plan", "import_cases"]


@dataclass
class ImportSummary:
    file: str
    format: str
    encoding: str
    sha256: str
    cases_created: list[str] = field(default_factory=list)
    cases_updated: list[str] = field(default_factory=list)
    cases_unchanged: list[str] = field(default_factory=list)
    documents_created: list[str] = field(default_factory=list)
    documents_updated: list[str] = field(default_factory=list)
    documents_unchanged: list[str] = field(default_factory=list)
    documents_moved: list[str] = field(default_factory=list)
    documents_without_end: list[str] = field(default_factory=list)
    exceptions_added: int = 0
    exceptions_already_on_file: int = 0
    officers_created: list[str] = field(default_factory=list)
    links: dict[str, int] = field(default_factory=dict)
    # the rows made or changed, as stated in the audit event (R3); not part of the printed summary
    facts: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "format": self.format,
            "encoding": self.encoding,
            "sha256": self.sha256,
            "cases": {
                "created": self.cases_created,
                "updated": self.cases_updated,
                "unchanged": self.cases_unchanged,
            },
            "documents": {
                "created": self.documents_created,
                "updated": self.documents_updated,
                "unchanged": self.documents_unchanged,
                "moved_to_another_case": self.documents_moved,
                "without_end": self.documents_without_end,
            },
            "exceptions": {
                "added": self.exceptions_added,
                "already_on_file": self.exceptions_already_on_file,
            },
            "officers_created": self.officers_created,
            "links": self.links,
        }


def _check_references(session: Session, plan: ImportPlan) -> list[ImportProblem]:
    """What the file refers to but does not contain must be on record already."""
    problems: list[ImportProblem] = []
    in_file = {record.number for record in plan.cases}
    referenced = {d.case_number for d in plan.documents} | {e.case_number for e in plan.exceptions}
    stored = set(session.scalars(select(cases.c.number).where(cases.c.number.in_(referenced | in_file))))
    new_cases = in_file - stored
    for record in plan.cases:
        if record.number in new_cases and "category" not in record.values:
            problems.append(record.place.problem("category", "is required for a new case"))
    for document in plan.documents:
        if document.case_number not in in_file and document.case_number not in stored:
            name = "case_number" if document.place.line is not None else "case"
            problems.append(
                document.place.problem(name, f"no case {document.case_number!r} in the file or on record")
            )
    doc_cases = {d.external_id: d.case_number for d in plan.documents}
    wanted_docs = {e.document_id for e in plan.exceptions if e.document_id and e.document_id not in doc_cases}
    if wanted_docs:
        for external_id, number in session.execute(
            select(documents.c.external_id, cases.c.number)
            .join(cases, cases.c.id == documents.c.case_id)
            .where(documents.c.external_id.in_(wanted_docs))
        ):
            doc_cases[external_id] = number
    for found in plan.exceptions:
        name = "document_id" if found.place.line is not None else "document"
        if found.case_number not in in_file and found.case_number not in stored:
            problems.append(
                found.place.problem(
                    "case_number" if found.place.line is not None else "case",
                    f"no case {found.case_number!r} in the file or on record",
                )
            )
        elif found.document_id is not None and found.document_id not in doc_cases:
            problems.append(
                found.place.problem(name, f"no document {found.document_id!r} in the file or on record")
            )
        elif found.document_id is not None and doc_cases[found.document_id] != found.case_number:
            problems.append(
                found.place.problem(
                    name,
                    f"document {found.document_id!r} belongs to case "
                    f"{doc_cases[found.document_id]!r}, not {found.case_number!r}",
                )
            )
    return problems


def _officer_ids(session: Session, badges: set[str], summary: ImportSummary) -> dict[str, int]:
    found = {
        badge: officer_id
        for officer_id, badge in session.execute(
            select(officers.c.id, officers.c.badge_number).where(officers.c.badge_number.in_(badges))
        )
    }
    for badge in sorted(badges - found.keys()):
        officer = Officer(badge_number=badge)
        session.add(officer)
        session.flush()
        assert officer.id is not None
        found[badge] = officer.id
        summary.officers_created.append(badge)
    return found


def _upsert_cases(
    session: Session, plan: ImportPlan, officer_ids: dict[str, int], summary: ImportSummary
) -> None:
    numbers = [r.number for r in plan.cases]
    stored = {c.number: c for c in session.scalars(select(Case).where(cases.c.number.in_(numbers)))}
    for record in plan.cases:
        values = dict(record.values)
        if record.officers is not None:
            values["officer_ids"] = [officer_ids[b] for b in record.officers]
        case = stored.get(record.number)
        if case is None:
            session.add(Case(number=record.number, **values))
            summary.cases_created.append(record.number)
            continue
        changed = False
        for attribute, value in values.items():
            if getattr(case, attribute) != value:
                setattr(case, attribute, value)
                changed = True
        (summary.cases_updated if changed else summary.cases_unchanged).append(record.number)
    session.flush()


def _upsert_documents(
    session: Session,
    plan: ImportPlan,
    case_ids: dict[str, int],
    officer_ids: dict[str, int],
    summary: ImportSummary,
) -> set[int]:
    external_ids = [d.external_id for d in plan.documents]
    stored = {
        d.external_id: d
        for d in session.scalars(select(Document).where(documents.c.external_id.in_(external_ids)))
    }
    touched: list[Document] = []
    created: set[str] = set()
    for record in plan.documents:
        values: dict[str, Any] = {
            "case_id": case_ids[record.case_number],
            "kind": record.kind.code,
            "officer_ids": [officer_ids[b] for b in record.officers],
            "start": record.start,
            "requires_video": record.kind.requires_video,
        }
        if record.end is not None:
            values["end"] = record.end
        if record.title is not None:
            values["title"] = record.title
        document = stored.get(record.external_id)
        if document is None:
            document = Document(external_id=record.external_id, **values)
            session.add(document)
            summary.documents_created.append(record.external_id)
            created.add(record.external_id)
        else:
            if document.case_id != values["case_id"]:
                summary.documents_moved.append(record.external_id)
            changed = False
            for attribute, value in values.items():
                if getattr(document, attribute) != value:
                    setattr(document, attribute, value)
                    changed = True
            (summary.documents_updated if changed else summary.documents_unchanged).append(record.external_id)
        touched.append(document)
    session.flush()
    summary.documents_without_end = [d.external_id for d in touched if d.end is None]
    summary.facts.extend(
        row_fact("documents", d.id or 0, d, new=d.external_id in created, fields=TRACKED["documents"])
        for d in touched
    )
    document_ids = {d.id for d in touched if d.id is not None}
    if not document_ids:
        return document_ids
    # the officer index follows the record on every upsert
    session.execute(delete(document_officers).where(document_officers.c.document_id.in_(document_ids)))
    session.execute(
        document_officers.insert(),
        [{"document_id": d.id, "officer_id": o} for d in touched for o in dict.fromkeys(d.officer_ids)],
    )
    for document in touched:
        # a document moved to another case takes its links with it
        moved = session.scalars(
            select(clip_links.c.id).where(
                clip_links.c.document_id == document.id, clip_links.c.case_id != document.case_id
            )
        ).all()
        summary.facts.extend(
            row_fact("clip_links", link_id, {"case_id": document.case_id}, new=False, fields=("case_id",))
            for link_id in moved
        )
        session.execute(
            update(clip_links)
            .where(clip_links.c.document_id == document.id, clip_links.c.case_id != document.case_id)
            .values(case_id=document.case_id)
        )
    return document_ids


def _add_exceptions(
    session: Session, station: Station, plan: ImportPlan, case_ids: dict[str, int], summary: ImportSummary
) -> set[int]:
    """Record the file's approved exceptions (R6); return the documents they cover."""
    excepted: set[int] = set()
    if not plan.exceptions:
        return excepted
    wanted = {e.document_id for e in plan.exceptions if e.document_id}
    doc_ids: dict[str, int] = {
        external_id: document_id
        for external_id, document_id in session.execute(
            select(documents.c.external_id, documents.c.id).where(documents.c.external_id.in_(wanted))
        )
    }
    now = station.clock()
    added: list[RecordingException] = []
    for found in plan.exceptions:
        case_id = case_ids[found.case_number]
        document_id = doc_ids[found.document_id] if found.document_id else None
        existing = session.scalar(
            select(RecordingException).where(
                _eq_or_null("case_id", case_id),
                _eq_or_null("document_id", document_id),
                _eq_or_null("reason", found.reason),
                _eq_or_null("approved_by", found.approved_by),
            )
        )
        if existing is not None:
            summary.exceptions_already_on_file += 1
            continue
        exception = RecordingException(
            case_id=case_id,
            document_id=document_id,
            reason=found.reason,
            requested_by=found.requested_by,
            approved_by=found.approved_by,
            approved_at=found.approved_at or now,
            created_at=now,
        )
        session.add(exception)
        added.append(exception)
        summary.exceptions_added += 1
        if document_id is not None:
            excepted.add(document_id)
        else:
            excepted.update(session.scalars(select(documents.c.id).where(documents.c.case_id == case_id)))
    session.flush()
    summary.facts.extend(row_fact("recording_exceptions", e.id or 0, e, new=True) for e in added)
    return excepted


def apply_plan(
    session: Session, station: Station, plan: ImportPlan
) -> tuple[ImportSummary, set[int], set[int]]:
    """Write the plan in the session's transaction; return the summary, the documents to relink and the
    documents whose exceptions changed."""
    problems = _check_references(session, plan)
    if problems:
        raise ImportRejected(plan.file, problems)
    summary = ImportSummary(plan.file, plan.format, plan.encoding, plan.sha256)
    badges = {b for r in plan.cases for b in (r.officers or [])} | {
        b for d in plan.documents for b in d.officers
    }
    officer_ids = _officer_ids(session, badges, summary)
    _upsert_cases(session, plan, officer_ids, summary)
    numbers = {d.case_number for d in plan.documents} | {e.case_number for e in plan.exceptions}
    case_ids: dict[str, int] = {
        number: case_id
        for number, case_id in session.execute(
            select(cases.c.number, cases.c.id).where(cases.c.number.in_(numbers))
        )
    }
    document_ids = _upsert_documents(session, plan, case_ids, officer_ids, summary)
    excepted = _add_exceptions(session, station, plan, case_ids, summary)
    return summary, document_ids, excepted


def _eq_or_null(name: str, value: Any) -> Any:
    column = recording_exceptions.c[name]
    return column.is_(None) if value is None else column == value


def import_cases(
    station: Station, path: Path, *, actor: str, file_format: str | None = None
) -> ImportSummary:
    """Import one file in one transaction (R5-R7), link its documents and refresh their flags; audited.

    A rejected file changes nothing; the rejection itself is recorded in the audit log.
    """
    data = path.read_bytes()
    kinds = load_kinds(station.settings.home)
    zone = ZoneInfo(station.settings.timezone)
    try:
        plan = parse_import(path.name, data, zone=zone, kinds=kinds, file_format=file_format)
        with station.transaction() as session:
            summary, document_ids, excepted = apply_plan(session, station, plan)
            changes = link_documents_in(session, station, document_ids | excepted, actor=actor)
            summary.links = {
                "added": changes.added,
                "removed": changes.removed,
                "uncertain_added": changes.uncertain_added,
            }
            station.audit.record(
                session,
                actor=actor,
                action="cases.imported",
                object_type="import",
                object_id=plan.sha256,
                details={**summary.as_dict(), FACTS_KEY: summary.facts},
            )
        return summary
    except ImportRejected as rejected:
        with station.transaction() as session:
            station.audit.record(
                session,
                actor=actor,
                action="cases.import_rejected",
                object_type="import",
                object_id=hashlib.sha256(data).hexdigest(),
                details={"file": path.name, "problems": [str(p) for p in rejected.problems[:100]]},
            )
        raise
