"""C2PA Content Credentials for export derivatives (segments, disclosure copies), signed by the station.

C2PA signs with an X.509 certificate chain. What c2pa-rs (through c2pa-python) demands of it, found by
trying (c2pa-rs 0.91):

* the signing certificate must not be self-signed (a self-signed leaf is ``signingCredential.invalid``):
  it is issued by a CA, and the chain handed to the signer is leaf first, then the CA;
* the leaf must carry an extended key usage c2pa-rs accepts: ``emailProtection`` (1.3.6.1.5.5.7.3.4);
  ``documentSigning`` (1.3.6.1.5.5.7.3.36) alone or ``c2pa-kp-claimSigning`` (1.3.6.1.4.1.62558.2.1)
  alone are refused as "certificate missing required EKU", so both emailProtection and documentSigning
  are set; ``anyExtendedKeyUsage`` must not be there;
* ``basicConstraints CA:FALSE`` and ``keyUsage digitalSignature`` (critical) on the leaf, an authority
  key identifier pointing at the CA; ``CA:TRUE`` and ``keyCertSign`` on the CA;
* algorithm: Ed25519 is supported (``C2paSigningAlg.ED25519``), as are ES256/384/512 and PS256/384/512;
* a manifest with a ``parentOf`` ingredient must start its actions with ``c2pa.opened`` naming it.

Reading: without trust anchors a good credential is ``Valid`` but carries the failure
``signingCredential.untrusted``; with the station's C2PA CA as trust anchor it is ``Trusted``. The
verifier therefore demands ``Trusted`` and no failure, with the CA certificate from the package.

The station's C2PA credentials are made lazily at the first export (`ensure_c2pa_credentials`): a
dedicated Ed25519 CA key and self-signed CA certificate, and a dedicated Ed25519 signing key with a
leaf certificate issued by that CA, all in ``settings.keys_dir`` (private keys mode 0600, refused if
readable by others, like the station key). The audit-signing station key is never handed to the C
library. The package binds the CA to the station key: the CA certificate is listed with its hash in
``manifest.json``, which the station key signs.

Without a time-stamp in the credential, C2PA validates the certificate at the time of reading, so both
certificates are valid for 30 years (the longest evidence retention short of permanent).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from evidence_store.errors import ConfigurationError

CA_KEY_NAME = "c2pa-ca-ed25519.pem"
CA_CERT_NAME = "c2pa-ca.pem"
SIGNER_KEY_NAME = "c2pa-signer-ed25519.pem"
SIGNER_CERT_NAME = "c2pa-signer.pem"
VALIDITY = timedelta(days=30 * 366)
RENEW_BEFORE = timedelta(days=365)
DOCUMENT_SIGNING = ObjectIdentifier("1.3.6.1.5.5.7.3.36")
LINEAGE_LABEL = "evidence-store.lineage"
MIME_MP4 = "video/mp4"
GENERATOR = {"name": "bodycam-evidence", "version": "0.1.0"}


@dataclass(frozen=True)
class C2paCredentials:
    signer_key_pem: bytes
    signer_cert_pem: bytes
    ca_cert_pem: bytes

    @property
    def chain_pem(self) -> bytes:
        """What the signer is given: the leaf, then the CA."""
        return self.signer_cert_pem + self.ca_cert_pem

    @property
    def ca_fingerprint(self) -> str:
        """sha256 of the CA certificate's DER."""
        cert = x509.load_pem_x509_certificate(self.ca_cert_pem)
        return cert.fingerprint(hashes.SHA256()).hex()


# ------------------------------------------------------------------ certificates


def _name(organisation: str, common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation[:64] or "Evidence station"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64]),
        ]
    )


def _key_usage(*, sign: bool, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def make_ca(
    organisation: str, station_name: str, now: datetime
) -> tuple[Ed25519PrivateKey, x509.Certificate]:
    key = Ed25519PrivateKey.generate()
    name = _name(organisation, f"{station_name} C2PA CA")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(sign=False, ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, None)
    )
    return key, cert


def make_signer(
    ca_key: Ed25519PrivateKey, ca_cert: x509.Certificate, organisation: str, station_name: str, now: datetime
) -> tuple[Ed25519PrivateKey, x509.Certificate]:
    key = Ed25519PrivateKey.generate()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(organisation, f"{station_name} C2PA signer"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(min(now + VALIDITY, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(sign=True, ca=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION, DOCUMENT_SIGNING]), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, None)
    )
    return key, cert


def _private_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _write_private(path: Path, pem: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _write_public(path: Path, pem: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(pem)
    os.replace(tmp, path)


def _read_private(path: Path) -> Ed25519PrivateKey:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigurationError(
            f"C2PA key {path} is accessible to other users (mode {stat.filemode(mode)}); "
            "restrict it with chmod 600"
        )
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigurationError(f"{path} is not an Ed25519 private key")
    return key


def ensure_c2pa_credentials(
    keys_dir: Path, *, organisation: str, station_name: str, now: datetime
) -> tuple[C2paCredentials, list[str]]:
    """Load the station's C2PA CA and signer, creating what is missing (or a signer about to expire).

    Returns the credentials and what was created (for the audit log)."""
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    created: list[str] = []
    ca_key_path, ca_cert_path = keys_dir / CA_KEY_NAME, keys_dir / CA_CERT_NAME
    signer_key_path, signer_cert_path = keys_dir / SIGNER_KEY_NAME, keys_dir / SIGNER_CERT_NAME
    if ca_key_path.exists() and ca_cert_path.exists():
        ca_key = _read_private(ca_key_path)
        ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
    else:
        ca_key, ca_cert = make_ca(organisation, station_name, now)
        _write_private(ca_key_path, _private_pem(ca_key))
        _write_public(ca_cert_path, _cert_pem(ca_cert))
        created.append("C2PA CA")
        signer_cert_path.unlink(missing_ok=True)  # a signer of another CA is of no use
    renew = True
    if signer_key_path.exists() and signer_cert_path.exists():
        signer_cert = x509.load_pem_x509_certificate(signer_cert_path.read_bytes())
        renew = signer_cert.not_valid_after_utc - now < RENEW_BEFORE or signer_cert.issuer != ca_cert.subject
    if renew:
        signer_key, signer_cert = make_signer(ca_key, ca_cert, organisation, station_name, now)
        _write_private(signer_key_path, _private_pem(signer_key))
        _write_public(signer_cert_path, _cert_pem(signer_cert))
        created.append("C2PA signing certificate")
    else:
        signer_key = _read_private(signer_key_path)
    return (
        C2paCredentials(
            signer_key_pem=_private_pem(signer_key),
            signer_cert_pem=_cert_pem(signer_cert),
            ca_cert_pem=_cert_pem(ca_cert),
        ),
        created,
    )


# ------------------------------------------------------------------ signing


def derivative_manifest(
    *,
    title: str,
    original_title: str,
    original_sha256: str,
    original_format: str,
    description: str,
    lineage: dict[str, Any],
    software: str,
) -> dict[str, Any]:
    """The C2PA manifest definition of a derivative: the original as parent ingredient (named by its
    sha256; the original itself is never read or rewritten by C2PA), the actions, and the lineage."""
    return {
        "claim_generator_info": [GENERATOR],
        "title": title,
        "format": MIME_MP4,
        "ingredients": [
            {
                "title": original_title,
                "format": original_format,
                "relationship": "parentOf",
                "instance_id": f"urn:sha256:{original_sha256}",
                "label": "original",
            }
        ],
        "assertions": [
            {
                "label": "c2pa.actions.v2",
                "data": {
                    "actions": [
                        {"action": "c2pa.opened", "parameters": {"ingredientIds": ["original"]}},
                        {
                            "action": "c2pa.edited",
                            "softwareAgent": {"name": software},
                            "parameters": {"description": description},
                        },
                    ]
                },
            },
            {"label": LINEAGE_LABEL, "data": {"original_sha256": original_sha256, **lineage}},
        ],
    }


def sign_file(source: Path, target: Path, credentials: C2paCredentials, manifest: dict[str, Any]) -> None:
    """Embed a Content Credential for `manifest` into a copy of `source` written to `target`."""
    import c2pa  # lazy: the C2PA library (a native extension) loads only when a file is signed or checked

    info = c2pa.C2paSignerInfo(
        c2pa.C2paSigningAlg.ED25519, credentials.chain_pem, credentials.signer_key_pem, None
    )
    try:
        with (
            c2pa.Signer.from_info(info) as signer,
            c2pa.Builder(manifest) as builder,
            source.open("rb") as src,
            target.open("w+b") as dst,
        ):
            builder.sign(signer, MIME_MP4, src, dst)
    except c2pa.C2paError as exc:
        target.unlink(missing_ok=True)
        raise ConfigurationError(f"C2PA signing of {source.name} failed: {exc}") from exc


# ------------------------------------------------------------------ reading


@dataclass
class CredentialCheck:
    ok: bool
    state: str
    problems: list[str] = field(default_factory=list)
    lineage: dict[str, Any] = field(default_factory=dict)
    signer: str = ""


def offline_context_settings(trust_anchors_pem: bytes) -> dict[str, Any]:
    """Reader settings: trust only the given anchors, fetch nothing over the network."""
    return {
        "verify": {"verify_trust": True, "ocsp_fetch": False, "remote_manifest_fetch": False},
        "trust": {"trust_anchors": trust_anchors_pem.decode("ascii")},
    }


def check_credential(path: Path, trust_anchors_pem: bytes, mime_type: str = MIME_MP4) -> CredentialCheck:
    """Validate the Content Credential embedded in `path` against `trust_anchors_pem`, offline."""
    import c2pa  # lazy: the C2PA library (a native extension) loads only when a file is signed or checked

    try:
        context = c2pa.Context.from_dict(offline_context_settings(trust_anchors_pem))
        with path.open("rb") as stream, c2pa.Reader(mime_type, stream, None, context) as reader:
            state = str(reader.get_validation_state() or "")
            results = reader.get_validation_results() or {}
            active = reader.get_active_manifest() or {}
    except c2pa.C2paError as exc:
        return CredentialCheck(False, "unreadable", [f"no valid Content Credential: {_one_line(str(exc))}"])
    failures = [
        f"{item.get('code')}: {item.get('explanation', '')}".strip()
        for item in (results.get("activeManifest") or {}).get("failure") or []
    ]
    lineage: dict[str, Any] = {}
    for assertion in active.get("assertions") or []:
        if assertion.get("label") == LINEAGE_LABEL and isinstance(assertion.get("data"), dict):
            lineage = assertion["data"]
    signature = active.get("signature_info") or {}
    problems = list(failures)
    if state != "Trusted":
        problems.insert(0, f"validation state {state or 'none'}, not Trusted")
    if not lineage:
        problems.append(f"no {LINEAGE_LABEL} assertion naming the original")
    return CredentialCheck(
        ok=not problems,
        state=state,
        problems=problems,
        lineage=lineage,
        signer=str(signature.get("common_name", "")),
    )


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
