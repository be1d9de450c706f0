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
import logging
import os
import queue
import re
import shutil
import struct
import threading
import time
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

from zlib_ng import zlib_ng

from evidence_store.blobs.hashing_copy import FileWriter, copy_hashing, write_all
from evidence_store.blobs.reflink import can_share_blocks, clone_range, copy_range
from evidence_store.bootstrap import Station
from evidence_store.domain.model import ExportRequest
from evidence_store.errors import ConfigurationError, IntegrityError
from evidence_store.export import facts as facts_module
from evidence_store.export.c2pa_signing import (
    C2paCredentials,
    derivative_manifest,
    ensure_c2pa_credentials,
    sign_file,
)
from evidence_store.export.manifest import (
    C2PA_CA_NAME,
    DERIVATIVES_DIR,
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
    check_path,
    sums_text,
)
from evidence_store.export.note import render_html, render_pdf
from evidence_store.export.workflow import (
    authorise_build,
    has_segment,
    record_build_failed,
    record_built,
)
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

log = logging.getLogger(__name__)

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


def extension_of(original_name: str) -> str:
    ext = Path(original_name).suffix.lower().lstrip(".")
    return ext if _EXT.fullmatch(ext) else "bin"


def _sha256_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(SMALL_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _ForkJoin:
    """Runs one function on each chunk in a thread of its own while the caller does its part, and
    returns when both are done with the chunk: the copy's buffers are reused as soon as the write
    returns (`copy_hashing(reuse_buffers=True)`), so neither may keep them. On two cores the
    reader's SHA-256, the zip's CRC-32 and the two O_DIRECT writes overlap."""

    _DONE = object()

    def __init__(self, work: Callable[[memoryview], Any]) -> None:
        self._work = work
        self._todo: queue.Queue[object] = queue.Queue(maxsize=1)
        self._done: queue.Queue[BaseException | None] = queue.Queue(maxsize=1)
        self._thread = threading.Thread(target=self._loop, name="export-zip-writer", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while (item := self._todo.get()) is not self._DONE:
            try:
                self._work(item)  # type: ignore[arg-type]
                self._done.put(None)
            except BaseException as exc:
                self._done.put(exc)

    def __call__(self, view: memoryview, mine: Callable[[memoryview], Any]) -> None:
        self._todo.put(view)
        try:
            mine(view)
        finally:
            failure = self._done.get()  # wait even when ours failed: the buffer is about to be reused
        if failure is not None:
            raise failure

    def close(self) -> None:
        self._todo.put(self._DONE)
        self._thread.join()


def _settle_zip_entry(entry: Any, size: int, crc: int) -> None:
    """Tell zipfile's write handle the size and CRC-32 of data that did not pass through its `write`
    (written to the sink directly, or cloned): the three counters its `close` puts in the header.
    zipfile computes the CRC with zlib's crc32, which on this path would cost a core's worth of the
    SHA-256's time; the caller checks the entry's recorded values after `close`."""
    entry._file_size = entry._compress_size = size
    entry._crc = crc


class _ZipSink:
    """The zip's file for `zipfile`: unbuffered writes with flush-behind, so the disk writes the zip
    while the copy runs and the final fsync is short. An original's data starts on a 4 KiB boundary
    (see `_PackageWriter._aligned_zinfo`), so from its page-aligned buffers it is written with O_DIRECT,
    like the directory's copy; `zipfile`'s seeks (to rewrite an entry's header) end that mode."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o444)
        self._run: FileWriter | None = None  # the writes since the last seek

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        if self._run is None:
            self._run = FileWriter(self.fd, flush_behind=True, direct=True)
        self._run.write(view)
        return len(view)

    def _end_run(self) -> None:
        if self._run is not None:
            self._run.stop_direct()
            self._run = None

    def share(self, source_fd: int, length: int, at: int) -> bool:
        """Fill the range at `at` (the file's end: nothing written there yet) with the source file's
        first `length` bytes by sharing its blocks (True); copied in the kernel instead if the clone is
        refused after all (False)."""
        try:
            clone_range(source_fd, self.fd, length, at)
        except OSError as exc:
            log.warning("the zip could not share the original's blocks (%s): copying them instead", exc)
            copy_range(source_fd, self.fd, length, at)
            return False
        return True

    def tell(self) -> int:
        return os.lseek(self.fd, 0, os.SEEK_CUR)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._end_run()
        return os.lseek(self.fd, offset, whence)

    def seekable(self) -> bool:
        return True

    def flush(self) -> None:
        return None

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            try:
                self._end_run()
                os.fsync(fd)
            finally:
                os.close(fd)


# Extra field of an original's local zip header that pads it so the data starts on a 4 KiB boundary
# (the id Android's zipalign uses: two bytes of alignment, then zeros; unzip tools skip it).
_ALIGNMENT_EXTRA_ID = 0xD935
_ZIP_DATA_ALIGN = 4096


class _PackageWriter:
    """Writes files into the partial directory and the zip at the same time."""

    def __init__(
        self,
        root: Path,
        zip_file: zipfile.ZipFile | None,
        sink: _ZipSink | None,
        top: str,
        when: datetime,
        *,
        share_blocks: bool = False,
    ) -> None:
        self.root = root
        self.zip = zip_file
        self.sink = sink
        self.share_blocks = share_blocks  # the zip's originals are clones of the directory's copies
        self.shared_bytes = 0
        self.top = top
        self.date_time = (when.year, when.month, when.day, when.hour, when.minute, when.second)
        self.hashes: dict[str, tuple[str, int]] = {}
        self.in_zip: set[str] = set()

    def _zinfo(self, rel: str, size: int) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(f"{self.top}/{rel}", date_time=self.date_time)
        info.compress_type = zipfile.ZIP_STORED
        info.external_attr = 0o444 << 16
        info.file_size = size
        return info

    def _aligned_zinfo(self, rel: str, size: int) -> zipfile.ZipInfo:
        """An entry whose data will start on a 4 KiB boundary of the zip file (for O_DIRECT)."""
        assert self.sink is not None
        info = self._zinfo(rel, size)
        info.CRC = info.compress_size = 0  # as `ZipFile.open(..., "w")` sets them before the header
        zip64 = size * 1.05 > zipfile.ZIP64_LIMIT  # as it decides
        header = len(info.FileHeader(zip64))
        pad = -(self.sink.tell() + header + 4) % _ZIP_DATA_ALIGN
        if pad < 2:
            pad += _ZIP_DATA_ALIGN
        info.extra = struct.pack("<HHH", _ALIGNMENT_EXTRA_ID, pad, _ZIP_DATA_ALIGN) + bytes(pad - 2)
        return info

    def path(self, rel: str) -> Path:
        target = self.root / check_path(rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def copy_original(self, rel: str, source: Any, size: int) -> tuple[str, int]:
        """Copy a stored original in one read: hash inline, write to the directory and the zip."""
        target = self.path(rel)
        # readable too: the zip clones (or copies) its range from this descriptor
        fd = os.open(target, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o444)
        try:
            write_dir = write_all(fd, flush_behind=True, direct=True)
            if self.zip is not None:
                result = self._copy_with_zip(rel, source, size, fd, write_dir)
            else:
                result = copy_hashing(source, write_dir, reuse_buffers=True)
                os.fsync(fd)
        finally:
            os.close(fd)
        self.hashes[rel] = (result.sha256, result.size)
        return result.sha256, result.size

    def _copy_with_zip(
        self, rel: str, source: Any, size: int, fd: int, write_dir: Callable[[memoryview], None]
    ) -> Any:
        """The copy to the directory, and the original's zip entry: its CRC-32 (zlib-ng's, beside the
        SHA-256 on the other core) and its data, written from the same buffers or, where the filesystem
        shares blocks, cloned from the directory's copy once that is on disk."""
        assert self.zip is not None and self.sink is not None
        sink = self.sink
        info = self._aligned_zinfo(rel, size)
        entry = self.zip.open(info, "w")
        data_at = self.sink.tell()
        crc = 0

        def zip_side(view: memoryview) -> None:
            nonlocal crc
            crc = zlib_ng.crc32(view, crc)
            if not self.share_blocks:
                sink.write(view)

        def with_crc(view: memoryview) -> None:
            write_dir(view)
            zip_side(view)

        # the zip's own write runs beside the directory's; the CRC alone (~25 GB/s) needs no thread
        both = _ForkJoin(zip_side) if not self.share_blocks else None
        write = with_crc if both is None else lambda view: both(view, write_dir)
        try:
            try:
                result = copy_hashing(source, write, reuse_buffers=True)
            finally:
                if both is not None:
                    both.close()
            if self.share_blocks:  # the range the clone will fill: zipfile goes on after it
                self.sink.seek(data_at + result.size)
            _settle_zip_entry(entry, result.size, crc)
        finally:
            entry.close()
        if (info.CRC, info.file_size, info.compress_size) != (crc, result.size, result.size):
            raise RuntimeError(f"zipfile did not record the CRC-32 and size given for {rel}")
        info.extra = b""  # the padding belongs in the local header only, not the directory
        os.fsync(fd)
        # the copy just written and flushed, shared into the zip's range
        if self.share_blocks and self.sink.share(fd, result.size, data_at):
            self.shared_bytes += result.size
        self.in_zip.add(rel)
        return result

    def write_bytes(self, rel: str, data: bytes) -> None:
        target = self.path(rel)
        with target.open("xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        self.hashes[rel] = (hashlib.sha256(data).hexdigest(), len(data))

    def adopt(self, rel: str) -> tuple[str, int]:
        """A file already written at `rel` (a derivative): hash it and keep it."""
        target = self.root / check_path(rel)
        with target.open("rb+") as handle:
            os.fsync(handle.fileno())
        self.hashes[rel] = _sha256_file(target)
        return self.hashes[rel]

    def zip_rest(self) -> None:
        """Every file not yet in the zip, in path order."""
        if self.zip is None:
            return
        for rel in sorted(self.hashes):
            if rel in self.in_zip:
                continue
            source = self.root / rel
            with (
                source.open("rb") as handle,
                self.zip.open(self._zinfo(rel, source.stat().st_size), "w") as entry,
            ):
                shutil.copyfileobj(handle, entry, SMALL_CHUNK)
            self.in_zip.add(rel)


# ------------------------------------------------------------------ reading the records


def _gather(station: Station, request: ExportRequest) -> dict[str, Any]:
    with station.sessions() as session:
        clips: dict[int, dict[str, Any]] = {}
        tokens: dict[int, list[dict[str, Any]]] = {}
        custody: dict[int, list[dict[str, Any]]] = {}
        for item in request.items:
            clip_id = int(item["clip_id"])
            if clip_id in clips:
                continue
            clips[clip_id] = facts_module.clip_facts(session, clip_id)
            tokens[clip_id] = facts_module.tokens_of(session, clip_id)
            custody[clip_id] = facts_module.audit_trail(session, "clip", clip_id)
        return {
            "case": facts_module.case_facts(session, request.case_id),
            "clips": clips,
            "tokens": tokens,
            "custody": custody,
            "export_events": facts_module.audit_trail(session, "export", request.id or 0),
        }


# ------------------------------------------------------------------ derivatives


def _overlay_text(case_number: str | None, user: str, extracted_at: datetime, zone: str) -> str:
    local = extracted_at.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S")
    return "\n".join(
        [
            "公开副本 DISCLOSURE COPY - 非原始证据 NOT THE ORIGINAL",
            f"案号 Case No.: {case_number or '-'}",
            f"提取人 Extracted by: {user}",
            f"提取时间 Extracted at: {local} ({zone})",
        ]
    )


def _range_label(start: float, end: float | None) -> str:
    from ingest.transcode.segment import seconds_text

    return f"{seconds_text(start)}s-{seconds_text(end) + 's' if end is not None else 'end'}"


def _make_derivatives(
    writer: _PackageWriter,
    *,
    number: int,
    item: dict[str, Any],
    clip: dict[str, Any],
    original_rel: str,
    original_sha256: str,
    credentials: C2paCredentials,
    request_id: int,
    case_number: str | None,
    user: str,
    extracted_at: datetime,
    zone: str,
) -> list[dict[str, Any]]:
    from ingest.transcode.segment import (
        Segment,
        cut_segment,
        find_cjk_font,
        make_disclosure_copy,
        overlay_font_size,
    )

    start = float(item.get("start_s") or 0.0)
    end = item.get("end_s")
    segment = Segment(start, None if end is None else float(end))
    media = clip.get("media") or {}
    has_video = clip["media_type"] == "video" or media.get("kind") == "video"
    source = writer.root / original_rel
    work = writer.root / ".work"
    work.mkdir(exist_ok=True)
    original_format = MIME_BY_EXT.get(extension_of(clip["original_name"]), "application/octet-stream")
    made: list[dict[str, Any]] = []
    plans: list[tuple[str, str]] = []
    if has_segment(item):
        plans.append(("segment", str(item.get("cut", "exact"))))
    if item.get("disclosure"):
        plans.append(("disclosure", "exact"))
    for kind, cut in plans:
        label = _range_label(start, segment.end_s)
        suffix = f"-{cut}" if kind == "segment" else ""
        name = f"item{number:02d}-clip{clip['clip_id']}-{kind}-{label}{suffix}.mp4"
        rel = f"{DERIVATIVES_DIR}/{name}"
        unsigned = work / name
        overlay = None
        if kind == "segment":
            run = cut_segment(
                source, unsigned, segment, "keyframe" if cut == "keyframe" else "exact", has_video=has_video
            )
            description = (
                f"keyframe cut by stream copy (-c copy), not re-encoded, {label}"
                if cut == "keyframe"
                else f"exact cut, re-encoded (libx264 crf 18, AAC), {label}"
            )
        else:
            overlay = _overlay_text(case_number, user, extracted_at, zone)
            run = make_disclosure_copy(
                source,
                unsigned,
                segment,
                text=overlay,
                font_file=find_cjk_font(),
                font_size=overlay_font_size(
                    media.get("height") if isinstance(media.get("height"), int) else None
                ),
            )
            description = f"disclosure copy with burnt-in overlay (case number, extractor, time), {label}"
        lineage = {
            "export_id": request_id,
            "kind": kind,
            "cut": cut,
            "start_s": start,
            "end_s": segment.end_s,
            "tool": run.tool,
            "tool_version": run.tool_version,
        }
        sign_file(
            unsigned,
            writer.path(rel),
            credentials,
            derivative_manifest(
                title=name,
                original_title=clip["original_name"],
                original_sha256=original_sha256,
                original_format=original_format,
                description=description,
                lineage=lineage,
                software=run.tool_version,
            ),
        )
        unsigned.unlink()
        sha256, size = writer.adopt(rel)
        entry: dict[str, Any] = {
            "kind": kind,
            "cut": cut,
            "description": description,
            "path": rel,
            "sha256": sha256,
            "size": size,
            "mime_type": run.mime_type,
            "derived_from_sha256": original_sha256,
            "derived_from_path": original_rel,
            "start_s": start,
            "end_s": segment.end_s,
            "tool": run.tool,
            "tool_version": run.tool_version,
            "arguments": run.arguments,
            "content_credential": {
                "format": "C2PA",
                "signer": "station C2PA signer",
                "trust_anchor": C2PA_CA_NAME,
            },
        }
        if overlay is not None:
            entry["overlay_text"] = overlay
        made.append(entry)
    return made


# ------------------------------------------------------------------ time-stamps


def _write_tokens(
    station: Station, writer: _PackageWriter, tokens: list[dict[str, Any]], tsa_ca: list[bytes] | None
) -> list[dict[str, Any]]:
    written: list[dict[str, Any]] = []
    for row in tokens:
        kind = row["kind"]
        rel = f"{TIMESTAMPS_DIR}/{row['sha256']}.{'tsr' if kind == 'rfc3161' else 'json'}"
        writer.write_bytes(rel, row["token"])
        token = TimestampToken.from_stored(SimpleNamespace(**row))
        if kind == "rfc3161" and not tsa_ca:
            check = "not checked: no TSA CA configured (settings tsa_ca_file)"
        else:
            verdict = verify_token(
                token, row["sha256"], ca_certs=tsa_ca, station_public_key=station.key.public()
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
) -> BuildResult:
    """Build the package of an approved request (by its requester, within the validity); see module doc."""
    request = authorise_build(station, request_id, user=user)
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
            station, request, user, partial_dir, partial_zip if make_zip else None, name, extracted_at, say
        )
        partial_dir.rename(final_dir)
        if make_zip:
            os.replace(partial_zip, final_zip)
        _fsync_dir(out_dir)
    except Exception as exc:
        shutil.rmtree(partial_dir, ignore_errors=True)
        partial_zip.unlink(missing_ok=True)
        record_build_failed(station, request_id, user=user, error=f"{type(exc).__name__}: {exc}")
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
    writer: _PackageWriter
    extracted_at: datetime
    say: Progress
    records: dict[str, Any]
    credentials: C2paCredentials | None = None

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
            derivatives = _make_derivatives(
                ctx.writer,
                number=number,
                item=item,
                clip=clip,
                original_rel=originals[clip_id]["path"],
                original_sha256=clip["sha256"],
                credentials=_c2pa(ctx),
                request_id=ctx.request.id or 0,
                case_number=ctx.case_number,
                user=ctx.user,
                extracted_at=ctx.extracted_at,
                zone=ctx.station.settings.timezone,
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
    stamps = {
        clip_id: _write_tokens(ctx.station, writer, ctx.records["tokens"][clip_id], tsa_ca)
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
    return trust


def _body(ctx: _Context, items: list[dict[str, Any]], trust: dict[str, Any]) -> dict[str, Any]:
    settings = ctx.station.settings
    request = ctx.request
    return {
        "format": MANIFEST_FORMAT,
        "producing_unit": settings.unit_name,
        "station": {
            "name": settings.station_name,
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
) -> tuple[str, dict[str, int], dict[str, float]]:
    timings: dict[str, float] = {}
    mark = time.perf_counter()
    records = _gather(station, request)
    timings["gather"] = time.perf_counter() - mark
    share_blocks = zip_path is not None and can_share_blocks(zip_path.parent)
    sink = _ZipSink(zip_path) if zip_path else None
    zip_file = zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED, allowZip64=True) if sink else None
    try:
        writer = _PackageWriter(root, zip_file, sink, top, extracted_at, share_blocks=share_blocks)
        ctx = _Context(station, request, user, writer, extracted_at, say, records)
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
    finally:
        try:
            if zip_file is not None:
                zip_file.close()  # writes the central directory: fails too when the disk is full
        finally:
            if sink is not None:
                sink.close()  # fsync
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
