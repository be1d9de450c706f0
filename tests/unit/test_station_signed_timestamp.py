"""Station-signed time-stamps (no TSA configured): Ed25519 keys in memory, no fixtures, no network."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from evidence_store.errors import ConfigurationError
from evidence_store.keys import StationKey
from evidence_store.timestamping import (
    STATION_FORMAT,
    StationSignedAuthority,
    TimestampAuthority,
    TimestampToken,
    describe_token,
    verify_token,
)

KEY = StationKey(Ed25519PrivateKey.generate())
OTHER_KEY = StationKey(Ed25519PrivateKey.generate())
NOW = datetime(2026, 11, 24, 8, 0, 0, 123456, tzinfo=UTC)
SHA = hashlib.sha256(b"original footage").hexdigest()
OTHER_SHA = hashlib.sha256(b"other footage").hexdigest()


def stamp(sha256: str = SHA, key: StationKey = KEY) -> TimestampToken:
    return StationSignedAuthority(key, lambda: NOW).stamp(sha256)


def envelope(token: TimestampToken) -> dict[str, object]:
    loaded = json.loads(token.token)
    assert isinstance(loaded, dict)
    return loaded


def rewrap(token: TimestampToken, envelope_: dict[str, object]) -> TimestampToken:
    raw = json.dumps(envelope_, sort_keys=True, separators=(",", ":")).encode()
    return dataclasses.replace(token, token=raw)


def test_stamp_and_verify() -> None:
    authority = StationSignedAuthority(KEY, lambda: NOW)
    assert isinstance(authority, TimestampAuthority)
    token = authority.stamp(SHA)
    assert token.kind == "station-signed"
    assert token.sha256 == SHA
    assert token.gen_time == NOW and token.gen_time.tzinfo is not None
    assert token.authority == f"station:{KEY.fingerprint}"
    assert len(token.serial) == 32 and int(token.serial, 16) >= 0

    verdict = verify_token(token, SHA, station_public_key=KEY.public())
    assert verdict.ok, verdict.reason
    assert verdict.gen_time == NOW
    assert KEY.fingerprint in verdict.reason


def test_token_format_is_the_documented_one() -> None:
    token = stamp()
    loaded = envelope(token)
    assert set(loaded) == {"record", "signature"}
    record = loaded["record"]
    assert record == {
        "format": STATION_FORMAT,
        "serial": token.serial,
        "sha256": SHA,
        "station_key_fingerprint": KEY.fingerprint,
        "time": "2026-11-24T08:00:00.123456Z",
    }
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    signature = base64.b64decode(str(loaded["signature"]))
    # anyone with the public key and the documented format can check it, without our code
    assert KEY.public().verify(canonical, signature)
    assert token.token == json.dumps(loaded, sort_keys=True, separators=(",", ":")).encode()


def test_each_stamp_has_its_own_serial() -> None:
    assert len({stamp().serial for _ in range(20)}) == 20


def test_clock_in_another_zone_is_stored_in_utc() -> None:
    local = NOW.astimezone(timezone(timedelta(hours=8)))
    token = StationSignedAuthority(KEY, lambda: local).stamp(SHA)
    assert token.gen_time == NOW and token.gen_time.utcoffset() == timedelta(0)
    assert envelope(token)["record"]["time"].endswith("Z")  # type: ignore[index]


def test_another_sha256_is_not_ok() -> None:
    token = stamp()
    verdict = verify_token(token, OTHER_SHA, station_public_key=KEY.public())
    assert not verdict.ok
    assert "recorded for sha256" in verdict.reason or "time-stamps sha256" in verdict.reason
    # even when the stored record is edited to claim the other sha256
    verdict = verify_token(
        dataclasses.replace(token, sha256=OTHER_SHA), OTHER_SHA, station_public_key=KEY.public()
    )
    assert not verdict.ok
    assert f"the token time-stamps sha256 {SHA}, not {OTHER_SHA}" in verdict.reason


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sha256", OTHER_SHA),
        ("time", "2026-11-23T08:00:00.123456Z"),
        ("serial", "0" * 32),
    ],
)
def test_tampered_record_is_not_ok(field: str, value: str) -> None:
    token = stamp()
    edited = envelope(token)
    edited["record"][field] = value  # type: ignore[index]
    tampered = rewrap(token, edited)
    for expected in (SHA, OTHER_SHA):
        verdict = verify_token(tampered, expected, station_public_key=KEY.public())
        assert not verdict.ok
        assert "the station signature does not verify" in verdict.reason


def test_tampered_signature_is_not_ok() -> None:
    token = stamp()
    edited = envelope(token)
    signature = bytearray(base64.b64decode(str(edited["signature"])))
    for index in (0, 31, 63):
        bad = bytearray(signature)
        bad[index] ^= 0x01
        edited["signature"] = base64.b64encode(bytes(bad)).decode()
        verdict = verify_token(rewrap(token, edited), SHA, station_public_key=KEY.public())
        assert not verdict.ok
        assert "the station signature does not verify" in verdict.reason


def test_wrong_key_is_not_ok() -> None:
    token = stamp()
    verdict = verify_token(token, SHA, station_public_key=OTHER_KEY.public())
    assert not verdict.ok
    assert f"signed by station key {KEY.fingerprint}, not {OTHER_KEY.fingerprint}" in verdict.reason

    # a token signed by another key that claims to be ours
    forged = stamp(key=OTHER_KEY)
    edited = envelope(forged)
    edited["record"]["station_key_fingerprint"] = KEY.fingerprint  # type: ignore[index]
    verdict = verify_token(rewrap(forged, edited), SHA, station_public_key=KEY.public())
    assert not verdict.ok
    assert "the station signature does not verify" in verdict.reason


@pytest.mark.parametrize("field", ["gen_time", "serial"])
def test_stored_fields_must_match_the_signed_record(field: str) -> None:
    token = stamp()
    edited = (
        dataclasses.replace(token, gen_time=NOW - timedelta(hours=1))
        if field == "gen_time"
        else dataclasses.replace(token, serial="f" * 32)
    )
    verdict = verify_token(edited, SHA, station_public_key=KEY.public())
    assert not verdict.ok
    assert "differs from the token's" in verdict.reason


def test_every_single_bit_flip_is_not_ok() -> None:
    """No byte of the token is free: JSON structure, values, and the base64 signature (which must be
    canonical, so the spare bits of its last character cannot be flipped unnoticed)."""
    token = stamp()
    for offset in range(len(token.token)):
        for bit in (0x01, 0x02, 0x20, 0x80):
            raw = bytearray(token.token)
            raw[offset] ^= bit
            verdict = verify_token(
                dataclasses.replace(token, token=bytes(raw)), SHA, station_public_key=KEY.public()
            )
            assert not verdict.ok, (offset, bit)
            assert verdict.reason and "\n" not in verdict.reason


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'{"record": {}, "signature": ""}',
        b'{"record": {"sha256": "x"}, "signature": "AAAA", "extra": 1}',
    ],
)
def test_malformed_tokens_are_not_ok(raw: bytes) -> None:
    token = dataclasses.replace(stamp(), token=raw)
    verdict = verify_token(token, SHA, station_public_key=KEY.public())
    assert not verdict.ok
    assert verdict.reason.startswith("not a station-signed time-stamp")
    assert "error" in describe_token(token)


def test_record_with_unexpected_values_is_not_ok() -> None:
    token = stamp()
    for field, value in [("format", "something/else"), ("time", "yesterday"), ("serial", 7)]:
        edited = envelope(token)
        edited["record"][field] = value  # type: ignore[index]
        verdict = verify_token(rewrap(token, edited), SHA, station_public_key=KEY.public())
        assert not verdict.ok
        assert verdict.reason.startswith("not a station-signed time-stamp"), verdict.reason


def test_describe_token() -> None:
    token = stamp()
    described = describe_token(token)
    assert described == {
        "kind": "station-signed",
        "sha256": SHA,
        "authority": f"station:{KEY.fingerprint}",
        "gen_time": NOW.isoformat(),
        "serial": token.serial,
        "station_key_fingerprint": KEY.fingerprint,
        "format": STATION_FORMAT,
        "note": "signed by the station's own key and clock, not by an independent TSA",
    }
    json.dumps(described)  # fit for a report


def test_misuse_is_loud() -> None:
    with pytest.raises(ValueError, match="not a sha256"):
        stamp("abc")
    with pytest.raises(ValueError, match="not a sha256"):
        stamp(SHA.upper())
    with pytest.raises(ConfigurationError, match="naive"):
        StationSignedAuthority(KEY, lambda: datetime(2026, 1, 1)).stamp(SHA)
    with pytest.raises(ConfigurationError, match="public key"):
        verify_token(stamp(), SHA)
