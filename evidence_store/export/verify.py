"""`evidence verify PACKAGE`: check an export package offline, with nothing but the package.

Works on the package directory or its .zip, on any machine: it reads no settings, no database and no
station home. Checks, each reported as a finding naming the file and the check:

1. layout: ``manifest.json``, ``manifest.json.sig``, ``SHA256SUMS`` and ``station-ed25519.pub.pem``
   are there;
2. station signature: ``manifest.json.sig`` is a valid Ed25519 signature over ``manifest.json`` by the
   included public key, and the manifest names that key's fingerprint (with ``--fingerprint`` the key
   must also be the one the verifier expects, e.g. as printed in the note or published by the unit);
3. hashes: every file is hashed once and compared with ``SHA256SUMS`` and with the manifest's
   ``files``; a file listed but missing, or present but listed nowhere, is a failure; each original is
   named by its own sha256 and is the one the manifest's item says;
4. time-stamps: each token verifies (`verify_token`) against the included TSA CA (RFC 3161) or the
   included station public key (station-signed), over the original's sha256;
5. Content Credentials: each derivative's C2PA manifest validates (c2pa Reader) with the included
   station C2PA CA as the only trust anchor (state ``Trusted``, no failure), and names as its ingredient
   the original the manifest says it was derived from;
6. custody events: each audit event in the manifest re-hashes to its recorded hash and carries a valid
   signature by the station it names (`key_fingerprint`): the building station's key, or one of the
   other stations' keys the manifest lists under ``trust.station_keys`` (several stations share one
   audit chain, issue 18); station-signed time-stamps likewise.

The verdict is VALID only if every check passes; exit status 0 valid, 1 invalid, 2 not a package.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from evidence_store.domain.audit_chain import chain_hash, signed_message_for_event
from evidence_store.errors import ConfigurationError
from evidence_store.export.manifest import (
    MANIFEST_FORMAT,
    MANIFEST_NAME,
    ORIGINALS_DIR,
    PUBLIC_KEY_NAME,
    SIGNATURE_NAME,
    SUMS_NAME,
    UNLISTED,
    UNSUMMED,
    canonical_json,
    parse_sums,
)
from evidence_store.keys import PublicKey
from evidence_store.timestamping import TimestampToken, describe_token, verify_token

CHUNK = 4 * 1024 * 1024


class NotAPackageError(ConfigurationError):
    """The path is not an export package (missing, not a directory or zip, no manifest)."""


@dataclass
class Finding:
    ok: bool
    file: str
    check: str
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "file": self.file, "check": self.check, "detail": self.detail}


@dataclass
class Verdict:
    package: str
    findings: list[Finding] = field(default_factory=list)
    disclosure: bool = False  # a party's redacted copy (R15), not a certified export of originals

    @property
    def ok(self) -> bool:
        return bool(self.findings) and all(f.ok for f in self.findings)

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if not f.ok]

    def add(self, ok: bool, file: str, check: str, detail: str) -> bool:
        self.findings.append(Finding(ok, file, check, detail))
        return ok

    def as_dict(self) -> dict[str, Any]:
        return {
            "package": self.package,
            "valid": self.ok,
            "checks": len(self.findings),
            "disclosure": self.disclosure,
            "problems": [f.as_dict() for f in self.problems],
            "findings": [f.as_dict() for f in self.findings],
        }


# ------------------------------------------------------------------ reading a package


class _Source:
    """The files of a package, from a directory or a zip, by relative path."""

    name: str

    def files(self) -> list[str]:
        raise NotImplementedError

    def open(self, rel: str) -> BinaryIO:
        raise NotImplementedError

    def read(self, rel: str) -> bytes:
        with self.open(rel) as handle:
            return handle.read()

    @contextlib.contextmanager
    def local_path(self, rel: str) -> Iterator[Path]:
        raise NotImplementedError
        yield Path()  # pragma: no cover

    def close(self) -> None:
        return None


class _DirSource(_Source):
    def __init__(self, root: Path) -> None:
        self.root = root
        self.name = str(root)

    def files(self) -> list[str]:
        return sorted(
            p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file() or p.is_symlink()
        )

    def open(self, rel: str) -> BinaryIO:
        return (self.root / rel).open("rb")

    @contextlib.contextmanager
    def local_path(self, rel: str) -> Iterator[Path]:
        yield self.root / rel


class _ZipSource(_Source):
    def __init__(self, path: Path) -> None:
        self.name = str(path)
        try:
            self.zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise NotAPackageError(f"{path} is not a readable zip file: {exc}") from exc
        names = [i.filename for i in self.zip.infolist() if not i.is_dir()]
        tops = {n.split("/", 1)[0] for n in names}
        if len(tops) != 1 or any("/" not in n for n in names):
            raise NotAPackageError(f"{path}: a package zip holds one folder with the package in it")
        self.top = tops.pop()
        self.members = {n.split("/", 1)[1]: n for n in names}

    def files(self) -> list[str]:
        return sorted(self.members)

    def open(self, rel: str) -> BinaryIO:
        return self.zip.open(self.members[rel])  # type: ignore[return-value]

    @contextlib.contextmanager
    def local_path(self, rel: str) -> Iterator[Path]:
        handle, name = tempfile.mkstemp(suffix=Path(rel).suffix)
        try:
            with os.fdopen(handle, "wb") as out, self.open(rel) as member:
                while chunk := member.read(CHUNK):
                    out.write(chunk)
            yield Path(name)
        finally:
            os.unlink(name)

    def close(self) -> None:
        self.zip.close()


def open_package(path: Path) -> _Source:
    if path.is_dir():
        return _DirSource(path)
    if path.is_file():
        return _ZipSource(path)
    raise NotAPackageError(f"{path} does not exist")


# ------------------------------------------------------------------ checks


def _hash_all(source: _Source, verdict: Verdict) -> dict[str, tuple[str, int]]:
    hashes: dict[str, tuple[str, int]] = {}
    for rel in source.files():
        if rel in UNSUMMED:
            continue
        digest = hashlib.sha256()
        size = 0
        try:
            with source.open(rel) as handle:
                while chunk := handle.read(CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
        except (OSError, zipfile.BadZipFile) as exc:  # a zip member whose CRC does not match
            verdict.add(False, rel, "read", f"cannot be read: {exc}")
            continue
        hashes[rel] = (digest.hexdigest(), size)
    return hashes


def _check_sums(source: _Source, hashes: dict[str, tuple[str, int]], verdict: Verdict) -> None:
    try:
        listed, problems = parse_sums(source.read(SUMS_NAME).decode("ascii"))
    except (UnicodeDecodeError, OSError, zipfile.BadZipFile) as exc:
        verdict.add(False, SUMS_NAME, "format", f"unreadable: {exc}")
        return
    for problem in problems:
        verdict.add(False, SUMS_NAME, "format", problem)
    bad = 0
    for rel, digest in sorted(listed.items()):
        if rel not in hashes:
            bad += 1
            verdict.add(False, rel, "SHA256SUMS", "listed in SHA256SUMS but missing or unreadable")
        elif hashes[rel][0] != digest:
            bad += 1
            verdict.add(False, rel, "SHA256SUMS", f"sha256 is {hashes[rel][0]}, SHA256SUMS says {digest}")
    for rel in sorted(set(hashes) - set(listed)):
        bad += 1
        verdict.add(False, rel, "SHA256SUMS", "present in the package but not listed in SHA256SUMS")
    if not bad and not problems:
        verdict.add(True, SUMS_NAME, "SHA256SUMS", f"all {len(listed)} listed files match")


def _check_manifest_files(
    manifest: dict[str, Any], hashes: dict[str, tuple[str, int]], verdict: Verdict
) -> None:
    files = manifest.get("files")
    if not isinstance(files, dict):
        verdict.add(False, MANIFEST_NAME, "files", "the manifest has no files list")
        return
    bad = 0
    for rel, entry in sorted(files.items()):
        have = hashes.get(rel)
        if have is None:
            bad += 1
            verdict.add(False, rel, "manifest hash", "listed in manifest.json but missing or unreadable")
            continue
        if not isinstance(entry, dict) or entry.get("sha256") != have[0] or entry.get("size") != have[1]:
            bad += 1
            want = entry.get("sha256") if isinstance(entry, dict) else entry
            verdict.add(
                False, rel, "manifest hash", f"sha256 is {have[0]} ({have[1]} bytes), manifest says {want}"
            )
    for rel in sorted(set(hashes) - set(files) - UNLISTED):
        bad += 1
        verdict.add(False, rel, "manifest hash", "present in the package but not listed in manifest.json")
    if not bad:
        verdict.add(
            True, MANIFEST_NAME, "manifest hash", f"all {len(files)} files listed in the manifest match"
        )


def _check_signature(
    source: _Source, manifest_bytes: bytes, expected_fingerprint: str | None, verdict: Verdict
) -> PublicKey | None:
    try:
        key = PublicKey.from_pem(source.read(PUBLIC_KEY_NAME))
    except (ValueError, ConfigurationError, OSError, zipfile.BadZipFile) as exc:
        verdict.add(False, PUBLIC_KEY_NAME, "public key", f"not an Ed25519 public key: {exc}")
        return None
    if expected_fingerprint:
        wanted = expected_fingerprint.replace(" ", "").replace(":", "").lower()
        verdict.add(
            key.fingerprint == wanted,
            PUBLIC_KEY_NAME,
            "expected key",
            f"fingerprint {key.fingerprint}" + ("" if key.fingerprint == wanted else f", expected {wanted}"),
        )
    try:
        signature = source.read(SIGNATURE_NAME)
    except (OSError, zipfile.BadZipFile) as exc:
        verdict.add(False, SIGNATURE_NAME, "station signature", f"unreadable: {exc}")
        return key
    good = len(signature) == 64 and key.verify(manifest_bytes, signature)
    verdict.add(
        good,
        SIGNATURE_NAME,
        "station signature",
        f"valid Ed25519 signature by station key {key.fingerprint}"
        if good
        else f"manifest.json.sig is not a valid signature over manifest.json by key {key.fingerprint}",
    )
    return key


def _station_keys(
    source: _Source, manifest: dict[str, Any], key: PublicKey | None, names: set[str], verdict: Verdict
) -> dict[str, PublicKey]:
    """fingerprint -> key, for every station key the package carries: its own (which signed the
    manifest) and the others the signed manifest lists; "" -> the key of events that name no signer."""
    if key is None:
        return {}
    keys = {key.fingerprint: key}
    trust = manifest.get("trust") or {}
    listed = trust.get("station_keys") or {}
    for fingerprint, entry in listed.items() if isinstance(listed, dict) else ():
        rel = entry.get("path") if isinstance(entry, dict) else None
        try:
            other = PublicKey.from_pem(source.read(rel)) if isinstance(rel, str) and rel in names else None
        except (ConfigurationError, ValueError, OSError, zipfile.BadZipFile):
            other = None
        ok = other is not None and other.fingerprint == fingerprint
        verdict.add(ok, str(rel), "station key", f"station {entry.get('name', '?')}'s key {fingerprint}")
        if ok and other is not None:
            keys[fingerprint] = other
    unnamed = trust.get("unnamed_events_signed_by")
    keys[""] = keys.get(unnamed, key) if isinstance(unnamed, str) else key
    return keys


def _check_timestamps(
    source: _Source, manifest: dict[str, Any], keys: dict[str, PublicKey], names: set[str], verdict: Verdict
) -> None:
    trust = manifest.get("trust") or {}
    ca_pem = _read_optional(source, trust.get("tsa_ca"), names)
    tsa_pem = _read_optional(source, trust.get("tsa_cert"), names)
    seen: set[str] = set()
    for item in manifest.get("items") or []:
        original = item.get("original") or {}
        for stamp in item.get("timestamps") or []:
            rel = stamp.get("path", "?")
            if rel in seen:
                continue
            seen.add(rel)
            if rel not in names:
                verdict.add(False, rel, "time-stamp", "the token file is missing")
                continue
            if stamp.get("sha256") != original.get("sha256"):
                verdict.add(False, rel, "time-stamp", "the token is not for this item's original")
                continue
            try:
                token = TimestampToken(
                    kind=stamp["kind"],
                    sha256=stamp["sha256"],
                    token=source.read(rel),
                    authority=stamp["authority"],
                    gen_time=datetime.fromisoformat(stamp["gen_time"]),
                    serial=stamp["serial"],
                )
                signer = describe_token(token).get("station_key_fingerprint", "")
                result = verify_token(
                    token,
                    stamp["sha256"],
                    ca_certs=[ca_pem] if ca_pem else None,
                    tsa_cert=tsa_pem,
                    station_public_key=keys.get(signer) or keys.get(""),
                )
            except (ConfigurationError, KeyError, ValueError, OSError, zipfile.BadZipFile) as exc:
                verdict.add(False, rel, "time-stamp", f"cannot be verified: {exc}")
                continue
            verdict.add(result.ok, rel, "time-stamp", result.reason)


def _read_optional(source: _Source, rel: Any, names: set[str]) -> bytes | None:
    if not isinstance(rel, str) or rel not in names:
        return None
    try:
        return source.read(rel)
    except (OSError, zipfile.BadZipFile):
        return None


def _check_credentials(source: _Source, manifest: dict[str, Any], names: set[str], verdict: Verdict) -> None:
    derivatives = [
        # a disclosure's item names its original by sha256 only (it is not in the package, R15)
        (item.get("original") or {"sha256": item.get("original_sha256")}, derived)
        for item in manifest.get("items") or []
        for derived in item.get("derivatives") or []
    ]
    if not derivatives:
        return
    # lazy: the C2PA library loads only for a package with derivatives to check
    from evidence_store.export.c2pa_signing import check_credential

    trust = manifest.get("trust") or {}
    anchors = _read_optional(source, trust.get("c2pa_ca"), names)
    if anchors is None:
        verdict.add(False, str(trust.get("c2pa_ca") or "trust/c2pa-ca.pem"), "C2PA", "the C2PA CA is missing")
        return
    for original, derived in derivatives:
        rel = derived.get("path", "?")
        if rel not in names:
            verdict.add(False, rel, "C2PA", "the derivative is missing")
            continue
        if derived.get("derived_from_sha256") != original.get("sha256"):
            verdict.add(
                False, rel, "lineage", "the manifest derives it from another file than the item's original"
            )
            continue
        try:
            with source.local_path(rel) as path:
                check = check_credential(path, anchors)
        except (OSError, zipfile.BadZipFile) as exc:
            verdict.add(False, rel, "C2PA", f"cannot be read: {exc}")
            continue
        if check.ok and check.lineage.get("original_sha256") != derived.get("derived_from_sha256"):
            check.ok = False
            check.problems.append(
                f"the credential names original {check.lineage.get('original_sha256')}, "
                f"not {derived.get('derived_from_sha256')}"
            )
        verdict.add(
            check.ok,
            rel,
            "C2PA",
            f"Content Credential {check.state}, signed by {check.signer}, "
            f"ingredient {derived['derived_from_sha256']}"
            if check.ok
            else "; ".join(check.problems),
        )


def _check_events(manifest: dict[str, Any], keys: dict[str, PublicKey], verdict: Verdict) -> None:

    events = [*((manifest.get("export") or {}).get("events") or [])]
    for item in manifest.get("items") or []:
        events.extend(item.get("custody_events") or [])
    if not events or not keys:
        return
    bad = 0
    for event in events:
        try:
            signer = event.get("key_fingerprint") or ""
            # an event naming its signer is hashed with the name (audit_chain._canonical); older ones not
            fields = [
                event["seq"],
                event["at"],
                event["actor"],
                event["action"],
                event["object_type"],
                event["object_id"],
                event["source"],
                event["details"],
                *([signer] if signer else []),
            ]
            canonical = json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()
            rehashed = chain_hash(event["prev_hash"], canonical)
            claimed = event["hash"]
            signature = base64.b64decode(event["signature"], validate=True)
        except (KeyError, TypeError, ValueError, AttributeError, binascii.Error) as exc:
            # a tampered manifest can name a field anything, or hold anything where an event was
            bad += 1
            verdict.add(False, MANIFEST_NAME, "custody event", f"malformed event: missing or bad {exc}")
            continue
        if rehashed != claimed:
            bad += 1
            verdict.add(
                False, MANIFEST_NAME, "custody event", f"event {event['seq']} does not hash to its hash"
            )
        elif (key := keys.get(signer)) is None:
            bad += 1
            verdict.add(
                False,
                MANIFEST_NAME,
                "custody event",
                f"event {event['seq']} is signed by key {signer}, which the package does not carry",
            )
        elif not key.verify(signed_message_for_event(claimed), signature):
            bad += 1
            verdict.add(False, MANIFEST_NAME, "custody event", f"event {event['seq']}: bad station signature")
    if not bad:
        verdict.add(
            True,
            MANIFEST_NAME,
            "custody events",
            f"{len(events)} audit events re-hash and carry station signatures",
        )


def _check_disclosure(manifest: dict[str, Any], names: set[str], verdict: Verdict) -> None:
    """A disclosure package (R15) says so, and holds no original: none listed, none among its files."""
    disclosure = manifest.get("disclosure")
    if not disclosure:
        return
    verdict.disclosure = True
    listed = [item.get("number") for item in manifest.get("items") or [] if item.get("original")]
    stored = sorted(n for n in names if n.startswith(f"{ORIGINALS_DIR}/"))
    ok = (
        isinstance(disclosure, dict) and disclosure.get("redacted_only") is True and not listed and not stored
    )
    verdict.add(
        ok,
        MANIFEST_NAME,
        "disclosure",
        f"a DISCLOSURE package for a party (R15, application {disclosure.get('application')}, "
        f"{disclosure.get('kind')}): redacted copies only, no original"
        if ok
        else f"marked as a disclosure but carries originals (items {listed}, files {stored})",
    )


def _check_originals(manifest: dict[str, Any], hashes: dict[str, tuple[str, int]], verdict: Verdict) -> None:
    seen: set[str] = set()
    for item in manifest.get("items") or []:
        if item.get("original") is None and item.get("original_sha256"):
            continue  # a disclosure's item: no original in the package
        original = item.get("original") or {}
        rel = str(original.get("path", "?"))
        if rel in seen:
            continue
        seen.add(rel)
        stem = Path(rel).name.split(".", 1)[0]
        have = hashes.get(rel)
        if have is None:
            continue  # already reported by the hash checks
        ok = have[0] == original.get("sha256") == stem and have[1] == original.get("size")
        verdict.add(
            ok,
            rel,
            "original",
            f"byte-identical to the original with sha256 {have[0]}"
            if ok
            else f"sha256 {have[0]} ({have[1]} bytes) is not the original {original.get('sha256')}",
        )


def verify_package(path: Path, *, expected_fingerprint: str | None = None) -> Verdict:
    """Verify the package at `path` (directory or zip). Raises NotAPackageError if it is none."""
    source = open_package(path)
    verdict = Verdict(str(path))
    try:
        names = set(source.files())
        for required in (MANIFEST_NAME, SIGNATURE_NAME, SUMS_NAME, PUBLIC_KEY_NAME):
            if required not in names:
                verdict.add(False, required, "layout", "missing")
        if MANIFEST_NAME not in names:
            if not names:
                raise NotAPackageError(f"{path} holds no files")
            return verdict
        hashes = _hash_all(source, verdict)
        try:
            manifest_bytes = source.read(MANIFEST_NAME)
        except (OSError, zipfile.BadZipFile) as exc:
            verdict.add(False, MANIFEST_NAME, "read", f"cannot be read: {exc}")
            return verdict
        key = (
            _check_signature(source, manifest_bytes, expected_fingerprint, verdict)
            if PUBLIC_KEY_NAME in names
            else None
        )
        if SUMS_NAME in names:
            _check_sums(source, hashes, verdict)
        try:
            manifest = json.loads(manifest_bytes.decode("utf-8"))
            if not isinstance(manifest, dict):
                raise ValueError("not a JSON object")
        except (UnicodeDecodeError, ValueError) as exc:
            verdict.add(False, MANIFEST_NAME, "format", f"not JSON: {exc}")
            return verdict
        _check_manifest(source, manifest, manifest_bytes, key, names, hashes, verdict)
    finally:
        source.close()
    return verdict


def _check_manifest(
    source: _Source,
    manifest: dict[str, Any],
    manifest_bytes: bytes,
    key: PublicKey | None,
    names: set[str],
    hashes: dict[str, tuple[str, int]],
    verdict: Verdict,
) -> None:
    """Every check that reads the manifest's structure. A tampered manifest can hold anything where an
    object or a list was (a string, a number, null): whichever check meets it first reports the
    manifest as malformed, and verification fails instead of stopping with a traceback."""
    try:
        verdict.add(
            manifest.get("format") == MANIFEST_FORMAT and canonical_json(manifest) == manifest_bytes,
            MANIFEST_NAME,
            "format",
            f"{manifest.get('format')}, canonical JSON",
        )
        if key is not None:
            named = (manifest.get("station") or {}).get("public_key_fingerprint")
            verdict.add(
                named == key.fingerprint,
                PUBLIC_KEY_NAME,
                "fingerprint",
                f"the manifest names key {named}; the included key is {key.fingerprint}",
            )
        _check_manifest_files(manifest, hashes, verdict)
        _check_originals(manifest, hashes, verdict)
        _check_disclosure(manifest, names, verdict)
        keys = _station_keys(source, manifest, key, names, verdict)
        _check_timestamps(source, manifest, keys, names, verdict)
        _check_credentials(source, manifest, names, verdict)
        _check_events(manifest, keys, verdict)
    except (AttributeError, TypeError, KeyError, IndexError) as exc:
        verdict.add(False, MANIFEST_NAME, "format", f"malformed manifest: {type(exc).__name__}: {exc}")
