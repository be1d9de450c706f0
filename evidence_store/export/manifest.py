"""The machine-readable parts of an export package, as pure functions.

* ``manifest.json``: canonical JSON (keys sorted, no whitespace, UTF-8, no trailing newline) so that
  the same facts always give the same bytes; the station key signs exactly these bytes
  (``manifest.json.sig``, a raw 64-byte Ed25519 signature, what ``openssl pkeyutl -verify -rawin``
  reads). Its ``files`` object lists the sha256 and size of every other file of the package except
  ``SHA256SUMS`` and the signature, so the signature covers all content.
* ``SHA256SUMS``: the format of GNU ``sha256sum`` (``<hex>  <path>``, one line per file, sorted by
  path), listing every file except itself and ``manifest.json.sig`` (``manifest.json`` included), so
  ``sha256sum -c SHA256SUMS`` run inside the package checks everything.
"""

from __future__ import annotations

import json
import re
from typing import Any

MANIFEST_FORMAT = "evidence-store/export-manifest/v1"
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.json.sig"
SUMS_NAME = "SHA256SUMS"
PUBLIC_KEY_NAME = "station-ed25519.pub.pem"
NOTE_HTML = "note.html"
NOTE_PDF = "note.pdf"
ORIGINALS_DIR = "originals"
DERIVATIVES_DIR = "derivatives"
TIMESTAMPS_DIR = "timestamps"
TRUST_DIR = "trust"
TSA_CA_NAME = f"{TRUST_DIR}/tsa-ca.pem"
TSA_CERT_NAME = f"{TRUST_DIR}/tsa-cert.pem"
C2PA_CA_NAME = f"{TRUST_DIR}/c2pa-ca.pem"
UNSUMMED = frozenset({SUMS_NAME, SIGNATURE_NAME})  # not listed in SHA256SUMS
UNLISTED = frozenset({SUMS_NAME, SIGNATURE_NAME, MANIFEST_NAME})  # not in manifest["files"]

_SAFE_PATH = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")
_SUM_LINE = re.compile(r"^([0-9a-f]{64}) [ *](.+)$")


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def check_path(path: str) -> str:
    """Package paths are plain relative ASCII paths (no escaping needed in SHA256SUMS, no `..`)."""
    if not _SAFE_PATH.fullmatch(path) or any(part in (".", "..") for part in path.split("/")):
        raise ValueError(f"not a safe package path: {path!r}")
    return path


def sums_text(hashes: dict[str, str]) -> str:
    """SHA256SUMS for `hashes` (path -> sha256), sorted by path."""
    return "".join(f"{hashes[path]}  {check_path(path)}\n" for path in sorted(hashes))


def parse_sums(text: str) -> tuple[dict[str, str], list[str]]:
    """(path -> sha256, problems) from a SHA256SUMS text."""
    found: dict[str, str] = {}
    problems: list[str] = []
    if text and not text.endswith("\n"):
        problems.append("the last line does not end with a newline")
    for number, line in enumerate(text.split("\n"), start=1):
        if not line:
            continue
        match = _SUM_LINE.fullmatch(line)
        if not match:
            problems.append(f"line {number} is not '<sha256>  <path>'")
            continue
        digest, path = match.groups()
        try:
            check_path(path)
        except ValueError:
            problems.append(f"line {number} names an unsafe path {path!r}")
            continue
        if path in found:
            problems.append(f"line {number} lists {path} a second time")
        found[path] = digest
    return found, problems


def fingerprint_line(fingerprint: str) -> str:
    """A fingerprint in groups of four for people to compare by eye."""
    return " ".join(fingerprint[i : i + 4] for i in range(0, len(fingerprint), 4))


SHA256SUMS_HELP = [
    "用标准工具核验（无需本系统） Verify with standard tools alone (no evidence software needed):",
    "1. 校验全部文件 Every file's hash:  cd <package directory> && sha256sum --strict -c SHA256SUMS",
    "2. 校验站点签名 The station's signature over manifest.json (which lists every file's hash):",
    "   openssl pkeyutl -verify -pubin -inkey station-ed25519.pub.pem -rawin -in manifest.json "
    "-sigfile manifest.json.sig",
    "3. 核对公钥指纹 The key's fingerprint, to compare with the one printed above:",
    "   openssl pkey -pubin -in station-ed25519.pub.pem -outform DER | tail -c 32 | sha256sum",
    "4. 校验RFC 3161时间戳 An RFC 3161 time-stamp of an original:",
    "   openssl ts -verify -token_in -in timestamps/<sha256>.tsr -digest <sha256> -CAfile trust/tsa-ca.pem",
    "5. 一次全部核验 Everything at once, offline: evidence verify <package directory or .zip>",
]
