"""The station's Ed25519 key: signs audit events, checkpoints and export manifests.

Generated once by `evidence init`, kept in ``$EVIDENCE_HOME/keys`` with mode 0600 (directory 0700).
A key file readable by others is refused rather than used.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from evidence_store.errors import ConfigurationError

PRIVATE_NAME = "station-ed25519.pem"
PUBLIC_NAME = "station-ed25519.pub.pem"


def fingerprint_of(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


class PublicKey:
    """Verification only: what an auditor or a court needs."""

    def __init__(self, key: Ed25519PublicKey) -> None:
        self._key = key
        self.fingerprint = fingerprint_of(key)

    @classmethod
    def from_pem(cls, pem: bytes) -> PublicKey:
        key = serialization.load_pem_public_key(pem)
        if not isinstance(key, Ed25519PublicKey):
            raise ConfigurationError("the public key is not an Ed25519 key")
        return cls(key)

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            self._key.verify(bytes(signature), message)
        except InvalidSignature:
            return False
        return True

    def pem(self) -> bytes:
        return self._key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


class StationKey(PublicKey):
    def __init__(self, key: Ed25519PrivateKey) -> None:
        super().__init__(key.public_key())
        self._private = key

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)

    def public(self) -> PublicKey:
        return PublicKey(self._private.public_key())


def create_station_key(keys_dir: Path) -> tuple[StationKey, bool]:
    """Load the station key, generating it on first use. Returns (key, created)."""
    private_path = keys_dir / PRIVATE_NAME
    if private_path.exists():
        return load_station_key(keys_dir), False
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(keys_dir, 0o700)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
        handle.flush()
        os.fsync(handle.fileno())
    station = StationKey(key)
    (keys_dir / PUBLIC_NAME).write_bytes(station.pem())
    return station, True


def load_station_key(keys_dir: Path) -> StationKey:
    private_path = keys_dir / PRIVATE_NAME
    try:
        mode = private_path.stat().st_mode
    except FileNotFoundError as exc:
        raise ConfigurationError(f"no station key at {private_path}: run 'evidence init' first") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigurationError(
            f"station key {private_path} is accessible to other users (mode {stat.filemode(mode)}); "
            "restrict it with chmod 600"
        )
    key = serialization.load_pem_private_key(private_path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigurationError(f"{private_path} is not an Ed25519 private key")
    return StationKey(key)
