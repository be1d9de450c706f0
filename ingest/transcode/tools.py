"""Running ffmpeg for derivatives: what a run produced and how its failures are classified.

A derivative is recorded with the exact tool, version and arguments that made it (`ToolRun`), so the
arguments are kept as the list that was executed, without the binary name (`tool` says which binary).

Failure classification (the processing worker retries `TransientError`, never `PermanentError`):

* ffmpeg killed by the timeout or by a signal, or exiting 255 (ffmpeg's own exit status after SIGINT or
  SIGTERM) -> `TransientError`;
* a non-zero exit whose stderr names a resource problem of this machine (disk full, out of memory, too
  many open files, an I/O error) -> `TransientError`;
* any other non-zero exit (a corrupt or unsupported input) -> `PermanentError` carrying the last lines of
  ffmpeg's stderr;
* ffmpeg missing on the PATH -> `ConfigurationError` (the operator must install it).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from evidence_store.errors import ConfigurationError, PermanentError, TransientError

FFMPEG = "ffmpeg"
STDERR_TAIL_LINES = 12
FFMPEG_SIGNAL_EXIT = 255  # ffmpeg traps SIGINT/SIGTERM/SIGQUIT, cleans up, and exits with 255

# Resource problems of this machine that ffmpeg reports as an ordinary error exit: worth retrying.
TRANSIENT_MARKERS = (
    "no space left on device",
    "disk quota exceeded",
    "cannot allocate memory",
    "out of memory",
    "too many open files",
    "resource temporarily unavailable",
    "input/output error",
)


@dataclass(frozen=True)
class ToolRun:
    """One derivative made by one tool run: the file and exactly how it was made."""

    output: Path
    tool: str
    tool_version: str
    arguments: list[str]  # the argv after the binary name, exactly as executed
    mime_type: str


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise ConfigurationError(f"{name} is not installed (not found on PATH)")
    return found


@cache
def ffmpeg_version() -> str:
    """The first line of `ffmpeg -version` (e.g. "ffmpeg version 5.1.6-0+deb12u1 Copyright ..."), cached."""
    try:
        done = subprocess.run(
            [_binary(FFMPEG), "-version"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise ConfigurationError(f"cannot run `{FFMPEG} -version`: {exc}") from exc
    first = done.stdout.decode("utf-8", "replace").splitlines()
    if not first or not first[0].strip():
        raise ConfigurationError(f"`{FFMPEG} -version` printed nothing")
    return first[0].strip()


def stderr_tail(stderr: bytes, lines: int = STDERR_TAIL_LINES) -> str:
    text = stderr.decode("utf-8", "replace").strip().splitlines()
    return "\n".join(text[-lines:])


def run_tool(
    argv: Sequence[str],
    timeout_s: float | None,
    *,
    tool: str = FFMPEG,
    extra_env: Mapping[str, str] | None = None,
) -> str:
    """Run `tool` with `argv` (no stdin, output captured) and return its stderr text on success;
    `extra_env` is added to this process's environment for the tool.

    Raises `TransientError` or `PermanentError` as classified in the module docstring.
    """
    command = [_binary(tool), *argv]
    try:
        done = subprocess.run(
            command,
            env={**os.environ, **extra_env} if extra_env else None,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:  # subprocess.run has killed and reaped the child
        tail = stderr_tail(exc.stderr or b"")
        raise TransientError(f"{tool} timed out after {timeout_s} s and was killed; {tail}".strip()) from exc
    except OSError as exc:  # could not start it (no memory, too many processes)
        raise TransientError(f"cannot start {tool}: {exc}") from exc
    tail = stderr_tail(done.stderr)
    code = done.returncode
    if code == 0:
        return done.stderr.decode("utf-8", "replace")
    if code < 0:
        raise TransientError(f"{tool} was killed by {_signal_name(-code)}; {tail}".strip())
    if code == FFMPEG_SIGNAL_EXIT and tool == FFMPEG:
        raise TransientError(f"{tool} exited {code} (interrupted by a signal); {tail}".strip())
    lowered = tail.lower()
    if any(marker in lowered for marker in TRANSIENT_MARKERS):
        raise TransientError(f"{tool} failed for lack of a resource (exit {code}): {tail}")
    raise PermanentError(f"{tool} failed (exit {code}): {tail}" if tail else f"{tool} failed (exit {code})")


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def check_output(path: Path, tool: str = FFMPEG) -> None:
    """A run that exits 0 but writes nothing (e.g. no frame at all in the input) is a permanent failure."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise PermanentError(f"{tool} exited 0 but wrote no {path.name}") from None
    if size == 0:
        remove_quietly(path)
        raise PermanentError(f"{tool} exited 0 but {path.name} is empty")


def remove_quietly(path: Path) -> None:
    path.unlink(missing_ok=True)


def refuse_to_overwrite(source: Path, target: Path) -> None:
    """Originals are never modified: a target that is the source (or a link to it) is a programming error."""
    if target.exists() and os.path.samefile(target, source):
        raise ValueError(f"refusing to write a derivative over its original: {target}")
