"""The derivatives an export item asks for (R12, R14): a segment cut from the original, a disclosure
copy with a burnt-in overlay; each cut from the package's own verified copy and signed with C2PA
Content Credentials that name the original it came from."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from evidence_store.domain.segment import Segment, seconds_text
from evidence_store.errors import ConfigurationError
from evidence_store.export.c2pa_signing import C2paCredentials, derivative_manifest, sign_file
from evidence_store.export.manifest import C2PA_CA_NAME, DERIVATIVES_DIR
from evidence_store.export.workflow import has_segment
from evidence_store.export.zip_writer import PackageWriter
from evidence_store.ports import DerivativeCutter


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
    return f"{seconds_text(start)}s-{seconds_text(end) + 's' if end is not None else 'end'}"


def make_derivatives(
    writer: PackageWriter,
    *,
    number: int,
    item: dict[str, Any],
    clip: dict[str, Any],
    original_rel: str,
    original_sha256: str,
    original_format: str,
    credentials: C2paCredentials,
    request_id: int,
    case_number: str | None,
    user: str,
    extracted_at: datetime,
    zone: str,
    cutter: DerivativeCutter | None,
) -> list[dict[str, Any]]:
    """Cut, sign and adopt into the package the segment and/or disclosure copy `item` asks for; the
    manifest entries of what was made."""
    if cutter is None:
        raise ConfigurationError("this build has no derivative cutter wired: segments cannot be cut")
    start = float(item.get("start_s") or 0.0)
    end = item.get("end_s")
    segment = Segment(start, None if end is None else float(end))
    media = clip.get("media") or {}
    has_video = clip["media_type"] == "video" or media.get("kind") == "video"
    source = writer.root / original_rel
    work = writer.root / ".work"
    work.mkdir(exist_ok=True)
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
            run = cutter.cut(
                source, unsigned, segment, "keyframe" if cut == "keyframe" else "exact", has_video=has_video
            )
            description = (
                f"keyframe cut by stream copy (-c copy), not re-encoded, {label}"
                if cut == "keyframe"
                else f"exact cut, re-encoded (libx264 crf 18, AAC), {label}"
            )
        else:
            overlay = _overlay_text(case_number, user, extracted_at, zone)
            run = cutter.disclosure_copy(
                source,
                unsigned,
                segment,
                text=overlay,
                height=media.get("height") if isinstance(media.get("height"), int) else None,
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
