"""What a stored file's name, container and file time say about its clip: media type, start and end on
the recorder's clock and in UTC (R4, R5), and whether it was handed over late (R1)."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from evidence_store.domain.device_clock import ClockReading, place_in_time
from evidence_store.domain.handover import HandoverRule, handover_deadline, is_late
from evidence_store.domain.model import MediaType, RecordWarning
from ingest.devices.profiles import RecorderProfile
from ingest.quick_probe import quick_probe


def clip_facts(
    dirfd: int,
    raw_name: bytes,
    name: str,
    st: os.stat_result,
    mtime: datetime,
    *,
    profile: RecorderProfile,
    zone: ZoneInfo,
    rule: HandoverRule,
    reading: ClockReading,
    handed_over_at: datetime,
    drift_tolerance_s: float,
) -> dict[str, Any]:
    """The clip's media type, device and UTC times, clock status, late handover and media facts, from
    its name, its container (a quick probe) and its file time; the warnings they raise."""
    media_type, sidecar = profile.classify(name)
    warnings: list[RecordWarning] = []
    media_info: dict[str, Any] = {"profile": profile.name}
    if sidecar:
        media_info["sidecar"] = True
    elif media_type is MediaType.OTHER:
        warnings.append(RecordWarning("not_media", "not a recognised media file; stored as it is"))
    facts = profile.parse_name(name)
    device_start = facts.start if facts else None
    if facts:
        media_info.update(
            {
                k: v
                for k, v in (
                    ("name_serial", facts.serial),
                    ("name_officer", facts.officer),
                    ("sequence", facts.sequence),
                )
                if v
            }
        )
    duration: float | None = None
    if media_type in (MediaType.VIDEO, MediaType.AUDIO) and st.st_size > 0:
        probe = _probe(dirfd, raw_name)
        duration = probe.duration_s
        if probe.problem:
            warnings.append(
                RecordWarning("probe_failed", f"the container could not be read at ingest: {probe.problem}")
            )
        if device_start is None and probe.creation_time is not None:
            device_start = probe.creation_time.astimezone(zone).replace(tzinfo=None)
            media_info["time_source"] = "container creation_time"
    if device_start is None and media_type is not MediaType.OTHER and not sidecar:
        # A recorder's file time is when it closed the file: the end of the recording.
        mtime_local = mtime.astimezone(zone).replace(tzinfo=None)
        device_start = mtime_local - timedelta(seconds=duration or 0)
        media_info["time_source"] = "file modification time"
        warnings.append(
            RecordWarning("time_from_mtime", "start time taken from the file's modification time")
        )
    elif device_start is not None and "time_source" not in media_info:
        media_info["time_source"] = "file name"
    device_end = device_start + timedelta(seconds=duration) if device_start is not None and duration else None
    placed = place_in_time(
        device_start,
        device_end,
        reading,
        zone,
        drift_tolerance_s=drift_tolerance_s,
    )
    if device_start is not None:
        warnings.extend(placed.warnings)
    ended = placed.utc_end or placed.utc_start
    late = ended is not None and is_late(ended, handed_over_at, rule, zone)
    if late and ended is not None:
        deadline = handover_deadline(ended, rule, zone)
        warnings.append(
            RecordWarning(
                "late_handover",
                f"handed over {handed_over_at.isoformat()}, after the deadline {deadline.isoformat()} (R1)",
            )
        )
    return {
        "media_type": media_type,
        "device_start": device_start,
        "device_end": device_end,
        "utc_start": placed.utc_start if device_start else None,
        "utc_end": placed.utc_end if device_start else None,
        "clock_offset_s": placed.offset_s,
        "clock_status": placed.clock_status,
        "duration_s": duration,
        "late_handover": late,
        "media_info": media_info,
        "warnings": warnings,
    }


def _probe(dirfd: int, raw_name: bytes) -> Any:
    fd = os.open(raw_name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd)
    with os.fdopen(fd, "rb") as handle:
        return quick_probe(handle)
