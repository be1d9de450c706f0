"""The adapters the entry layer chooses for the settings, beside the station `bootstrap` builds."""

from __future__ import annotations

from evidence_store.ports import NoProcessingQueue, ProcessingQueue
from evidence_store.settings import Settings


def processing_queue_for(settings: Settings) -> ProcessingQueue:
    """New clips are offered to the workers over Redis; without a queue they wait, by status, for
    `evidence process`."""
    if settings.processing_queue == "none":
        return NoProcessingQueue()
    from workers.queue import DramatiqProcessingQueue  # lazy: SQLAlchemy; keeps `--help` fast

    return DramatiqProcessingQueue()
