"""Python's cyclic garbage collector paused for the length of a bulk pass.

A relink of everything creates and keeps millions of small container objects (rows as tuples, the
links and flags it is about to write). The cyclic collector runs whenever allocations outnumber
deallocations by its threshold, and each of its full collections walks every tracked object alive:
at 1M clips x 200k documents, about 2.3 s of a 22 s first relink went into collections that found
almost nothing (about 2,000 objects in cycles, freed at the end; peak memory the same). Reference
counting still frees everything else at once, so the pass's memory stays bounded as before.

`gc.disable()` is process-wide, and a worker may run passes in several threads: the pause is counted,
and the collector comes back on when the last overlapping pause ends, and only if it was on when the
first began. Written by hand (about 20 lines): no library does this.

Measured by bench/bench_linking.py (the first relink with and without the pause, side by side);
see bench/RESULTS.md.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class _Pauses:
    """The process's overlapping pauses: how many, and whether the collector was on before them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count = 0
        self.was_enabled = False


_PAUSES = _Pauses()


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic collection inside the block (reference counting goes on); the collector is back as
    it was when the last overlapping pause ends, also after an exception."""
    pauses = _PAUSES
    with pauses.lock:
        if pauses.count == 0:
            pauses.was_enabled = gc.isenabled()
            gc.disable()
        pauses.count += 1
    try:
        yield
    finally:
        with pauses.lock:
            pauses.count -= 1
            if pauses.count == 0 and pauses.was_enabled:
                gc.enable()
