"""One-pass copy with inline SHA-256, overlapping reading, hashing and writing.

Reading and hashing run in the calling thread and writing in a second one; `hashlib` and file I/O
release the GIL on large buffers, so on two cores the three overlap and the copy runs at about the
speed of hashing alone. Memory is bounded by `queue_depth` chunks in flight.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

CHUNK_SIZE = 4 * 1024 * 1024
QUEUE_DEPTH = 4

Writer = Callable[[memoryview], None]


@dataclass(frozen=True)
class CopyResult:
    sha256: str
    size: int


_DONE = object()


def copy_hashing(
    source: BinaryIO,
    write: Writer | None,
    *,
    chunk_size: int = CHUNK_SIZE,
    queue_depth: int = QUEUE_DEPTH,
    on_progress: Callable[[int], None] | None = None,
) -> CopyResult:
    """Read `source` to its end, hash it, and hand every chunk to `write` (in a writer thread).

    `write=None` only hashes. An exception in the writer stops the copy and is re-raised here.
    """
    digest = hashlib.sha256()
    total = 0
    if write is None:
        while chunk := source.read(chunk_size):
            digest.update(chunk)
            total += len(chunk)
            if on_progress:
                on_progress(total)
        return CopyResult(digest.hexdigest(), total)

    # Small files (most sidecars, photos) fit in one chunk: no thread is worth starting for them.
    first = source.read(chunk_size)
    second = source.read(chunk_size) if first else b""
    if not second:
        digest.update(first)
        if first:
            write(memoryview(first))
        if on_progress:
            on_progress(len(first))
        return CopyResult(digest.hexdigest(), len(first))

    pending: queue.Queue[object] = queue.Queue(maxsize=queue_depth)
    failure: list[BaseException] = []

    def writer_loop() -> None:
        while True:
            item = pending.get()
            if item is _DONE:
                return
            if failure:
                continue  # drain so the reader never blocks on a dead writer
            try:
                write(memoryview(item))  # type: ignore[arg-type]
            except BaseException as exc:
                failure.append(exc)

    thread = threading.Thread(target=writer_loop, name="blob-writer", daemon=True)
    thread.start()
    try:
        for chunk in (first, second):
            pending.put(chunk)
            digest.update(chunk)
            total += len(chunk)
        if on_progress:
            on_progress(total)
        while not failure and (chunk := source.read(chunk_size)):
            pending.put(chunk)
            digest.update(chunk)
            total += len(chunk)
            if on_progress:
                on_progress(total)
    finally:
        pending.put(_DONE)
        thread.join()
    if failure:
        raise failure[0]
    return CopyResult(digest.hexdigest(), total)


def write_all(fd: int) -> Writer:
    """A writer that writes every byte of each chunk to a file descriptor."""

    def write(view: memoryview) -> None:
        while view:
            written = os.write(fd, view)
            view = view[written:]

    return write


def hash_stream(source: BinaryIO, chunk_size: int = CHUNK_SIZE) -> CopyResult:
    return copy_hashing(source, None, chunk_size=chunk_size)
