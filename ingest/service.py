"""Choosing a recorder profile for a volume."""

from __future__ import annotations

import os
from pathlib import Path

from evidence_store.bootstrap import Station
from evidence_store.errors import ConfigurationError
from ingest.devices.catalog import load_profiles, profile_named
from ingest.devices.profiles import ProfileError, RecorderProfile, VolumeFacts, match_profile


def present_markers(root: Path, profiles: list[RecorderProfile]) -> frozenset[str]:
    """Which of the profiles' marker files exist on the volume (symlinks are not markers)."""
    found = set()
    for profile in profiles:
        for marker in profile.marker_files:
            try:
                if os.path.isfile(root / marker) and not os.path.islink(root / marker):
                    found.add(marker)
            except OSError:
                continue
    return frozenset(found)


def choose_profile(
    station: Station, root: Path, name: str | None, facts: VolumeFacts | None = None
) -> tuple[RecorderProfile, VolumeFacts]:
    try:
        profiles = load_profiles(station.settings.profiles_dir)
        facts = facts or VolumeFacts()
        facts = VolumeFacts(facts.usb_id, facts.label, facts.uuid, present_markers(root, profiles))
        if name:
            return profile_named(name, profiles), facts
    except ProfileError as exc:
        raise ConfigurationError(str(exc)) from exc
    profile = match_profile(profiles, facts)
    if profile is None:
        raise ConfigurationError(
            "no recorder profile matches this volume and no generic profile is installed"
        )
    return profile, facts
