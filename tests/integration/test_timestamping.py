"""RFC 3161 time-stamps against a real TSA (OpenSSL's `openssl ts -reply` behind HTTP), checked by our
verifier (rfc3161-client) and cross-checked by `openssl ts -verify`."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from rfc3161_client import HashAlgorithm, TimestampRequestBuilder
from rfc3161_client._rust import parse_timestamp_request

from evidence_store import timestamping
from evidence_store.errors import ConfigurationError, IntegrityError, TransientError
from evidence_store.timestamping import (
    Rfc3161Authority,
    TimestampAuthority,
    TimestampToken,
    describe_token,
    timestamp_request_der,
    verify_token,
)
from tests.fixtures.services import free_port, require
from tests.fixtures.tsa import (
    TSA_POLICY_OID,
    LocalTsa,
    TestCa,
    make_ca,
    make_signer,
    running_tsa,
    write_key,
)

FOOTAGE = b"body-worn camera footage, original bytes"
SHA = hashlib.sha256(FOOTAGE).hexdigest()
OTHER_SHA = hashlib.sha256(b"some other file").hexdigest()
TSTINFO_OID = "1.2.840.113549.1.9.16.1.4"  # id-ct-TSTInfo


@pytest.fixture(scope="module")
def stamped(local_tsa: LocalTsa) -> TimestampToken:
    return Rfc3161Authority(local_tsa.url, ca_certs=[local_tsa.ca_cert_pem]).stamp(SHA)


@pytest.fixture(scope="module")
def own_ca_tsa() -> Iterator[tuple[TestCa, LocalTsa]]:
    """A second TSA whose CA (and its key) the test holds, to issue certificates of its own."""
    ca = make_ca("Second Test Root CA")
    with running_tsa(ca=ca, common_name="Second Test TSA") as tsa:
        yield ca, tsa


def flipped(token: TimestampToken, offset: int, bit: int = 0x01) -> TimestampToken:
    der = bytearray(token.token)
    der[offset] ^= bit
    return dataclasses.replace(token, token=bytes(der))


def tstinfo_der(token: TimestampToken) -> bytes:
    info = timestamping._response_from_token(token.token).tst_info
    # as_bytes() exists on the Rust class but is missing from rfc3161-client's abstract TimeStampTokenInfo
    der: bytes = info.as_bytes()  # type: ignore[attr-defined]
    return der


def tstinfo_span(token: TimestampToken) -> tuple[int, int]:
    """Where the signed TSTInfo (the encapsulated content) sits inside the token's DER."""
    tstinfo = tstinfo_der(token)
    start = token.token.find(tstinfo)
    assert start > 0 and token.token.count(tstinfo) == 1
    return start, start + len(tstinfo)


def signature_span(token: TimestampToken) -> tuple[int, int]:
    """The SignerInfo's signature value: the last OCTET STRING of the token (no unsigned attributes)."""
    der = token.token
    # ECDSA P-256 signatures are DER SEQUENCEs of 70-72 bytes; find the OCTET STRING header
    for length in range(72, 66, -1):
        start = len(der) - length
        if der[start - 2] == 0x04 and der[start - 1] == length and der[start] == 0x30:
            return start, len(der)
    raise AssertionError("no signature value at the end of the token")


# ------------------------------------------------------------------ the request we send


def test_request_der_is_byte_identical_to_rfc3161_client() -> None:
    """rfc3161-client only builds requests from the data (it hashes it itself); ours start from the
    stored sha256. For the same digest and nonce the bytes must be the library's, bit for bit."""
    for i in range(200):  # random nonces: some with the high bit set, which need a leading 0x00
        data = f"clip {i}".encode()
        for cert_req in (True, False):
            request = (
                TimestampRequestBuilder()
                .data(data)
                .hash_algorithm(HashAlgorithm.SHA256)
                .cert_request(cert_request=cert_req)
                .build()
            )
            assert request.nonce is not None
            ours = timestamp_request_der(hashlib.sha256(data).digest(), request.nonce, cert_req=cert_req)
            assert ours == request.as_bytes()
    parsed = parse_timestamp_request(timestamp_request_der(bytes.fromhex(SHA), 2**63 + 5))
    assert parsed.message_imprint.message.hex() == SHA
    assert parsed.nonce == 2**63 + 5 and parsed.cert_req and parsed.version == 1


# ------------------------------------------------------------------ the round trip


def test_round_trip_against_a_real_tsa(local_tsa: LocalTsa) -> None:
    authority = Rfc3161Authority(local_tsa.url, ca_certs=[local_tsa.ca_cert_pem], timeout_s=10)
    assert isinstance(authority, TimestampAuthority)
    served = local_tsa.requests.value
    before = datetime.now(UTC)
    token = authority.stamp(SHA)
    assert local_tsa.requests.value == served + 1

    assert token.kind == "rfc3161"
    assert token.sha256 == SHA
    assert token.authority == local_tsa.url
    assert token.gen_time.tzinfo is not None and token.gen_time.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=2) <= token.gen_time <= datetime.now(UTC) + timedelta(seconds=2)
    assert re.fullmatch(r"0x[0-9a-f]+", token.serial)
    assert token.token[:1] == b"\x30"  # a DER ContentInfo, not the whole TimeStampResp

    verdict = verify_token(token, SHA, ca_certs=[local_tsa.ca_cert_pem])
    assert verdict.ok, verdict.reason
    assert verdict.gen_time == token.gen_time
    assert SHA in verdict.reason
    # pinning the TSA's own certificate as well
    assert verify_token(token, SHA, ca_certs=[local_tsa.ca_cert_pem], tsa_cert=local_tsa.tsa_cert_pem).ok

    described = describe_token(token)
    assert described["kind"] == "rfc3161"
    assert described["policy_oid"] == TSA_POLICY_OID
    assert described["message_imprint"] == SHA
    assert described["hash_algorithm"] == "2.16.840.1.101.3.4.2.1"
    assert described["serial"] == described["token_serial"] == token.serial
    assert described["tsa_name"] == "CN=Test TSA,O=Evidence Store Tests"
    assert described["certificates"] == ["CN=Test TSA,O=Evidence Store Tests"]


def test_each_stamp_is_one_request_with_its_own_serial(local_tsa: LocalTsa) -> None:
    authority = Rfc3161Authority(local_tsa.url, ca_certs=[local_tsa.ca_cert_pem])
    served = local_tsa.requests.value
    tokens = [authority.stamp(sha) for sha in (SHA, OTHER_SHA, SHA)]
    assert local_tsa.requests.value == served + 3
    assert len({t.serial for t in tokens}) == 3
    assert verify_token(tokens[1], OTHER_SHA, ca_certs=[local_tsa.ca_cert_pem]).ok


def test_openssl_verifies_our_tokens(stamped: TimestampToken, local_tsa: LocalTsa, tmp_path: Path) -> None:
    """The token is a standard RFC 3161 token: OpenSSL's own verifier accepts it over the sha256."""
    require(shutil.which("openssl") is not None, "openssl is not installed")
    (tmp_path / "token.der").write_bytes(stamped.token)
    (tmp_path / "ca.pem").write_bytes(local_tsa.ca_cert_pem)
    (tmp_path / "tsa.pem").write_bytes(local_tsa.tsa_cert_pem)

    def openssl_verify(digest: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                *("openssl", "ts", "-verify", "-digest", digest, "-token_in", "-in", "token.der"),
                *("-CAfile", "ca.pem", "-untrusted", "tsa.pem"),
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    good = openssl_verify(SHA)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "Verification: OK" in good.stdout
    bad = openssl_verify(OTHER_SHA)
    assert bad.returncode != 0 and "Verification: FAILED" in bad.stdout

    # what describe_token reads is what OpenSSL reads
    text = subprocess.run(
        ["openssl", "ts", "-reply", "-in", "token.der", "-token_in", "-text", "-token_out"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    described = describe_token(stamped)
    assert f"Policy OID: {described['policy_oid']}" in text
    serial = re.search(r"Serial number: (0x[0-9A-Fa-f]+)", text)
    nonce = re.search(r"Nonce: (0x[0-9A-Fa-f]+)", text)
    assert serial and int(serial.group(1), 16) == int(stamped.serial, 16)
    assert nonce and int(nonce.group(1), 16) == int(described["nonce"], 16)
    assert "Hash Algorithm: sha256" in text


# ------------------------------------------------------------------ tokens that must not verify


def test_token_checked_against_another_sha256_fails(stamped: TimestampToken, local_tsa: LocalTsa) -> None:
    record = dataclasses.replace(stamped, sha256=OTHER_SHA)  # even if the record is edited to match
    for token in (stamped, record):
        verdict = verify_token(token, OTHER_SHA, ca_certs=[local_tsa.ca_cert_pem])
        assert not verdict.ok
        assert f"the token time-stamps sha256 {SHA}, not {OTHER_SHA}" in verdict.reason


@pytest.mark.parametrize("field", ["gen_time", "serial"])
def test_recorded_fields_must_match_the_token(
    stamped: TimestampToken,
    local_tsa: LocalTsa,
    field: str,
) -> None:
    edited = (
        dataclasses.replace(stamped, gen_time=stamped.gen_time - timedelta(days=1))
        if field == "gen_time"
        else dataclasses.replace(stamped, serial="0x1234")
    )
    verdict = verify_token(edited, SHA, ca_certs=[local_tsa.ca_cert_pem])
    assert not verdict.ok
    assert "differs from the token's" in verdict.reason


@pytest.mark.parametrize("where", ["gen_time digit", "serial number", "imprint", "last byte"])
def test_tampered_signed_content_fails(
    stamped: TimestampToken,
    local_tsa: LocalTsa,
    where: str,
) -> None:
    start, end = tstinfo_span(stamped)
    tstinfo = stamped.token[start:end]
    if where == "gen_time digit":
        gen = re.search(rb"\x18\x0f(\d{14})Z", tstinfo)
        assert gen
        offset = start + gen.start(1) + 13  # the last digit of the seconds: still a valid time
    elif where == "serial number":
        serial = int(stamped.serial, 16).to_bytes(1, "big")
        offset = start + tstinfo.index(b"\x02\x01" + serial) + 2
    elif where == "imprint":
        offset = start + tstinfo.index(bytes.fromhex(SHA)) + 5
    else:
        offset = end - 1
    verdict = verify_token(flipped(stamped, offset), SHA, ca_certs=[local_tsa.ca_cert_pem])
    assert not verdict.ok
    assert verdict.reason.startswith("the token does not verify: ")
    assert "digest failure" in verdict.reason  # the messageDigest attribute no longer matches


@pytest.mark.parametrize("position", ["first byte of r", "middle", "last byte of s"])
def test_tampered_signature_fails(
    stamped: TimestampToken,
    local_tsa: LocalTsa,
    position: str,
) -> None:
    start, end = signature_span(stamped)
    offset = {"first byte of r": start + 4, "middle": (start + end) // 2, "last byte of s": end - 1}[position]
    verdict = verify_token(flipped(stamped, offset), SHA, ca_certs=[local_tsa.ca_cert_pem])
    assert not verdict.ok
    assert verdict.reason.startswith("the token does not verify: ")
    assert "signature failure" in verdict.reason


def test_every_single_bit_flip_is_refused_or_changes_nothing_signed(
    stamped: TimestampToken,
    local_tsa: LocalTsa,
) -> None:
    """Flip each bit 0 and bit 7 of every byte: verification never raises, and the rare flips that
    still verify sit in fields nobody signs (SignedData/SignerInfo version numbers, the signature
    algorithm OID OpenSSL does not rely on for ECDSA) and change nothing the token asserts."""
    tst_start, tst_end = tstinfo_span(stamped)
    sig_start, sig_end = signature_span(stamped)
    original = describe_token(stamped)
    asserted = ("policy_oid", "message_imprint", "token_gen_time", "token_serial", "tsa_name", "nonce")
    still_ok: list[int] = []
    for offset in range(len(stamped.token)):
        for bit in (0x01, 0x80):
            tampered = flipped(stamped, offset, bit)
            verdict = verify_token(tampered, SHA, ca_certs=[local_tsa.ca_cert_pem])
            assert verdict.reason and "\n" not in verdict.reason
            if verdict.ok:
                still_ok.append(offset)
                assert not tst_start <= offset < tst_end
                assert not sig_start <= offset < sig_end
                described = describe_token(tampered)
                assert {k: described[k] for k in asserted} == {k: original[k] for k in asserted}
    assert len(set(still_ok)) < 16, still_ok


def test_token_verified_against_another_ca_fails(stamped: TimestampToken) -> None:
    other = make_ca("Some Other Root CA")
    verdict = verify_token(stamped, SHA, ca_certs=[other.cert_pem])
    assert not verdict.ok
    assert "unable to get local issuer certificate" in verdict.reason


def test_pinning_the_tsa_certificate_does_not_make_it_a_trust_anchor(
    stamped: TimestampToken,
    local_tsa: LocalTsa,
) -> None:
    other = make_ca("Some Other Root CA")
    verdict = verify_token(stamped, SHA, ca_certs=[other.cert_pem], tsa_cert=local_tsa.tsa_cert_pem)
    assert not verdict.ok
    assert "unable to get local issuer certificate" in verdict.reason


def test_token_from_another_tsa_of_the_same_ca_fails_when_the_tsa_is_pinned(
    own_ca_tsa: tuple[TestCa, LocalTsa],
) -> None:
    ca, tsa = own_ca_tsa
    token = Rfc3161Authority(tsa.url, ca_certs=[ca.cert_pem]).stamp(SHA)
    _, sibling = make_signer(ca, "Sibling TSA")
    sibling_pem = sibling.public_bytes(serialization.Encoding.PEM)
    assert verify_token(token, SHA, ca_certs=[ca.cert_pem]).ok
    verdict = verify_token(token, SHA, ca_certs=[ca.cert_pem], tsa_cert=sibling_pem)
    assert not verdict.ok
    assert "does not match" in verdict.reason


def _cms_sign_tstinfo(tstinfo: bytes, ca: TestCa, directory: Path, **signer: object) -> bytes:
    """A TimeStampToken made by hand: `openssl cms -sign` over a TSTInfo with a certificate of our
    choosing (what `openssl ts -reply` refuses to do with a non-TSA certificate)."""
    key, cert = make_signer(ca, "Hand-made signer", **signer)  # type: ignore[arg-type]
    write_key(directory / "signer.key", key)
    (directory / "signer.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "tstinfo.der").write_bytes(tstinfo)
    subprocess.run(
        [
            *("openssl", "cms", "-sign", "-binary", "-nodetach", "-nosmimecap", "-md", "sha256"),
            *("-econtent_type", TSTINFO_OID, "-signer", "signer.pem", "-inkey", "signer.key"),
            *("-in", "tstinfo.der", "-outform", "DER", "-out", "token.der"),
        ],
        cwd=directory,
        capture_output=True,
        timeout=30,
        check=True,
    )
    return (directory / "token.der").read_bytes()


@pytest.mark.parametrize(
    "signer",
    [
        pytest.param({"eku": (ExtendedKeyUsageOID.EMAIL_PROTECTION,)}, id="eku-emailProtection"),
        pytest.param({"eku": None}, id="no-eku"),
        pytest.param({"eku_critical": False}, id="timeStamping-eku-not-critical"),
        pytest.param(
            {"eku": (ExtendedKeyUsageOID.TIME_STAMPING, ExtendedKeyUsageOID.CODE_SIGNING)},
            id="timeStamping-plus-codeSigning",
        ),
    ],
)
def test_token_signed_without_a_proper_timestamping_eku_fails(
    own_ca_tsa: tuple[TestCa, LocalTsa], tmp_path: Path, signer: dict[str, object]
) -> None:
    ca, tsa = own_ca_tsa
    genuine = Rfc3161Authority(tsa.url, ca_certs=[ca.cert_pem]).stamp(SHA)
    tstinfo = tstinfo_der(genuine)

    # control: the same hand-made procedure with a proper TSA certificate verifies
    control = _cms_sign_tstinfo(tstinfo, ca, tmp_path)
    assert verify_token(dataclasses.replace(genuine, token=control), SHA, ca_certs=[ca.cert_pem]).ok

    forged = _cms_sign_tstinfo(tstinfo, ca, tmp_path, **signer)
    verdict = verify_token(dataclasses.replace(genuine, token=forged), SHA, ca_certs=[ca.cert_pem])
    assert not verdict.ok
    # OpenSSL's timestamp-signing purpose check (under rfc3161-client) refuses all of these before
    # the library's own EKU checks run; either way the token is refused
    assert re.search(r"unsuitable certificate purpose|EKU", verdict.reason), verdict.reason


def test_openssl_will_not_run_a_tsa_without_the_timestamping_eku() -> None:
    """The second TSA configuration: its certificate has EKU emailProtection. `openssl ts -reply`
    refuses to sign with it, so the server answers 500, which the client reports as transient."""
    with running_tsa(eku=(ExtendedKeyUsageOID.EMAIL_PROTECTION,), common_name="Not A TSA") as tsa:
        authority = Rfc3161Authority(tsa.url, ca_certs=[tsa.ca_cert_pem])
        with pytest.raises(TransientError, match="answered HTTP 500"):
            authority.stamp(SHA)
        assert tsa.requests.value == 1


# ------------------------------------------------------------------ refused at stamp time


def _forward(url: str, request: bytes, timeout_s: float) -> bytes:
    return timestamping.post_timestamp_query(url, request, timeout_s)


def test_reply_to_another_request_is_refused_by_nonce(local_tsa: LocalTsa) -> None:
    """A reply over the same digest but for another request (another nonce): a replay or a mix-up."""

    def replay(url: str, request: bytes, timeout_s: float) -> bytes:
        other = TimestampRequestBuilder().data(FOOTAGE).hash_algorithm(HashAlgorithm.SHA256).build()
        assert other.message_imprint.message == parse_timestamp_request(request).message_imprint.message
        return _forward(url, other.as_bytes(), timeout_s)

    authority = Rfc3161Authority(local_tsa.url, ca_certs=[local_tsa.ca_cert_pem], http_post=replay)
    with pytest.raises(IntegrityError, match="not for this request: nonce mismatch"):
        authority.stamp(SHA)


def test_reply_over_another_digest_is_refused(local_tsa: LocalTsa) -> None:
    def swap_digest(url: str, request: bytes, timeout_s: float) -> bytes:
        nonce = parse_timestamp_request(request).nonce
        assert nonce is not None
        return _forward(url, timestamp_request_der(bytes.fromhex(OTHER_SHA), nonce), timeout_s)

    authority = Rfc3161Authority(local_tsa.url, ca_certs=[local_tsa.ca_cert_pem], http_post=swap_digest)
    with pytest.raises(IntegrityError, match="time-stamps another digest"):
        authority.stamp(SHA)


def test_token_from_an_untrusted_tsa_is_refused(local_tsa: LocalTsa) -> None:
    authority = Rfc3161Authority(local_tsa.url, ca_certs=[make_ca("Some Other Root CA").cert_pem])
    with pytest.raises(IntegrityError, match=r"does not verify: .*unable to get local issuer certificate"):
        authority.stamp(SHA)


def test_tsa_rejection_is_a_configuration_error(local_tsa: LocalTsa) -> None:
    """The TSA accepts only SHA-2 imprints; a SHA-1 request comes back status=rejection."""

    def sha1_request(url: str, request: bytes, timeout_s: float) -> bytes:
        der, uint = timestamping._der, timestamping._der_uint
        nonce = parse_timestamp_request(request).nonce
        assert nonce is not None
        sha1 = der(0x30, bytes.fromhex("06052b0e03021a") + b"\x05\x00")
        imprint = der(0x30, sha1 + der(0x04, hashlib.sha1(FOOTAGE).digest()))
        return _forward(url, der(0x30, uint(1) + imprint + uint(nonce) + b"\x01\x01\xff"), timeout_s)

    authority = Rfc3161Authority(local_tsa.url, ca_certs=[local_tsa.ca_cert_pem], http_post=sha1_request)
    with pytest.raises(ConfigurationError, match="did not grant the request: REJECTION"):
        authority.stamp(SHA)


# ------------------------------------------------------------------ transport failures


@contextmanager
def answering(status: int, body: bytes = b"", content_type: str = "text/plain") -> Iterator[str]:
    """A stand-in server that answers every POST with `status`; yields its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/tsa"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_unreachable_tsa_is_transient(local_tsa: LocalTsa) -> None:
    url = f"http://127.0.0.1:{free_port()}/tsa"  # nothing listens there
    authority = Rfc3161Authority(url, ca_certs=[local_tsa.ca_cert_pem], timeout_s=5)
    with pytest.raises(TransientError) as caught:
        authority.stamp(SHA)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"time-stamping authority {url} is unreachable: ")
    assert "refused" in message.lower()


@pytest.mark.parametrize("status", [500, 502, 503])
def test_tsa_server_error_is_transient(local_tsa: LocalTsa, status: int) -> None:
    with answering(status, b"Traceback (most recent call last):\n  boom\n") as url:
        authority = Rfc3161Authority(url, ca_certs=[local_tsa.ca_cert_pem], timeout_s=5)
        with pytest.raises(TransientError) as caught:
            authority.stamp(SHA)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"time-stamping authority {url} answered HTTP {status}")


def test_tsa_that_is_too_slow_is_transient(local_tsa: LocalTsa) -> None:
    release = threading.Event()

    class Slow(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            release.wait(10)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/tsa"
        authority = Rfc3161Authority(url, ca_certs=[local_tsa.ca_cert_pem], timeout_s=0.5)
        with pytest.raises(
            TransientError, match=r"time-stamping authority .* (unreachable|failed): .*timed out"
        ):
            authority.stamp(SHA)
    finally:
        release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_wrong_url_and_non_tsa_answers_are_configuration_errors(local_tsa: LocalTsa) -> None:
    with (
        answering(404, b"not found") as url,
        pytest.raises(ConfigurationError, match=r"answered HTTP 404 .*check the TSA URL"),
    ):
        Rfc3161Authority(url, ca_certs=[local_tsa.ca_cert_pem]).stamp(SHA)
    with (
        answering(200, b"<html>hello</html>", "text/html") as url,
        pytest.raises(ConfigurationError, match="did not answer with an RFC 3161 reply"),
    ):
        Rfc3161Authority(url, ca_certs=[local_tsa.ca_cert_pem]).stamp(SHA)


# ------------------------------------------------------------------ settings


def test_bad_tsa_settings_are_configuration_errors(local_tsa: LocalTsa) -> None:
    ca = [local_tsa.ca_cert_pem]
    with pytest.raises(ConfigurationError, match="http:// or https://"):
        Rfc3161Authority("ftp://tsa.example/", ca_certs=ca)
    with pytest.raises(ConfigurationError, match="http:// or https://"):
        Rfc3161Authority("tsa.example", ca_certs=ca)
    with pytest.raises(ConfigurationError, match="timeout"):
        Rfc3161Authority(local_tsa.url, ca_certs=ca, timeout_s=0)
    with pytest.raises(ConfigurationError, match="no certificates"):
        Rfc3161Authority(local_tsa.url, ca_certs=[])
    with pytest.raises(ConfigurationError, match=r"TSA CA certificates: not PEM X\.509 certificates"):
        Rfc3161Authority(local_tsa.url, ca_certs=[b"not a certificate"])
    with pytest.raises(ConfigurationError, match="no self-signed root"):
        Rfc3161Authority(local_tsa.url, ca_certs=[local_tsa.tsa_cert_pem])
    with pytest.raises(ConfigurationError, match="expected one certificate"):
        Rfc3161Authority(local_tsa.url, ca_certs=ca, tsa_cert=local_tsa.tsa_cert_pem * 2)


def test_verification_needs_trust_anchors_and_a_real_sha256(stamped: TimestampToken) -> None:
    with pytest.raises(ConfigurationError, match="CA certificates"):
        verify_token(stamped, SHA)
    with pytest.raises(ValueError, match="not a sha256"):
        verify_token(stamped, SHA.upper(), ca_certs=[make_ca().cert_pem])


def test_intermediate_ca_in_the_trust_list() -> None:
    """A TSA under an intermediate CA: the chain file (intermediate + root) verifies the token."""
    root = make_ca("Chain Root CA")
    intermediate = make_ca("Chain Intermediate CA", issuer=root)
    with running_tsa(ca=intermediate, common_name="Chained TSA") as tsa:
        chain = [intermediate.cert_pem + root.cert_pem]
        token = Rfc3161Authority(tsa.url, ca_certs=chain).stamp(SHA)
        assert verify_token(token, SHA, ca_certs=chain).ok
        assert verify_token(token, SHA, ca_certs=[root.cert_pem, intermediate.cert_pem]).ok
        # the root alone is not enough: the token embeds only the TSA's own certificate
        verdict = verify_token(token, SHA, ca_certs=[root.cert_pem])
        assert not verdict.ok and "issuer certificate" in verdict.reason
