"""The schema. Alembic migrations are written against this metadata and a test keeps them equal."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Connection,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    event,
    text,
)

from evidence_store.db.relink_journal import journal_triggers
from evidence_store.db.triggers import flag_start_triggers
from evidence_store.db.types import HASH, NaiveDateTime, UTCDateTime, WarningList, enum_column
from evidence_store.domain.disclosure import ApplicationKind, ApplicationState
from evidence_store.domain.model import (
    CaseCategory,
    ClipStatus,
    ClockStatus,
    Confidentiality,
    DecisionState,
    DerivativeKind,
    ExportStatus,
    JobStatus,
    LinkOrigin,
    MediaType,
    RetentionAction,
    RetentionPeriod,
    TransferOutcome,
    TransferSource,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

officers = Table(
    "officers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("badge_number", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False, default=""),
    Column("unit", String(200), nullable=False, default=""),
    Column("active", Boolean, nullable=False, default=True),
)

devices = Table(
    "devices",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("serial", String(128), nullable=False, unique=True),
    Column("model", String(200), nullable=False, default=""),
    Column("vendor", String(200), nullable=False, default=""),
    Column("profile", String(100), nullable=False, default=""),
    Column("assigned_officer_id", ForeignKey("officers.id"), nullable=True),
    Column("registered_at", UTCDateTime, nullable=True),
)

dock_stations = Table(
    "dock_stations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("unit", String(200), nullable=False, default=""),
    Column("location", String(200), nullable=False, default=""),
)

transfers = Table(
    "transfers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("source", enum_column(TransferSource), nullable=False),
    Column("device_id", ForeignKey("devices.id"), nullable=True, index=True),
    Column("officer_id", ForeignKey("officers.id"), nullable=True, index=True),
    Column("dock_station_id", ForeignKey("dock_stations.id"), nullable=True, index=True),
    Column("volume_label", String(200), nullable=False, default=""),
    Column("volume_uuid", String(200), nullable=False, default=""),
    Column("source_path", Text, nullable=False, default=""),
    Column("started_at", UTCDateTime, nullable=False, index=True),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("files_seen", Integer, nullable=False, default=0),
    Column("files_ingested", Integer, nullable=False, default=0),
    Column("files_duplicate", Integer, nullable=False, default=0),
    Column("files_failed", Integer, nullable=False, default=0),
    Column("files_deleted", Integer, nullable=False, default=0),  # from the recorder, after verifying
    Column("bytes_copied", BigInteger, nullable=False, default=0),
    Column("outcome", enum_column(TransferOutcome), nullable=False),
    Column("device_clock_offset_s", Float, nullable=True),
    Column("device_clock_read_at", UTCDateTime, nullable=True),
    Column("problems", WarningList, nullable=False),
    # the process running the transfer: one left `running` by a process that is gone is interrupted
    Column("owner_host", String(255), nullable=False, default="", server_default=""),
    Column("owner_pid", Integer, nullable=True),
    Column("owner_started", String(100), nullable=False, default="", server_default=""),
)

clips = Table(
    "clips",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("sha256", HASH, nullable=False, unique=True),
    Column("size", BigInteger, nullable=False),
    Column("media_type", enum_column(MediaType), nullable=False),
    Column("original_name", Text, nullable=False),
    Column("device_path", Text, nullable=False, default=""),
    Column("device_mtime", UTCDateTime, nullable=True),
    Column("device_id", ForeignKey("devices.id"), nullable=True),
    Column("officer_id", ForeignKey("officers.id"), nullable=True),
    Column("transfer_id", ForeignKey("transfers.id"), nullable=True, index=True),
    Column("device_start", NaiveDateTime, nullable=True),
    Column("device_end", NaiveDateTime, nullable=True),
    Column("utc_start", UTCDateTime, nullable=True),
    Column("utc_end", UTCDateTime, nullable=True),
    Column("clock_offset_s", Float, nullable=True),
    Column("clock_status", enum_column(ClockStatus), nullable=False),
    Column("duration_s", Float, nullable=True),
    Column("status", enum_column(ClipStatus), nullable=False, index=True),
    Column("ingested_at", UTCDateTime, nullable=False),
    Column("late_handover", Boolean, nullable=False, default=False),
    Column("media_info", JSON, nullable=False),
    Column("warnings", WarningList, nullable=False),
    CheckConstraint("size >= 0", name="size_not_negative"),
    # with the id, the newest-first walk of an officer's or a recorder's clips (ordered by start, then
    # id) is an index-only scan on PostgreSQL too (SQLite's index holds the rowid anyway); 0009
    # covering: a relink walks every officer's clips in this index without visiting the rows (0013)
    Index(
        "ix_clips_officer_start_cover", "officer_id", "utc_start", "id", "utc_end", "clock_status", "status"
    ),
    Index("ix_clips_device_start_id", "device_id", "utc_start", "id"),
    Index("ix_clips_utc_start", "utc_start"),
    Index("ix_clips_device_path", "device_id", "device_path"),
)

# A recorder's sidecar files (device-info, logs, GPS tracks): kept with their provenance as
# attachments of their transfer or of one clip, never as clips (issue 17). The blob store is content
# addressed, so several attachments (and even a clip) may share one sha256.
attachments = Table(
    "attachments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("transfer_id", ForeignKey("transfers.id"), nullable=False, index=True),
    Column("clip_id", ForeignKey("clips.id"), nullable=True, index=True),
    Column("device_id", ForeignKey("devices.id"), nullable=True),
    Column("kind", String(32), nullable=False),
    Column("original_name", Text, nullable=False),
    Column("device_path", Text, nullable=False, default=""),
    Column("size", BigInteger, nullable=False),
    Column("sha256", HASH, nullable=False, index=True),
    Column("device_mtime", UTCDateTime, nullable=True),
    Column("stored_at", UTCDateTime, nullable=False),
    Column("deleted_at", UTCDateTime, nullable=True),
    Column("deleted_by_run_id", ForeignKey("retention_runs.id"), nullable=True),
    Column("former_clip_id", Integer, nullable=True, unique=True),
    Column("former_clip", JSON, nullable=True),
    CheckConstraint("size >= 0", name="size_not_negative"),
    Index("ix_attachments_device_path", "device_id", "device_path"),
)

derivatives = Table(
    "derivatives",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("clip_id", ForeignKey("clips.id"), nullable=False, index=True),
    Column("kind", enum_column(DerivativeKind), nullable=False),
    Column("sha256", HASH, nullable=False, index=True),
    Column("size", BigInteger, nullable=False),
    Column("mime_type", String(100), nullable=False),
    Column("derived_from_sha256", HASH, nullable=False),
    Column("tool", String(100), nullable=False),
    Column("tool_version", Text, nullable=False),
    Column("arguments", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("clip_id", "kind", "derived_from_sha256", name="uq_derivatives_clip_kind_source"),
)

cases = Table(
    "cases",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("number", String(128), nullable=False, unique=True),
    Column("title", Text, nullable=False, default=""),
    Column("category", enum_column(CaseCategory), nullable=False),
    Column("subject", Text, nullable=False, default=""),
    Column("unit", String(200), nullable=False, default=""),
    Column("officer_ids", JSON, nullable=False),
    Column("opened_at", UTCDateTime, nullable=True),
    Column("closed_at", UTCDateTime, nullable=True),
    Column("archived_at", UTCDateTime, nullable=True),
    Column("retention_period", enum_column(RetentionPeriod), nullable=False),
    Column("confidentiality", enum_column(Confidentiality), nullable=False),
)

documents = Table(
    "documents",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("external_id", String(128), nullable=False, unique=True),
    Column("case_id", ForeignKey("cases.id"), nullable=False, index=True),
    Column("kind", String(100), nullable=False),
    Column("title", Text, nullable=False, default=""),
    Column("officer_ids", JSON, nullable=False),
    Column("start", UTCDateTime, nullable=True, index=True),
    Column("end", UTCDateTime, nullable=True),
    Column("requires_video", Boolean, nullable=False, default=False),
)

# An index of documents by officer for incremental linking; `documents.officer_ids` is the record.
document_officers = Table(
    "document_officers",
    metadata,
    Column("document_id", ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True),
    Column("officer_id", ForeignKey("officers.id"), primary_key=True),
    Index("ix_document_officers_officer", "officer_id", "document_id"),
)

compliance_flags = Table(
    "compliance_flags",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("document_id", ForeignKey("documents.id"), nullable=True, index=True),
    Column("clip_id", ForeignKey("clips.id"), nullable=True, index=True),
    Column("case_id", ForeignKey("cases.id"), nullable=True, index=True),
    Column("details", JSON, nullable=False),
    Column("opened_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("cleared_at", UTCDateTime, nullable=True),
    # the start of the flag's clip (`clips.utc_start`), copied by the database itself (see
    # `flag_start_triggers`), so a search for a flag walks its flags in the search's order (0013)
    Column("clip_start", UTCDateTime, nullable=True),
    Index(
        "uq_compliance_flags_open",
        "kind",
        "document_id",
        "clip_id",
        unique=True,
        sqlite_where=text("cleared_at IS NULL"),
        postgresql_where=text("cleared_at IS NULL"),
    ),
    Index("ix_compliance_flags_kind_open", "kind", "cleared_at"),
)

# A compliance flag a supervisor has put under review (R16): while the review is open the clips the
# flag is about (its clip, or the clips linked to its document) are held from retention (R8, R9). A
# flag's own opening and clearing never hold anything: a fact about the past is reported, not kept.
flag_reviews = Table(
    "flag_reviews",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("flag_id", ForeignKey("compliance_flags.id"), nullable=False, index=True),
    Column("opened_by", String(200), nullable=False),
    Column("opened_at", UTCDateTime, nullable=False),
    Column("reason", Text, nullable=False),
    Column("closed_by", String(200), nullable=True),
    Column("closed_at", UTCDateTime, nullable=True),
    Column("outcome", Text, nullable=True),
    Index("ix_flag_reviews_open", "closed_at", "flag_id"),
)

# Markers and tags (issue 19 item 3): notes at a moment of a clip and labels on clips. They describe
# footage and never change it; a removed marker stays with who removed it and when.
clip_markers = Table(
    "clip_markers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("clip_id", ForeignKey("clips.id"), nullable=False, index=True),
    Column("offset_s", Float, nullable=False),
    Column("note", Text, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("removed_by", String(200), nullable=True),
    Column("removed_at", UTCDateTime, nullable=True),
)

clip_tags = Table(
    "clip_tags",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("clip_id", ForeignKey("clips.id"), nullable=False),
    Column("tag", String(200), nullable=False),
    Column("added_by", String(200), nullable=False),
    Column("added_at", UTCDateTime, nullable=False),
    UniqueConstraint("clip_id", "tag", name="uq_clip_tags_clip_tag"),
    Index("ix_clip_tags_tag", "tag", "clip_id"),
)

# redaction (issue 20, R15): a clip's specifications, each version stored once and never changed
redaction_specs = Table(
    "redaction_specs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("clip_id", ForeignKey("clips.id"), nullable=False, index=True),
    Column("version", Integer, nullable=False),
    Column("spec", Text, nullable=False),  # the canonical JSON, exactly the text spec_sha256 hashes
    Column("spec_sha256", HASH, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("clip_id", "version", name="uq_redaction_specs_clip_version"),
    CheckConstraint("version >= 1", name="version_positive"),
)

# the redacted copies rendered from a version; every render is kept (a changed spec is a new version,
# its copy a new row); not in `derivatives`, whose (clip, kind, source) key allows one per kind
redaction_renders = Table(
    "redaction_renders",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("clip_id", ForeignKey("clips.id"), nullable=False, index=True),
    Column("spec_id", ForeignKey("redaction_specs.id"), nullable=False, index=True),
    Column("kind", enum_column(DerivativeKind), nullable=False),
    Column("sha256", HASH, nullable=False, index=True),  # of the stored file, C2PA manifest embedded
    Column("size", BigInteger, nullable=False),
    Column("rendered_sha256", HASH, nullable=False),  # of ffmpeg's output before signing: reproducible
    Column("mime_type", String(100), nullable=False),
    Column("derived_from_sha256", HASH, nullable=False),
    Column("tool", String(100), nullable=False),
    Column("tool_version", Text, nullable=False),
    Column("arguments", JSON, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    # the segment of the clip the copy covers (seconds from its start); both NULL: the whole clip
    Column("start_s", Float, nullable=True),
    Column("end_s", Float, nullable=True),
)

clip_links = Table(
    "clip_links",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("clip_id", ForeignKey("clips.id"), nullable=False),
    Column("case_id", ForeignKey("cases.id"), nullable=False, index=True),
    Column("document_id", ForeignKey("documents.id"), nullable=True),
    Column("origin", enum_column(LinkOrigin), nullable=False),
    Column("is_evidence", Boolean, nullable=False, default=False),
    Column("uncertain", Boolean, nullable=False, default=False),
    Column("reason", Text, nullable=False, default=""),
    Column("created_by", String(200), nullable=False, default=""),
    Column("created_at", UTCDateTime, nullable=False),
    Column("removed_at", UTCDateTime, nullable=True),
    Column("removed_by", String(200), nullable=False, default=""),
    # covering: what a relink reads of a clip's links, and of a document's linked footage (0013)
    Index(
        "ix_clip_links_clip_cover",
        "clip_id",
        "document_id",
        "removed_at",
        "removed_by",
        "origin",
        "uncertain",
        "is_evidence",
    ),
    Index("ix_clip_links_document_cover", "document_id", "removed_at", "clip_id"),
)

recording_exceptions = Table(
    "recording_exceptions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("case_id", ForeignKey("cases.id"), nullable=False, index=True),
    Column("document_id", ForeignKey("documents.id"), nullable=True, index=True),
    Column("reason", Text, nullable=False),
    Column("requested_by", String(200), nullable=False, default=""),
    Column("approved_by", String(200), nullable=False, default=""),
    Column("approved_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
)

legal_holds = Table(
    "legal_holds",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("clip_id", ForeignKey("clips.id"), nullable=True, index=True),
    Column("case_id", ForeignKey("cases.id"), nullable=True, index=True),
    Column("reason", Text, nullable=False),
    Column("placed_by", String(200), nullable=False),
    Column("placed_at", UTCDateTime, nullable=False),
    Column("released_at", UTCDateTime, nullable=True),
    Column("released_by", String(200), nullable=False, default=""),
    CheckConstraint("clip_id IS NOT NULL OR case_id IS NOT NULL", name="holds_something"),
)

export_requests = Table(
    "export_requests",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("case_id", ForeignKey("cases.id"), nullable=True, index=True),
    Column("requested_by", String(200), nullable=False),
    Column("purpose", Text, nullable=False),
    Column("recipient", Text, nullable=False, default=""),
    Column("items", JSON, nullable=False),
    Column("status", enum_column(ExportStatus), nullable=False, index=True),
    Column("decided_by", String(200), nullable=False, default=""),
    Column("decided_at", UTCDateTime, nullable=True),
    Column("decision_reason", Text, nullable=False, default=""),
    Column("valid_until", UTCDateTime, nullable=True),
    Column("built_at", UTCDateTime, nullable=True),
    Column("package_sha256", String(64), nullable=False, default=""),
    Column("created_at", UTCDateTime, nullable=False),
)

# a party's application to read or copy records (R15, issue 20); its clips as resolved when recorded
disclosure_applications = Table(
    "disclosure_applications",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("party_name", Text, nullable=False),
    Column("id_document_type", String(40), nullable=False),
    Column("id_document_number", String(100), nullable=False),
    Column("contact", Text, nullable=False, default=""),
    Column("kind", enum_column(ApplicationKind), nullable=False),
    Column("purpose", Text, nullable=False),
    Column("case_id", ForeignKey("cases.id"), nullable=True, index=True),
    Column("clip_ids", JSON, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("recorded_by", String(200), nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
    Column("state", enum_column(ApplicationState), nullable=False, index=True),
    Column("decided_by", String(200), nullable=False, default=""),
    Column("decided_at", UTCDateTime, nullable=True),
    Column("decision_reason", Text, nullable=False, default=""),
)

# each supervised viewing (read) and each delivered package (copy) of an approved application
disclosure_handovers = Table(
    "disclosure_handovers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("application_id", ForeignKey("disclosure_applications.id"), nullable=False, index=True),
    Column("kind", String(20), nullable=False),  # "viewing" or "delivery"
    Column("by_user", String(200), nullable=False),  # who supervised the viewing, or built the package
    Column("at", UTCDateTime, nullable=False),
    Column("details", JSON, nullable=False),  # the redacted copies shown or packed, the package's sha256
)

retention_runs = Table(
    "retention_runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("started_at", UTCDateTime, nullable=False),
    Column("as_of", UTCDateTime, nullable=False),
    Column("dry_run", Boolean, nullable=False),
    Column("policy_version", String(64), nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("status", String(32), nullable=False),
    Column("report", JSON, nullable=False),
)

retention_decisions = Table(
    "retention_decisions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", ForeignKey("retention_runs.id"), nullable=False, index=True),
    Column("clip_id", ForeignKey("clips.id"), nullable=False, index=True),
    Column("action", enum_column(RetentionAction), nullable=False),
    Column("rule", String(100), nullable=False),
    Column("earliest_delete_at", UTCDateTime, nullable=True),
    Column("state", enum_column(DecisionState), nullable=False),
    Column("decided_at", UTCDateTime, nullable=False),
    UniqueConstraint("run_id", "clip_id", name="uq_retention_decisions_run_clip"),
)

# The latest dated retention decision per clip: a later run never lets the clip go earlier (R9)
# unless a `retention_shortenings` authorisation covers it. `reason` is the rule that gave the date,
# `case_id` the case whose case-file period gave it (if one did).
retention_floors = Table(
    "retention_floors",
    metadata,
    Column("clip_id", ForeignKey("clips.id"), primary_key=True),
    Column("not_before", UTCDateTime, nullable=True),
    Column("store_hold", Boolean, nullable=False, default=False),  # legal hold set on the S3 object
    Column("updated_at", UTCDateTime, nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("case_id", ForeignKey("cases.id"), nullable=True),
)

# An audited permission to let clips go earlier than an earlier retention decision said (R9, R10):
# one clip, the clips whose date came from one case's period, or those whose date came from one rule.
# The next real run honours it (never below R9's 6 months) and marks it applied.
retention_shortenings = Table(
    "retention_shortenings",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("clip_id", ForeignKey("clips.id"), nullable=True),
    Column("case_id", ForeignKey("cases.id"), nullable=True),
    Column("rule", String(100), nullable=True),
    Column("reason", Text, nullable=False),
    Column("authorised_by", String(200), nullable=False),
    Column("authorised_at", UTCDateTime, nullable=False),
    Column("applied_run_id", ForeignKey("retention_runs.id"), nullable=True),
    Column("applied_at", UTCDateTime, nullable=True),
    Column("clips_shortened", Integer, nullable=False, default=0),
    CheckConstraint(
        "clip_id IS NOT NULL OR case_id IS NOT NULL OR rule IS NOT NULL", name="covers_something"
    ),
    Index("ix_retention_shortenings_pending", "applied_run_id"),
)

tombstones = Table(
    "tombstones",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("clip_id", ForeignKey("clips.id"), nullable=False, unique=True),
    Column("sha256", HASH, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("officer_id", Integer, nullable=True),
    Column("device_id", Integer, nullable=True),
    Column("utc_start", UTCDateTime, nullable=True),
    Column("utc_end", UTCDateTime, nullable=True),
    Column("case_links", JSON, nullable=False),
    Column("rule", String(100), nullable=False),
    Column("policy_version", String(64), nullable=False),
    Column("run_id", ForeignKey("retention_runs.id"), nullable=False),
    Column("deleted_at", UTCDateTime, nullable=False),
)

processing_jobs = Table(
    "processing_jobs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("clip_id", ForeignKey("clips.id"), nullable=False),
    Column("step", String(32), nullable=False),
    Column("status", enum_column(JobStatus), nullable=False, index=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("permanent", Boolean, nullable=False, default=False),
    Column("last_error", Text, nullable=False, default=""),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
    # the unique key per step: a redelivered message finds its job done and does nothing
    UniqueConstraint("clip_id", "step", name="uq_processing_jobs_clip_step"),
)

timestamp_tokens = Table(
    "timestamp_tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("clip_id", ForeignKey("clips.id"), nullable=False, index=True),
    Column("sha256", HASH, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("authority", Text, nullable=False),
    Column("gen_time", UTCDateTime, nullable=False),
    Column("serial", String(128), nullable=False),
    Column("token", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("clip_id", "kind", name="uq_timestamp_tokens_clip_kind"),
)

# The audit log is append-only and hashed byte for byte, so its times and details are stored as the
# exact text that was hashed rather than as typed columns a backend could reformat.
audit_events = Table(
    "audit_events",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at", String(32), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(100), nullable=False, index=True),
    Column("object_type", String(64), nullable=False),
    Column("object_id", String(200), nullable=False),
    Column("source", String(200), nullable=False),
    Column("details", Text, nullable=False),
    Column("prev_hash", HASH, nullable=False),
    Column("hash", HASH, nullable=False, unique=True),
    Column("signature", LargeBinary(64), nullable=False),
    # the key that signed the event (issue 18); "" for events written before events named their signer
    Column("key_fingerprint", String(64), nullable=False, default="", server_default=""),
    Index("ix_audit_events_object", "object_type", "object_id"),
)

audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("seq", BigInteger, nullable=False, unique=True),
    Column("head_hash", HASH, nullable=False),
    Column("at", String(32), nullable=False),
    Column("key_fingerprint", String(64), nullable=False),
    Column("signature", LargeBinary(64), nullable=False),
)

# The stations whose keys may write to this evidence store (issue 18): several docking stations share
# one database and one store, each with its own Ed25519 key. This table is the working list (what
# `evidence stations` and `evidence status` show, what refuses a write); `audit verify` trusts only
# the approvals and revocations stated in the chain itself (`domain.stations`).
stations = Table(
    "stations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("unit", String(200), nullable=False, default=""),
    Column("public_key", Text, nullable=False),  # PEM
    Column("fingerprint", String(64), nullable=False, unique=True),  # sha256 of the raw public key
    Column("enrolled_at", UTCDateTime, nullable=False),
    Column("enrolled_by", String(200), nullable=False),
    Column("approved", Boolean, nullable=False, default=False),
    Column("approved_at", UTCDateTime, nullable=True),
    Column("approved_by", String(200), nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),  # what the key signs from this time on is not trusted
    Column("revoked_by", String(200), nullable=True),
    Column("last_seen", UTCDateTime, nullable=True),  # its last write (refused ones included)
    Column("version", String(64), nullable=False, default=""),  # of the software it last ran
    Column("refused_at", UTCDateTime, nullable=True),  # its last write refused (not approved, revoked)
    Column("refused_action", String(100), nullable=True),
    # its store-and-forward spool as it last reported it (after each forwarding round): a spool lives on
    # the station's own host, and every host must see one filling (NULL: never reported)
    Column("spool_held_bytes", BigInteger, nullable=True),
    Column("spool_high_water_bytes", BigInteger, nullable=True),
    Column("spool_transfers_waiting", Integer, nullable=True),
    Column("spool_clips_waiting", Integer, nullable=True),
    Column("spool_reported_at", UTCDateTime, nullable=True),
)

# Store-and-forward (issue 18): a spooled transfer forwarded into the backend. In the backend the unique
# hash of the spooled `transfer.started` journal entry makes a forward happen once; the station's spool
# journal (same schema) keeps the same row as its note of what went where, and when its copy was freed.
spool_forwards = Table(
    "spool_forwards",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("journal_entry_hash", String(64), nullable=False, unique=True),
    Column("station_fingerprint", String(64), nullable=False),
    Column("spool_transfer_id", Integer, nullable=False),
    Column("transfer_id", Integer, nullable=True),  # the transfer in the backend
    Column("forwarded_at", UTCDateTime, nullable=False),
    Column("clips", Integer, nullable=False, default=0),
    Column("attachments", Integer, nullable=False, default=0),
    Column("bytes", BigInteger, nullable=False, default=0),
    Column("freed_at", UTCDateTime, nullable=True),  # spool only: its copies were freed
)

# -- web UI and API (issue 8): accounts, sessions, login attempts, settings, supervision ----------------
# Users are the people who sign in to the web UI; `role` is one of evidence_store.domain.access.Role.
# An officer's account names the officer record whose footage it may see (`officer_id`).
users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("username", String(200), nullable=False, unique=True),
    Column("display_name", String(200), nullable=False, default=""),
    Column("role", String(32), nullable=False),
    Column("unit", String(200), nullable=False, default=""),
    Column("officer_id", ForeignKey("officers.id"), nullable=True),
    Column("password_hash", Text, nullable=False),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("password_changed_at", UTCDateTime, nullable=True),
    Column("last_login_at", UTCDateTime, nullable=True),
    CheckConstraint(
        "role IN ('officer', 'custodian', 'investigator', 'approver', 'supervisor', 'auditor', 'admin')",
        name="known_role",
    ),
)

# Server-side sessions; the cookie carries a random token and only its sha256 is stored here.
web_sessions = Table(
    "web_sessions",
    metadata,
    Column("id", HASH, primary_key=True),  # sha256 of the session token
    Column("user_id", ForeignKey("users.id"), nullable=False, index=True),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime, nullable=True),
    Column("client", String(200), nullable=False, default=""),
    Column("user_agent", String(300), nullable=False, default=""),
)

login_attempts = Table(
    "login_attempts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("username", String(200), nullable=False),
    Column("client", String(200), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("success", Boolean, nullable=False),
    Index("ix_login_attempts_username_at", "username", "at"),
    Index("ix_login_attempts_client_at", "client", "at"),
)

# Settings the admin changes in the UI (session expiry, login limits); absent keys take the defaults.
web_settings = Table(
    "web_settings",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", JSON, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("updated_by", String(200), nullable=False, default=""),
)

# R16: a seeded random draw of cases or clips; the seed and the population's fingerprint are kept so
# anyone can redraw the same sample.
supervision_draws = Table(
    "supervision_draws",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(16), nullable=False),  # "clip" | "case"
    Column("seed", BigInteger, nullable=False),
    Column("params", JSON, nullable=False),
    Column("population", Integer, nullable=False),
    Column("population_sha256", HASH, nullable=False),
    Column("sample_size", Integer, nullable=False),
    Column("drawn_by", String(200), nullable=False),
    Column("drawn_at", UTCDateTime, nullable=False),
    Column("note", Text, nullable=False, default=""),
    CheckConstraint("kind IN ('clip', 'case')", name="known_kind"),
)

# One drawn clip or case under review. An open item holds its clip (or every clip linked to its case)
# from retention (R9, R16).
supervision_items = Table(
    "supervision_items",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("draw_id", ForeignKey("supervision_draws.id"), nullable=False, index=True),
    Column("clip_id", ForeignKey("clips.id"), nullable=True),
    Column("case_id", ForeignKey("cases.id"), nullable=True),
    Column("reviewer_id", ForeignKey("users.id"), nullable=True),
    Column("status", String(16), nullable=False),  # "open" | "done"
    Column("outcome", String(16), nullable=True),  # "pass" | "issues" once done
    Column("notes", Text, nullable=False, default=""),
    Column("created_at", UTCDateTime, nullable=False),
    Column("assigned_at", UTCDateTime, nullable=True),
    Column("reviewed_at", UTCDateTime, nullable=True),
    CheckConstraint("clip_id IS NOT NULL OR case_id IS NOT NULL", name="reviews_something"),
    CheckConstraint("status IN ('open', 'done')", name="known_status"),
    CheckConstraint("outcome IS NULL OR outcome IN ('pass', 'issues')", name="known_outcome"),
    Index("ix_supervision_items_clip_status", "clip_id", "status"),
    Index("ix_supervision_items_case_status", "case_id", "status"),
    Index("ix_supervision_items_reviewer_status", "reviewer_id", "status"),
)

# -- end of web UI and API (issue 8) ------------------------------------------------------------------

# -- indexes across tables (audit, search, flags), and the relink journal -------------------------------
# The auditor filters the audit log by actor and by time (R17).
Index("ix_audit_events_actor_seq", audit_events.c.actor, audit_events.c.seq)
Index("ix_audit_events_at", audit_events.c.at)
# Clip search (evidence_store.queries.search): walking clips newest first while testing each row's id
# (against a list of flagged ids, or the flags) reads this index alone on PostgreSQL (index-only scan,
# no heap visits).
Index("ix_clips_start_id", clips.c.utc_start, clips.c.id)
# A search for late handovers (R1, a fact kept on the clip, `late_handover`): the few such clips in the
# search's order, so a cold page is one short index range instead of a walk of every clip testing its
# row (with the flag column: SQLite counts an index as covering only when it holds every column the
# query names, its partial condition's too); migration 0014_cold_search.
Index(
    "ix_clips_late_start_id",
    clips.c.utc_start,
    clips.c.id,
    clips.c.late_handover,
    sqlite_where=text("late_handover IS 1"),
    postgresql_where=text("late_handover IS true"),
)
# Cold search (issue 21 item 5): the per-clip probes of a search (a link to a case hidden from the user,
# an open flag of a kind) and the clips of a case read these small covering indexes alone, never the
# rows of the link and flag tables (migration 0012_search_indexes). Each holds the column its partial
# condition tests (always NULL in it): SQLite counts an index as covering only when it holds every
# column the query names, the condition's too (0014_cold_search).
Index(
    "ix_clip_links_open_clip",
    clip_links.c.clip_id,
    clip_links.c.case_id,
    clip_links.c.removed_at,
    sqlite_where=text("removed_at IS NULL"),
    postgresql_where=text("removed_at IS NULL"),
)
Index(
    "ix_clip_links_open_case",
    clip_links.c.case_id,
    clip_links.c.clip_id,
    clip_links.c.removed_at,
    sqlite_where=text("removed_at IS NULL"),
    postgresql_where=text("removed_at IS NULL"),
)
Index(
    "ix_compliance_flags_open_clip",
    compliance_flags.c.clip_id,
    compliance_flags.c.kind,
    compliance_flags.c.cleared_at,
    sqlite_where=text("cleared_at IS NULL"),
    postgresql_where=text("cleared_at IS NULL"),
)
# Cold flag search (issue 21 item 5): the open flags of a kind in their clips' order, so a page of a
# flag search is one short range of this index (instead of walking every clip by start and probing its
# flags, a random read per clip); migration 0014_cold_search.
Index(
    "ix_compliance_flags_open_kind_start",
    compliance_flags.c.kind,
    compliance_flags.c.clip_start,
    compliance_flags.c.clip_id,
    compliance_flags.c.cleared_at,
    sqlite_where=text("cleared_at IS NULL AND clip_id IS NOT NULL"),
    postgresql_where=text("cleared_at IS NULL AND clip_id IS NOT NULL"),
)
# the same for a search for any open flag
Index(
    "ix_compliance_flags_open_start",
    compliance_flags.c.clip_start,
    compliance_flags.c.clip_id,
    compliance_flags.c.cleared_at,
    sqlite_where=text("cleared_at IS NULL AND clip_id IS NOT NULL"),
    postgresql_where=text("cleared_at IS NULL AND clip_id IS NOT NULL"),
)


def _create_flag_start_triggers(target: Table, connection: Connection, **_: object) -> None:
    """A schema made from this metadata (tests' in-memory stations) gets the migration's triggers."""
    for statement in flag_start_triggers(connection.dialect.name):
        connection.exec_driver_sql(statement)


event.listen(compliance_flags, "after_create", _create_flag_start_triggers)

# The relink journal (issue 21 item 4; evidence_store/db/relink_journal.py): the clips, documents and
# officers whose facts changed since the last relink, appended by triggers on the tables holding those
# facts; a relink recomputes what they name and empties it. No foreign keys: it names deleted rows too.
relink_journal = Table(
    "relink_journal",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("clip_id", Integer, nullable=True),
    Column("document_id", Integer, nullable=True),
    Column("officer_id", Integer, nullable=True),
)

# What the last relink computed under (one row, id 1): a relink under another tolerance, filing window
# or version of the rules recomputes everything; the R8 clock it used, for the filing windows that
# ended since.
relink_state = Table(
    "relink_state",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("tolerance_s", Float, nullable=False),
    Column("filing_window_days", Integer, nullable=False),
    Column("rules_version", String(100), nullable=False),
    Column("relinked_at", UTCDateTime, nullable=False),
)


def _create_journal_triggers(target: MetaData, connection: Connection, **_: object) -> None:
    """A schema made from this metadata gets the migration's journal triggers (after every table)."""
    for statement in journal_triggers(connection.dialect.name):
        connection.exec_driver_sql(statement)


event.listen(metadata, "after_create", _create_journal_triggers)
