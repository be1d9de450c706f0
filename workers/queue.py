"""The processing queue adapter: offers new clips to the workers over Redis."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


class DramatiqProcessingQueue:
    """`ProcessingQueue` over dramatiq. If Redis is down the clips simply wait: their status says
    they are still to process, and `evidence process` (or the next message) finds them."""

    def clips_stored(self, clip_ids: list[int]) -> None:
        try:
            from workers.actors import plan_new_clips

            plan_new_clips.send(clip_ids)
        except Exception as exc:  # the queue is a hint; never lose an ingest over it
            log.warning(
                "could not offer %d clips to the workers (%s); they wait for `evidence process`",
                len(clip_ids),
                exc,
            )
