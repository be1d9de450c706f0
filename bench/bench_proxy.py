"""Benchmark: browser proxy of a 60 s 1080p30 H.264/AAC clip, `make_proxy` against the bare ffmpeg CLI.

In one run, on the same source and the same filesystem:

* ``ffmpeg CLI``   ``ffmpeg <proxy_arguments(...)>`` run directly (stdin from /dev/null), the floor
* ``make_proxy``   `ingest.transcode.proxy.make_proxy` with the same probe: it builds the SAME argument
  list, runs ffmpeg through `run_tool` (stderr captured, timeout armed), checks the output and returns
  the `ToolRun`. The `ffmpeg -version` line is cached per process; it is fetched once before timing,
  as in the long-running worker (its cold cost is printed separately).

The variants alternate (the order rotated every round) and the best of `--repeat` runs of each is kept;
the output is deleted between runs (not timed). Both outputs must be byte-identical (x264 with a fixed
thread count is deterministic), which also shows that the arguments really were the same.

The source is made first with ffmpeg (testsrc2 + sine, libx264 veryfast CRF 23, AAC), not timed.
Real-time factor = clip duration / seconds. Overhead = make_proxy / CLI - 1 (wall clock, best of N).
The CPU seconds of the ffmpeg child (RUSAGE_CHILDREN) are printed too: on a machine that is not idle
they show whether a wall-clock difference came from the variant or from other load. Before that, the
fixed cost make_proxy adds per call is measured on a 1 s 320x240 clip (`--fixed-cost-runs`
interleaved runs of each, medians), where encoding does not drown it.

Usage: .venv/bin/python bench/bench_proxy.py [--seconds 60] [--repeat 3] [--fixed-cost-runs 20]
       [--dir /work] [--keep] [--check]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

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
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", default="/work", help="where the temporary directory goes")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--check", action="store_true", help="exit 1 when the overhead target is missed")
    parser.add_argument(
        "--fixed-cost-runs", type=int, default=20, help="interleaved runs on a 1 s clip (0: skip)"
    )
    return parser.parse_args()


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_variants(
    variants: list[tuple[str, Callable[[], Path]]], repeat: int, *, verbose: bool = True
) -> tuple[dict[str, list[tuple[float, float]]], dict[str, str]]:
    """Alternate the variants (order rotated each round); the output is hashed and deleted, not timed.
    Each run gives (wall seconds, CPU seconds of the ffmpeg child)."""
    times: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in variants}
    digests: dict[str, str] = {}
    if verbose:
        print(f"load average before: {os.getloadavg()}", flush=True)
    for round_number in range(repeat):
        shift = round_number % len(variants)
        for name, run in variants[shift:] + variants[:shift]:
            cpu_before = children_cpu_s()
            started = time.perf_counter()
            output = run()
            elapsed = time.perf_counter() - started
            cpu = children_cpu_s() - cpu_before
            times[name].append((elapsed, cpu))
            digests[name] = sha256_of(output)
            output.unlink()
            if verbose:
                print(
                    f"  round {round_number + 1}: {name:<11} {elapsed:7.2f} s wall {cpu:7.2f} s CPU",
                    flush=True,
                )
    if verbose:
        print(f"load average after:  {os.getloadavg()}")
    return times, digests


def report(times: dict[str, list[tuple[float, float]]], duration: float, repeat: int) -> float:
    best = {name: min(wall for wall, _ in runs) for name, runs in times.items()}
    cpu = {name: min(spent for _, spent in runs) for name, runs in times.items()}
    overhead = best["make_proxy"] / best["ffmpeg CLI"] - 1
    cpu_overhead = cpu["make_proxy"] / cpu["ffmpeg CLI"] - 1
    print()
    print(
        f"| variant | seconds (best of {repeat}) | real-time factor | overhead vs CLI "
        "| ffmpeg CPU s (best) | CPU overhead |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name in times:
        extra = f"{overhead * 100:+.1f} %" if name == "make_proxy" else "-"
        extra_cpu = f"{cpu_overhead * 100:+.1f} %" if name == "make_proxy" else "-"
        print(
            f"| {name} | {best[name]:.2f} | {duration / best[name]:.2f}x | {extra} "
            f"| {cpu[name]:.2f} | {extra_cpu} |"
        )
    print()
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
    times, _ = time_variants(variants, runs, verbose=False)
    median = {name: statistics.median(wall for wall, _ in values) for name, values in times.items()}
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
        times, digests = time_variants(variants_for(source, work / "out"), options.repeat)
        identical = len(set(digests.values())) == 1
        print(f"outputs byte-identical: {identical}")
        overhead = report(times, probe.duration_s, options.repeat)
        met = overhead <= TARGET_OVERHEAD and identical
        print(f"target overhead <= {TARGET_OVERHEAD * 100:.0f} %: {'met' if met else 'MISSED'}")
        return 1 if options.check and not met else 0
    finally:
        if options.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
