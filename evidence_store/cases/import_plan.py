"""What a case import file says, as plain data (R5-R7 inputs): the records found in it, where each sits
in the file, and every problem found with it.

`import_parsing` builds an `ImportPlan` from a file's bytes; `importer` applies it to the database. A
file with any problem is rejected whole (`ImportRejected`): nothing of it is applied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from evidence_store.cases.kinds import DocumentKind
from evidence_store.errors import InputError

# -- problems -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportProblem:
    """One thing wrong with an import file, and exactly where: a CSV line or a JSON pointer, a field."""

    file: str
    message: str
    line: int | None = None
    pointer: str | None = None
    field: str | None = None

    @property
    def where(self) -> str:
        if self.pointer is not None:
            return f"{self.pointer}/{self.field}" if self.field else self.pointer or "/"
        place = f"line {self.line}" if self.line is not None else "file"
        return f"{place}, field {self.field}" if self.field else place

    def __str__(self) -> str:
        return f"{self.file}: {self.where}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "pointer": self.pointer,
            "field": self.field,
            "message": self.message,
            "text": str(self),
        }


class ImportRejected(InputError):
    """The file was not imported; nothing of it was applied."""

    def __init__(self, file: str, problems: list[ImportProblem]) -> None:
        self.file = file
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        super().__init__(
            f"{file}: import rejected, nothing was applied ({len(problems)} problem(s)):\n{lines}{more}"
        )


@dataclass(frozen=True)
class Place:
    """Where a record sits in its file: a CSV line or a JSON pointer."""

    file: str
    line: int | None = None
    pointer: str | None = None

    def problem(self, field_name: str | None, message: str) -> ImportProblem:
        return ImportProblem(self.file, message, self.line, self.pointer, field_name)

    def describe(self, field_name: str) -> str:
        if self.pointer is not None:
            return f"{self.pointer}/{field_name}"
        return f"line {self.line}"


# -- the plan -----------------------------------------------------------------------------------------


@dataclass
class CaseRecord:
    place: Place
    number: str
    values: dict[str, Any] = field(default_factory=dict)  # model attribute -> value, only those given
    officers: list[str] | None = None


@dataclass
class DocumentRecord:
    place: Place
    external_id: str
    case_number: str
    kind: DocumentKind
    officers: list[str]
    start: datetime
    end: datetime | None
    title: str | None = None


@dataclass
class ExceptionRecord:
    place: Place
    case_number: str
    document_id: str | None
    reason: str
    approved_by: str
    requested_by: str = ""
    approved_at: datetime | None = None


@dataclass
class ImportPlan:
    file: str
    format: str
    encoding: str
    sha256: str
    cases: list[CaseRecord] = field(default_factory=list)
    documents: list[DocumentRecord] = field(default_factory=list)
    exceptions: list[ExceptionRecord] = field(default_factory=list)
