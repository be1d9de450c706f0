"""The dock daemon: every recorder docked at the station is mounted read-only and pulled.

Device mode: block-device events (`ingest.devices.monitor`) are judged by `ingest.devices.udev`; each
recorder volume gets its own worker thread, which mounts it read-only (`ingest.mount`), chooses its
profile, runs the same `pull` as `evidence import` (source=dock) and unmounts. Up to
`settings.dock_max_concurrent` recorders are pulled at once; the others wait for a slot. There is no
lock around the copy: the store and the database serialise only what must be serialised (the audit
chain append), so a big recorder does not hold up a small one. A `remove` event (or the medium going
away) sets the pull's `cancelled` event: the transfer ends `interrupted` and keeps what was committed.
A device is pulled once per docking: later add/change events for it are ignored until it goes away.
When the recorder's profile asks for it (`delete_after_verify`), the files whose copies are verified
are then deleted from the recorder through a read-write mount made for that step only, each deletion
audited (`ingest.deletion`; R1, R10); a volume someone else has mounted is never written to.
The devices present when the daemon starts are taken as docked then (a recorder plugged in while the
daemon was down is not missed).

Folder mode (`--watch DIR`): each sub-folder of DIR is one recorder's upload (copied there by another
tool or a network share). Once it has been quiet for the settle time it is pulled the same way
(source=watch). New files arriving in it later make it pending again; files already on record are
recognised and not copied twice.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import select

from evidence_store.bootstrap import Station
from evidence_store.db.tables import transfers
from evidence_store.domain.model import TransferOutcome, TransferSource
from evidence_store.errors import EvidenceError
from evidence_store.ports import ProcessingQueue
from ingest.deletion import copied_file, delete_verified, plan_deletions, protected_paths
from ingest.devices.profiles import RecorderProfile, VolumeFacts
from ingest.devices.udev import (
    DockedVolume,
    docked_volume_from_properties,
    is_removal,
    not_a_recorder_volume,
)
from ingest.mount import ReadOnlyMount, ReadWriteMount
from ingest.pull import PullProgress, PullRequest, TransferSummary, pull
from ingest.service import choose_profile
from ingest.spool import DockTargets, may_clear_recorders
from ingest.transfer_record import release_transfer

log = logging.getLogger(__name__)

DEFAULT_SETTLE_S = 5.0
EVENT_HISTORY = 500  # recent candidate events and results kept for diagnostics (a daemon runs for months)


@dataclass
class DockResult:
    """What became of one docking (or one watched folder): the transfer summary or why there is none."""

    key: str  # the device node or the folder
    source: TransferSource
    volume: DockedVolume | None = None
    folder: Path | None = None
    mount_method: str | None = None
    mount_read_only: bool | None = None
    summary: TransferSummary | None = None
    error: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.summary is not None and self.summary.outcome is TransferOutcome.COMPLETE

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = self.summary.as_dict() if self.summary else {"outcome": None}
        data["dock"] = {
            "key": self.key,
            "source": str(self.source),
            "volume": self.volume.as_dict() if self.volume else None,
            "folder": str(self.folder) if self.folder else None,
            "mount_method": self.mount_method,
            "mount_read_only": self.mount_read_only,
            "error": self.error,
            "problems": self.problems,
        }
        return data


def block_device_present(devname: str) -> bool:
    """Whether the kernel still has the device with a medium: a USB disk that is pulled out gets
    capacity 0 (del_gendisk) before any event is sent, and its sysfs entries go soon after."""
    try:
        device = Path(f"/sys/class/block/{devname}").resolve(strict=True)
        sizes = [device / "size"]
        if (device / "partition").exists():
            sizes.append(device.parent / "size")  # the disk the partition is on
        return all(int(size.read_text(encoding="ascii").strip()) > 0 for size in sizes)
    except (OSError, ValueError):
        return False


class DeviceGone(threading.Event):
    """The `cancelled` event of a pull from a block device. Set by a removal event; and each time the
    pull asks, the device itself is looked at, so the answer does not wait for udev. The pull asks
    after every copy: a file read while the recorder vanished is never recorded (a vanished disk
    reads as end-of-file, which exfat-fuse turns into stale bytes and fusefat into EPERM)."""

    def __init__(self, devname: str) -> None:
        super().__init__()
        self.devname = devname

    def is_set(self) -> bool:
        if super().is_set():
            return True
        if not block_device_present(self.devname):
            self.set()
            return True
        return False


@dataclass
class DockJob:
    key: str
    source: TransferSource
    volume: DockedVolume | None = None
    folder: Path | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    progress: PullProgress | None = None
    done: threading.Event = field(default_factory=threading.Event)
    station: Station | None = None  # where this docking writes (the backend or the spool, issue 18)


ResultCallback = Callable[[DockResult], None]
ProgressCallback = Callable[[DockJob, PullProgress], None]


class Dock:
    """The state of a docking station: which devices are docked, which pulls run."""

    def __init__(
        self,
        station: Station,
        *,
        queue: ProcessingQueue,
        accept_loop: bool = False,
        max_concurrent: int | None = None,
        on_result: ResultCallback | None = None,
        on_progress: ProgressCallback | None = None,
        targets: DockTargets | None = None,
    ) -> None:
        self.station = station
        # per docking, the backend or (unreachable) the spool; without it every docking uses `station`
        self.targets = targets
        self.settings = station.settings
        self.queue = queue  # chosen by the entry layer (entrypoints.wiring)
        self.accept_loop = accept_loop
        self.max_concurrent = max_concurrent or self.settings.dock_max_concurrent
        self.on_result = on_result
        self.on_progress = on_progress
        self.actor = f"dock:{self.settings.station_name}"
        self._slots = threading.BoundedSemaphore(self.max_concurrent)
        self._lock = threading.Lock()  # guards the dicts below, never held during a pull
        self._jobs: dict[str, DockJob] = {}
        self._docked: dict[str, str] = {}  # device node -> identity of the volume docked there
        self._closing = False
        self.results: deque[DockResult] = deque(maxlen=EVENT_HISTORY)
        self.events: deque[dict[str, str]] = deque(maxlen=EVENT_HISTORY)
        self.finished = 0  # dockings (and folders) done since start
        self.not_complete = 0  # of which ended without a complete transfer

    # -- device events ------------------------------------------------------------------------------

    def handle_event(self, props: Mapping[str, str]) -> DockJob | None:
        """Act on one block-device event; returns the job started for it, if any."""
        devnode = props.get("DEVNAME", "")
        if not devnode:
            return None
        if is_removal(props):
            self._removed(devnode, props.get("ACTION", ""))
            return None
        volume = docked_volume_from_properties(props, accept_loop=self.accept_loop)
        if volume is None:
            if log.isEnabledFor(logging.DEBUG):
                reason = not_a_recorder_volume(props, accept_loop=self.accept_loop)
                log.debug("%s %s: not a recorder volume: %s", props.get("ACTION"), devnode, reason)
            return None
        self.events.append(dict(props))
        identity = volume.uuid or volume.label or volume.diskseq or "?"
        with self._lock:
            if self._closing:
                return None
            if devnode in self._jobs or self._docked.get(devnode) == identity:
                return None  # the same docking announced again (add then change, udev's watch)
            self._docked[devnode] = identity
            job = DockJob(
                key=devnode, source=TransferSource.DOCK, volume=volume, cancelled=DeviceGone(volume.devname)
            )
            self._jobs[devnode] = job
        log.info(
            "recorder volume docked: %s %s label=%s uuid=%s usb=%s%s (via %s)",
            devnode,
            volume.fs_type,
            volume.label,
            volume.uuid,
            volume.usb_id,
            " [tagged recorder]" if volume.tagged_recorder else "",
            props.get("EVIDENCE_EVENT_SOURCE", "?"),
        )
        self._start(job, self._run_device)
        return job

    def _removed(self, devnode: str, action: str) -> None:
        with self._lock:
            self._docked.pop(devnode, None)
            job = self._jobs.get(devnode)
        if job is not None and not job.done.is_set():
            log.warning("%s went away (%s) during its pull: stopping it", devnode, action)
            job.cancelled.set()

    # -- watched folders ----------------------------------------------------------------------------

    def pull_folder(self, folder: Path) -> DockJob | None:
        key = str(folder)
        with self._lock:
            if self._closing or key in self._jobs:
                return None
            job = DockJob(key=key, source=TransferSource.WATCH, folder=folder)
            self._jobs[key] = job
        self._start(job, self._run_folder)
        return job

    def folder_pulled_since(self, folder: Path, changed_at: float) -> bool:
        """Whether a complete watch transfer of this folder started after its last change (epoch s):
        a restarted dock does not pull old uploads again."""
        with self.station.connect() as connection:
            latest = connection.scalar(
                select(transfers.c.started_at)
                .where(
                    transfers.c.source == TransferSource.WATCH,
                    transfers.c.source_path == str(folder),
                    transfers.c.outcome == TransferOutcome.COMPLETE,
                )
                .order_by(transfers.c.started_at.desc())
                .limit(1)
            )
        return latest is not None and latest.timestamp() > changed_at

    def is_busy(self, key: str) -> bool:
        with self._lock:
            return key in self._jobs

    # -- workers ------------------------------------------------------------------------------------

    def _start(self, job: DockJob, target: Callable[[DockJob], DockResult]) -> None:
        def work() -> None:
            try:
                with self._slots:
                    if job.cancelled.is_set():
                        result = DockResult(job.key, job.source, job.volume, job.folder)
                        result.error = "gone before its pull started"
                    else:
                        result = target(job)
            except Exception as exc:  # one recorder's failure never stops the dock
                log.exception("pulling %s failed", job.key)
                result = DockResult(
                    job.key, job.source, job.volume, job.folder, error=f"internal error: {exc}"
                )
            try:
                self._report(result)  # before the job counts as done: `--once` exits when all are
            except Exception:
                log.exception("reporting on %s failed", job.key)
            finally:
                with self._lock:
                    self._jobs.pop(job.key, None)
                    self.results.append(result)
                    self.finished += 1
                    self.not_complete += 0 if result.ok else 1
                job.done.set()

        name = f"dock-{job.volume.devname if job.volume else Path(job.key).name}"
        job.thread = threading.Thread(target=work, name=name, daemon=True)
        job.thread.start()

    def _pull(
        self, job: DockJob, root: Path, facts: VolumeFacts, result: DockResult, *, may_delete: bool = False
    ) -> RecorderProfile:
        station, queue = self.targets.choose() if self.targets is not None else (self.station, self.queue)
        job.station = station
        profile, facts = choose_profile(station, root, None, facts)

        def progress(state: PullProgress) -> None:
            job.progress = state
            if self.on_progress is not None:
                self.on_progress(job, state)

        request = PullRequest(
            root=root,
            profile=profile,
            source=job.source,
            volume=facts,
            actor=self.actor,
            dock_station=self.settings.station_name,
            progress=progress,
            cancelled=job.cancelled,
            hash_every_file=may_delete and profile.delete_after_verify,
        )
        result.summary = pull(station, request, queue)
        return profile

    def _run_device(self, job: DockJob) -> DockResult:
        volume = job.volume
        assert volume is not None
        result = DockResult(job.key, job.source, volume)
        mount = ReadOnlyMount(volume.devnode, volume.fs_type, self.settings.effective_mount_dir)
        try:
            root = mount.mount()
        except EvidenceError as exc:
            result.error = str(exc)
            return result
        result.mount_method = mount.method
        result.mount_read_only = _read_only(root)
        profile = None
        # files are deleted from a recorder only through a mount of our own (R10): a volume someone
        # else has mounted is left as it is
        may_delete = mount.method == "kernel" or mount.method.startswith("fuse:")
        try:
            facts = VolumeFacts(usb_id=volume.usb_id, label=volume.label, uuid=volume.uuid)
            profile = self._pull(job, root, facts, result, may_delete=may_delete)
        except EvidenceError as exc:
            result.error = str(exc)
        finally:
            unmounted = True
            try:
                mount.unmount()
            except EvidenceError as exc:
                result.problems.append(str(exc))
                may_delete = unmounted = False
        if profile is not None and profile.delete_after_verify and result.summary is not None:
            allowed, why = may_clear_recorders(job.station or self.station)
            if may_delete and not allowed:  # a filling spool keeps what it pulled, clears nothing
                result.problems.append(f"nothing deleted from the recorder: {why}")
            elif may_delete:
                unmounted = self._delete_verified(job, volume, profile, result)
            else:
                result.problems.append("the volume was mounted by someone else: nothing deleted from it")
        if result.summary is not None:
            self._release(result, unmounted=unmounted)
        return result

    def _release(self, result: DockResult, *, unmounted: bool) -> None:
        """Say on the record that the dock is done with this recorder (`transfer.released`): with a
        complete transfer, the station page now shows it safe to unplug (issue 19)."""
        assert result.summary is not None
        try:
            release_transfer(
                self.station,
                self.actor,
                result.summary.transfer_id,
                unmounted=unmounted,
                problems=result.problems,
            )
        except Exception as exc:  # the pull's record stands; the bay then never says "safe"
            log.exception(
                "%s: recording the release of transfer %d failed", result.key, result.summary.transfer_id
            )
            result.problems.append(f"the release of the recorder could not be recorded: {exc}")

    def _delete_verified(
        self, job: DockJob, volume: DockedVolume, profile: RecorderProfile, result: DockResult
    ) -> bool:
        """Delete from the recorder the files of this transfer whose copies are verified (the
        profile asks for it), through a read-write mount made for this step only (R1, R10). False if
        that mount could not be undone (the recorder is not let go)."""
        summary = result.summary
        assert summary is not None
        files = [copied_file(f) for f in summary.files]
        decisions = plan_deletions(files, outcome=summary.outcome, protected=protected_paths(profile))
        if not any(d.delete for d in decisions):
            return True
        if job.cancelled.is_set():
            result.problems.append("the recorder went away: nothing deleted from it")
            return True
        mount = ReadWriteMount(volume.devnode, volume.fs_type, self.settings.effective_mount_dir)
        try:
            root = mount.mount()
        except EvidenceError as exc:
            result.problems.append(f"nothing deleted from the recorder: {exc}")
            return True
        unmounted = True
        try:
            report = delete_verified(
                job.station or self.station,
                root,
                decisions,
                transfer_id=summary.transfer_id,
                device_serial=summary.device_serial,
                actor=self.actor,
                cancelled=job.cancelled,
            )
        finally:
            try:
                mount.unmount()
            except EvidenceError as exc:
                result.problems.append(str(exc))
                unmounted = False
        deleted = {f.path for f in report.deleted}
        kept = dict(report.kept)
        for item in summary.files:
            if item.path in deleted:
                item.deleted = True
            elif item.path in kept:
                item.warnings.append(f"not deleted from the recorder: {kept[item.path]}")
        summary.files_deleted = len(deleted)
        summary.problems.extend(report.problems)
        log.info("%s: %d files deleted from the recorder after verifying", job.key, len(deleted))
        return unmounted

    def _run_folder(self, job: DockJob) -> DockResult:
        assert job.folder is not None
        result = DockResult(job.key, job.source, folder=job.folder)
        try:
            self._pull(job, job.folder, VolumeFacts(label=job.folder.name), result)
        except EvidenceError as exc:
            result.error = str(exc)
        return result

    def _report(self, result: DockResult) -> None:
        summary = result.summary
        if summary is None:
            log.error("%s: no transfer: %s", result.key, result.error)
        else:
            log.info(
                "%s: transfer %d %s, device %s, officer %s: %d seen, %d ingested, %d duplicate, "
                "%d failed, %d skipped, %d attachments, %d bytes%s",
                result.key,
                summary.transfer_id,
                summary.outcome,
                summary.device_serial,
                summary.officer_badge,
                summary.files_seen,
                summary.files_ingested,
                summary.files_duplicate,
                summary.files_failed,
                summary.files_skipped,
                summary.files_attached,
                summary.bytes_copied,
                "".join(f"; {p}" for p in summary.problems),
            )
        if self.on_result is not None:
            self.on_result(result)

    # -- lifetime -----------------------------------------------------------------------------------

    def active(self) -> list[DockJob]:
        with self._lock:
            return list(self._jobs.values())

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no pull runs; False if `timeout` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            jobs = self.active()
            if not jobs:
                return True
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            jobs[0].done.wait(timeout=0.5 if remaining is None else min(remaining, 0.5))

    def cancel_all(self) -> None:
        """Stop taking new work and tell every running pull to stop (returns at once)."""
        with self._lock:
            self._closing = True
            jobs = list(self._jobs.values())
        for job in jobs:
            job.cancelled.set()

    def close(self, timeout: float = 60.0) -> None:
        """Stop: running pulls end `interrupted` (the next docking takes the rest) and are waited for."""
        self.cancel_all()
        self.wait_idle(timeout)


def _read_only(root: Path) -> bool:
    try:
        return bool(os.statvfs(root).f_flag & os.ST_RDONLY)
    except OSError:
        return False


# -- the event loops --------------------------------------------------------------------------------


def run_devices(
    dock: Dock,
    stop: threading.Event,
    *,
    once: bool = False,
    source: Literal["auto", "udev", "kernel"] = "auto",
    ready: threading.Event | None = None,
) -> str:
    """Listen to block-device events until `stop` is set (or, with `once`, take what is docked now).
    Sets `ready` once listening; returns the event source used (udev or kernel)."""
    from ingest.devices.monitor import BlockMonitor  # lazy: pyudev, only for a dock that listens

    monitor = BlockMonitor(source)
    monitor.start()  # before listing what is present, so nothing falls in between
    log.info("dock %s listening to %s block events", dock.settings.station_name, monitor.source)
    monitor.settle()  # a device udev is still working on is listed once it is done with it
    for present in monitor.present():
        dock.handle_event(present)
    if ready is not None:
        ready.set()
    if once:
        dock.wait_idle()
        return monitor.source
    while not stop.is_set():
        try:
            event = monitor.poll(timeout=0.5)
        except OSError as exc:
            if exc.errno != errno.ENOBUFS:
                raise
            # the kernel dropped events (a burst of them): look at what is docked now instead
            log.warning("block events were lost (%s): rescanning the devices present", exc.strerror)
            for present in monitor.present():
                dock.handle_event(present)
            continue
        if event is not None:
            dock.handle_event(event)
    return monitor.source


@dataclass
class _Folder:
    last_activity: float  # monotonic time of the last write seen
    snapshot: tuple[int, int, int] | None = None
    checked: float = float("-inf")  # monotonic time of the last snapshot
    pending: bool = True


def folder_snapshot(folder: Path) -> tuple[int, int, int]:
    """(files, bytes, newest change in ns) of a folder tree; it changes while an upload runs. The
    change time counts, not only the modification time: a copy that keeps file times is a change."""
    files = size = newest = 0
    for dirpath, _dirs, names in os.walk(folder):
        with contextlib.suppress(OSError):
            st = os.lstat(dirpath)
            newest = max(newest, st.st_mtime_ns, st.st_ctime_ns)
        for name in names:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(dirpath, name))
                files += 1
                size += st.st_size
                newest = max(newest, st.st_mtime_ns, st.st_ctime_ns)
    return files, size, newest


class FolderWatcher:
    """Sub-folders of a drop folder, each pulled once it has been quiet for `settle` seconds."""

    # watchdog event types that mean something was written (reads by the pull itself do not count)
    WRITE_EVENTS = frozenset({"created", "modified", "moved", "deleted", "closed"})

    def __init__(self, dock: Dock, root: Path, settle: float = DEFAULT_SETTLE_S) -> None:
        self.dock = dock
        self.root = root
        self.settle = settle
        self._lock = threading.Lock()
        self._folders: dict[str, _Folder] = {}
        self._observer: Any = None

    def start(self) -> None:
        # lazy: watchdog starts inotify machinery; only a dock that watches a drop folder loads it
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer

        watcher = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if event.event_type not in watcher.WRITE_EVENTS:
                    return
                for raw in (event.src_path, getattr(event, "dest_path", "")):
                    path = os.fsdecode(raw) if raw else ""
                    if path:
                        watcher.touched(Path(path))

        self._observer = Observer()
        self._observer.schedule(Handler(), str(self.root), recursive=True)
        self._observer.start()
        self.scan()

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=10)
            self._observer = None

    def _name_of(self, path: Path) -> str | None:
        try:
            relative = path.relative_to(self.root)
        except ValueError:
            return None
        if not relative.parts or relative.parts[0].startswith("."):
            return None
        if len(relative.parts) == 1 and not path.is_dir():
            return None  # a loose file in the drop folder is not an upload
        return relative.parts[0]

    def touched(self, path: Path) -> None:
        name = self._name_of(path)
        if name is None:
            return
        with self._lock:
            folder = self._folders.get(name)
            if folder is None:
                self._folders[name] = _Folder(time.monotonic())
            else:
                folder.last_activity = time.monotonic()
                folder.pending = True

    def scan(self) -> None:
        """Take note of the sub-folders there now (at start, and in case an event was missed)."""
        try:
            entries = [e for e in os.scandir(self.root) if e.is_dir(follow_symlinks=False)]
        except OSError as exc:
            log.error("cannot list drop folder %s: %s", self.root, exc.strerror)
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            with self._lock:
                if entry.name in self._folders:
                    continue
            path = Path(entry.path)
            snapshot = folder_snapshot(path)
            changed_at = snapshot[2] / 1e9
            folder = _Folder(time.monotonic() - max(0.0, time.time() - changed_at), snapshot)
            if self.dock.folder_pulled_since(path, changed_at):
                folder.pending = False  # pulled completely since its last change
            with self._lock:
                self._folders.setdefault(entry.name, folder)

    def tick(self) -> None:
        """Start the pull of every pending folder that has been quiet long enough. Quiet means no
        write event and no change of its (files, bytes, newest mtime) for `settle` seconds: a copy
        that writes without inotify seeing it (a network share) still counts as activity."""
        with self._lock:
            pending = [(n, f) for n, f in self._folders.items() if f.pending]
        for name, folder in pending:
            path = self.root / name
            if not path.is_dir():
                with self._lock:
                    self._folders.pop(name, None)
                continue
            if self.dock.is_busy(str(path)):
                continue
            now = time.monotonic()
            if now - folder.checked >= min(1.0, self.settle / 2):
                snapshot = folder_snapshot(path)
                with self._lock:
                    if folder.snapshot is not None and snapshot != folder.snapshot:
                        folder.last_activity = max(folder.last_activity, now)
                    folder.snapshot, folder.checked = snapshot, now
            with self._lock:
                if now - folder.last_activity < self.settle or folder.checked < folder.last_activity:
                    continue
                folder.pending = False
            log.info("upload folder %s quiet for %.1f s: pulling it", path, self.settle)
            self.dock.pull_folder(path)

    def idle(self) -> bool:
        with self._lock:
            pending = any(f.pending for f in self._folders.values())
        return not pending and not self.dock.active()


def run_watch(
    dock: Dock,
    watcher: FolderWatcher,
    stop: threading.Event,
    *,
    once: bool = False,
    ready: threading.Event | None = None,
) -> None:
    watcher.start()
    if ready is not None:
        ready.set()
    log.info("dock %s watching %s (settle %.1f s)", dock.settings.station_name, watcher.root, watcher.settle)
    try:
        last_scan = time.monotonic()
        while not stop.is_set():
            watcher.tick()
            if once and watcher.idle():
                return
            if time.monotonic() - last_scan > 30:
                watcher.scan()
                last_scan = time.monotonic()
            stop.wait(min(0.25, watcher.settle / 4 or 0.25))
    finally:
        watcher.stop()
