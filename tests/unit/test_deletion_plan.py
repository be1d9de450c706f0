"""Which files may be deleted from a recorder after a transfer (ingest.deletion.plan_deletions):
only verified copies, never what failed, was skipped or is in doubt (R1, R3, R10). Pure."""

from __future__ import annotations

from pathlib import Path

import pytest

from evidence_store.domain.model import TransferOutcome
from ingest.deletion import CopiedFile, plan_deletions, protected_paths
from ingest.devices.profiles import parse_profile

DEVICES = Path(__file__).resolve().parents[2] / "ingest" / "devices"
CN = parse_profile((DEVICES / "cn-standard.toml").read_text(encoding="utf-8"), "cn-standard.toml")
PROTECTED = protected_paths(CN)


def copied(path: str, status: str = "ingested", **changes: object) -> CopiedFile:
    base: dict[str, object] = {
        "path": path,
        "status": status,
        "sha256": "ab" * 32,
        "size": 10,
        "hashed": True,
        "device_mtime_ns": 1_700_000_000_000_000_000,
        "codes": (),
    }
    base.update(changes)
    return CopiedFile(**base)  # type: ignore[arg-type]


def plan(files: list[CopiedFile], outcome: TransferOutcome = TransferOutcome.PARTIAL) -> dict[str, bool]:
    return {d.file.path: d.delete for d in plan_deletions(files, outcome=outcome, protected=PROTECTED)}


def test_only_verified_copies_read_in_this_transfer_may_go() -> None:
    files = [
        copied("DCIM/a.MP4"),
        copied("DCIM/dup.MP4", "duplicate"),  # the same bytes already on record, hashed now
        copied("DCIM/failed.MP4", "failed", sha256=None, hashed=False, device_mtime_ns=None),
        copied("link.MP4", "skipped", sha256=None, hashed=False),
        copied("DCIM/known.MP4", "duplicate", hashed=False),  # taken as known by path/size/time only
        copied("DCIM/changing.MP4", codes=("changed_during_copy",)),
        copied("DCIM/reread.MP4", codes=("reread_mismatch",)),
        copied("DCIM/gbk.MP4", codes=("name_not_utf8",)),
        copied("DCIM/late.MP4", codes=("late_handover", "empty_file")),  # no doubt about the copy
        copied("DCIM/nostat.MP4", device_mtime_ns=None),
    ]
    assert plan(files) == {
        "DCIM/a.MP4": True,
        "DCIM/dup.MP4": True,
        "DCIM/failed.MP4": False,
        "link.MP4": False,
        "DCIM/known.MP4": False,
        "DCIM/changing.MP4": False,
        "DCIM/reread.MP4": False,
        "DCIM/gbk.MP4": False,
        "DCIM/late.MP4": True,
        "DCIM/nostat.MP4": False,
    }


def test_the_recorders_own_files_stay() -> None:
    assert plan([copied("DeviceInfo.txt"), copied("devinfo.txt"), copied("DCIM/x.MP4")]) == {
        "DeviceInfo.txt": False,
        "devinfo.txt": False,  # DEVINFO.TXT is a marker file; FAT names are case-insensitive
        "DCIM/x.MP4": True,
    }


@pytest.mark.parametrize(
    "outcome", [TransferOutcome.INTERRUPTED, TransferOutcome.FAILED, TransferOutcome.RUNNING]
)
def test_nothing_goes_after_an_interrupted_or_failed_transfer(outcome: TransferOutcome) -> None:
    decisions = plan_deletions([copied("DCIM/a.MP4")], outcome=outcome, protected=PROTECTED)
    assert [d.delete for d in decisions] == [False]
    assert str(outcome) in decisions[0].reason


def test_every_decision_says_why() -> None:
    decisions = plan_deletions(
        [copied("a.MP4"), copied("b.MP4", "failed", hashed=False)],
        outcome=TransferOutcome.COMPLETE,
        protected=PROTECTED,
    )
    assert [(d.delete, d.reason) for d in decisions] == [
        (True, "stored and verified"),
        (False, "failed: kept on the recorder"),
    ]
