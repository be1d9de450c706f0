"""Building a certified export package: a directory and a .zip of it (R12, R14).

Layout (``export-000012/``, and ``export-000012.zip`` holding the same files under that folder)::

    originals/<sha256>.<ext>        each requested original, byte-identical to the stored copy
    derivatives/itemNN-clipID-segment-<start>-<end>-<cut>.mp4       a requested segment (C2PA inside)
    derivatives/itemNN-clipID-disclosure-<start>-<end>.mp4          a disclosure copy (overlay, C2PA)
    timestamps/<sha256>.tsr         an RFC 3161 TimeStampToken (DER) over the original's sha256
    timestamps/<sha256>.json        a station-signed time-stamp record (where no TSA was configured)
    trust/tsa-ca.pem, trust/tsa-cert.pem   the TSA's CA chain (and certificate), if configured
    trust/c2pa-ca.pem               the station's C2PA CA (trust anchor of the Content Credentials)
    station-ed25519.pub.pem         the station's public key
    note.html, note.pdf             the provenance note (Chinese and English)
    manifest.json                   the same facts, canonical JSON, with every other file's sha256
    manifest.json.sig               Ed25519 signature over manifest.json by the station key
    SHA256SUMS                      sha256sum -c input for every file but itself and the signature

Each original is read from the store exactly once: `copy_hashing` hashes it inline while a writer thread
writes it to the directory and a second one into the zip (stored; its CRC-32 computed as it goes with
zlib-ng, which is fast enough to hide beside the SHA-256), both with O_DIRECT from the copy's
page-aligned buffers (the zip entry's data is padded to a 4 KiB boundary). Where the filesystem can
share blocks between files (XFS with reflink, btrfs: probed once per build), the zip entry's data is
not written at all: the CRC is computed, and once the directory's copy is on disk the zip's range is
cloned from it (`evidence_store.blobs.reflink`), so the original is written once and stored once, in
two independent files. The hash of that one read must equal the sha256 the original is stored under,
or the build stops (`IntegrityError`) and nothing is left behind. Segments and disclosure copies are cut
from the package's own verified copy (the store is not read again). Everything is built under hidden
``.partial`` names and renamed into place only when complete and flushed to disk; then the request is
marked ``built`` and the package is on record (``export.built`` with the manifest's sha256, and
``clip.exported`` on each clip).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from evidence_store.bootstrap import Station
from evidence_store.cases.kinds import load_kinds
from evidence_store.domain.model import ExportRequest
from evidence_store.domain.stations import Keyring
from evidence_store.errors import ConfigurationError, IntegrityError
from evidence_store.export import facts as facts_module
from evidence_store.export.c2pa_signing import (
    C2paCredentials,
    ensure_c2pa_credentials,
)
from evidence_store.export.derivatives import make_derivatives
from evidence_store.export.manifest import (
    C2PA_CA_NAME,
    MANIFEST_FORMAT,
    MANIFEST_NAME,
    NOTE_HTML,
    NOTE_PDF,
    ORIGINALS_DIR,
    PUBLIC_KEY_NAME,
    SIGNATURE_NAME,
    SUMS_NAME,
    TIMESTAMPS_DIR,
    TSA_CA_NAME,
    TSA_CERT_NAME,
    canonical_json,
    sums_text,
)
from evidence_store.export.note import render_html, render_pdf
from evidence_store.export.station_keys import keyring_of, public_key, token_signer, write_station_keys
from evidence_store.export.workflow import (
    authorise_build,
    has_segment,
    record_build_failed,
    record_built,
)
from evidence_store.export.zip_writer import PackageWriter, package_writer
from evidence_store.ports import DerivativeCutter
from evidence_store.timestamping import TimestampToken, verify_token

MIME_BY_EXT = {
    "mp4": "video/mp4",
    "m4v": "video/x-m4v",
    "mov": "video/quicktime",
    "avi": "video/x-msvideo",
    "m4a": "audio/mp4",
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "aac": "audio/aac",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
}
_EXT = re.compile(r"^[a-z0-9]{1,8}$")
SMALL_CHUNK = 1 << 20


Progress = Callable[[str], None]


@dataclass
class BuildResult:
    request_id: int
    directory: Path
    zip_path: Path | None
    manifest_sha256: str
    files: int
    bytes_total: int
    originals_bytes: int
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)
    zip_shared_bytes: int = 0  # originals' bytes the zip shares with the directory instead of a copy


def package_name(request_id: int) -> str:
    return f"export-{request_id:06d}"


def default_out_dir(station: Station) -> Path:
    """Where packages are built unless told otherwise (`evidence export build` without --out, and always
    from the web, which serves the zip from here)."""
    return station.settings.home / "exports"


def zip_path_of(station: Station, request_id: int) -> Path:
    """The zip of a request built into `default_out_dir`."""
    return default_out_dir(station) / f"{package_name(request_id)}.zip"


def extension_of(original_name: str) -> str:
    ext = Path(original_name).suffix.lower().lstrip(".")
    return ext if _EXT.fullmatch(ext) else "bin"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ------------------------------------------------------------------ reading the records


def _gather(station: Station, request: ExportRequest, user: str) -> dict[str, Any]:
    kinds = load_kinds(station.settings.home)
    with station.session() as session:
        clips: dict[int, dict[str, Any]] = {}
        tokens: dict[int, list[dict[str, Any]]] = {}
        custody: dict[int, list[dict[str, Any]]] = {}
        for item in request.items:
            clip_id = int(item["clip_id"])
            if clip_id in clips:
                continue
            clips[clip_id] = facts_module.clip_facts(session, clip_id)
            facts_module.name_document_kinds(clips[clip_id], kinds)
            tokens[clip_id] = facts_module.tokens_of(session, clip_id)
            custody[clip_id] = facts_module.audit_trail(session, "clip", clip_id)
        return {
            "case": facts_module.case_facts(session, request.case_id),
            "clips": clips,
            "tokens": tokens,
            "custody": custody,
            "export_events": facts_module.audit_trail(session, "export", request.id or 0),
            "names": facts_module.people_names(session, [request.requested_by, request.decided_by, user]),
        }


# ------------------------------------------------------------------ time-stamps


def _write_tokens(
    ctx: _Context, tokens: list[dict[str, Any]], tsa_ca: list[bytes] | None, signers: set[str]
) -> list[dict[str, Any]]:
    written: list[dict[str, Any]] = []
    for row in tokens:
        kind = row["kind"]
        rel = f"{TIMESTAMPS_DIR}/{row['sha256']}.{'tsr' if kind == 'rfc3161' else 'json'}"
        ctx.writer.write_bytes(rel, row["token"])
        token = TimestampToken.from_stored(SimpleNamespace(**row))
        # a clip time-stamped by another station's worker carries that station's signature (issue 18)
        signer = token_signer(token)
        if signer is not None:
            signers.add(signer)
        station_key = public_key(ctx.keyring, signer) if signer else None
        if kind == "rfc3161" and not tsa_ca:
            check = "not checked: no TSA CA configured (settings tsa_ca_file)"
        else:
            verdict = verify_token(
                token,
                row["sha256"],
                ca_certs=tsa_ca,
                station_public_key=station_key or ctx.station.key.public(),
            )
            check = ("ok: " if verdict.ok else "FAILED: ") + verdict.reason
        written.append(
            {
                "kind": kind,
                "path": rel,
                "sha256": row["sha256"],
                "authority": row["authority"],
                "gen_time": row["gen_time"].isoformat(),
                "serial": row["serial"],
                "checked_at_build": check,
            }
        )
    return written


# ------------------------------------------------------------------ the build


def build_package(
    station: Station,
    request_id: int,
    *,
    user: str,
    out_dir: Path,
    make_zip: bool = True,
    progress: Progress | None = None,
    cutter: DerivativeCutter | None = None,
    source: str | None = None,
) -> BuildResult:
    """Build the package of an approved request (by its requester, within the validity); see module doc.
    `cutter` makes the segments and disclosure copies a request asks for (the entry layer wires ffmpeg's);
    a request with none builds without it. `source`: where the step came from (the web's client address),
    on its audit events."""
    request = authorise_build(station, request_id, user=user, source=source)
    started = time.perf_counter()
    extracted_at = station.clock()
    say = progress or (lambda _message: None)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = package_name(request_id)
    final_dir, final_zip = out_dir / name, out_dir / f"{name}.zip"
    token = uuid.uuid4().hex[:8]
    partial_dir = out_dir / f".{name}.partial-{token}"
    partial_zip = out_dir / f".{name}.zip.partial-{token}"
    try:
        if final_dir.exists() or final_zip.exists():
            raise ConfigurationError(f"{final_dir} or {final_zip} already exists: move it away first")
        partial_dir.mkdir()
        result = _build(
            station,
            request,
            user,
            partial_dir,
            partial_zip if make_zip else None,
            name,
            extracted_at,
            say,
            cutter,
        )
        partial_dir.rename(final_dir)
        if make_zip:
            os.replace(partial_zip, final_zip)
        _fsync_dir(out_dir)
    except Exception as exc:
        shutil.rmtree(partial_dir, ignore_errors=True)
        partial_zip.unlink(missing_ok=True)
        record_build_failed(
            station, request_id, user=user, error=f"{type(exc).__name__}: {exc}", source=source
        )
        raise
    manifest_sha256, counts, timings = result
    try:
        record_built(
            station,
            request_id,
            user=user,
            built_at=extracted_at,
            manifest_sha256=manifest_sha256,
            details={"package": name, "zip": make_zip, **counts},
            source=source,
        )
    except Exception:
        shutil.rmtree(final_dir, ignore_errors=True)
        final_zip.unlink(missing_ok=True)
        raise
    return BuildResult(
        request_id=request_id,
        directory=final_dir,
        zip_path=final_zip if make_zip else None,
        manifest_sha256=manifest_sha256,
        files=int(counts["files"]),
        bytes_total=int(counts["bytes"]),
        originals_bytes=int(counts["originals_bytes"]),
        seconds=time.perf_counter() - started,
        timings=timings,
        zip_shared_bytes=int(counts["zip_shared_bytes"]),
    )


@dataclass
class _Context:
    station: Station
    request: ExportRequest
    user: str
    writer: PackageWriter
    extracted_at: datetime
    say: Progress
    records: dict[str, Any]
    cutter: DerivativeCutter | None
    credentials: C2paCredentials | None = None
    keyring: Keyring = field(default_factory=Keyring)  # the keys the chain approves (issue 18)

    @property
    def case_number(self) -> str | None:
        case = self.records["case"]
        return str(case["number"]) if case else None


def _copy_originals(ctx: _Context) -> dict[int, dict[str, Any]]:
    """One read of each original from the store, hashed inline, into the directory and the zip."""
    originals: dict[int, dict[str, Any]] = {}
    for clip_id, clip in ctx.records["clips"].items():
        rel = f"{ORIGINALS_DIR}/{clip['sha256']}.{extension_of(clip['original_name'])}"
        ctx.say(f"copying original of clip {clip_id} ({clip['size']} bytes)")
        with ctx.station.blobs.open(clip["sha256"]) as source:
            sha256, size = ctx.writer.copy_original(rel, source, int(clip["size"]))
        if sha256 != clip["sha256"] or size != clip["size"]:
            raise IntegrityError(
                f"the stored original of clip {clip_id} reads as sha256 {sha256} ({size} bytes), not "
                f"{clip['sha256']} ({clip['size']} bytes): the store is damaged; nothing was exported"
            )
        originals[clip_id] = {
            "path": rel,
            "sha256": sha256,
            "size": size,
            "original_name": clip["original_name"],
            "mime_type": MIME_BY_EXT.get(extension_of(clip["original_name"]), "application/octet-stream"),
        }
    return originals


def _c2pa(ctx: _Context) -> C2paCredentials:
    if ctx.credentials is None:
        settings = ctx.station.settings
        ctx.credentials, created = ensure_c2pa_credentials(
            settings.keys_dir,
            organisation=settings.unit_name or settings.station_name,
            station_name=settings.station_name,
            now=ctx.extracted_at,
        )
        if created:
            _audit_credentials(ctx.station, ctx.user, created, ctx.credentials)
    return ctx.credentials


def _items(ctx: _Context, originals: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """The manifest's items, with their derivatives made (from the verified copies) and signed."""
    items: list[dict[str, Any]] = []
    for number, item in enumerate(ctx.request.items, start=1):
        clip_id = int(item["clip_id"])
        clip = ctx.records["clips"][clip_id]
        derivatives: list[dict[str, Any]] = []
        if has_segment(item) or item.get("disclosure"):
            ctx.say(f"making derivatives of clip {clip_id}")
            derivatives = make_derivatives(
                ctx.writer,
                number=number,
                item=item,
                clip=clip,
                original_rel=originals[clip_id]["path"],
                original_sha256=clip["sha256"],
                original_format=originals[clip_id]["mime_type"],
                credentials=_c2pa(ctx),
                request_id=ctx.request.id or 0,
                case_number=ctx.case_number,
                user=ctx.user,
                extracted_at=ctx.extracted_at,
                zone=ctx.station.settings.timezone,
                cutter=ctx.cutter,
            )
        segment = None
        if has_segment(item):
            segment = {
                "start_s": item.get("start_s", 0.0),
                "end_s": item.get("end_s"),
                "cut": item.get("cut"),
            }
        items.append(
            {
                "number": number,
                "clip": clip,
                "original": originals[clip_id],
                "segment": segment,
                "disclosure": bool(item.get("disclosure")),
                "derivatives": derivatives,
                "timestamps": [],
                "custody_events": ctx.records["custody"][clip_id],
            }
        )
    shutil.rmtree(ctx.writer.root / ".work", ignore_errors=True)
    return items


def _trust(ctx: _Context, items: list[dict[str, Any]]) -> dict[str, Any]:
    """Time-stamp tokens, the TSA CA chain, the C2PA CA and the station public key."""
    settings = ctx.station.settings
    writer = ctx.writer
    tsa_ca = [settings.tsa_ca_file.read_bytes()] if settings.tsa_ca_file else None
    trust: dict[str, Any] = {"station_public_key": PUBLIC_KEY_NAME, "tsa_ca": None, "tsa_cert": None}
    signers = {event.get("key_fingerprint", "") for event in ctx.records["export_events"]}
    signers.update(e.get("key_fingerprint", "") for events in ctx.records["custody"].values() for e in events)
    stamps = {
        clip_id: _write_tokens(ctx, ctx.records["tokens"][clip_id], tsa_ca, signers)
        for clip_id in ctx.records["clips"]
    }
    for entry in items:
        entry["timestamps"] = stamps[entry["clip"]["clip_id"]]
    if tsa_ca:
        writer.write_bytes(TSA_CA_NAME, tsa_ca[0])
        trust["tsa_ca"] = TSA_CA_NAME
        if settings.tsa_cert_file is not None:
            writer.write_bytes(TSA_CERT_NAME, settings.tsa_cert_file.read_bytes())
            trust["tsa_cert"] = TSA_CERT_NAME
    if ctx.credentials is not None:
        writer.write_bytes(C2PA_CA_NAME, ctx.credentials.ca_cert_pem)
        trust["c2pa_ca"] = C2PA_CA_NAME
        trust["c2pa_ca_sha256"] = ctx.credentials.ca_fingerprint
    writer.write_bytes(PUBLIC_KEY_NAME, ctx.station.key.pem())
    trust.update(write_station_keys(writer, ctx.keyring, ctx.station.key.fingerprint, signers))
    return trust


def _body(ctx: _Context, items: list[dict[str, Any]], trust: dict[str, Any]) -> dict[str, Any]:
    settings = ctx.station.settings
    request = ctx.request
    return {
        "format": MANIFEST_FORMAT,
        "producing_unit": settings.unit_name,
        "station": {  # the station that built the package and signed its manifest
            "name": settings.station_name,
            "unit": settings.unit_name,
            "public_key": PUBLIC_KEY_NAME,
            "public_key_fingerprint": ctx.station.key.fingerprint,
            "timezone": settings.timezone,
        },
        "export": {
            "id": request.id,
            "purpose": request.purpose,
            "recipient": request.recipient,
            "requested_by": request.requested_by,
            "requested_at": facts_module.iso(request.created_at),
            "approved_by": request.decided_by,
            "approved_at": facts_module.iso(request.decided_at),
            "approval_reason": request.decision_reason,
            "valid_until": facts_module.iso(request.valid_until),
            "extracted_by": ctx.user,
            # display names of the station users above, for the note (the logins stay as recorded)
            "names": ctx.records["names"],
            "extracted_at": ctx.extracted_at.isoformat(),
            "events": ctx.records["export_events"],
        },
        "case": ctx.records["case"],
        "items": items,
        "trust": trust,
    }


def _seal(ctx: _Context, body: dict[str, Any]) -> str:
    """Note, manifest (with every file's hash), signature and SHA256SUMS; returns the manifest's sha256."""
    writer = ctx.writer
    writer.write_bytes(NOTE_HTML, render_html(body))
    writer.write_bytes(NOTE_PDF, render_pdf(body))
    files = {rel: {"sha256": h, "size": n} for rel, (h, n) in sorted(writer.hashes.items())}
    manifest_bytes = canonical_json({**body, "files": files})
    writer.write_bytes(MANIFEST_NAME, manifest_bytes)
    sums = sums_text({rel: h for rel, (h, _n) in writer.hashes.items()})  # manifest.json included
    writer.write_bytes(SUMS_NAME, sums.encode("ascii"))
    writer.write_bytes(SIGNATURE_NAME, ctx.station.key.sign(manifest_bytes))
    return hashlib.sha256(manifest_bytes).hexdigest()


def _build(
    station: Station,
    request: ExportRequest,
    user: str,
    root: Path,
    zip_path: Path | None,
    top: str,
    extracted_at: datetime,
    say: Progress,
    cutter: DerivativeCutter | None,
) -> tuple[str, dict[str, int], dict[str, float]]:
    timings: dict[str, float] = {}
    mark = time.perf_counter()
    records = _gather(station, request, user)
    timings["gather"] = time.perf_counter() - mark
    with package_writer(root, zip_path, top, extracted_at) as writer:
        ctx = _Context(station, request, user, writer, extracted_at, say, records, cutter)
        ctx.keyring = keyring_of(station)
        mark = time.perf_counter()
        originals = _copy_originals(ctx)
        timings["originals"] = time.perf_counter() - mark
        mark = time.perf_counter()
        items = _items(ctx, originals)
        timings["derivatives"] = time.perf_counter() - mark
        mark = time.perf_counter()
        manifest_sha256 = _seal(ctx, _body(ctx, items, _trust(ctx, items)))
        writer.zip_rest()
        for directory in {root, *(p.parent for p in root.rglob("*") if p.is_file())}:
            _fsync_dir(directory)
        timings["seal"] = time.perf_counter() - mark
    counts = {
        "files": len(writer.hashes),
        "bytes": sum(n for _h, n in writer.hashes.values()),
        "originals_bytes": sum(o["size"] for o in originals.values()),
        "originals": len(originals),
        "derivatives": sum(len(entry["derivatives"]) for entry in items),
        "zip_shared_bytes": writer.shared_bytes,
    }
    return manifest_sha256, counts, timings


def _audit_credentials(station: Station, user: str, created: list[str], credentials: C2paCredentials) -> None:
    with station.transaction() as session:
        station.audit.record(
            session,
            actor=user,
            action="station.c2pa_credentials_created",
            object_type="station",
            object_id=station.settings.station_name,
            details={"created": created, "c2pa_ca_sha256": credentials.ca_fingerprint},
        )
