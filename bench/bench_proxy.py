"""Benchmark: browser proxy of a 60 s 1080p30 H.264/AAC clip, `make_proxy` against the bare ffmpeg CLI.

In one run, on the same source and the same filesystem:

* ``ffmpeg CLI``   ``ffmpeg <proxy_arguments(...)>`` run directly (stdin from /dev/null), the floor
* ``make_proxy``   `ingest.transcode.proxy.make_proxy` with the same probe: it builds the SAME argument
  list, runs ffmpeg through `run_tool` (stderr captured, timeout armed), checks the output and returns
  the `ToolRun`. The `ffmpeg -version` line is cached per process; it is fetched once before timing,
  as in the long-running worker (its cold cost is printed separately).

By the method of bench/method.py: the variants alternate in ``--rounds`` (default 5) rounds, the order
rotated every round; the median and the spread (min-max) of each are reported, the best as an extra
column, and the target is judged by the medians; the output is deleted between runs (not timed).
``--cache cold|warm|both`` (default both): cold drops the source's pages before each run (fsync,
``posix_fadvise(DONTNEED)``), as a worker meets a clip the store wrote with O_DIRECT; warm leaves it in
the page cache. Both outputs must be byte-identical (x264 with a fixed
thread count is deterministic), which also shows that the arguments really were the same.

The source is made first with ffmpeg (testsrc2 + sine, libx264 veryfast CRF 23, AAC), not timed.
Real-time factor = clip duration / seconds. Overhead = make_proxy / CLI - 1 (wall clock, medians).
The CPU seconds of the ffmpeg child (RUSAGE_CHILDREN) are printed too: on a machine that is not idle
they show whether a wall-clock difference came from the variant or from other load. Before that, the
fixed cost make_proxy adds per call is measured on a 1 s 320x240 clip (`--fixed-cost-runs`
interleaved runs of each, medians), where encoding does not drown it.

Usage: .venv/bin/python bench/bench_proxy.py [--seconds 60] [--rounds 5] [--cache both] [--fixed-cost-runs 20]
       [--dir /work] [--keep] [--check]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import method  # bench/method.py: the method every benchmark shares

TARGET_OVERHEAD = 0.05


def make_source(path: Path, seconds: int, size: str = "1920x1080") -> None:
    subprocess.run(
        [
            *("ffmpeg", "-nostdin", "-y", "-loglevel", "error"),
            *("-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30"),
            *("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"),
            *("-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast", "-crf", "23"),
            *("-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", "2", str(path)),
        ],
        check=True,
    )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def parse_options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=60, help="length of the 1080p30 source clip")
    parser.add_argument("--dir", default="/work", help="where the temporary directory goes")
    method.add_method_options(parser, caches=(method.COLD, method.WARM))
    parser.add_argument(
        "--fixed-cost-runs", type=int, default=20, help="interleaved runs on a 1 s clip (0: skip)"
    )
    return parser.parse_args()


def time_variants(
    variants: list[tuple[str, Callable[[], Path]]],
    rounds: int,
    source: Path,
    cache: str,
    args: argparse.Namespace | None = None,
) -> tuple[dict[str, list[method.Run[Path]]], dict[str, str]]:
    """Alternate the variants (order rotated each round); the output is hashed and deleted, not timed.
    Each run's CPU seconds are those of the ffmpeg child (and this process)."""
    digests: dict[str, str] = {}

    def before(_name: str) -> None:
        if cache == method.COLD:
            method.drop_cached(source)

    def after(name: str, run: method.Run[Path]) -> None:
        digests[name] = sha256_of(run.result)
        run.result.unlink()

    runs = method.run_rounds(
        dict(variants),
        rounds,
        before=before,
        after=after,
        label=f"{cache} ",
        quiet_below=args.quiet_below if args else 0,
        quiet_max_wait=args.quiet_max_wait if args else 0,
    )
    return runs, digests


def report(runs: dict[str, list[method.Run[Path]]], duration: float, state: str) -> float:
    spreads = method.spreads(runs)
    median = {name: s.median for name, s in spreads.items()}
    cpu = {name: statistics.median(r.cpu for r in values) for name, values in runs.items()}
    overhead = median["make_proxy"] / median["ffmpeg CLI"] - 1
    cpu_overhead = cpu["make_proxy"] / cpu["ffmpeg CLI"] - 1
    print()
    print(f"{state}:")
    rows = []
    for name, s in spreads.items():
        extra = f"{overhead * 100:+.1f} %" if name == "make_proxy" else "-"
        extra_cpu = f"{cpu_overhead * 100:+.1f} %" if name == "make_proxy" else "-"
        rows.append(
            [name, *s.cells(digits=2), f"{duration / s.median:.2f}x", extra, f"{cpu[name]:.2f}", extra_cpu]
        )
    method.table(
        [
            "variant",
            "median s",
            "min-max s",
            "best s",
            "real-time factor (median)",
            "overhead vs CLI (medians)",
            "CPU s (median)",
            "CPU overhead",
        ],
        rows,
        [False, *[True] * 7],
    )
    return overhead


def variants_for(source: Path, out: Path) -> list[tuple[str, Callable[[], Path]]]:
    """The two ways of making the proxy of `source` into `out`, with the very same argument list."""
    from ingest.transcode.probe import probe_media
    from ingest.transcode.proxy import PROXY_NAME, make_proxy, proxy_arguments

    probe = probe_media(source)
    assert probe.playable, probe
    out.mkdir(exist_ok=True)  # both variants write the same file: the argument lists are identical
    arguments = proxy_arguments(source, out / PROXY_NAME, probe)
    binary = shutil.which("ffmpeg") or "ffmpeg"

    def run_cli() -> Path:
        subprocess.run([binary, *arguments], stdin=subprocess.DEVNULL, check=True)
        return out / PROXY_NAME

    def run_make_proxy() -> Path:
        run = make_proxy(source, out, probe)
        assert run.arguments == arguments
        return run.output

    return [("ffmpeg CLI", run_cli), ("make_proxy", run_make_proxy)]


def fixed_cost(work: Path, runs: int) -> None:
    """What make_proxy adds per call, measured where it is not drowned by encoding time: a 1 s 320x240
    clip, the variants interleaved `runs` times, medians compared."""
    source = work / "small.mp4"
    make_source(source, 1, size="320x240")
    variants = variants_for(source, work / "small-out")
    times, _ = time_variants(variants, runs, source, method.WARM)
    median = {name: method.spread(r.wall for r in values).median for name, values in times.items()}
    added_ms = (median["make_proxy"] - median["ffmpeg CLI"]) * 1000
    print(
        f"fixed cost per call (1 s 320x240 clip, median of {runs} interleaved runs): "
        f"CLI {median['ffmpeg CLI'] * 1000:.1f} ms, make_proxy {median['make_proxy'] * 1000:.1f} ms, "
        f"difference {added_ms:+.1f} ms"
    )


def main() -> int:
    options = parse_options()
    from ingest.transcode import tools
    from ingest.transcode.probe import probe_media
    from ingest.transcode.proxy import proxy_arguments

    work = Path(tempfile.mkdtemp(prefix="bench-proxy-", dir=options.dir))
    try:
        source = work / "source.mp4"
        print(f"making a {options.seconds} s 1920x1080 30 fps H.264/AAC source ...", flush=True)
        started = time.perf_counter()
        make_source(source, options.seconds)
        print(f"  {source.stat().st_size / 1e6:.1f} MB in {time.perf_counter() - started:.1f} s")

        started = time.perf_counter()
        probe = probe_media(source)
        probe_ms = (time.perf_counter() - started) * 1000
        assert probe.playable and probe.duration_s, probe
        started = time.perf_counter()
        version = tools.ffmpeg_version()
        version_ms = (time.perf_counter() - started) * 1000
        print(f"probe_media: {probe_ms:.1f} ms; ffmpeg -version (cold, cached after): {version_ms:.1f} ms")
        print(f"{version}; {os.cpu_count()} CPUs")
        print("arguments: ffmpeg " + " ".join(proxy_arguments(source, work / "out" / "proxy.mp4", probe)))

        if options.fixed_cost_runs:
            fixed_cost(work, options.fixed_cost_runs)
        caches = method.caches_of(options)
        method.header(f"browser proxy of a {options.seconds} s 1080p30 clip", options.rounds, caches)
        targets = []
        for cache in caches:
            times, digests = time_variants(
                variants_for(source, work / "out"), options.rounds, source, cache, options
            )
            identical = len(set(digests.values())) == 1
            print(f"\noutputs byte-identical ({cache}): {identical}")
            state = f"{options.rounds} alternating rounds, {cache} source"
            overhead = report(times, probe.duration_s, state)
            targets.append(
                method.Target(
                    f"make_proxy overhead vs the bare CLI ({cache}; outputs identical: {identical})",
                    overhead * 100,
                    TARGET_OVERHEAD * 100,
                    higher_is_better=False,
                    unit=" %",
                    judged=method.judged(options) and identical,
                )
            )
        method.footer()
        method.print_targets(targets)
        return 1 if options.check and not method.targets_ok(targets) else 0
    finally:
        if options.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
