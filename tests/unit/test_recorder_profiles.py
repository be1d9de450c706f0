"""Recorder profiles: the shipped files parse, names and device-info files are read, volumes matched."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from evidence_store.domain.model import MediaType
from ingest.devices.profiles import (
    ProfileError,
    VolumeFacts,
    decode_text,
    device_info_value,
    match_profile,
    parse_device_info,
    parse_profile,
    read_clock_value,
)
from ingest.names import display_name

DEVICES = Path(__file__).resolve().parents[2] / "ingest" / "devices"
CN = parse_profile((DEVICES / "cn-standard.toml").read_text(encoding="utf-8"), "cn-standard.toml")
GENERIC = parse_profile((DEVICES / "generic.toml").read_text(encoding="utf-8"), "generic.toml")


def test_chinese_layout_names_carry_serial_officer_and_start() -> None:
    facts = CN.parse_name("DSJ0001_310123_20261124153000_0007.MP4")
    assert facts is not None
    assert (facts.serial, facts.officer, facts.sequence) == ("DSJ0001", "310123", "0007")
    assert facts.start == datetime(2026, 11, 24, 15, 30, 0)


def test_names_without_serial_and_impossible_dates() -> None:
    facts = CN.parse_name("310123_20261124153000_0001.wav")
    assert facts is not None
    assert facts.serial is None
    assert facts.officer == "310123"
    assert CN.parse_name("DSJ0001_310123_20261324153000_0001.MP4") is None  # month 13
    assert CN.parse_name("holiday.mp4") is None


@pytest.mark.parametrize(
    ("name", "media_type", "sidecar"),
    [
        ("A.MP4", MediaType.VIDEO, False),
        ("b.wav", MediaType.AUDIO, False),
        ("c.JPG", MediaType.PHOTO, False),
        ("d.gps", MediaType.OTHER, True),
        ("e.bin", MediaType.OTHER, False),
        ("noext", MediaType.OTHER, False),
    ],
)
def test_classification_by_extension(name: str, media_type: MediaType, sidecar: bool) -> None:
    assert CN.classify(name) == (media_type, sidecar)


def test_device_info_in_utf8_and_gbk() -> None:
    text = "设备编号：DSJ0009\n警号=310999\n单位: 金普新区卫生健康监督所\nTime=2026-11-24 16:00:30\n"
    for raw in (text.encode("utf-8"), text.encode("gbk"), b"\xef\xbb\xbf" + text.encode("utf-8")):
        info = parse_device_info(decode_text(raw, CN.text_encodings))
        assert device_info_value(CN, info, "serial") == "DSJ0009"
        assert device_info_value(CN, info, "officer") == "310999"
        assert device_info_value(CN, info, "unit") == "金普新区卫生健康监督所"
        assert read_clock_value(CN, decode_text(raw, CN.text_encodings)) == datetime(2026, 11, 24, 16, 0, 30)


def test_unreadable_clock_is_none() -> None:
    assert read_clock_value(CN, "Time=yesterday") is None
    assert read_clock_value(GENERIC, "Time=2026-11-24 16:00:30") is None


def test_matching_prefers_evidence_and_falls_back_to_generic() -> None:
    profiles = [GENERIC, CN]
    assert match_profile(profiles, VolumeFacts(usb_id="2207:0010")) is CN
    assert match_profile(profiles, VolumeFacts(label="DSJ-A12")) is CN
    assert match_profile(profiles, VolumeFacts(present_markers=frozenset({"DeviceInfo.txt"}))) is CN
    assert match_profile(profiles, VolumeFacts(label="KINGSTON")) is GENERIC
    assert match_profile([CN], VolumeFacts(label="KINGSTON")) is None


def test_malformed_profiles_are_named() -> None:
    with pytest.raises(ProfileError, match=r"x\.toml: unknown keys colour"):
        parse_profile('name = "x"\ncolour = "red"\n', "x.toml")
    with pytest.raises(ProfileError, match="'name' is required"):
        parse_profile("priority = 1\n", "y.toml")
    with pytest.raises(ProfileError, match=r"names\[0\]"):
        parse_profile('name = "z"\n[[names]]\npattern = "(unclosed"\n', "z.toml")


def test_display_names_for_gbk_and_invalid_bytes() -> None:
    assert display_name("检查.mp4".encode()) == ("检查.mp4", True)
    assert display_name("检查.mp4".encode("gbk")) == ("检查.mp4", False)
    name, exact = display_name(b"\xff\xfe.mp4")
    assert not exact
    assert name == "\\xff\\xfe.mp4"
