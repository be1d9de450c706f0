"""Integrity scrub (R3, R10): re-hash every stored blob and compare the store with the records."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select

from evidence_store.bootstrap import Station
from evidence_store.db.tables import attachments, audit_events, clips, derivatives, redaction_renders
from evidence_store.domain.model import ClipStatus
from evidence_store.errors import BlobNotFoundError

REPORT_LIMIT = 1000  # findings listed in the audit event; the counts are always complete


@dataclass
class ScrubFinding:
    sha256: str
    problem: str  # "altered" | "missing" | "unrecorded" | "orphan"
    detail: str = ""


@dataclass
class ScrubReport:
    blobs_checked: int = 0
    bytes_checked: int = 0
    records_checked: int = 0
    altered: list[ScrubFinding] = field(default_factory=list)
    missing: list[ScrubFinding] = field(default_factory=list)
    unrecorded: list[ScrubFinding] = field(default_factory=list)  # on the chain, its row is gone
    orphans: list[ScrubFinding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Orphans are reported but are no loss: altered or missing evidence, or bytes whose clip the
        audit chain records but whose row is gone, fail the scrub."""
        return not self.altered and not self.missing and not self.unrecorded

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        return data


def scrub(station: Station, *, actor: str = "system") -> ScrubReport:
    """Re-hash every blob (streaming), find altered, missing and unreferenced ones, audit the result."""
    report = ScrubReport()
    referenced: dict[str, str] = {}
    with station.connect() as connection:
        for sha256, clip_id in connection.execute(
            select(clips.c.sha256, clips.c.id).where(clips.c.status != ClipStatus.DELETED)
        ):
            referenced[sha256] = f"clip {clip_id}"
        for sha256, derivative_id in connection.execute(select(derivatives.c.sha256, derivatives.c.id)):
            referenced.setdefault(sha256, f"derivative {derivative_id}")
        # redacted copies (issue 20) are derivatives kept apart, every version's: referenced as well
        for sha256, render_id in connection.execute(
            select(redaction_renders.c.sha256, redaction_renders.c.id)
        ):
            referenced.setdefault(sha256, f"redacted copy {render_id}")
        for sha256, attachment_id in connection.execute(
            select(attachments.c.sha256, attachments.c.id).where(attachments.c.deleted_at.is_(None))
        ):
            referenced.setdefault(sha256, f"attachment {attachment_id}")
    report.records_checked = len(referenced)

    seen: set[str] = set()
    unreferenced: set[str] = set()
    for listing in station.blobs.iter_blobs():
        seen.add(listing.sha256)
        report.blobs_checked += 1
        report.bytes_checked += listing.size
        try:
            actual = station.blobs.rehash(listing.sha256)
        except BlobNotFoundError:
            continue  # vanished while scrubbing; counted as missing below if it is referenced
        if actual != listing.sha256:
            report.altered.append(ScrubFinding(listing.sha256, "altered", f"bytes now hash to {actual}"))
        if listing.sha256 not in referenced:
            unreferenced.add(listing.sha256)
    _sort_unreferenced(station, unreferenced, report)
    for sha256, owner in referenced.items():
        if sha256 not in seen:
            report.missing.append(ScrubFinding(sha256, "missing", f"{owner} has no bytes in the store"))

    with station.transaction() as session:
        station.audit.record(
            session,
            actor=actor,
            action="store.scrubbed",
            object_type="store",
            object_id=station.blobs.name,
            details={
                "ok": report.ok,
                "blobs_checked": report.blobs_checked,
                "bytes_checked": report.bytes_checked,
                "altered": [f.sha256 for f in report.altered[:REPORT_LIMIT]],
                "missing": [f.sha256 for f in report.missing[:REPORT_LIMIT]],
                "unrecorded": [f.sha256 for f in report.unrecorded[:REPORT_LIMIT]],
                "orphans": [f.sha256 for f in report.orphans[:REPORT_LIMIT]],
                "counts": {
                    "altered": len(report.altered),
                    "missing": len(report.missing),
                    "unrecorded": len(report.unrecorded),
                    "orphans": len(report.orphans),
                },
            },
        )
    return report


def _sort_unreferenced(station: Station, unreferenced: set[str], report: ScrubReport) -> None:
    """Blobs on no row are orphans (a crash between bytes and record leaves one), unless the audit
    chain says a clip was stored with them: then the clip's row was removed behind the chain's back."""
    recorded: dict[str, tuple[int, str]] = {}
    if unreferenced:
        with station.connect() as connection:
            # a clip the retention run deleted keeps its row (status deleted): its bytes are an orphan
            on_rows = set(
                connection.scalars(select(clips.c.sha256).where(clips.c.sha256.in_(sorted(unreferenced))))
            )
            stored_events = connection.execution_options(stream_results=True, yield_per=10_000).execute(
                select(audit_events.c.seq, audit_events.c.object_id, audit_events.c.details).where(
                    audit_events.c.action == "clip.stored"
                )
            )
            for seq, clip_id, details in stored_events:
                sha256 = json.loads(details).get("sha256")
                if sha256 in unreferenced and sha256 not in on_rows:
                    recorded[sha256] = (seq, clip_id)
    for sha256 in sorted(unreferenced):
        if sha256 in recorded:
            seq, clip_id = recorded[sha256]
            report.unrecorded.append(
                ScrubFinding(
                    sha256, "unrecorded", f"clip {clip_id} was stored (audit event {seq}) but its row is gone"
                )
            )
        else:
            report.orphans.append(ScrubFinding(sha256, "orphan", "stored but on no record"))
