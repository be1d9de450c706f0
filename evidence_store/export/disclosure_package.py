"""The disclosure package: an approved COPY application's redacted copies, handed to a party (R15, R13).

The certified export package's format (`evidence_store.export.package`: the same ``manifest.json``
format, signature, ``SHA256SUMS``, bilingual note, station key and C2PA trust anchor), so the same
offline verifier checks it (`evidence verify`), marked as a disclosure: the manifest's ``disclosure``
object (application, kind, party, ``redacted_only: true``) and the note's title say so, and the
verifier reports it. It holds ONLY redacted copies (``redacted/<sha256>.mp4``, each the signed
derivative with its C2PA manifest naming the original by sha256); never an original, nor the clip's
documents, markers or custody trail (they name other people). Each item names its original by sha256
only (``original_sha256``) so the party's copy can be traced back to the record it came from.

Layout (``disclosure-000012/`` and ``disclosure-000012.zip``)::

    redacted/<sha256>.mp4   station-ed25519.pub.pem   trust/c2pa-ca.pem
    note.html  note.pdf  manifest.json  manifest.json.sig  SHA256SUMS

Built under hidden ``.partial`` names, renamed into place when complete; then the delivery is on
record (``disclosure.delivered`` with the manifest's sha256) and the application is ``delivered``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from evidence_store.bootstrap import Station
from evidence_store.disclosure import (
    OBJECT_TYPE,
    RedactedCopy,
    authorise_delivery,
    record_delivery,
)
from evidence_store.domain.disclosure import Application
from evidence_store.errors import ConfigurationError, ConflictError, IntegrityError
from evidence_store.export import facts as facts_module
from evidence_store.export.c2pa_signing import ensure_c2pa_credentials
from evidence_store.export.manifest import (
    C2PA_CA_NAME,
    MANIFEST_FORMAT,
    MANIFEST_NAME,
    NOTE_HTML,
    NOTE_PDF,
    PUBLIC_KEY_NAME,
    SIGNATURE_NAME,
    SUMS_NAME,
    canonical_json,
    sums_text,
)
from evidence_store.export.note import render_html, render_pdf
from evidence_store.export.station_keys import keyring_of, write_station_keys
from evidence_store.export.zip_writer import PackageWriter, package_writer

REDACTED_DIR = "redacted"


@dataclass(frozen=True)
class DisclosureResult:
    application_id: int
    directory: Path
    zip_path: Path
    manifest_sha256: str
    files: int


def package_name(application_id: int) -> str:
    return f"disclosure-{application_id:06d}"


def default_out_dir(station: Station) -> Path:
    return station.settings.home / "disclosures"


def zip_path_of(station: Station, application_id: int) -> Path:
    return default_out_dir(station) / f"{package_name(application_id)}.zip"


def _masked(number: str) -> str:
    """The party's identity document number with all but its last four characters hidden: the package
    identifies whom it was given to without carrying the whole number (R13)."""
    return "*" * max(len(number) - 4, 0) + number[-4:]


def build_disclosure_package(
    station: Station,
    application_id: int,
    *,
    user: str,
    out_dir: Path | None = None,
    source: str | None = None,
) -> DisclosureResult:
    """Build and deliver the disclosure package of an approved COPY application (see the module doc).
    Refused (audited) for a user without `disclosure.deliver`, an application not approved or not a
    copy; `ConflictError` when a clip has no render of its newest redaction specification."""
    application, copies = authorise_delivery(station, application_id, user=user, source=source)
    target = out_dir or default_out_dir(station)
    target.mkdir(parents=True, exist_ok=True)
    name = f"{package_name(application_id)}-{station.clock().strftime('%Y%m%dT%H%M%S')}"
    final_dir, final_zip = target / name, target / f"{name}.zip"
    if final_dir.exists() or final_zip.exists():
        raise ConfigurationError(f"{final_dir} or {final_zip} already exists: move it away first")
    token = uuid.uuid4().hex[:8]
    partial_dir, partial_zip = target / f".{name}.partial-{token}", target / f".{name}.zip.partial-{token}"
    built_at = station.clock()
    try:
        partial_dir.mkdir()
        with package_writer(partial_dir, partial_zip, name, built_at) as writer:
            manifest_sha256 = _write(station, writer, application, copies, user, built_at)
            writer.zip_rest()
            files = len(writer.hashes)
        partial_dir.rename(final_dir)
        os.replace(partial_zip, final_zip)
    except BaseException:
        shutil.rmtree(partial_dir, ignore_errors=True)
        partial_zip.unlink(missing_ok=True)
        raise
    try:
        with station.transaction() as session:
            record_delivery(
                station,
                session,
                application_id,
                user=user,
                details={
                    "package": name,
                    "manifest_sha256": manifest_sha256,
                    "copies": [
                        {"clip_id": c.clip_id, "render_id": c.render_id, "sha256": c.sha256} for c in copies
                    ],
                },
                source=source,
            )
    except BaseException:
        shutil.rmtree(final_dir, ignore_errors=True)
        final_zip.unlink(missing_ok=True)
        raise
    # the web serves the newest package of an application from a fixed name
    latest = zip_path_of(station, application_id)
    if target == default_out_dir(station):
        latest.unlink(missing_ok=True)
        os.link(final_zip, latest)
    return DisclosureResult(application_id, final_dir, final_zip, manifest_sha256, files)


def _write(
    station: Station,
    writer: PackageWriter,
    application: Application,
    copies: list[RedactedCopy],
    user: str,
    built_at: datetime,
) -> str:
    settings = station.settings
    credentials, _created = ensure_c2pa_credentials(
        settings.keys_dir,
        organisation=settings.unit_name or settings.station_name,
        station_name=settings.station_name,
        now=built_at,
    )
    with station.session() as session:
        events = facts_module.audit_trail(session, OBJECT_TYPE, application.id or 0)
        names = facts_module.people_names(session, [application.recorded_by, application.decided_by, user])
        clip_rows = {c.clip_id: facts_module.clip_facts(session, c.clip_id) for c in copies}
        case = facts_module.case_facts(session, application.case_id)
    items = []
    for number, copy in enumerate(copies, start=1):
        rel = f"{REDACTED_DIR}/{copy.sha256}.mp4"
        with station.blobs.open(copy.sha256) as source:
            sha256, size = writer.copy_original(rel, source, copy.size)
        if sha256 != copy.sha256:
            raise IntegrityError(
                f"the redacted copy of clip {copy.clip_id} reads as sha256 {sha256}, not {copy.sha256}: "
                "the store is damaged; nothing was delivered"
            )
        clip = clip_rows[copy.clip_id]
        items.append(
            {
                "number": number,
                "clip": {  # what identifies the record; no documents, markers or people of the case
                    "clip_id": copy.clip_id,
                    "original_name": copy.original_name,
                    "recording": clip.get("recording"),
                    "media_type": clip.get("media_type"),
                },
                "original": None,
                "original_sha256": copy.original_sha256,
                "segment": None,
                "disclosure": True,
                "derivatives": [
                    {
                        "kind": "redacted",
                        "path": rel,
                        "sha256": sha256,
                        "size": size,
                        "mime_type": "video/mp4",
                        "derived_from_sha256": copy.original_sha256,
                        "render_id": copy.render_id,
                        "spec_version": copy.spec_version,
                        "spec_sha256": copy.spec_sha256,
                        "content_credential": {"signer": "station C2PA signer"},
                    }
                ],
                "timestamps": [],
                "custody_events": [],
            }
        )
    writer.write_bytes(C2PA_CA_NAME, credentials.ca_cert_pem)
    writer.write_bytes(PUBLIC_KEY_NAME, station.key.pem())
    trust: dict[str, Any] = {
        "station_public_key": PUBLIC_KEY_NAME,
        "tsa_ca": None,
        "tsa_cert": None,
        "c2pa_ca": C2PA_CA_NAME,
        "c2pa_ca_sha256": credentials.ca_fingerprint,
    }
    signers = {event.get("key_fingerprint", "") for event in events}
    trust.update(write_station_keys(writer, keyring_of(station), station.key.fingerprint, signers))
    body = {
        "format": MANIFEST_FORMAT,
        "producing_unit": settings.unit_name,
        "station": {
            "name": settings.station_name,
            "unit": settings.unit_name,
            "public_key": PUBLIC_KEY_NAME,
            "public_key_fingerprint": station.key.fingerprint,
            "timezone": settings.timezone,
        },
        "disclosure": {
            "application": application.id,
            "kind": str(application.kind),
            "party": application.party_name,
            "id_document_type": application.id_document_type,
            "id_document_number": _masked(application.id_document_number),
            "redacted_only": True,
            "rule": "R15",
        },
        "export": {  # the note's and the verifier's section of who asked, decided and extracted
            "id": application.id,
            "purpose": application.purpose,
            "recipient": application.party_name,
            "requested_by": application.recorded_by,
            "requested_at": facts_module.iso(application.received_at),
            "approved_by": application.decided_by,
            "approved_at": _decided_at(events),
            "approval_reason": "",
            "valid_until": None,
            "extracted_by": user,
            "names": names,
            "extracted_at": built_at.isoformat(),
            "events": events,
        },
        "case": case,
        "items": items,
        "trust": trust,
    }
    writer.write_bytes(NOTE_HTML, render_html(body))
    writer.write_bytes(NOTE_PDF, render_pdf(body))
    files = {rel: {"sha256": h, "size": n} for rel, (h, n) in sorted(writer.hashes.items())}
    manifest_bytes = canonical_json({**body, "files": files})
    writer.write_bytes(MANIFEST_NAME, manifest_bytes)
    writer.write_bytes(
        SUMS_NAME, sums_text({rel: h for rel, (h, _n) in writer.hashes.items()}).encode("ascii")
    )
    writer.write_bytes(SIGNATURE_NAME, station.key.sign(manifest_bytes))
    return hashlib.sha256(manifest_bytes).hexdigest()


def _decided_at(events: list[dict[str, Any]]) -> str | None:
    for event in events:
        if event["action"] == "disclosure.approved":
            return str(event["at"])
    return None


__all__ = ["ConflictError", "DisclosureResult", "build_disclosure_package", "zip_path_of"]
