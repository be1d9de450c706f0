"""The live dock status rules (issue 19): a bay's state, its error in one code, "safe to unplug" only
once every file is stored and verified and the dock let the recorder go (R1, R10), speed and time left
from samples, and the bound on how often a running transfer's counters are written."""

from __future__ import annotations

from dataclasses import replace

import pytest

from evidence_store.domain.dock_status import (
    COPY_IN_DOUBT,
    DockError,
    DockState,
    Sample,
    TransferFacts,
    add_sample,
    dock_error,
    dock_state,
    eta_seconds,
    fraction,
    progress_due,
    safe_to_unplug,
    speed,
)
from evidence_store.domain.model import TransferOutcome as O

RUNNING = TransferFacts(outcome=O.RUNNING, files_total=10, bytes_total=1000, files_seen=3, bytes_done=300)
COMPLETE = replace(
    RUNNING, outcome=O.COMPLETE, files_seen=10, files_stored=10, bytes_done=1000, released=True
)


def test_a_running_transfer_copies_then_verifies_then_is_released() -> None:
    assert dock_state(replace(RUNNING, files_total=None, bytes_total=None)) is DockState.WAITING
    assert dock_state(RUNNING) is DockState.COPYING
    # every file read, the last batch being synced and committed
    assert dock_state(replace(RUNNING, files_seen=10, bytes_done=1000)) is DockState.VERIFYING
    # the last file started but not all its bytes read: still copying
    assert dock_state(replace(RUNNING, files_seen=10, bytes_done=900)) is DockState.COPYING
    assert dock_state(replace(COMPLETE, released=None)) is DockState.RELEASING
    assert dock_state(COMPLETE) is DockState.DONE


def test_safe_to_unplug_only_once_everything_is_stored_verified_and_released() -> None:
    assert safe_to_unplug(COMPLETE)
    # never while it runs, however far it is
    assert not safe_to_unplug(replace(COMPLETE, outcome=O.RUNNING))
    # on the record but the dock has not let the device go (unmounting, deleting after verify)
    assert not safe_to_unplug(replace(COMPLETE, released=None))
    assert not safe_to_unplug(replace(COMPLETE, released=False))
    # some file of the recorder is not on the record
    for outcome in (O.PARTIAL, O.FAILED, O.INTERRUPTED):
        assert not safe_to_unplug(replace(COMPLETE, outcome=outcome))
    assert not safe_to_unplug(replace(COMPLETE, files_failed=1))
    # a file changed while it was copied: its copy is not verified as the recorder's
    assert not safe_to_unplug(replace(COMPLETE, files_in_doubt=1))
    # a folder import has no recorder to unplug
    assert not safe_to_unplug(replace(COMPLETE, from_device=False))


@pytest.mark.parametrize(
    ("facts", "error"),
    [
        (replace(COMPLETE, outcome=O.INTERRUPTED), DockError.INTERRUPTED),
        (replace(COMPLETE, outcome=O.FAILED), DockError.STORE_FAILED),
        (replace(COMPLETE, outcome=O.PARTIAL, files_failed=2), DockError.FILES_FAILED),
        (replace(COMPLETE, released=False), DockError.NOT_RELEASED),
        (replace(COMPLETE, files_in_doubt=1), DockError.COPY_IN_DOUBT),
        (COMPLETE, None),
        (RUNNING, None),
        (replace(COMPLETE, from_device=False, released=None), None),
    ],
)
def test_errors_in_one_code_each(facts: TransferFacts, error: DockError | None) -> None:
    assert dock_error(facts) is error
    assert (dock_state(facts) is DockState.ERROR) == (error is not None)


def test_the_doubt_that_keeps_a_file_on_the_recorder_keeps_it_from_being_unplugged() -> None:
    from ingest.deletion import DOUBTFUL  # the deletion rule (R10) is the same doubt, and one more

    assert COPY_IN_DOUBT <= DOUBTFUL


def test_speed_and_time_left_from_samples() -> None:
    assert speed([]) is None
    assert speed([Sample(0.0, 0)]) is None
    assert speed([Sample(5.0, 100), Sample(5.0, 200)]) is None  # no time between them
    samples = [Sample(0.0, 0), Sample(1.0, 100), Sample(2.0, 200), Sample(3.0, 300)]
    assert speed(samples) == pytest.approx(100.0)
    # only the last window counts: a slow start is forgotten
    slow_then_fast = [Sample(0.0, 0), Sample(20.0, 100), Sample(25.0, 600), Sample(30.0, 1100)]
    assert speed(slow_then_fast, window_s=10.0) == pytest.approx(100.0)
    assert eta_seconds(300, 1000, 100.0) == pytest.approx(7.0)
    assert eta_seconds(300, None, 100.0) is None
    assert eta_seconds(300, 1000, None) is None
    assert eta_seconds(300, 1000, 0.0) is None
    assert eta_seconds(1200, 1000, 50.0) == 0.0


def test_samples_are_kept_for_a_while_and_restart_when_bytes_go_back() -> None:
    samples: list[Sample] = []
    for second in range(100):
        samples = add_sample(samples, Sample(float(second), second * 10), keep_s=30.0)
    assert samples[0].at == 69.0 and samples[-1].at == 99.0
    assert add_sample(samples, Sample(100.0, 5)) == [Sample(100.0, 5)]


def test_counters_are_written_at_most_once_a_second() -> None:
    assert progress_due(None, 0.0)
    assert not progress_due(10.0, 10.5)
    assert progress_due(10.0, 11.0)
    assert progress_due(10.0, 10.2, every_s=0.1)


def test_fraction_done() -> None:
    assert fraction(5, None) is None
    assert fraction(5, 10) == 0.5
    assert fraction(15, 10) == 1.0  # the volume grew after listing
    assert fraction(0, 0) == 1.0


def test_every_state_and_error_reads_in_words_in_both_languages() -> None:
    from web.i18n import EN, ZH

    keys = {f"station.state.{s.value}" for s in DockState} | {f"dock_error.{e.value}" for e in DockError}
    assert keys <= set(ZH) and keys <= set(EN)
    assert all(ZH[k] != EN[k] for k in keys)
