"""When a recorder's sidecar (an attachment) may go: with what it describes, never before (R9, R10)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class SidecarFacts:
    """What retention knows of one stored attachment and of the footage it belongs to."""

    attachment_id: int
    clip_id: int | None  # the one clip it describes (a GPS track with the clip's base name), if any
    clip_live: bool  # that clip is still stored
    transfer_live_clips: int  # clips of its transfer still stored
    transfer_clips_ever: int  # clips its transfer brought, stored or deleted since
    ordinary_until: datetime  # its handover plus the ordinary (non-evidence) period


def sidecar_goes(facts: SidecarFacts, now: datetime) -> str | None:
    """Why the attachment may be deleted now, or None while it must be kept (R9: a sidecar is kept as
    long as what it describes). An attachment of one clip goes with that clip; one of a transfer goes
    with the last clip of that transfer; a transfer that brought no clip of its own (every file was
    already on record) keeps its sidecars for the ordinary period after the handover."""
    if facts.clip_id is not None:
        return None if facts.clip_live else "the clip it belongs to was deleted"
    if facts.transfer_live_clips:
        return None
    if facts.transfer_clips_ever:
        return "the last clip of its transfer was deleted"
    if now >= facts.ordinary_until:
        return "its transfer brought no clip and the ordinary period after the handover has passed"
    return None


def kind_by_name(name: str) -> str:
    """The attachment kind of a sidecar an older station stored as a clip, from its name alone (the
    profile patterns it was pulled under are not recorded)."""
    lowered = name.lower()
    if lowered in {"deviceinfo.txt", "devinfo.txt"}:
        return "device_info"
    extension = lowered.rsplit(".", 1)[-1] if "." in lowered else ""
    if extension == "log":
        return "log"
    if extension in {"gps", "nmea", "gpx", "kml"}:
        return "gps"
    return "other"
