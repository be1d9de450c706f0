"""The progress bars of `evidence import` and `evidence dock` (issue 19): files and bytes done of what
the recorder holds, speed and time left, drawn on the terminal's stderr by `rich` (a well-kept library
that redraws in place at a bounded rate and copes with terminal width). Only on a terminal: with
`--json`, or when stdout or stderr is not a terminal (piped, logged, run by a service), nothing is
drawn and the output stays what scripts read."""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rich.progress import TaskID


def wanted(as_json: bool, stdout: TextIO | None = None, stderr: TextIO | None = None) -> bool:
    """Whether to draw a bar: not for JSON output, and only when both streams are terminals."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    return not as_json and out.isatty() and err.isatty()


class Bars:
    """One bar per pull (a dock pulls several recorders at once), on stderr."""

    def __init__(self) -> None:
        # lazy: start-up (rich costs an `import --json` or a piped import ~40 ms it does not draw with)
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[files]}"),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            refresh_per_second=4,
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}
        self._lock = threading.Lock()
        self._started = False

    def update(self, key: str, progress: Any) -> None:
        """Show how far the pull named `key` is (an `ingest.pull_report.PullProgress`)."""
        files = f"{progress.files_done}/{progress.files_total if progress.files_total is not None else '?'}"
        with self._lock:
            if not self._started:
                self._progress.start()
                self._started = True
            task = self._tasks.get(key)
            new = task is None
            if task is None:
                task = self._progress.add_task(key, total=progress.bytes_total, files=files)
                self._tasks[key] = task
            self._progress.update(
                task, completed=progress.bytes_done, total=progress.bytes_total, files=files
            )
            if new:
                self._progress.refresh()  # shown at once, however short the pull

    def finished(self, key: str) -> None:
        """The pull named `key` ended: its bar goes."""
        with self._lock:
            task = self._tasks.pop(key, None)
            if task is not None:
                self._progress.refresh()  # its last state, then it goes
                self._progress.remove_task(task)

    def stop(self) -> None:
        with self._lock:
            if self._started:
                self._progress.stop()
                self._started = False
