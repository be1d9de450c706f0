"""Start-up of the `evidence` command: whole-process wall time of `--help` and of a light command.

Every command pays its start-up before it does anything, and the dock pays it per recorder (issue 21
sets `--help` <= 0.15 s and a light command <= 0.3 s). Rounds alternate between the variants, so a
busy moment of the machine spreads over all of them; the table gives the median, the spread (min-max)
and the best of >= 5 rounds. Warm: the Python files are in the page cache after the first round, as
they are on a station that runs commands all day.

Variants:
* ``python -c pass``      the interpreter alone: the floor any Python command pays
* ``--help``              `python -m entrypoints --help` of this checkout
* ``status``              `python -m entrypoints status --json` on a fresh SQLite station
* with ``--against DIR`` (another checkout, e.g. a `git worktree` of an older commit): the same two
  commands there (`-m evidence_store` where that tree has no `entrypoints`)

    .venv/bin/python bench/bench_startup.py [--rounds 11] [--against /tmp/old-checkout]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def module_of(tree: Path) -> str:
    return "entrypoints" if (tree / "entrypoints" / "__main__.py").is_file() else "evidence_store"


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode()[-400:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--against", type=Path, default=None, help="another checkout to compare with")
    args = parser.parse_args()
    if args.rounds < 5:
        raise SystemExit("--rounds: at least 5 (the median of fewer says little)")

    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
        env["EVIDENCE_PROCESSING_QUEUE"] = "none"
        trees = [("this checkout", REPO)] + ([("against", args.against.resolve())] if args.against else [])
        variants: dict[str, tuple[list[str], dict[str, str], Path]] = {
            "python -c pass": ([sys.executable, "-c", "pass"], env, REPO)
        }
        for label, tree in trees:
            # a home per tree: an older tree cannot open a newer schema
            tree_env = {
                **env,
                "PYTHONPATH": str(tree),
                "EVIDENCE_HOME": str(Path(tmp) / f"home-{len(variants)}"),
            }
            module = module_of(tree)
            subprocess.run(
                [sys.executable, "-m", module, "init"],
                env=tree_env,
                cwd=tree,
                check=True,
                capture_output=True,
            )
            variants[f"--help ({label})"] = ([sys.executable, "-m", module, "--help"], tree_env, tree)
            variants[f"status ({label})"] = (
                [sys.executable, "-m", module, "status", "--json"],
                tree_env,
                tree,
            )
        times: dict[str, list[float]] = {name: [] for name in variants}
        for argv, run_env, cwd in variants.values():  # one unmeasured round: the warm state
            timed(argv, run_env, cwd)
        for _ in range(args.rounds):
            for name, (argv, run_env, cwd) in variants.items():
                times[name].append(timed(argv, run_env, cwd))

    load = os.getloadavg()
    rounds = f"{args.rounds} alternating rounds, warm"
    print(f"{os.cpu_count()} CPUs, load average {load[0]:.2f} at the end; {rounds}")
    print("| variant | median ms | min-max ms | best ms |")
    print("|---|---:|---|---:|")
    for name, values in times.items():
        ms = [v * 1000 for v in values]
        print(f"| {name} | {statistics.median(ms):.0f} | {min(ms):.0f}-{max(ms):.0f} | {min(ms):.0f} |")


if __name__ == "__main__":
    main()
