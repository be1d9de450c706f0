"""Live dock status (issue 19): what a bay shows while a recorder's files are pulled, as plain rules.

A transfer's facts as the record holds them while it runs (`TransferFacts`: the counters the pull
writes at a bounded rate, the totals it listed on the recorder at docking, whether the dock has let the
recorder go) give

* its state: waiting (nothing listed yet), copying, verifying (every file read; the last copies are
  being made durable and put on the record), done, or error (with a code for the words to show);
* whether the recorder is **safe to unplug**: only once every file of the recorder is stored durably
  and verified (the transfer ended `complete`: each file read, hashed, confirmed unchanged, synced to
  the store and committed, R1, R3, R10) and the dock has released the device (unmounted, and any
  deletion from the recorder its profile asks for done). Never earlier: a partial, failed or
  interrupted transfer leaves files on the recorder that are not on the record;
* the speed and the time left, from samples of (time, bytes done) taken by whoever watches.

Pure: no clock is read here (`now` and the samples' times are arguments), nothing is stored.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from evidence_store.domain.model import TransferOutcome

# The warning codes that mean a stored copy is not known to be what the recorder holds (the file changed
# while it was read, or a second read hashed differently). The same doubt keeps such a file on the
# recorder when a profile deletes after verifying (`ingest.deletion.DOUBTFUL`, which adds a name that
# cannot be reopened exactly); here it keeps the recorder from being called safe to unplug.
COPY_IN_DOUBT = frozenset({"changed_during_copy", "reread_mismatch"})


class DockState(enum.StrEnum):
    WAITING = "waiting"
    COPYING = "copying"
    VERIFYING = "verifying"
    RELEASING = "releasing"  # on the record; the dock is still unmounting (or deleting, if asked)
    DONE = "done"
    ERROR = "error"


class DockError(enum.StrEnum):
    """Why a transfer did not end complete, as one code per plain sentence (web.i18n `dock_error.*`)."""

    INTERRUPTED = "interrupted"  # the recorder went away (or the station stopped) mid-copy
    STORE_FAILED = "store_failed"  # the station's store could not take the bytes (disk full)
    FILES_FAILED = "files_failed"  # some files could not be read: the next docking tries them again
    COPY_IN_DOUBT = "copy_in_doubt"  # some files changed while they were copied (COPY_IN_DOUBT)
    NOT_RELEASED = "not_released"  # complete, but the dock could not let the device go (unmount)


@dataclass(frozen=True)
class TransferFacts:
    """One transfer as the station's record holds it (running or finished)."""

    outcome: TransferOutcome
    files_total: int | None  # listed on the recorder at docking; None: not listed (yet)
    bytes_total: int | None
    files_seen: int = 0
    files_stored: int = 0  # on the record: ingested or same bytes already there (verified copies)
    files_failed: int = 0
    files_in_doubt: int = 0  # stored with a warning of COPY_IN_DOUBT
    bytes_done: int = 0
    # the dock is done with the device: True once it unmounted it, False if it could not, None while
    # it has not said (a folder import has no device: always None)
    released: bool | None = None
    from_device: bool = True  # a docked recorder (not a folder import)


def dock_state(facts: TransferFacts) -> DockState:
    """The state a bay shows."""
    if facts.outcome is TransferOutcome.RUNNING:
        if facts.files_total is None:
            return DockState.WAITING
        if facts.files_seen >= facts.files_total and facts.bytes_done >= (facts.bytes_total or 0):
            return DockState.VERIFYING
        return DockState.COPYING
    if dock_error(facts) is not None:
        return DockState.ERROR
    if facts.from_device and facts.released is None:
        return DockState.RELEASING
    return DockState.DONE


_OUTCOME_ERRORS = {
    TransferOutcome.INTERRUPTED: DockError.INTERRUPTED,
    TransferOutcome.FAILED: DockError.STORE_FAILED,
    TransferOutcome.PARTIAL: DockError.FILES_FAILED,
}


def dock_error(facts: TransferFacts) -> DockError | None:
    """What went wrong, in one code; None while it runs or when it ended well."""
    if facts.outcome is TransferOutcome.RUNNING:
        return None
    if facts.outcome in _OUTCOME_ERRORS:
        return _OUTCOME_ERRORS[facts.outcome]
    if facts.files_failed:
        return DockError.FILES_FAILED
    if facts.files_in_doubt:
        return DockError.COPY_IN_DOUBT
    if facts.from_device and facts.released is False:
        return DockError.NOT_RELEASED
    return None


def safe_to_unplug(facts: TransferFacts) -> bool:
    """Whether the officer may take the recorder now: every file of it stored durably and verified (a
    complete transfer, no file failed, no copy in doubt) and the dock done with the device. Never
    before (R1, R10)."""
    return (
        facts.from_device
        and facts.outcome is TransferOutcome.COMPLETE
        and facts.files_failed == 0
        and facts.files_in_doubt == 0
        and facts.released is True
    )


def files_verified(facts: TransferFacts) -> int:
    """How many of the recorder's files are on the record so far (copied, hashed, confirmed, synced,
    committed)."""
    return facts.files_stored


@dataclass(frozen=True)
class Sample:
    """Bytes done by a transfer at a moment (seconds on any steady clock)."""

    at: float
    bytes_done: int


SPEED_WINDOW_S = 10.0


def speed(samples: Sequence[Sample], *, window_s: float = SPEED_WINDOW_S) -> float | None:
    """Bytes per second over the last `window_s` seconds of samples (oldest first); None until two
    samples at least a moment apart are known."""
    if len(samples) < 2:
        return None
    last = samples[-1]
    first = next((s for s in samples if last.at - s.at <= window_s), samples[-2])
    if first is last:
        first = samples[-2]
    elapsed = last.at - first.at
    if elapsed <= 0:
        return None
    return max(0.0, (last.bytes_done - first.bytes_done) / elapsed)


def eta_seconds(bytes_done: int, bytes_total: int | None, rate: float | None) -> float | None:
    """Seconds left at `rate`; None when it cannot be said (no total, no speed yet, standing still)."""
    if bytes_total is None or rate is None or rate <= 0:
        return None
    return max(0.0, (bytes_total - bytes_done) / rate)


def add_sample(samples: list[Sample], sample: Sample, *, keep_s: float = SPEED_WINDOW_S * 3) -> list[Sample]:
    """`samples` with `sample` added and those older than `keep_s` dropped (a new list). A sample with
    fewer bytes than the last (a new transfer in the same place) starts over."""
    if samples and sample.bytes_done < samples[-1].bytes_done:
        return [sample]
    kept = [s for s in samples if sample.at - s.at <= keep_s]
    return [*kept, sample]


def progress_due(last_written: float | None, now: float, *, every_s: float = 1.0) -> bool:
    """Whether a running transfer's counters are to be written to the record now: at most once per
    `every_s` seconds, so a fast copy of many small files does not hammer the database."""
    return last_written is None or now - last_written >= every_s


def fraction(done: int, total: int | None) -> float | None:
    """Done over total (0..1), None without a total; a total listed short of what was found is the
    done count itself."""
    if total is None:
        return None
    if total <= 0:
        return 1.0
    return min(1.0, done / total)
