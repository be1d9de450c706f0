"""The processing steps (R3, R4, R5): probe, browser proxy, thumbnails and the trusted time-stamp.

Each step reads the original (never writes it), does its heavy work outside any transaction, and
records its result (with audit events) in one short transaction that also marks the job done
(`leasing.mark_done`, conditioned on the claim still being this worker's).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError as SAIntegrityError

from evidence_store.blobs.local import LocalBlobStore
from evidence_store.bootstrap import Station
from evidence_store.cases.linking_service import link_clip
from evidence_store.domain.device_clock import ClockReading, place_in_time
from evidence_store.domain.model import (
    Clip,
    ClockStatus,
    Derivative,
    DerivativeKind,
    ProcessingJob,
    ProcessingStep,
    StoredTimestamp,
)
from evidence_store.domain.record_facts import FACTS_KEY, row_fact
from evidence_store.errors import NotFoundError, PermanentError
from workers.leasing import mark_done
from workers.timestamps import authority_for

log = logging.getLogger(__name__)

ClipHandOff = Callable[[Station, int], None]  # called when a clip's processing has ended


def _no_hand_off(station: Station, clip_id: int) -> None:
    return None


@dataclass
class Toolkit:
    """The media and time-stamping tools the steps use (real ones wired by `default_toolkit`)."""

    probe: Callable[[Path], Any]
    make_proxy: Callable[..., Any]
    make_poster: Callable[..., Any]
    make_contact_sheet: Callable[..., Any]
    timestamp_authority: Any
    hand_off: ClipHandOff = _no_hand_off
    transcode_timeout_s: float = 6 * 3600


def default_toolkit(station: Station) -> Toolkit:
    """The real tools: PyAV and ffmpeg for the media, the station's time-stamping authority."""
    # PyAV and ffmpeg-python load slowly: only a process that runs steps pays for them, not `evidence jobs`
    from ingest.transcode.probe import probe_media
    from ingest.transcode.proxy import make_proxy
    from ingest.transcode.thumbnails import make_contact_sheet, make_poster

    return Toolkit(
        probe=probe_media,
        make_proxy=make_proxy,
        make_poster=make_poster,
        make_contact_sheet=make_contact_sheet,
        timestamp_authority=authority_for(station),
        hand_off=_linking_hand_off(),
    )


def _linking_hand_off() -> ClipHandOff:
    """Case linking takes the clip once processed (R5): link it to the documents it matches and
    refresh its flags and theirs. A failure is logged, not raised: the clip's processing is recorded
    already, and `evidence cases relink` repairs any link that was missed."""

    def hand_off(station: Station, clip_id: int) -> None:
        try:
            link_clip(station, clip_id)
        except Exception:
            log.exception("linking clip %s after processing failed", clip_id)

    return hand_off


@contextmanager
def original_path(station: Station, sha256: str) -> Iterator[Path]:
    """A path where tools can read the original: the blob itself locally, a temp copy from S3."""
    if isinstance(station.blobs, LocalBlobStore):
        yield station.blobs.path_for(sha256)
        return
    with tempfile.TemporaryDirectory(prefix="evidence-original-") as directory:
        target = Path(directory) / sha256
        with station.blobs.open(sha256) as source, target.open("wb") as sink:
            shutil.copyfileobj(source, sink, 4 * 1024 * 1024)
        yield target


def _load_clip(station: Station, clip_id: int) -> Clip:
    with station.session() as session:
        clip = session.get(Clip, clip_id)
        if clip is None:
            raise NotFoundError(f"no clip {clip_id}")
        session.expunge(clip)
        return clip


def _step_probe(station: Station, job: ProcessingJob, toolkit: Toolkit) -> None:
    clip = _load_clip(station, job.clip_id)
    with original_path(station, clip.sha256) as path:
        probe = toolkit.probe(path)
    found = probe.to_dict()
    with station.transaction() as session:
        row = session.get(Clip, clip.id)
        assert row is not None
        row.media_info = {**row.media_info, "probe": found}
        for warning in probe.warnings:
            row.add_warning(warning.code, warning.message)
        if probe.duration_s is not None and probe.duration_s > 0:
            row.duration_s = probe.duration_s
            _place_end(station, row)
        station.audit.record(
            session,
            actor="worker",
            action="clip.probed",
            object_type="clip",
            object_id=job.clip_id,
            details={
                "playable": found.get("playable"),
                "warnings": [w.code for w in probe.warnings],
                FACTS_KEY: [row_fact("clips", row.id or 0, row, new=False, fields=_PLACED_FIELDS)],
            },
        )
        mark_done(session, job, station.clock())


# what probing may change on a clip: its duration and, from it, its end (and start) in time
_PLACED_FIELDS = ("duration_s", "device_end", "utc_start", "utc_end")


def _place_end(station: Station, clip: Clip) -> None:
    """R5: with the duration known, the end time follows from the start and the docking's offset."""
    if clip.device_start is None or clip.duration_s is None:
        return
    clip.device_end = clip.device_start + timedelta(seconds=clip.duration_s)
    reading = ClockReading(clip.clock_offset_s if clip.clock_status is not ClockStatus.UNKNOWN else None)
    placed = place_in_time(clip.device_start, clip.device_end, reading, ZoneInfo(station.settings.timezone))
    clip.utc_start, clip.utc_end = placed.utc_start, placed.utc_end


def _step_proxy(station: Station, job: ProcessingJob, toolkit: Toolkit) -> None:
    clip = _load_clip(station, job.clip_id)
    _require_playable(clip, "a browser proxy")
    with (
        original_path(station, clip.sha256) as path,
        tempfile.TemporaryDirectory(prefix="evidence-proxy-") as out,
    ):
        probe = toolkit.probe(path)
        run = toolkit.make_proxy(path, Path(out), probe, timeout_s=toolkit.transcode_timeout_s)
        _store_derivatives(station, job, clip, [(DerivativeKind.PROXY, run)])


def _step_thumbnails(station: Station, job: ProcessingJob, toolkit: Toolkit) -> None:
    clip = _load_clip(station, job.clip_id)
    _require_playable(clip, "thumbnails")
    with (
        original_path(station, clip.sha256) as path,
        tempfile.TemporaryDirectory(prefix="evidence-thumbs-") as out,
    ):
        probe = toolkit.probe(path)
        runs = [(DerivativeKind.POSTER, toolkit.make_poster(path, Path(out), probe))]
        if clip.media_type.value == "video":
            runs.append((DerivativeKind.CONTACT_SHEET, toolkit.make_contact_sheet(path, Path(out), probe)))
        _store_derivatives(station, job, clip, runs)


def _require_playable(clip: Clip, what: str) -> None:
    found = clip.media_info.get("probe")
    if not found or not found.get("playable"):
        reasons = "; ".join(found.get("warnings_text", [])) if found else ""
        raise PermanentError(f"cannot make {what}: the original has no decodable stream {reasons}".strip())


def _store_derivatives(
    station: Station, job: ProcessingJob, clip: Clip, runs: list[tuple[DerivativeKind, Any]]
) -> None:
    stored = []
    for kind, run in runs:
        with Path(run.output).open("rb") as handle:
            blob = station.blobs.put(handle)
        stored.append((kind, run, blob))
    now = station.clock()
    try:
        with station.transaction() as session:
            for kind, run, blob in stored:
                derivative = Derivative(
                    clip_id=clip.id or 0,
                    kind=kind,
                    sha256=blob.sha256,
                    size=blob.size,
                    mime_type=run.mime_type,
                    derived_from_sha256=clip.sha256,
                    tool=run.tool,
                    tool_version=run.tool_version,
                    arguments=[str(a) for a in run.arguments],
                    created_at=now,
                )
                session.add(derivative)
                session.flush()
                assert derivative.id is not None
                station.audit.record(
                    session,
                    actor="worker",
                    action="derivative.created",
                    object_type="clip",
                    object_id=clip.id or 0,
                    details={
                        "kind": str(kind),
                        "sha256": blob.sha256,
                        "derived_from": clip.sha256,
                        "tool": run.tool,
                        "tool_version": run.tool_version,
                        FACTS_KEY: [row_fact("derivatives", derivative.id, derivative, new=True)],
                    },
                )
            mark_done(session, job, now)
    except SAIntegrityError:
        # another delivery of this job recorded the same derivatives first: nothing more to do
        log.info("derivatives of job %s were already recorded", job.id)


def _step_timestamp(station: Station, job: ProcessingJob, toolkit: Toolkit) -> None:
    clip = _load_clip(station, job.clip_id)
    token = toolkit.timestamp_authority.stamp(clip.sha256)
    now = station.clock()
    try:
        with station.transaction() as session:
            session.add(
                StoredTimestamp(
                    clip_id=clip.id or 0,
                    sha256=clip.sha256,
                    kind=token.kind,
                    authority=token.authority,
                    gen_time=token.gen_time,
                    serial=token.serial,
                    token=token.token,
                    created_at=now,
                )
            )
            station.audit.record(
                session,
                actor="worker",
                action="clip.timestamped",
                object_type="clip",
                object_id=clip.id or 0,
                details={
                    "kind": token.kind,
                    "authority": token.authority,
                    "gen_time": token.gen_time.isoformat(),
                    "serial": token.serial,
                    "sha256": clip.sha256,
                },
            )
            mark_done(session, job, now)
    except SAIntegrityError:
        log.info("time-stamp of job %s was already recorded", job.id)


STEPS: dict[ProcessingStep, Callable[[Station, ProcessingJob, Toolkit], None]] = {
    ProcessingStep.PROBE: _step_probe,
    ProcessingStep.PROXY: _step_proxy,
    ProcessingStep.THUMBNAILS: _step_thumbnails,
    ProcessingStep.TIMESTAMP: _step_timestamp,
}
