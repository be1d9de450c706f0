"""Trusted time-stamps over originals' sha256 (R3: proof that a file existed unchanged since ingest).

Two kinds of token, one interface (`TimestampAuthority.stamp(sha256) -> TimestampToken`):

``rfc3161``
    An RFC 3161 TimeStampToken (a CMS SignedData over a TSTInfo) from a configured Time-Stamping
    Authority, obtained by `Rfc3161Authority`. `TimestampToken.token` holds the token's DER bytes
    exactly as the TSA signed them (the ``timeStampToken`` field of the reply), which is what
    ``openssl ts -verify -token_in`` and every other RFC 3161 verifier read. The message imprint is
    the original's sha256 itself (hash algorithm SHA-256), so the token can be checked against the
    stored sha256 without the file: ``openssl ts -verify -digest <sha256> -token_in -in token.der
    -CAfile ca.pem -untrusted tsa.pem``.

``station-signed``
    Where no TSA is configured: a record signed with the station's Ed25519 key
    (`StationSignedAuthority`). It proves what the station's key asserted, not an independent time
    source; `describe_token` says so. The token bytes are UTF-8 JSON (sorted keys, no whitespace)::

        {"record": {"format": "evidence-store/station-timestamp/v1",
                    "serial": "<32 hex digits>",
                    "sha256": "<64 hex digits>",
                    "station_key_fingerprint": "<sha256 of the raw Ed25519 public key, hex>",
                    "time": "2026-11-24T08:00:00.000000Z"},
         "signature": "<base64 of the Ed25519 signature>"}

    The signature covers the canonical bytes of ``record``: ``json.dumps(record, sort_keys=True,
    separators=(",", ":"), ensure_ascii=True).encode()``. The ``format`` field keeps these
    signatures from ever being mistaken for the key's other signatures (audit events, manifests).

`verify_token` checks either kind offline (no network: an export package carries the token, the TSA
certificate and its CA) and returns a `TimestampVerdict`; a bad token is a verdict, never an
exception. Errors raised on purpose: `TransientError` (TSA unreachable, timeout, HTTP 5xx, "waiting"),
`IntegrityError` (the TSA's reply does not verify or is not for this request), `ConfigurationError`
(bad TSA settings, missing trust anchors, a TSA that refuses the request or does not speak RFC 3161).

rfc3161-client (trailofbits) parses replies and verifies the CMS signature, the certificate chain
(at the token's genTime), the critical ``timeStamping`` EKU and the nonce. Its request builder only
takes the data to hash, never a precomputed digest, so requests are DER-encoded here (a fixed
five-field structure; the tests check it is byte-identical to the library's for the same digest and
nonce).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, runtime_checkable

from cryptography import x509
from rfc3161_client import (
    PKIStatus,
    TimeStampResponse,
    VerificationError,
    VerifierBuilder,
    decode_timestamp_response,
)

from evidence_store.errors import ConfigurationError, IntegrityError, TransientError
from evidence_store.keys import PublicKey, StationKey
from evidence_store.ports import Clock

TokenKind = Literal["rfc3161", "station-signed"]
RFC3161: TokenKind = "rfc3161"
STATION_SIGNED: TokenKind = "station-signed"

STATION_FORMAT = "evidence-store/station-timestamp/v1"
SHA256_OID = x509.ObjectIdentifier("2.16.840.1.101.3.4.2.1")
TIMESTAMP_QUERY = "application/timestamp-query"
TIMESTAMP_REPLY = "application/timestamp-reply"
MAX_REPLY_BYTES = 1 << 20  # a reply with a long certificate chain is a few KiB

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_STATION_RECORD_KEYS = frozenset({"format", "serial", "sha256", "station_key_fingerprint", "time"})

HttpPost = Callable[[str, bytes, float], bytes]
"""POST a DER TimeStampReq (``application/timestamp-query``) to a URL within a timeout in seconds and
return the reply body. Raises `TransientError` when the TSA cannot be reached or answers 5xx/429,
`ConfigurationError` on other HTTP errors."""


@dataclass(frozen=True)
class TimestampToken:
    """A trusted time-stamp over one original's sha256, as stored next to the original."""

    kind: TokenKind
    sha256: str
    token: bytes  # rfc3161: DER TimeStampToken; station-signed: the JSON described above
    authority: str  # rfc3161: the TSA URL it came from; station-signed: "station:<key fingerprint>"
    gen_time: datetime  # aware, UTC; as stated inside the token
    serial: str  # rfc3161: the TSA's serial number as "0x<hex>"; station-signed: 32 hex digits

    @classmethod
    def from_stored(cls, stored: Any) -> TimestampToken:
        """The token as stored next to its original: anything with these fields as attributes (a
        `timestamp_tokens` row, a `StoredTimestamp`)."""
        return cls(
            kind=stored.kind,
            sha256=stored.sha256,
            token=bytes(stored.token),
            authority=stored.authority,
            gen_time=stored.gen_time,
            serial=stored.serial,
        )


@dataclass(frozen=True)
class TimestampVerdict:
    ok: bool
    reason: str  # one line: what was proven, or why not
    gen_time: datetime | None  # the time inside the token when it could be read, else None


@runtime_checkable
class TimestampAuthority(Protocol):
    """Issues a trusted time-stamp over a sha256 (64 lowercase hex digits)."""

    def stamp(self, sha256: str) -> TimestampToken: ...


# ------------------------------------------------------------------ helpers


def _digest(sha256: str) -> bytes:
    if not isinstance(sha256, str) or _SHA256_HEX.fullmatch(sha256) is None:
        raise ValueError(f"not a sha256 (64 lowercase hex digits): {sha256!r}")
    return bytes.fromhex(sha256)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ConfigurationError(f"the clock returned a naive datetime: {moment!r}")
    return moment.astimezone(UTC)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _der(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(content)) + content


def _der_uint(value: int) -> bytes:
    if value < 0:
        raise ValueError("negative INTEGER")
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


# DER of AlgorithmIdentifier { id-sha256, NULL }, as rfc3161-client and OpenSSL write it
_SHA256_ALGORITHM = _der(0x30, bytes.fromhex("0609608648016503040201") + b"\x05\x00")


def timestamp_request_der(digest: bytes, nonce: int, *, cert_req: bool = True) -> bytes:
    """DER of an RFC 3161 TimeStampReq over a SHA-256 `digest` (version 1, no policy, no extensions)."""
    if len(digest) != 32:
        raise ValueError("a SHA-256 digest is 32 bytes")
    imprint = _der(0x30, _SHA256_ALGORITHM + _der(0x04, digest))
    fields = _der_uint(1) + imprint + _der_uint(nonce)
    if cert_req:
        fields += b"\x01\x01\xff"  # certReq BOOLEAN TRUE (FALSE is the default, hence omitted)
    return _der(0x30, fields)


def _new_nonce() -> int:
    return secrets.randbits(63) + 1  # never 0; 63 bits keeps the INTEGER at 8 bytes


def _response_from_token(token: bytes) -> TimeStampResponse:
    """Wrap a stored TimeStampToken in a granted TimeStampResp, the form rfc3161-client verifies."""
    granted = _der(0x30, _der_uint(0))  # PKIStatusInfo { status granted(0) }
    return decode_timestamp_response(_der(0x30, granted + bytes(token)))


def _is_rust_panic(exc: BaseException) -> bool:
    # pyo3 turns a panic in the extension (e.g. a TSTInfo that does not parse) into
    # pyo3_runtime.PanicException, a BaseException that cannot be imported by name.
    return type(exc).__name__ == "PanicException"


def load_certificates(pems: list[bytes], what: str) -> list[x509.Certificate]:
    """Every certificate in a list of PEM blobs (each may hold several); ConfigurationError if none."""
    certs: list[x509.Certificate] = []
    for pem in pems:
        try:
            certs.extend(x509.load_pem_x509_certificates(bytes(pem)))
        except ValueError as exc:
            raise ConfigurationError(f"{what}: not PEM X.509 certificates ({_one_line(str(exc))})") from exc
    if not certs:
        raise ConfigurationError(f"{what}: no certificates given")
    return certs


def _load_certificate(pem: bytes, what: str) -> x509.Certificate:
    certs = load_certificates([pem], what)
    if len(certs) != 1:
        raise ConfigurationError(f"{what}: expected one certificate, found {len(certs)}")
    return certs[0]


def _verifier_builder(ca_certs: list[x509.Certificate], tsa_cert: x509.Certificate | None) -> VerifierBuilder:
    builder = VerifierBuilder()
    roots = [cert for cert in ca_certs if cert.issuer == cert.subject]
    if not roots:
        raise ConfigurationError("the TSA CA certificates include no self-signed root")
    for cert in ca_certs:
        if cert.issuer == cert.subject:
            builder = builder.add_root_certificate(cert)
        else:
            builder = builder.add_intermediate_certificate(cert)
    if tsa_cert is not None:
        builder = builder.tsa_certificate(tsa_cert)
    return builder


def _serial_hex(serial: int) -> str:
    return f"0x{serial:x}"


# ------------------------------------------------------------------ RFC 3161


def post_timestamp_query(url: str, body: bytes, timeout_s: float) -> bytes:
    """The default `HttpPost`: standard-library urllib (honours the usual *_proxy variables)."""
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked by Rfc3161Authority
        url,
        data=body,
        method="POST",
        headers={"Content-Type": TIMESTAMP_QUERY, "Accept": TIMESTAMP_REPLY},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as reply:  # noqa: S310
            data: bytes = reply.read(MAX_REPLY_BYTES + 1)
    except urllib.error.HTTPError as exc:
        summary = f"time-stamping authority {url} answered HTTP {exc.code} {_one_line(exc.reason or '')}"
        exc.close()
        if exc.code >= 500 or exc.code in (408, 429):
            raise TransientError(summary.rstrip()) from None
        raise ConfigurationError(summary.rstrip() + ": check the TSA URL") from None
    except urllib.error.URLError as exc:
        raise TransientError(
            f"time-stamping authority {url} is unreachable: {_one_line(str(exc.reason))}"
        ) from None
    except (TimeoutError, OSError) as exc:  # timeouts and resets while reading the reply
        raise TransientError(
            f"time-stamping authority {url} failed: {_one_line(str(exc) or type(exc).__name__)}"
        ) from None
    if len(data) > MAX_REPLY_BYTES:
        raise ConfigurationError(f"time-stamping authority {url} sent a reply over {MAX_REPLY_BYTES} bytes")
    return data


class Rfc3161Authority:
    """Obtains RFC 3161 tokens from one TSA and accepts only tokens that verify against `ca_certs`."""

    def __init__(
        self,
        url: str,
        *,
        ca_certs: list[bytes],
        tsa_cert: bytes | None = None,
        timeout_s: float = 10.0,
        http_post: HttpPost | None = None,
    ) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ConfigurationError(f"the TSA URL must be an http:// or https:// URL, not {url!r}")
        if not timeout_s > 0:
            raise ConfigurationError(f"the TSA timeout must be positive, not {timeout_s!r}")
        self.url = url
        self.timeout_s = float(timeout_s)
        self._ca_pems = [bytes(pem) for pem in ca_certs]
        self._tsa_pem = bytes(tsa_cert) if tsa_cert is not None else None
        # parse now: a bad CA file is an operator error at start, not at the first original
        _verifier_builder(
            load_certificates(self._ca_pems, "TSA CA certificates"),
            None if self._tsa_pem is None else _load_certificate(self._tsa_pem, "TSA certificate"),
        )
        self._post: HttpPost = http_post or post_timestamp_query

    def stamp(self, sha256: str) -> TimestampToken:
        digest = _digest(sha256)
        nonce = _new_nonce()
        body = self._post(self.url, timestamp_request_der(digest, nonce), self.timeout_s)
        try:
            response = decode_timestamp_response(bytes(body))
        except ValueError as exc:
            raise ConfigurationError(
                f"time-stamping authority {self.url} did not answer with an RFC 3161 reply "
                f"({_one_line(str(exc), 120)})"
            ) from None
        status = response.status
        if status != PKIStatus.GRANTED:
            texts = "; ".join(_one_line(text) for text in response.status_string)
            try:
                name = PKIStatus(status).name
            except ValueError:
                name = str(status)
            detail = f"time-stamping authority {self.url} did not grant the request: {name}"
            detail += f" ({texts})" if texts else ""
            if status == PKIStatus.WAITING:
                raise TransientError(detail)
            raise ConfigurationError(detail)
        try:
            info = response.tst_info
            reply_nonce = info.nonce
            imprint = info.message_imprint
            token = response.time_stamp_token()
        except Exception as exc:
            raise IntegrityError(f"the reply from {self.url} is malformed: {_one_line(str(exc))}") from None
        except BaseException as exc:
            if not _is_rust_panic(exc):
                raise
            raise IntegrityError(
                f"the reply from {self.url} is malformed: its TSTInfo does not parse"
            ) from None
        if reply_nonce != nonce:
            raise IntegrityError(
                f"the reply from {self.url} is not for this request: nonce mismatch "
                f"(sent {nonce:#x}, got {'none' if reply_nonce is None else hex(reply_nonce)})"
            )
        if imprint.hash_algorithm != SHA256_OID or imprint.message != digest:
            raise IntegrityError(
                f"the reply from {self.url} time-stamps another digest "
                f"({imprint.message.hex()} instead of {sha256})"
            )
        candidate = TimestampToken(
            kind=RFC3161,
            sha256=sha256,
            token=token,
            authority=self.url,
            gen_time=info.gen_time.astimezone(UTC),
            serial=_serial_hex(info.serial_number),
        )
        verdict = verify_token(candidate, sha256, ca_certs=self._ca_pems, tsa_cert=self._tsa_pem)
        if not verdict.ok:
            raise IntegrityError(f"the token from {self.url} was refused: {verdict.reason}")
        return candidate


# ------------------------------------------------------------------ station-signed


def _canonical(record: dict[str, str]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class StationSignedAuthority:
    """Time-stamps with the station's own Ed25519 key and clock (no independent authority)."""

    def __init__(self, key: StationKey, clock: Clock = _utc_now) -> None:
        self._key = key
        self._clock = clock
        self.authority = f"station:{key.fingerprint}"

    def stamp(self, sha256: str) -> TimestampToken:
        _digest(sha256)
        now = _utc(self._clock())
        record = {
            "format": STATION_FORMAT,
            "serial": secrets.token_hex(16),
            "sha256": sha256,
            "station_key_fingerprint": self._key.fingerprint,
            "time": _format_time(now),
        }
        signature = self._key.sign(_canonical(record))
        envelope = {"record": record, "signature": base64.b64encode(signature).decode("ascii")}
        token = json.dumps(envelope, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
        return TimestampToken(
            kind=STATION_SIGNED,
            sha256=sha256,
            token=token,
            authority=self.authority,
            gen_time=datetime.fromisoformat(record["time"]),
            serial=record["serial"],
        )


class _Malformed(Exception):
    pass


def _parse_station_token(token: bytes) -> tuple[dict[str, str], bytes]:
    try:
        envelope = json.loads(bytes(token).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _Malformed("not JSON") from exc
    if not isinstance(envelope, dict) or set(envelope) != {"record", "signature"}:
        raise _Malformed("not a {record, signature} object")
    record, signature_b64 = envelope["record"], envelope["signature"]
    if not isinstance(record, dict) or set(record) != _STATION_RECORD_KEYS:
        raise _Malformed(f"the record must have exactly the fields {sorted(_STATION_RECORD_KEYS)}")
    if not all(isinstance(value, str) for value in record.values()):
        raise _Malformed("every record field must be a string")
    if record["format"] != STATION_FORMAT:
        raise _Malformed(f"unknown format {record['format']!r}")
    if not isinstance(signature_b64, str):
        raise _Malformed("the signature must be a base64 string")
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _Malformed("the signature is not base64") from exc
    if base64.b64encode(signature).decode("ascii") != signature_b64:
        raise _Malformed("the signature is not in canonical base64")  # no spare bits to play with
    return record, signature


def _station_time(record: dict[str, str]) -> datetime:
    try:
        moment = datetime.fromisoformat(record["time"])
    except ValueError as exc:
        raise _Malformed(f"the time {record['time']!r} is not ISO 8601") from exc
    if moment.tzinfo is None:
        raise _Malformed("the time has no time zone")
    return moment.astimezone(UTC)


# ------------------------------------------------------------------ verification


def _fail(reason: str, gen_time: datetime | None = None) -> TimestampVerdict:
    return TimestampVerdict(False, _one_line(reason), gen_time)


def _check_recorded(token: TimestampToken, sha256: str, gen_time: datetime, serial: str) -> str | None:
    """The stored fields must say what the signed token says."""
    if token.sha256 != sha256:
        return f"the token is recorded for sha256 {token.sha256}, not {sha256}"
    if token.gen_time != gen_time:
        return (
            f"the recorded time {token.gen_time.isoformat()} differs from the token's {gen_time.isoformat()}"
        )
    if token.serial != serial:
        return f"the recorded serial {token.serial} differs from the token's {serial}"
    return None


def verify_token(
    token: TimestampToken,
    sha256: str,
    *,
    ca_certs: list[bytes] | None = None,
    tsa_cert: bytes | None = None,
    station_public_key: PublicKey | None = None,
) -> TimestampVerdict:
    """Check offline that `token` is a valid time-stamp over `sha256`.

    rfc3161: the CMS signature, the chain from the signing certificate to a root in `ca_certs`
    (intermediates may be given there too, or embedded in the token) valid at the token's genTime,
    the critical timeStamping EKU, and the imprint (SHA-256) equal to `sha256`; if `tsa_cert` is
    given, the token must be signed by exactly that certificate. station-signed: the Ed25519
    signature by `station_public_key` and the sha256 in the record. Missing or unusable trust
    anchors raise `ConfigurationError`; everything wrong with the token gives ``ok=False``.
    """
    digest = _digest(sha256)
    if token.kind == RFC3161:
        if not ca_certs:
            raise ConfigurationError("verifying an RFC 3161 token needs the TSA's CA certificates")
        builder = _verifier_builder(
            load_certificates(ca_certs, "TSA CA certificates"),
            None if tsa_cert is None else _load_certificate(tsa_cert, "TSA certificate"),
        )
        return _verify_rfc3161(token, sha256, digest, builder)
    if token.kind == STATION_SIGNED:
        if station_public_key is None:
            raise ConfigurationError("verifying a station-signed token needs the station's public key")
        return _verify_station(token, sha256, station_public_key)
    return _fail(f"unknown token kind {token.kind!r}")


@dataclass(frozen=True)
class _ParsedRfc3161:
    response: TimeStampResponse
    gen_time: datetime
    algorithm: x509.ObjectIdentifier
    message: bytes
    serial: str


def _parse_rfc3161(der: bytes) -> _ParsedRfc3161:
    try:
        response = _response_from_token(der)
        info = response.tst_info
        imprint = info.message_imprint
        return _ParsedRfc3161(
            response,
            info.gen_time.astimezone(UTC),
            imprint.hash_algorithm,
            imprint.message,
            _serial_hex(info.serial_number),
        )
    except Exception as exc:
        raise _Malformed(str(exc)) from exc
    except BaseException as exc:
        if not _is_rust_panic(exc):
            raise
        raise _Malformed("its TSTInfo does not parse") from None


def _library_reason(exc: Exception) -> str:
    """rfc3161-client passes OpenSSL's error stack through as a Rust debug string; keep its words."""
    text = str(exc)
    details = [d for d in re.findall(r'(?:reason|data): "([^"]*)"', text) if d]
    if "ErrorStack" in text and details:
        prefix = text.split("ErrorStack", 1)[0].rstrip(" :(")
        return f"{prefix}: {': '.join(details)}"
    return text


def _signature_problem(parsed: _ParsedRfc3161, builder: VerifierBuilder) -> str | None:
    """Signature, chain at genTime and EKU, by rfc3161-client. The imprint is compared afterwards
    with a clearer reason, so the verifier is handed the token's own."""
    try:
        builder.build().verify(parsed.response, parsed.message)
    except VerificationError as exc:
        return f"the token does not verify: {_library_reason(exc)}"
    except Exception as exc:
        return f"the token could not be verified: {_library_reason(exc)}"
    except BaseException as exc:
        if not _is_rust_panic(exc):
            raise
        return "the token could not be verified: malformed signed data"
    return None


def _imprint_problem(parsed: _ParsedRfc3161, digest: bytes, sha256: str) -> str | None:
    if parsed.algorithm != SHA256_OID:
        return f"the token's imprint uses hash algorithm {parsed.algorithm.dotted_string}, not SHA-256"
    if parsed.message != digest:
        return f"the token time-stamps sha256 {parsed.message.hex()}, not {sha256}"
    return None


def _verify_rfc3161(
    token: TimestampToken, sha256: str, digest: bytes, builder: VerifierBuilder
) -> TimestampVerdict:
    try:
        parsed = _parse_rfc3161(token.token)
    except _Malformed as exc:
        return _fail(f"not an RFC 3161 time-stamp token: {exc}")
    problem = (
        _signature_problem(parsed, builder)
        or _imprint_problem(parsed, digest, sha256)
        or _check_recorded(token, sha256, parsed.gen_time, parsed.serial)
    )
    if problem:
        return _fail(problem, parsed.gen_time)
    return TimestampVerdict(
        True,
        f"RFC 3161 token over {sha256}, signed by a trusted TSA at {parsed.gen_time.isoformat()}",
        parsed.gen_time,
    )


def _verify_station(token: TimestampToken, sha256: str, public_key: PublicKey) -> TimestampVerdict:
    try:
        record, signature = _parse_station_token(token.token)
        gen_time = _station_time(record)
    except _Malformed as exc:
        return _fail(f"not a station-signed time-stamp: {exc}")
    if record["station_key_fingerprint"] != public_key.fingerprint:
        return _fail(
            f"signed by station key {record['station_key_fingerprint']}, not {public_key.fingerprint}",
            gen_time,
        )
    if not public_key.verify(_canonical(record), signature):
        return _fail(
            "the station signature does not verify: the record or the signature was altered", gen_time
        )
    if record["sha256"] != sha256:
        return _fail(f"the token time-stamps sha256 {record['sha256']}, not {sha256}", gen_time)
    mismatch = _check_recorded(token, sha256, gen_time, record["serial"])
    if mismatch:
        return _fail(mismatch, gen_time)
    return TimestampVerdict(
        True,
        f"station-signed record over {sha256} by key {public_key.fingerprint} at {gen_time.isoformat()}",
        gen_time,
    )


# ------------------------------------------------------------------ description


def describe_token(token: TimestampToken) -> dict[str, Any]:
    """What a token says, for humans (reports, the export's README). Verifies nothing."""
    described: dict[str, Any] = {
        "kind": token.kind,
        "sha256": token.sha256,
        "authority": token.authority,
        "gen_time": token.gen_time.isoformat(),
        "serial": token.serial,
    }
    if token.kind == RFC3161:
        described.update(_describe_rfc3161(token.token))
    elif token.kind == STATION_SIGNED:
        try:
            record, _ = _parse_station_token(token.token)
        except _Malformed as exc:
            described["error"] = f"not a station-signed time-stamp: {exc}"
        else:
            described["station_key_fingerprint"] = record["station_key_fingerprint"]
            described["format"] = record["format"]
            described["note"] = "signed by the station's own key and clock, not by an independent TSA"
    return described


def _describe_rfc3161(der: bytes) -> dict[str, Any]:
    try:
        response = _response_from_token(der)
        info = response.tst_info
        described: dict[str, Any] = {
            "policy_oid": info.policy.dotted_string,
            "hash_algorithm": info.message_imprint.hash_algorithm.dotted_string,
            "message_imprint": info.message_imprint.message.hex(),
            "token_gen_time": info.gen_time.astimezone(UTC).isoformat(),
            "token_serial": _serial_hex(info.serial_number),
            "nonce": None if info.nonce is None else hex(info.nonce),
        }
        accuracy = info.accuracy
        if accuracy is not None:
            described["accuracy"] = {
                "seconds": accuracy.seconds,
                "millis": accuracy.millis,
                "micros": accuracy.micros,
            }
        try:
            described["tsa_name"] = _general_name(info.name)
        except ValueError:
            described["tsa_name"] = None
        described["certificates"] = sorted(
            x509.load_der_x509_certificate(cert).subject.rfc4514_string()
            for cert in response.signed_data.certificates
        )
    except Exception as exc:
        return {"error": f"not an RFC 3161 time-stamp token: {_one_line(str(exc))}"}
    except BaseException as exc:
        if not _is_rust_panic(exc):
            raise
        return {"error": "not an RFC 3161 time-stamp token: its TSTInfo does not parse"}
    return described


def _general_name(name: x509.GeneralName) -> str:
    if isinstance(name, x509.DirectoryName):
        return name.value.rfc4514_string()
    return str(name.value)
