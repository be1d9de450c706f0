"""The domain model as plain dataclasses (the pure core).

Entities are mutable dataclasses compared by identity (`eq=False`) so that the database layer can map
them imperatively without this module knowing. Foreign records are referred to by id, not by object,
which keeps every rule a function over plain values. All system times are timezone-aware UTC; times a
recorder reported about itself are kept naive and untouched (R5: the device's own word is evidence too).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class MediaType(enum.StrEnum):
    VIDEO = "video"
    AUDIO = "audio"
    PHOTO = "photo"
    OTHER = "other"


class ClipStatus(enum.StrEnum):
    INGESTED = "ingested"  # bytes verified in the store, not processed yet
    PROCESSING = "processing"
    READY = "ready"  # probed, proxy and thumbnails made
    UNPLAYABLE = "unplayable"  # kept as evidence, but no playable proxy could be made
    FAILED = "failed"  # processing failed; kept, visible, held from retention
    DELETED = "deleted"  # removed by the retention run; a tombstone remains


class ClockStatus(enum.StrEnum):
    MEASURED = "measured"  # offset read from the recorder at docking
    UNKNOWN = "unknown"  # the profile could not read the recorder's clock
    DRIFTING = "drifting"  # offset changed beyond tolerance between dockings


class TransferSource(enum.StrEnum):
    DOCK = "dock"
    IMPORT = "import"
    WATCH = "watch"


class TransferOutcome(enum.StrEnum):
    RUNNING = "running"
    COMPLETE = "complete"  # every file seen is in the store
    PARTIAL = "partial"  # some files failed; the next docking finishes the job
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # recorder pulled or station stopped mid-transfer


class DerivativeKind(enum.StrEnum):
    PROXY = "proxy"
    POSTER = "poster"
    CONTACT_SHEET = "contact_sheet"
    SEGMENT = "segment"
    DISCLOSURE = "disclosure"
    REDACTED = "redacted"  # a copy with faces, areas and sounds hidden (issue 20, R15)


class CaseCategory(enum.StrEnum):
    """R19 enforcement categories."""

    LICENSING = "行政许可"
    PUNISHMENT = "行政处罚"
    COERCION = "行政强制"
    INSPECTION = "行政检查"
    EXPROPRIATION = "行政征收征用"
    FEES = "行政收费"


class RetentionPeriod(enum.StrEnum):
    """Case-file retention periods; evidence footage lives as long as its case file (R9)."""

    YEARS_10 = "10y"
    YEARS_30 = "30y"
    PERMANENT = "permanent"


class Confidentiality(enum.StrEnum):
    """R13 classes; each restricts who may see a case's footage."""

    NORMAL = "normal"
    PERSONAL_PRIVACY = "personal_privacy"
    COMMERCIAL_SECRET = "commercial_secret"  # noqa: S105 - a class name, not a password
    STATE_SECRET = "state_secret"  # noqa: S105


class LinkOrigin(enum.StrEnum):
    AUTO = "auto"
    MANUAL = "manual"


class ExportStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    BUILT = "built"
    EXPIRED = "expired"


class JobStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class ProcessingStep(enum.StrEnum):
    """The processing steps of one clip, in the order they run (R3, R4)."""

    PROBE = "probe"
    PROXY = "proxy"
    THUMBNAILS = "thumbnails"
    TIMESTAMP = "timestamp"


class AttachmentKind(enum.StrEnum):
    """What a recorder's sidecar file is (by the profile's declared patterns)."""

    DEVICE_INFO = "device_info"
    LOG = "log"
    GPS = "gps"
    OTHER = "other"


class RetentionAction(enum.StrEnum):
    KEEP = "keep"
    DELETE = "delete"


class DecisionState(enum.StrEnum):
    PLANNED = "planned"
    DELETING = "deleting"  # about to purge: on recovery, an original still present is decided again
    TOMBSTONED = "tombstoned"
    SKIPPED = "skipped"  # the policy kept it when the delete came (facts changed), or the store refused


class WarningCode(enum.StrEnum):
    """Every code a `RecordWarning` is written with (a unit test finds each literal code in the source
    among these), so that the pages can give each its text in both languages."""

    # the dock's copy and the file on the recorder
    EMPTY_FILE = "empty_file"
    NAME_NOT_UTF8 = "name_not_utf8"
    CHANGED_DURING_COPY = "changed_during_copy"
    REREAD_MISMATCH = "reread_mismatch"
    MTIME_UNCORRECTED = "mtime_uncorrected"
    TIME_FROM_MTIME = "time_from_mtime"
    NOT_MEDIA = "not_media"
    PROBE_FAILED = "probe_failed"
    LATE_HANDOVER = "late_handover"
    # the recorder's clock
    CLOCK_UNKNOWN = "clock_unknown"
    CLOCK_DRIFTING = "clock_drifting"
    CLOCK_OFFSET_LARGE = "clock_offset_large"
    # the full probe (`ingest.transcode.probe`)
    UNKNOWN_CONTAINER = "unknown_container"
    OPEN_FAILED = "open_failed"
    TRUNCATED = "truncated"
    MOOV_MISSING = "moov_missing"
    NO_MEDIA_STREAM = "no_media_stream"
    NO_VIDEO_STREAM = "no_video_stream"
    DECODE_ERROR = "decode_error"
    ZERO_DURATION = "zero_duration"
    VERY_SHORT = "very_short"
    CREATION_TIME_INVALID = "creation_time_invalid"
    CREATION_TIME_IMPLAUSIBLE = "creation_time_implausible"
    LOCATION_INVALID = "location_invalid"
    NO_EXIF = "no_exif"
    EXIF_UNREADABLE = "exif_unreadable"
    EXIF_DATETIME_INVALID = "exif_datetime_invalid"
    # a transfer's own problems
    TRANSFER = "transfer"
    FILE_FAILED = "file_failed"


@dataclass(frozen=True)
class RecordWarning:
    """Something odd about a record, stored as data on it rather than raised (a bad file is kept)."""

    code: str
    message: str


@dataclass(eq=False, kw_only=True)
class Officer:
    id: int | None = None
    badge_number: str  # 执法证号 / officer number as recorders encode it
    name: str = ""
    unit: str = ""
    active: bool = True


@dataclass(eq=False, kw_only=True)
class Device:
    id: int | None = None
    serial: str
    model: str = ""
    vendor: str = ""
    profile: str = ""
    assigned_officer_id: int | None = None
    registered_at: datetime | None = None


@dataclass(eq=False, kw_only=True)
class DockStation:
    id: int | None = None
    name: str
    unit: str = ""
    location: str = ""


@dataclass(eq=False, kw_only=True)
class Transfer:
    """The handover record (R2): who handed over what, on which device, at which station, when."""

    id: int | None = None
    source: TransferSource
    device_id: int | None = None
    officer_id: int | None = None
    dock_station_id: int | None = None
    volume_label: str = ""
    volume_uuid: str = ""
    source_path: str = ""
    started_at: datetime
    finished_at: datetime | None = None
    files_seen: int = 0
    files_ingested: int = 0
    files_duplicate: int = 0
    files_failed: int = 0
    files_deleted: int = 0  # deleted from the recorder once their copies were verified (R10)
    bytes_copied: int = 0
    outcome: TransferOutcome = TransferOutcome.RUNNING
    device_clock_offset_s: float | None = None
    device_clock_read_at: datetime | None = None
    problems: list[RecordWarning] = field(default_factory=list)
    owner_host: str = ""  # the process running it, to tell one left running by a dead process
    owner_pid: int | None = None
    owner_started: str = ""


@dataclass(eq=False, kw_only=True)
class Clip:
    """One original file from a recorder. Its bytes live in the blob store under `sha256`."""

    id: int | None = None
    sha256: str
    size: int
    media_type: MediaType
    original_name: str
    device_path: str = ""
    device_mtime: datetime | None = None
    device_id: int | None = None
    officer_id: int | None = None
    transfer_id: int | None = None
    device_start: datetime | None = None  # naive, as the recorder's clock said
    device_end: datetime | None = None
    utc_start: datetime | None = None  # corrected by the clock offset measured at docking
    utc_end: datetime | None = None
    clock_offset_s: float | None = None
    clock_status: ClockStatus = ClockStatus.UNKNOWN
    duration_s: float | None = None
    status: ClipStatus = ClipStatus.INGESTED
    ingested_at: datetime
    late_handover: bool = False
    media_info: dict[str, Any] = field(default_factory=dict)  # probe and profile findings
    warnings: list[RecordWarning] = field(default_factory=list)

    def add_warning(self, code: str, message: str) -> None:
        """Record a warning (reassigning the list so the database layer sees the change)."""
        warning = RecordWarning(code, message)
        if warning not in self.warnings:
            self.warnings = [*self.warnings, warning]


@dataclass(eq=False, kw_only=True)
class Attachment:
    """A recorder's sidecar file (device-info file, log, GPS track) kept with its provenance beside
    the footage it describes, never as footage: it belongs to its transfer, or to one clip when it
    carries that clip's base name, and goes with them (R3, R9). Its bytes live in the blob store."""

    id: int | None = None
    transfer_id: int
    clip_id: int | None = None
    device_id: int | None = None
    kind: str  # AttachmentKind value
    original_name: str
    device_path: str = ""
    size: int
    sha256: str
    device_mtime: datetime | None = None
    stored_at: datetime
    deleted_at: datetime | None = None
    deleted_by_run_id: int | None = None
    former_clip_id: int | None = None  # set when an older station had stored it as a clip
    former_clip: dict[str, Any] | None = None  # that clip row's facts, kept when it was converted


@dataclass(eq=False, kw_only=True)
class Derivative:
    """A file made from an original (proxy, thumbnail, segment) with its exact lineage."""

    id: int | None = None
    clip_id: int
    kind: DerivativeKind
    sha256: str
    size: int
    mime_type: str
    derived_from_sha256: str
    tool: str
    tool_version: str
    arguments: list[str] = field(default_factory=list)
    created_at: datetime


@dataclass(eq=False, kw_only=True)
class ProcessingJob:
    """One processing step of one clip; (clip_id, step) is unique so redelivery does no harm."""

    id: int | None = None
    clip_id: int
    step: str
    status: JobStatus = JobStatus.PENDING
    attempts: int = 0
    permanent: bool = False
    last_error: str = ""
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None


@dataclass(eq=False, kw_only=True)
class StoredTimestamp:
    """A trusted time-stamp over an original's sha256 (RFC 3161 token or station-signed record)."""

    id: int | None = None
    clip_id: int
    sha256: str
    kind: str
    authority: str
    gen_time: datetime
    serial: str
    token: bytes
    created_at: datetime


@dataclass(eq=False, kw_only=True)
class Case:
    id: int | None = None
    number: str
    title: str = ""
    category: CaseCategory = CaseCategory.INSPECTION
    subject: str = ""
    unit: str = ""
    officer_ids: list[int] = field(default_factory=list)
    opened_at: datetime | None = None
    closed_at: datetime | None = None
    archived_at: datetime | None = None
    retention_period: RetentionPeriod = RetentionPeriod.YEARS_10
    confidentiality: Confidentiality = Confidentiality.NORMAL


@dataclass(eq=False, kw_only=True)
class Document:
    """An enforcement document (执法文书) whose start and end the footage must match (R5)."""

    id: int | None = None
    external_id: str
    case_id: int
    kind: str
    title: str = ""
    officer_ids: list[int] = field(default_factory=list)
    start: datetime | None = None
    end: datetime | None = None
    requires_video: bool = False


@dataclass(eq=False, kw_only=True)
class ClipLink:
    id: int | None = None
    clip_id: int
    case_id: int
    document_id: int | None = None
    origin: LinkOrigin = LinkOrigin.AUTO
    is_evidence: bool = False
    uncertain: bool = False
    reason: str = ""
    created_by: str = ""
    created_at: datetime
    removed_at: datetime | None = None
    removed_by: str = ""


@dataclass(eq=False, kw_only=True)
class ComplianceFlag:
    """An open (or cleared) compliance finding with the numbers behind it (R1, R5, R6, R7)."""

    id: int | None = None
    kind: str
    document_id: int | None = None
    clip_id: int | None = None
    case_id: int | None = None
    details: dict[str, Any] = field(default_factory=dict)
    opened_at: datetime
    updated_at: datetime
    cleared_at: datetime | None = None


@dataclass(eq=False, kw_only=True)
class RecordingException:
    """A written, approved reason why an act that needed video has none (R6)."""

    id: int | None = None
    case_id: int
    document_id: int | None = None
    reason: str
    requested_by: str = ""
    approved_by: str = ""
    approved_at: datetime | None = None
    created_at: datetime


@dataclass(eq=False, kw_only=True)
class LegalHold:
    id: int | None = None
    clip_id: int | None = None
    case_id: int | None = None
    reason: str
    placed_by: str
    placed_at: datetime
    released_at: datetime | None = None
    released_by: str = ""


@dataclass(eq=False, kw_only=True)
class ExportRequest:
    """An investigator's request to extract clips as certified evidence (R12)."""

    id: int | None = None
    case_id: int | None = None
    requested_by: str
    purpose: str
    recipient: str = ""
    items: list[dict[str, Any]] = field(default_factory=list)  # {"clip_id": .., "start_s": .., "end_s": ..}
    status: ExportStatus = ExportStatus.PENDING
    decided_by: str = ""
    decided_at: datetime | None = None
    decision_reason: str = ""
    valid_until: datetime | None = None
    built_at: datetime | None = None
    package_sha256: str = ""
    created_at: datetime


class RetentionRunStatus(enum.StrEnum):
    """Where a retention run stands (R9, R10): planned, a dry run, waiting for a person to confirm a large
    deletion, confirmed, finished."""

    PLANNING = "planning"
    DRY_RUN = "dry_run"
    AWAITING_CONFIRMATION = "awaiting_confirmation"
    CONFIRMED = "confirmed"
    FINISHED = "finished"


@dataclass(eq=False, kw_only=True)
class RetentionRun:
    id: int | None = None
    started_at: datetime
    as_of: datetime
    dry_run: bool
    policy_version: str
    finished_at: datetime | None = None
    status: str = RetentionRunStatus.PLANNING
    report: dict[str, Any] = field(default_factory=dict)


@dataclass(eq=False, kw_only=True)
class RetentionDecision:
    id: int | None = None
    run_id: int
    clip_id: int
    action: RetentionAction
    rule: str
    earliest_delete_at: datetime | None
    state: DecisionState = DecisionState.PLANNED
    decided_at: datetime


@dataclass(eq=False, kw_only=True)
class Tombstone:
    """What remains of a clip the retention run deleted (R9, R10): enough to prove it existed."""

    id: int | None = None
    clip_id: int
    sha256: str
    size: int
    officer_id: int | None
    device_id: int | None
    utc_start: datetime | None
    utc_end: datetime | None
    case_links: list[dict[str, Any]] = field(default_factory=list)
    rule: str
    policy_version: str
    run_id: int
    deleted_at: datetime
