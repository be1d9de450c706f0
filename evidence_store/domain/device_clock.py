"""Placing a recording in true time from a recorder's own clock (R4, R5).

A recorder stamps its files with its own clock, in local time and without a zone. At docking the
station reads that clock (where the profile can) and records the offset `device - station`. The
device-reported times are kept untouched; the corrected UTC times subtract the offset. A clock that
could not be read, or that moved more than the tolerance since the last docking, is reported, never
silently trusted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from evidence_store.domain.model import ClockStatus, RecordWarning

DRIFT_TOLERANCE_S = 60.0
LARGE_OFFSET_S = 300.0


@dataclass(frozen=True)
class ClockReading:
    """What the station knows of a recorder's clock at one docking."""

    offset_s: float | None  # device clock minus station clock; None if it could not be read
    previous_offset_s: float | None = None  # at the device's previous docking, if any


@dataclass(frozen=True)
class PlacedTimes:
    utc_start: datetime | None
    utc_end: datetime | None
    clock_status: ClockStatus
    offset_s: float | None
    warnings: tuple[RecordWarning, ...]


def measure_offset(device_clock: datetime, station_clock: datetime, zone: tzinfo) -> float:
    """R5: offset of the recorder's clock (naive, local to `zone`) against the station's (aware)."""
    return (device_clock.replace(tzinfo=zone) - station_clock).total_seconds()


def place_in_time(
    device_start: datetime | None,
    device_end: datetime | None,
    reading: ClockReading,
    zone: tzinfo,
    *,
    drift_tolerance_s: float = DRIFT_TOLERANCE_S,
) -> PlacedTimes:
    """R4/R5: corrected UTC start and end of a recording from the device's local times and its clock.

    With a measured offset the times are corrected by it. With none, the device's times are taken as
    they are (so the clip can still be placed and linked) and the clip carries a `clock_unknown`
    warning. If the offset moved by more than `drift_tolerance_s` since the previous docking the clock
    is `drifting`: the recording happened somewhere between the two offsets, and the clip says so.
    """
    warnings: list[RecordWarning] = []
    offset = reading.offset_s
    if offset is None:
        status = ClockStatus.UNKNOWN
        warnings.append(
            RecordWarning(
                "clock_unknown",
                "the recorder's clock could not be read at docking; times are as the device reported them",
            )
        )
        correction = 0.0
    else:
        correction = offset
        status = ClockStatus.MEASURED
        if reading.previous_offset_s is not None:
            drift = offset - reading.previous_offset_s
            if abs(drift) > drift_tolerance_s:
                status = ClockStatus.DRIFTING
                warnings.append(
                    RecordWarning(
                        "clock_drifting",
                        f"the recorder's clock moved {drift:+.0f} s since its previous docking "
                        f"(offset {reading.previous_offset_s:+.0f} s then, {offset:+.0f} s now); "
                        "times are corrected with the offset measured now",
                    )
                )
        if abs(offset) > LARGE_OFFSET_S:
            warnings.append(
                RecordWarning(
                    "clock_offset_large", f"the recorder's clock was {offset:+.0f} s off at docking"
                )
            )

    def to_utc(moment: datetime | None) -> datetime | None:
        if moment is None:
            return None
        return (moment.replace(tzinfo=zone) - timedelta(seconds=correction)).astimezone(UTC)

    return PlacedTimes(to_utc(device_start), to_utc(device_end), status, offset, tuple(warnings))
