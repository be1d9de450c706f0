"""Imperative mapping of the domain dataclasses onto the tables (the domain never imports this)."""

from __future__ import annotations

import threading

from sqlalchemy import Table
from sqlalchemy.orm import registry

from evidence_store.db import tables
from evidence_store.domain import model
from evidence_store.domain.audit_chain import AuditCheckpoint, AuditEvent

mapper_registry = registry(metadata=tables.metadata)
_started = False

_MAPPINGS: list[tuple[type, Table]] = [
    (model.Officer, tables.officers),
    (model.Device, tables.devices),
    (model.DockStation, tables.dock_stations),
    (model.Transfer, tables.transfers),
    (model.Clip, tables.clips),
    (model.Derivative, tables.derivatives),
    (model.Attachment, tables.attachments),
    (model.Case, tables.cases),
    (model.Document, tables.documents),
    (model.ClipLink, tables.clip_links),
    (model.RecordingException, tables.recording_exceptions),
    (model.LegalHold, tables.legal_holds),
    (model.ExportRequest, tables.export_requests),
    (model.RetentionRun, tables.retention_runs),
    (model.RetentionDecision, tables.retention_decisions),
    (model.Tombstone, tables.tombstones),
    (model.ProcessingJob, tables.processing_jobs),
    (model.ComplianceFlag, tables.compliance_flags),
    (model.StoredTimestamp, tables.timestamp_tokens),
    (AuditEvent, tables.audit_events),
    (AuditCheckpoint, tables.audit_checkpoints),
]

_mapping_lock = threading.Lock()


def start_mappers() -> None:
    """Map every domain class once per process (idempotent, and safe from several threads at once:
    a worker's threads open the station together)."""
    global _started  # noqa: PLW0603 - mapping is process-wide by nature
    if _started:
        return
    with _mapping_lock:
        if _started:
            return
        for cls, table in _MAPPINGS:
            mapper_registry.map_imperatively(cls, table)
        _started = True
