"""The keys of the stations an export quotes (issue 18): several stations share one chain, so the
custody events and station-signed time-stamps in a package may be signed by stations other than the
one that builds it. The package carries each of their public keys (``station-keys/<fingerprint>.pub.pem``),
listed in the manifest that the building station signs, so `evidence verify` checks them offline.

Only keys the chain approves are carried (`station_trust.load_keyring`): a package never vouches for a
key `audit verify` would not trust.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from evidence_store.bootstrap import Station
from evidence_store.domain.stations import Keyring
from evidence_store.export.zip_writer import PackageWriter
from evidence_store.keys import PublicKey
from evidence_store.station_trust import load_keyring
from evidence_store.timestamping import STATION_SIGNED, TimestampToken, describe_token

STATION_KEYS_DIR = "station-keys"


def keyring_of(station: Station) -> Keyring:
    with station.connect() as connection:
        return load_keyring(connection, station.key)


def token_signer(token: TimestampToken) -> str | None:
    """The fingerprint of the station key that signed a station-signed time-stamp (None for others)."""
    if token.kind != STATION_SIGNED:
        return None
    return describe_token(token).get("station_key_fingerprint")


def public_key(keyring: Keyring, fingerprint: str) -> PublicKey | None:
    key = keyring.lookup(fingerprint)
    return PublicKey.from_pem(key.public_key.encode()) if key is not None and key.public_key else None


def write_station_keys(
    writer: PackageWriter, keyring: Keyring, builder: str, signers: Iterable[str]
) -> dict[str, Any]:
    """Write the key of every signer other than the building station (`builder`, whose key is the
    package's own); returns the manifest's `trust` entries naming them."""
    carried: dict[str, dict[str, str]] = {}
    unnamed: str | None = None
    for fingerprint in sorted(set(signers)):
        key = keyring.lookup(fingerprint)
        if key is None or not key.public_key:
            continue  # a key the chain never approved: verifying the package names what it signed
        if fingerprint == "":
            unnamed = key.fingerprint  # events from before events named their signer
        if key.fingerprint == builder or key.fingerprint in carried:
            continue
        path = f"{STATION_KEYS_DIR}/{key.fingerprint}.pub.pem"
        writer.write_bytes(path, key.public_key.encode())
        carried[key.fingerprint] = {"name": key.name, "path": path}
    return {"station_keys": carried, "unnamed_events_signed_by": unnamed}
