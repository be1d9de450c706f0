"""Issue 17: which files are a recorder's sidecars (profile patterns) and when an attachment may go."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from evidence_store.domain.sidecars import SidecarFacts, kind_by_name, sidecar_goes
from ingest.devices.profiles import ProfileError, parse_profile

DEVICES = Path(__file__).resolve().parents[2] / "ingest" / "devices"
CN = parse_profile((DEVICES / "cn-standard.toml").read_text(encoding="utf-8"), "cn-standard.toml")
GENERIC = parse_profile((DEVICES / "generic.toml").read_text(encoding="utf-8"), "generic.toml")
NOW = datetime(2027, 6, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("DeviceInfo.txt", "device_info"),
        ("SYSTEM/DeviceInfo.txt", "device_info"),
        ("devinfo.txt", "device_info"),
        ("LOG/20261124.TXT", "log"),
        ("sys.LOG", "log"),
        ("DCIM/100MEDIA/A_0001.gps", "gps"),
        ("GPS/track.bin", "gps"),
        ("DCIM/A_0001.NMEA", "gps"),
        ("notes.txt", "other"),
        ("DCIM/A_0001.MP4", None),  # footage
        ("GPS/A_0001.MP4", None),  # a media extension always wins
        ("firmware.bin", None),  # unknown: stays a clip with a not_media warning
    ],
)
def test_the_chinese_profile_declares_its_sidecars(path: str, kind: str | None) -> None:
    assert CN.sidecar_kind(path) == kind


def test_a_profile_without_sidecars_gets_the_default_set_and_its_device_info_file() -> None:
    assert GENERIC.sidecar_kind("DeviceInfo.txt") == "device_info"
    assert GENERIC.sidecar_kind("x.log") == "log"
    assert GENERIC.sidecar_kind("x.nmea") == "gps"
    assert GENERIC.sidecar_kind("x.srt") == "other"  # a media.sidecar extension
    own = parse_profile('name = "own"\n[device_info]\nfile = "INFO.INI"\n', "own.toml")
    assert own.sidecar_kind("info.ini") == "device_info"


def test_declared_sidecars_replace_the_defaults_and_unknown_kinds_are_refused() -> None:
    only = parse_profile('name = "x"\n[sidecars]\nlog = ["REC/*.dat"]\n', "x.toml")
    assert only.sidecar_kind("REC/1.dat") == "log"
    assert only.sidecar_kind("DeviceInfo.txt") is None
    with pytest.raises(ProfileError, match="unknown kinds audio"):
        parse_profile('name = "x"\n[sidecars]\naudio = ["*.wav"]\n', "x.toml")
    with pytest.raises(ProfileError, match="must be a list of strings"):
        parse_profile('name = "x"\n[sidecars]\nlog = "*.log"\n', "x.toml")


def _facts(**overrides: object) -> SidecarFacts:
    values: dict[str, object] = {
        "attachment_id": 1,
        "clip_id": None,
        "clip_live": False,
        "transfer_live_clips": 0,
        "transfer_clips_ever": 0,
        "ordinary_until": NOW + timedelta(days=1),
    }
    values.update(overrides)
    return SidecarFacts(**values)  # type: ignore[arg-type]


def test_an_attachment_goes_with_what_it_describes_never_before() -> None:
    assert sidecar_goes(_facts(clip_id=7, clip_live=True, transfer_live_clips=0), NOW) is None
    assert sidecar_goes(_facts(clip_id=7, clip_live=False, transfer_live_clips=3), NOW) is not None
    assert sidecar_goes(_facts(transfer_live_clips=1, transfer_clips_ever=2), NOW) is None
    assert sidecar_goes(_facts(transfer_live_clips=0, transfer_clips_ever=2), NOW) is not None
    # a transfer that brought no clip of its own: the ordinary period after the handover
    assert sidecar_goes(_facts(), NOW) is None
    assert sidecar_goes(_facts(), NOW + timedelta(days=1)) is not None


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("DeviceInfo.txt", "device_info"),
        ("DEVINFO.TXT", "device_info"),
        ("a.LOG", "log"),
        ("b.gpx", "gps"),
        ("c.xml", "other"),
    ],
)
def test_an_older_stations_sidecar_clip_is_kinded_by_its_name(name: str, kind: str) -> None:
    assert kind_by_name(name) == kind
