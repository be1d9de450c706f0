"""Start-up of the `evidence` command: whole-process wall time of `--help` and of a light command.

Every command pays its start-up before it does anything, and the dock pays it per recorder (issue 21
sets `--help` <= 0.15 s and a light command <= 0.3 s). By the method of bench/method.py: rounds
alternate between the variants (order rotated each round), so a busy moment of the machine spreads over
all of them; the table gives the median, the spread (min-max) and the best of >= 5 rounds, and the
targets are judged by the median. Warm: the Python files are in the page cache after one unmeasured
round, as they are on a station that runs commands all day (a cold start, the first command after a
boot, is not measured).

Variants:
* ``python -c pass``      the interpreter alone: the floor any Python command pays
* ``--help``              `python -m entrypoints --help` of this checkout
* ``status``              `python -m entrypoints status --json` on a fresh SQLite station
* ``stations list``       `python -m entrypoints stations list --json` on the same station (a light
  command too; both read SQLite with the standard library's sqlite3 since issue 21)
* ``import empty folder``  `python -m entrypoints import EMPTY --json` on the same station: what an
  `evidence import` pays before and after its copy (imports, opening the station, the transfer's
  record and its audit events), which issue 21's whole-import target includes (no target of its own)
* with ``--against DIR`` (another checkout, e.g. a `git worktree` of an older commit): the same two
  commands there (`-m evidence_store` where that tree has no `entrypoints`)

    .venv/bin/python bench/bench_startup.py [--rounds 11] [--against /tmp/old-checkout] [--check]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

import method  # noqa: E402  (bench/method.py: the method every benchmark shares)

TARGET_HELP_S = 0.15
TARGET_LIGHT_S = 0.3


def module_of(tree: Path) -> str:
    return "entrypoints" if (tree / "entrypoints" / "__main__.py").is_file() else "evidence_store"


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode()[-400:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--against", type=Path, default=None, help="another checkout to compare with")
    method.add_method_options(parser)
    parser.set_defaults(rounds=11)
    args = parser.parse_args()
    method.header("start-up of the evidence command", args.rounds, [method.WARM])

    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
        env["EVIDENCE_PROCESSING_QUEUE"] = "none"
        empty = Path(tmp) / "empty-volume"
        empty.mkdir()
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
            if module == "entrypoints":
                # the whole `evidence import` process with nothing to copy (issue 21)
                variants[f"import empty folder ({label})"] = (
                    [sys.executable, "-m", module, "import", str(empty), "--json"],
                    tree_env,
                    tree,
                )
                # older trees have no `stations` command
                variants[f"stations list ({label})"] = (
                    [sys.executable, "-m", module, "stations", "list", "--json"],
                    tree_env,
                    tree,
                )
        for argv, run_env, cwd in variants.values():  # one unmeasured round: the warm state
            timed(argv, run_env, cwd)
        calls = {
            name: (lambda a=argv, e=run_env, c=cwd: timed(a, e, c))
            for name, (argv, run_env, cwd) in variants.items()
        }
        runs = method.run_rounds(
            calls, args.rounds, quiet_below=args.quiet_below, quiet_max_wait=args.quiet_max_wait
        )

    method.footer()
    spreads = method.spreads(runs)
    print(
        f"\n{args.rounds} alternating rounds, warm (Python files in the page cache), whole-process wall time:"
    )
    # CPU time (the process and its children) moves far less with the machine's load than wall time
    # does: on a shared machine it tells what the command costs; the targets are judged on wall time
    cpu = {name: method.spread(run.cpu for run in variant_runs) for name, variant_runs in runs.items()}
    pressure = {name: method.median_run(variant_runs).pressure for name, variant_runs in runs.items()}
    method.table(
        ["variant", "median ms", "min-max ms", "best ms", "CPU ms median (min-max)", "CPU pressure"],
        [
            [
                name,
                *s.cells(digits=0, scale=1000),
                f"{cpu[name].median * 1000:.0f} ({cpu[name].low * 1000:.0f}-{cpu[name].high * 1000:.0f})",
                "?" if pressure[name] is None else f"{pressure[name]:.0f}%",
            ]
            for name, s in spreads.items()
        ],
        [False, True, True, True, True, True],
    )
    judged = method.judged(args)
    targets = [
        method.Target(
            "`--help` (this checkout), whole process",
            spreads["--help (this checkout)"].median * 1000,
            TARGET_HELP_S * 1000,
            higher_is_better=False,
            unit=" ms",
            judged=judged,
        ),
        method.Target(
            "`status --json` (this checkout), a light command, whole process",
            spreads["status (this checkout)"].median * 1000,
            TARGET_LIGHT_S * 1000,
            higher_is_better=False,
            unit=" ms",
            judged=judged,
        ),
        method.Target(
            "`stations list --json` (this checkout), a light command, whole process",
            spreads["stations list (this checkout)"].median * 1000,
            TARGET_LIGHT_S * 1000,
            higher_is_better=False,
            unit=" ms",
            judged=judged,
        ),
    ]
    method.print_targets(targets)
    return 1 if args.check and not method.targets_ok(targets) else 0


if __name__ == "__main__":
    sys.exit(main())
