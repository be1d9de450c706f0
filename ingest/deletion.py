"""Deleting files from a recorder once their copies are verified in the store (R1, R3, R10).

R1 says footage may not stay with the officer; R10 forbids losing it. A recorder profile may therefore
ask (`[pull] delete_after_verify = true`) that files be deleted from the recorder, and only this way:

1. `plan_deletions` (pure, plain data in and out) decides which files of a finished transfer may go:
   only files read and hashed from the device in this transfer and now on record (ingested, or the
   same bytes already on record), with no warning that casts doubt on the copy (changed during the
   copy, a second read that hashed differently, a name that cannot be reopened exactly), never the
   recorder's own device-info, clock or marker files, and nothing at all from a transfer that was
   interrupted or failed. Failed and skipped files always stay.
2. `delete_verified` checks each one again just before deleting it: the stored blob is re-hashed and
   must hash to the sha256 computed while reading the device, and the file on the recorder must still
   have the size and modification time it had when the copy was confirmed. Only then is it unlinked.
3. Every deletion is audited: `device_file.deleting` (the file, its sha256 and size) commits before
   the unlink, `device_file.deleted` after it; a deletion that fails is `device_file.delete_failed`.
   The transfer's `files_deleted` counts what was deleted.

The volume is mounted read-write for this step only (`ingest.mount.ReadWriteMount`); pulling is
always read-only.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import update
from sqlalchemy.orm import Session

from evidence_store.bootstrap import Station
from evidence_store.db.tables import transfers
from evidence_store.domain.dock_status import COPY_IN_DOUBT
from evidence_store.domain.model import TransferOutcome
from ingest.devices.profiles import RecorderProfile
from ingest.pull import FileResult

# Warning codes that mean the stored copy may not be what the recorder holds now.
DOUBTFUL = COPY_IN_DOUBT | {"name_not_utf8"}
DELETABLE_STATUSES = frozenset({"ingested", "duplicate"})
DELETING_OUTCOMES = frozenset({TransferOutcome.COMPLETE, TransferOutcome.PARTIAL})
BATCH_FILES = 200


@dataclass(frozen=True)
class CopiedFile:
    """What the pull knows of one file of the transfer."""

    path: str
    status: str  # ingested | duplicate | failed | skipped
    sha256: str | None
    size: int
    hashed: bool  # read and hashed from the device in this transfer
    device_mtime_ns: int | None  # as the mount showed it once the copy was confirmed
    codes: tuple[str, ...] = ()
    clip_id: int | None = None


@dataclass(frozen=True)
class Decision:
    file: CopiedFile
    delete: bool
    reason: str


def copied_file(item: FileResult) -> CopiedFile:
    """The plain facts of one file of a pull's summary."""
    return CopiedFile(
        path=item.path,
        status=item.status,
        sha256=item.sha256,
        size=item.size,
        hashed=item.hashed,
        device_mtime_ns=item.device_mtime_ns,
        codes=tuple(item.codes),
        clip_id=item.clip_id,
    )


def protected_paths(profile: RecorderProfile) -> frozenset[str]:
    """The recorder's own files, which are never deleted: device info, clock file, marker files."""
    paths = set(profile.marker_files)
    if profile.device_info_file:
        paths.add(profile.device_info_file)
    if profile.clock is not None:
        paths.add(profile.clock.file)
    return frozenset(p.strip("/").lower() for p in paths)


def plan_deletions(
    files: Iterable[CopiedFile], *, outcome: TransferOutcome, protected: frozenset[str]
) -> list[Decision]:
    """Which files of a transfer may be deleted from the recorder, each with the reason (pure)."""
    decisions = []
    for file in files:
        decisions.append(Decision(file, *_decide(file, outcome, protected)))
    return decisions


def _decide(file: CopiedFile, outcome: TransferOutcome, protected: frozenset[str]) -> tuple[bool, str]:
    if outcome not in DELETING_OUTCOMES:
        return False, f"the transfer ended {outcome}: nothing is deleted"
    if file.status not in DELETABLE_STATUSES:
        return False, f"{file.status}: kept on the recorder"
    if not file.hashed or file.sha256 is None or file.device_mtime_ns is None:
        return False, "not read and hashed in this transfer"
    doubts = sorted(DOUBTFUL.intersection(file.codes))
    if doubts:
        return False, f"the copy is in doubt ({', '.join(doubts)})"
    if file.path.strip("/").lower() in protected:
        return False, "the recorder's own file"
    return True, "stored and verified"


@dataclass
class DeletionReport:
    deleted: list[CopiedFile] = field(default_factory=list)
    kept: list[tuple[str, str]] = field(default_factory=list)  # (path, why) of planned but kept
    problems: list[str] = field(default_factory=list)


def delete_verified(
    station: Station,
    root: Path,
    decisions: list[Decision],
    *,
    transfer_id: int,
    device_serial: str,
    actor: str,
    cancelled: threading.Event | None = None,
) -> DeletionReport:
    """Delete the planned files from the volume mounted read-write at `root`, each re-verified first."""
    report = DeletionReport()
    planned = [d.file for d in decisions if d.delete]
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for start in range(0, len(planned), BATCH_FILES):
            if cancelled is not None and cancelled.is_set():
                report.problems.append("the recorder went away: deleting stopped")
                break
            verified = []
            for file in planned[start : start + BATCH_FILES]:
                why = _verify(station, root_fd, file)
                if why is None:
                    verified.append(file)
                else:
                    report.kept.append((file.path, why))
            _delete_batch(station, root_fd, verified, report, transfer_id, device_serial, actor)
        # not every FUSE driver has fsync on a directory; unmounting writes it out
        with contextlib.suppress(OSError):
            os.fsync(root_fd)
    finally:
        os.close(root_fd)
    return report


def _verify(station: Station, root_fd: int, file: CopiedFile) -> str | None:
    """Why the file must stay after all, or None when it may be deleted."""
    assert file.sha256 is not None
    try:
        if station.blobs.rehash(file.sha256) != file.sha256:
            return "the stored copy no longer hashes to its sha256"
    except Exception as exc:  # a missing or unreadable blob: OSError or the store's own error
        return f"the stored copy cannot be read ({exc})"
    try:
        st = _lstat(root_fd, file.path)
    except OSError as exc:
        return f"cannot look at it on the recorder: {exc.strerror}"
    if not stat.S_ISREG(st.st_mode):
        return "no longer a regular file on the recorder"
    if st.st_size != file.size or st.st_mtime_ns != file.device_mtime_ns:
        return "changed on the recorder since it was copied"
    return None


def _split(path: str) -> tuple[list[str], str]:
    parts = [p for p in path.split("/") if p]
    if not parts or any(p in {".", ".."} for p in parts):
        raise OSError(errno.EINVAL, "not a path on the volume")
    return parts[:-1], parts[-1]


def _open_parent(root_fd: int, path: str) -> tuple[int, str]:
    """The directory holding `path` (opened without following symlinks) and the file's name."""
    dirs, name = _split(path)
    fd = os.dup(root_fd)
    try:
        for part in dirs:
            next_fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = next_fd
    except BaseException:
        os.close(fd)
        raise
    return fd, name


def _lstat(root_fd: int, path: str) -> os.stat_result:
    fd, name = _open_parent(root_fd, path)
    try:
        return os.stat(name, dir_fd=fd, follow_symlinks=False)
    finally:
        os.close(fd)


def _unlink(root_fd: int, path: str) -> None:
    fd, name = _open_parent(root_fd, path)
    try:
        os.unlink(name, dir_fd=fd)
    finally:
        os.close(fd)


def _audit(
    station: Station,
    session: Session,
    action: str,
    file: CopiedFile,
    transfer_id: int,
    device_serial: str,
    actor: str,
    **extra: object,
) -> None:
    station.audit.record(
        session,
        actor=actor,
        action=action,
        object_type="transfer",
        object_id=transfer_id,
        details={
            "path": file.path,
            "sha256": file.sha256,
            "size": file.size,
            "clip_id": file.clip_id,
            "transfer_id": transfer_id,
            "device": device_serial,
            **extra,
        },
        flush=False,
    )


def _delete_batch(
    station: Station,
    root_fd: int,
    files: list[CopiedFile],
    report: DeletionReport,
    transfer_id: int,
    device_serial: str,
    actor: str,
) -> None:
    if not files:
        return
    with station.transaction() as session:  # what is about to be deleted is on the log first
        for file in files:
            _audit(station, session, "device_file.deleting", file, transfer_id, device_serial, actor)
    done: list[CopiedFile] = []
    failed: list[tuple[CopiedFile, str]] = []
    for file in files:
        try:
            _unlink(root_fd, file.path)
        except OSError as exc:
            failed.append((file, f"{exc.strerror or exc} (errno {exc.errno})"))
        else:
            done.append(file)
    with station.transaction() as session:
        for file in done:
            _audit(station, session, "device_file.deleted", file, transfer_id, device_serial, actor)
        for file, error in failed:
            _audit(
                station,
                session,
                "device_file.delete_failed",
                file,
                transfer_id,
                device_serial,
                actor,
                error=error,
            )
        if done:
            session.execute(
                update(transfers)
                .where(transfers.c.id == transfer_id)
                .values(files_deleted=transfers.c.files_deleted + len(done))
            )
    report.deleted.extend(done)
    for file, error in failed:
        report.kept.append((file.path, f"deleting failed: {error}"))
        report.problems.append(f"cannot delete {file.path} from the recorder: {error}")
