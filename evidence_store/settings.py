"""Settings, parsed and validated once at start.

Sources, later ones winning: built-in defaults, a TOML file (`EVIDENCE_CONFIG`, else
`$EVIDENCE_HOME/evidence.toml` when present), environment variables `EVIDENCE_<NAME>`. An unknown key in
either source is an error, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import tomllib
import uuid
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from evidence_store.errors import ConfigurationError

ENV_PREFIX = "EVIDENCE_"
# Variables read outside the settings model (they select where the settings come from).
_META_ENV = {"EVIDENCE_CONFIG"}


def default_home() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/evidence")
    return Path.home() / ".local" / "share" / "evidence"


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    home: Path = Field(default_factory=default_home)
    database_url: str = ""  # default: SQLite in home
    blob_store: Literal["local", "s3"] = "local"
    local_store_path: Path | None = None  # default: home/blobs
    # Read a cold source with O_DIRECT in a thread ahead of the hashing when storing it (issue 21): it
    # won on one disk under load and lost on another idle one (bench/RESULTS.md, Store write); off by
    # default, measure with bench/bench_store_write.py before turning it on
    store_direct_reads: bool = False
    s3_endpoint_url: str = ""
    s3_bucket: str = ""
    s3_region: str = "us-east-1"
    s3_access_key_id: str = ""
    s3_secret_access_key: str = ""
    s3_lock_mode: Literal["COMPLIANCE", "GOVERNANCE"] = "COMPLIANCE"
    # Minimum lock on every new object; the retention job extends it from its decisions (R9).
    s3_default_retention_days: int = Field(default=184, ge=1)
    # A lost WAN link: each S3 request gives up after these (seconds without a connection / without a
    # byte moving), tried this many times in all, so a forward fails and is retried instead of hanging
    s3_connect_timeout_s: float = Field(default=10, gt=0)
    s3_read_timeout_s: float = Field(default=60, gt=0)
    s3_max_attempts: int = Field(default=5, ge=1)
    station_name: str = Field(default_factory=socket.gethostname)
    unit_name: str = ""
    timezone: str = "Asia/Shanghai"
    redis_url: str = "redis://127.0.0.1:6379/0"
    audit_checkpoint_interval: int = Field(default=1000, ge=1)
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=8080, ge=1, le=65535)
    # Reverse proxies (addresses or networks) whose X-Forwarded-For and X-Forwarded-Proto are believed;
    # empty: no header is, and the client is the socket's peer (login rate limits, audit `source`)
    web_trusted_proxies: tuple[str, ...] = ()
    # Largest request body accepted (JSON and forms; the web takes no uploads): larger ones get 413
    web_max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Handover (R1): 24 hours by the stricter local rule, or national "2 working days" with a calendar.
    handover_deadline_mode: Literal["hours", "working_days"] = "hours"
    handover_deadline_hours: int = Field(default=24, ge=1)
    handover_working_days: int = Field(default=2, ge=1)
    holiday_calendar: Path | None = None  # JSON {"holidays": [...], "working_days": [...]}
    # Ingest
    verify_reread: bool = False  # skeptical mode: re-read every file from the recorder and compare
    profiles_dir: Path | None = None  # extra recorder profiles (*.toml), overriding shipped ones by name
    clock_drift_tolerance_s: float = Field(default=60.0, gt=0)
    # Case linking (R5): a clip links to a document whose window, widened by this on both sides, it overlaps
    link_tolerance_minutes: float = Field(default=5, ge=0)
    dock_mount_dir: Path | None = None  # default: home/mnt
    dock_max_concurrent: int = Field(default=25, ge=1)
    # Store-and-forward (issue 18): where the backend (database or object store) cannot be reached, a
    # station docks into its spool (a local journal and store under `spool_dir`) and forwards later
    spool_enabled: bool = True
    spool_dir: Path | None = None  # default: home/spool
    # a forwarded clip's spooled copy is kept this long after the backend holds it durably
    spool_keep_hours: float = Field(default=24, ge=0)
    # above this many bytes held in the spool the station stops clearing recorders (it keeps pulling)
    spool_high_water_bytes: int = Field(default=200 * 1024**3, ge=0)
    # `evidence station` tries to forward the spool this often (seconds)
    spool_forward_interval_s: float = Field(default=60, gt=0)
    # Retention (R9): never below 6 months; per-category periods may only raise it
    retention_non_evidence_months: int = 6
    retention_months_by_category: dict[str, int] = Field(default_factory=dict)
    retention_max_delete_share: float = Field(default=0.10, gt=0, le=1)  # above it, a run asks to confirm
    # R8: footage is filed into the case file within this many days after the act; unassigned footage is
    # held at least that long (then the ordinary 6 months), and documents unfiled after it are flagged
    retention_filing_window_days: int = Field(default=30, ge=1)
    # Processing
    tsa_url: str = ""  # RFC 3161 time-stamping authority; empty: station-signed time-stamps
    tsa_ca_file: Path | None = None  # PEM bundle that issued the TSA's certificate
    tsa_cert_file: Path | None = None  # the TSA's own certificate (PEM), if it does not send it
    # "redis": new clips are sent to the workers; "none": they wait for `evidence process` (small stations)
    processing_queue: Literal["redis", "none"] = "redis"
    worker_processes: int = Field(default=2, ge=1)
    worker_threads: int = Field(default=1, ge=1)
    # a running job's claim lasts this long unless its worker renews it (every quarter of it): a killed
    # worker's job is taken up again after at most this long
    worker_lease_seconds: float = Field(default=120, gt=0)
    # Certified export (R12): an approval lets the requester build the package within this many days
    export_validity_days: int = Field(default=7, ge=1)
    # A party's application to read or copy records (R15) is answered within this many CALENDAR days of
    # its receipt; later, it is overdue (dashboard, `evidence status`). 20: the working days the
    # open-government-information regulations allow, counted here as calendar days (stricter)
    disclosure_answer_days: int = Field(default=20, ge=1)

    @field_validator(
        "home",
        "local_store_path",
        "holiday_calendar",
        "profiles_dir",
        "dock_mount_dir",
        "spool_dir",
        "tsa_ca_file",
        "tsa_cert_file",
    )
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return value.expanduser().absolute() if value is not None else None

    @field_validator("web_trusted_proxies", mode="before")
    @classmethod
    def _proxy_networks(cls, value: Any) -> tuple[str, ...]:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise ValueError("expected a list of addresses or networks, e.g. 127.0.0.1, 10.0.0.0/8")
        networks = []
        for item in items:
            text = str(item).strip()
            if not text:
                continue
            try:
                networks.append(str(ipaddress.ip_network(text, strict=False)))
            except ValueError as exc:
                raise ValueError(f"{text!r} is not an IP address or network (e.g. 10.0.0.0/8)") from exc
        return tuple(networks)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _s3_complete(self) -> Settings:
        if self.blob_store == "s3":
            missing = [n for n in ("s3_endpoint_url", "s3_bucket") if not getattr(self, n)]
            if missing:
                raise ValueError(f"blob_store = 's3' needs {', '.join(missing)}")
        if self.retention_non_evidence_months < 6:
            raise ValueError(
                f"retention_non_evidence_months = {self.retention_non_evidence_months} "
                "is below the legal minimum of 6 months (R9)"
            )
        low = {k: v for k, v in self.retention_months_by_category.items() if v < 6}
        if low:
            raise ValueError(f"retention_months_by_category below the legal minimum of 6 months (R9): {low}")
        if self.tsa_url and self.tsa_ca_file is None:
            raise ValueError("tsa_url needs tsa_ca_file (the CA that issued the TSA certificate)")
        return self

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'evidence.db'}"

    @property
    def effective_store_path(self) -> Path:
        return self.local_store_path or self.home / "blobs"

    @property
    def effective_mount_dir(self) -> Path:
        return self.dock_mount_dir or self.home / "mnt"

    @property
    def effective_spool_dir(self) -> Path:
        return self.spool_dir or self.home / "spool"

    @property
    def spool_journal_path(self) -> Path:
        """The spool's SQLite journal: the spool exists once this file does (issue 18)."""
        return self.effective_spool_dir / "journal.db"

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"


def _env_values(environ: dict[str, str]) -> dict[str, Any]:
    known = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
    values: dict[str, Any] = {}
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX) or key in _META_ENV:
            continue
        if key not in known:
            raise ConfigurationError(f"unknown setting {key} (known: {', '.join(sorted(known))})")
        name = key[len(ENV_PREFIX) :].lower()
        values[name] = _structured(key, value) if name in _STRUCTURED else value
    return values


# settings that are tables or lists: given in the environment as JSON, e.g.
# EVIDENCE_RETENTION_MONTHS_BY_CATEGORY='{"行政处罚": 12}'
_STRUCTURED = {"retention_months_by_category"}


def _structured(key: str, value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(
            f"invalid setting {key}: expected JSON, e.g. {key}='{{\"行政处罚\": 12}}' ({exc.msg})"
        ) from exc


def _toml_values(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise ConfigurationError(f"cannot read config file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"config file {path} is not valid TOML: {exc}") from exc


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Read the settings from the environment (and the TOML file it points to); raise one clear error."""
    environ = dict(os.environ if environ is None else environ)
    env_values = _env_values(environ)
    home = Path(env_values.get("home") or default_home()).expanduser()
    config_path = environ.get("EVIDENCE_CONFIG")
    file_values: dict[str, Any] = {}
    source = "environment"
    if config_path:
        file_values = _toml_values(Path(config_path))
        source = config_path
    elif (home / "evidence.toml").is_file():
        file_values = _toml_values(home / "evidence.toml")
        source = str(home / "evidence.toml")
    try:
        return Settings(**{**file_values, **env_values})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or next(
            # a rule over several settings (a model validator) names the one it refuses in its message
            (name for name in Settings.model_fields if str(first["msg"]).find(name) >= 0),
            "settings",
        )
        key = f"{ENV_PREFIX}{where.upper()}" if where in env_values else where
        problem = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            problem = "unknown setting"
        raise ConfigurationError(f"invalid setting {key} (from {source}): {problem}") from exc


def ensure_home_writable(settings: Settings) -> None:
    """Create the data directory if needed and prove it is writable (root ignores mode bits, so try)."""
    home = settings.home
    try:
        home.mkdir(parents=True, exist_ok=True)
        probe = home / f".write-probe-{uuid.uuid4().hex}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigurationError(f"data directory {home} is not writable: {exc.strerror or exc}") from exc
