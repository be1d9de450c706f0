"""Recorder profiles: recognising a recorder and reading its volume, described by data files.

Each `*.toml` beside this module is one profile. This module only parses their text and applies them
to plain facts (pure: no files are opened here; `load_profiles` in `ingest.devices.catalog` reads them).
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from evidence_store.domain.model import AttachmentKind, MediaType
from evidence_store.errors import ConfigurationError


class ProfileError(ConfigurationError):
    """A profile file is malformed, or a profile asked for by name is not installed; names the profile
    and the key. The operator fixes the profile files (they are configuration, shipped or added)."""


@dataclass(frozen=True)
class NamePattern:
    """How a file name encodes device serial, officer number and start time."""

    regex: re.Pattern[str]
    time_format: str

    def parse(self, name: str) -> NameFacts | None:
        match = self.regex.match(name)
        if not match:
            return None
        groups = match.groupdict()
        start = None
        if groups.get("start"):
            try:
                start = datetime.strptime(groups["start"], self.time_format)
            except ValueError:
                return None
        return NameFacts(
            serial=groups.get("serial") or None,
            officer=groups.get("officer") or None,
            start=start,
            sequence=groups.get("seq") or None,
        )


@dataclass(frozen=True)
class NameFacts:
    serial: str | None
    officer: str | None
    start: datetime | None  # naive, in the recorder's clock
    sequence: str | None


@dataclass(frozen=True)
class ClockSource:
    """Where the recorder's own clock can be read at docking: a file, optionally a key in it."""

    file: str
    key: str | None
    time_format: str


@dataclass(frozen=True)
class VolumeFacts:
    """What is known of a docked volume before and after mounting."""

    usb_id: str | None = None  # "vvvv:pppp"
    label: str | None = None
    uuid: str | None = None
    present_markers: frozenset[str] = frozenset()


@dataclass(frozen=True)
class RecorderProfile:
    name: str
    description: str
    priority: int
    usb_ids: frozenset[str]
    fs_labels: tuple[str, ...]
    fs_uuids: tuple[str, ...]
    marker_files: tuple[str, ...]
    media_dirs: tuple[str, ...]
    device_info_file: str | None
    device_info_keys: dict[str, tuple[str, ...]]
    text_encodings: tuple[str, ...]
    name_patterns: tuple[NamePattern, ...]
    clock: ClockSource | None
    extensions: dict[MediaType, frozenset[str]]
    sidecar_extensions: frozenset[str]
    delete_after_verify: bool
    verify_reread: bool
    generic: bool = False
    # (kind, glob) pairs: files that are recorder sidecars, stored as attachments, never as clips
    sidecar_patterns: tuple[tuple[str, str], ...] = ()
    source: str = field(default="", compare=False)

    def classify(self, name: str) -> tuple[MediaType, bool]:
        """The media type of a file by its extension, and whether it is a sidecar."""
        ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
        for media_type, exts in self.extensions.items():
            if ext in exts:
                return media_type, False
        return MediaType.OTHER, ext in self.sidecar_extensions

    def sidecar_kind(self, path: str) -> str | None:
        """The attachment kind of a file on the volume (its path relative to the root), or None when
        it is not a sidecar: the first of the profile's `[sidecars]` patterns that matches (a pattern
        with a '/' is matched against the whole path, else against the name; case-insensitive), else
        "other" for a `media.sidecar` extension. Media extensions always win."""
        name = path.rsplit("/", 1)[-1]
        media_type, by_extension = self.classify(name)
        if media_type is not MediaType.OTHER:
            return None
        for kind, pattern in self.sidecar_patterns:
            subject = path if "/" in pattern else name
            if fnmatch.fnmatch(subject.lower(), pattern.lower()):
                return kind
        return AttachmentKind.OTHER.value if by_extension else None

    def parse_name(self, name: str) -> NameFacts | None:
        for pattern in self.name_patterns:
            facts = pattern.parse(name)
            if facts is not None:
                return facts
        return None


def _strings(data: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ProfileError(f"{where}: '{key}' must be a list of strings")
    return tuple(value)


_TOP_KEYS = {
    "name",
    "description",
    "priority",
    "generic",
    "match",
    "layout",
    "device_info",
    "names",
    "clock",
    "media",
    "pull",
    "sidecars",
}

# Used where a profile has no [sidecars] table (its device-info and clock files are added to these).
DEFAULT_SIDECARS: dict[str, tuple[str, ...]] = {
    AttachmentKind.DEVICE_INFO.value: ("DeviceInfo.txt", "DEVINFO.TXT", "*/DeviceInfo.txt"),
    AttachmentKind.LOG.value: ("*.log", "LOG/*", "LOGS/*"),
    AttachmentKind.GPS.value: ("*.gps", "*.nmea", "*.gpx", "*.kml", "GPS/*"),
}


def _sidecar_patterns(
    data: dict[str, Any], info_files: tuple[str | None, ...], source: str
) -> tuple[tuple[str, str], ...]:
    declared = data.get("sidecars")
    if declared is None:
        table: dict[str, tuple[str, ...]] = dict(DEFAULT_SIDECARS)
        extra = tuple(f for f in info_files if f)
        table[AttachmentKind.DEVICE_INFO.value] = extra + table[AttachmentKind.DEVICE_INFO.value]
    else:
        if not isinstance(declared, dict):
            raise ProfileError(f"{source}: [sidecars] must be a table of kind = [patterns]")
        kinds = {k.value for k in AttachmentKind}
        unknown = set(declared) - kinds
        if unknown:
            raise ProfileError(
                f"{source}: [sidecars] unknown kinds {', '.join(sorted(unknown))} "
                f"(known: {', '.join(sorted(kinds))})"
            )
        table = {kind: _strings(declared, kind, f"{source} [sidecars]") for kind in declared}
    return tuple((kind, pattern) for kind, patterns in table.items() for pattern in patterns)


def parse_profile(text: str, source: str = "<profile>") -> RecorderProfile:
    """Parse one profile file's TOML text; any unknown or malformed key is a `ProfileError`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{source}: not valid TOML: {exc}") from exc
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise ProfileError(f"{source}: unknown keys {', '.join(sorted(unknown))}")
    if not isinstance(data.get("name"), str) or not data["name"]:
        raise ProfileError(f"{source}: 'name' is required")
    match = data.get("match", {})
    layout = data.get("layout", {})
    info = data.get("device_info", {})
    media = data.get("media", {})
    pull = data.get("pull", {})
    patterns: list[NamePattern] = []
    for i, entry in enumerate(data.get("names", [])):
        try:
            regex = re.compile(entry["pattern"])
        except (KeyError, re.error) as exc:
            raise ProfileError(f"{source}: names[{i}].pattern: {exc}") from exc
        patterns.append(NamePattern(regex, entry.get("time_format", "%Y%m%d%H%M%S")))
    clock = None
    if "clock" in data:
        clock_data = data["clock"]
        if "file" not in clock_data or "time_format" not in clock_data:
            raise ProfileError(f"{source}: [clock] needs 'file' and 'time_format'")
        clock = ClockSource(clock_data["file"], clock_data.get("key"), clock_data["time_format"])
    extensions = {
        MediaType.VIDEO: frozenset(e.lower() for e in _strings(media, "video", source)),
        MediaType.AUDIO: frozenset(e.lower() for e in _strings(media, "audio", source)),
        MediaType.PHOTO: frozenset(e.lower() for e in _strings(media, "photo", source)),
    }
    keys = {role: _strings(info.get("keys", {}), role, source) for role in info.get("keys", {})}
    return RecorderProfile(
        name=data["name"],
        description=data.get("description", ""),
        priority=int(data.get("priority", 0)),
        usb_ids=frozenset(v.lower() for v in _strings(match, "usb_ids", source)),
        fs_labels=_strings(match, "fs_labels", source),
        fs_uuids=_strings(match, "fs_uuids", source),
        marker_files=_strings(match, "marker_files", source),
        media_dirs=_strings(layout, "media_dirs", source),
        device_info_file=info.get("file"),
        device_info_keys=keys,
        text_encodings=_strings(info, "encodings", source) or ("utf-8", "gbk"),
        name_patterns=tuple(patterns),
        clock=clock,
        extensions=extensions,
        sidecar_extensions=frozenset(e.lower() for e in _strings(media, "sidecar", source)),
        delete_after_verify=bool(pull.get("delete_after_verify", False)),
        verify_reread=bool(pull.get("verify_reread", False)),
        generic=bool(data.get("generic", False)),
        sidecar_patterns=_sidecar_patterns(data, (info.get("file"), clock.file if clock else None), source),
        source=source,
    )


def match_score(profile: RecorderProfile, facts: VolumeFacts) -> int:
    """How strongly a volume looks like this profile's recorder; 0 means not at all."""
    score = 0
    if facts.usb_id and facts.usb_id.lower() in profile.usb_ids:
        score += 100
    if facts.uuid and facts.uuid in profile.fs_uuids:
        score += 80
    if facts.label and any(fnmatch.fnmatchcase(facts.label, p) for p in profile.fs_labels):
        score += 40
    if profile.marker_files and any(m in facts.present_markers for m in profile.marker_files):
        score += 60
    if score == 0 and profile.generic:
        return 1
    return score


def match_profile(profiles: list[RecorderProfile], facts: VolumeFacts) -> RecorderProfile | None:
    """The best-matching profile (ties broken by priority); the generic profile matches anything."""
    scored = [(match_score(p, facts), p.priority, p) for p in profiles]
    scored = [s for s in scored if s[0] > 0]
    if not scored:
        return None
    return max(scored, key=lambda s: (s[0], s[1]))[2]


_SEPARATOR = re.compile(r"\s*[=:：]\s*")


def parse_device_info(text: str) -> dict[str, str]:
    """`key=value` / `key: value` / `key：value` lines of a recorder's device-info file."""
    values: dict[str, str] = {}
    for raw_line in text.splitlines():
        line = raw_line.strip().lstrip("\ufeff")
        if not line or line.startswith(("#", ";", "[")):
            continue
        parts = _SEPARATOR.split(line, maxsplit=1)
        if len(parts) == 2 and parts[0]:
            values[parts[0].strip()] = parts[1].strip()
    return values


def device_info_value(profile: RecorderProfile, info: dict[str, str], role: str) -> str | None:
    """The value for a role (serial, officer, unit, model) under any of the profile's key names."""
    lowered = {k.lower(): v for k, v in info.items()}
    for key in profile.device_info_keys.get(role, ()):
        value = lowered.get(key.lower())
        if value:
            return value
    return None


def decode_text(raw: bytes, encodings: tuple[str, ...]) -> str:
    """Text written by a recorder: UTF-8 (with or without BOM) or GBK, as the profile says."""
    for encoding in encodings:
        try:
            return raw.decode("utf-8-sig" if encoding.lower() in {"utf-8", "utf8"} else encoding)
        except (UnicodeDecodeError, LookupError):
            continue
    return raw.decode("utf-8", errors="replace")


def read_clock_value(profile: RecorderProfile, text: str) -> datetime | None:
    """The recorder's clock as written in its clock file (naive, device local time)."""
    if profile.clock is None:
        return None
    value = text.strip()
    if profile.clock.key:
        found = {k.lower(): v for k, v in parse_device_info(text).items()}.get(profile.clock.key.lower())
        if found is None:
            return None
        value = found
    try:
        return datetime.strptime(value.strip(), profile.clock.time_format)
    except ValueError:
        return None
