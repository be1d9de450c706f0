"""Reading the profile files that ship beside this module (and any in an extra directory)."""

from __future__ import annotations

from pathlib import Path

from ingest.devices.profiles import ProfileError, RecorderProfile, parse_profile

PROFILES_DIR = Path(__file__).parent


def load_profiles(extra_dir: Path | None = None) -> list[RecorderProfile]:
    """Every profile; one with the same name in `extra_dir` replaces the shipped one."""
    by_name: dict[str, RecorderProfile] = {}
    for directory in (PROFILES_DIR, extra_dir):
        if directory is None or not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.toml")):
            profile = parse_profile(path.read_text(encoding="utf-8"), str(path))
            by_name[profile.name] = profile
    return list(by_name.values())


def profile_named(name: str, profiles: list[RecorderProfile]) -> RecorderProfile:
    for profile in profiles:
        if profile.name == name:
            return profile
    raise ProfileError(f"no recorder profile named {name!r} (known: {', '.join(p.name for p in profiles)})")
