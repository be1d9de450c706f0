"""Closing work a dead process left behind (R2, R10): a transfer still `running` whose process no longer
runs is closed as `interrupted` (audited, with what it had recorded), and temp files in the store's
`incoming/` that no live process writes are removed and reported.

Run at the start of `dock`, `import`, `worker` and `station`, and by `scrub`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from evidence_store.bootstrap import Station
from evidence_store.db.tables import clips, transfers
from evidence_store.domain.model import RecordWarning, Transfer, TransferOutcome
from evidence_store.process_identity import ProcessIdentity, still_running

LISTED_CLIPS = 1000  # clip ids listed in the audit event; the counts are always complete


@dataclass
class ClosedTransfer:
    transfer_id: int
    owner: str
    clips_recorded: int
    bytes_recorded: int


@dataclass
class InterruptedWork:
    transfers: list[ClosedTransfer] = field(default_factory=list)
    temp_files_removed: list[tuple[str, int]] = field(default_factory=list)
    transfers_elsewhere: list[int] = field(default_factory=list)  # running on another host: not judged

    @property
    def anything(self) -> bool:
        return bool(self.transfers or self.temp_files_removed)

    def as_dict(self) -> dict[str, Any]:
        return {
            "transfers_closed": [vars(t) for t in self.transfers],
            "temp_files_removed": [{"name": n, "size": s} for n, s in self.temp_files_removed],
            "transfers_running_elsewhere": self.transfers_elsewhere,
        }

    def lines(self) -> list[str]:
        """One line per finding, for a command's output."""
        out = [
            f"transfer {t.transfer_id} was left running by {t.owner}, which no longer runs: closed as "
            f"interrupted ({t.clips_recorded} clips, {t.bytes_recorded:,} bytes had been recorded)"
            for t in self.transfers
        ]
        out += [
            f"removed {name} ({size:,} bytes) from the store's incoming/: a copy no live process was writing"
            for name, size in self.temp_files_removed
        ]
        return out


def close_interrupted_work(station: Station, *, actor: str = "system") -> InterruptedWork:
    """Close the transfers left `running` by processes that no longer run, and clear abandoned temp
    files; both are audited."""
    work = InterruptedWork()
    with station.connect() as connection:
        running = connection.execute(
            select(transfers.c.id, transfers.c.owner_host, transfers.c.owner_pid, transfers.c.owner_started)
            .where(transfers.c.outcome == TransferOutcome.RUNNING)
            .order_by(transfers.c.id)
        ).all()
    for row in running:
        owner = ProcessIdentity(row.owner_host, row.owner_pid or 0, row.owner_started)
        if row.owner_pid is None:
            alive: bool | None = False  # recorded before owners were: no process can still hold it
        else:
            alive = still_running(owner)
        if alive is None:
            work.transfers_elsewhere.append(row.id)
        elif not alive:
            closed = _close(station, row.id, owner, actor)
            if closed is not None:
                work.transfers.append(closed)
    clear = getattr(station.blobs, "clear_stale_incoming", None)
    if clear is not None:
        work.temp_files_removed = clear()
        if work.temp_files_removed:
            with station.transaction() as session:
                station.audit.record(
                    session,
                    actor=actor,
                    action="store.incoming_cleared",
                    object_type="store",
                    object_id=station.blobs.name,
                    details={"removed": [{"name": n, "size": s} for n, s in work.temp_files_removed]},
                )
    return work


def _describe(owner: ProcessIdentity) -> str:
    return f"process {owner.pid} on {owner.host}" if owner.pid else "a process recorded without its id"


def _close(station: Station, transfer_id: int, owner: ProcessIdentity, actor: str) -> ClosedTransfer | None:
    with station.transaction() as session:
        transfer = session.get(Transfer, transfer_id, with_for_update=True)
        if transfer is None or transfer.outcome is not TransferOutcome.RUNNING:
            return None  # closed meanwhile by another start
        recorded = session.execute(
            select(clips.c.id, clips.c.sha256, clips.c.size, clips.c.device_path)
            .where(clips.c.transfer_id == transfer_id)
            .order_by(clips.c.id)
        ).all()
        total = session.scalar(
            select(func.coalesce(func.sum(clips.c.size), 0)).where(clips.c.transfer_id == transfer_id)
        )
        who = _describe(owner)
        reason = f"interrupted: {who}, which ran it, no longer runs"
        transfer.outcome = TransferOutcome.INTERRUPTED
        transfer.finished_at = station.clock()
        transfer.files_ingested = len(recorded)
        transfer.bytes_copied = int(total or 0)
        transfer.problems = [*transfer.problems, RecordWarning("transfer", reason)]
        station.audit.record(
            session,
            actor=actor,
            action="transfer.interrupted",
            object_type="transfer",
            object_id=transfer_id,
            details={
                "outcome": str(TransferOutcome.INTERRUPTED),
                "owner": {"host": owner.host, "pid": owner.pid, "started": owner.started},
                "files_ingested": len(recorded),
                "bytes_copied": int(total or 0),
                "clips": [
                    {"id": r.id, "sha256": r.sha256, "size": r.size, "device_path": r.device_path}
                    for r in recorded[:LISTED_CLIPS]
                ],
            },
        )
    return ClosedTransfer(transfer_id, who, len(recorded), int(total or 0))
