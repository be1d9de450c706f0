"""Audit appends per second on PostgreSQL with 1 and with 4 concurrent writer hosts (issue 18).

The hosts are network namespaces (tests/fixtures/netns.py): a backend namespace running PostgreSQL (the
test fixtures' own code, bound to the backend's address) and 4 writer hosts, each with its own
EVIDENCE_HOME (its own Ed25519 key), initialised and approved as an office's stations are. Each host
runs one long-lived helper (this script, `--serve`) holding an opened station; a timed request makes it
append N events, one writing transaction each, as the services do (`station.audit.record`: the
transaction-scoped advisory lock on the chain, the head read, the signed event, a checkpoint every
`EVIDENCE_AUDIT_CHECKPOINT_INTERVAL` (default 1000) events, the commit). All hosts are sent their
request at once; the wall is from the first request to the last answer. "1 host" appends 4N events
from one host, "4 hosts" N from each: the same number of events per round, rounds alternated
(bench/method.py). Afterwards `evidence audit verify` must exit 0 (untimed). The links are not rate
limited (a veth: well under a millisecond per round trip).

    .venv/bin/python bench/bench_audit_hosts.py                 # 5 rounds of 4 x 250 events
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import method  # noqa: E402  bench/method.py: the method every benchmark shares

HOSTS = 4


def serve() -> None:
    """Answer `append N` on stdin by appending N events, one transaction each; one JSON line back."""
    from evidence_store.bootstrap import open_station
    from evidence_store.settings import load_settings

    station = open_station(load_settings())
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        count = int(line.split()[1])
        for i in range(count):
            with station.transaction() as session:
                station.audit.record(
                    session, actor="bench", action="clip.viewed", object_type="clip", object_id=i, details={}
                )
        print(json.dumps({"appended": count}), flush=True)


class Helper:
    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            argv, env=env, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert json.loads(self._line())["ready"]

    def _line(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"a writer helper exited ({self.proc.wait()})")
        return line

    def send(self, request: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(request + "\n")
        self.proc.stdin.flush()

    def answer(self) -> dict[str, Any]:
        return json.loads(self._line())  # type: ignore[no-any-return]

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=250, help="events per host in the 4-host variant")
    parser.add_argument("--dir", type=Path, default=Path("/work"), help="where the temporary directory goes")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    method.add_method_options(parser)
    args = parser.parse_args()
    if args.serve:
        serve()
        return 0
    if os.geteuid() != 0:
        raise SystemExit("network namespaces need root")
    work = Path(tempfile.mkdtemp(prefix="evidence-bench-audit-hosts-", dir=args.dir))
    try:
        return _bench(args, work)
    finally:
        subprocess.run(["rm", "-rf", str(work)], check=False)


def _bench(args: argparse.Namespace, work: Path) -> int:
    from tests.fixtures.netns import office
    from tests.fixtures.postgres import PostgresCluster, _pg_bin

    per_round = HOSTS * args.events
    method.header(
        f"audit appends on PostgreSQL: {per_round} events a round from 1 host or from {HOSTS} hosts at once",
        args.rounds,
        [method.WARM],
    )
    bin_dir = _pg_bin()
    if bin_dir is None:
        raise SystemExit("PostgreSQL server binaries not installed")
    names = [f"writer-{i}" for i in range(1, HOSTS + 1)]
    with office(names) as hosts:
        where = {"address": hosts.backend.address, "namespace": hosts.backend.namespace}
        cluster = PostgresCluster(bin_dir, **where)
        helpers: list[Helper] = []
        try:
            cluster.start()
            common = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
            common.update(
                {
                    "PYTHONPATH": str(ROOT),
                    "EVIDENCE_DATABASE_URL": cluster.new_database(),
                    "EVIDENCE_PROCESSING_QUEUE": "none",
                    "EVIDENCE_LOCAL_STORE_PATH": str(work / "store"),
                }
            )
            envs = {n: {**common, "EVIDENCE_HOME": str(work / n), "EVIDENCE_STATION_NAME": n} for n in names}

            def cli(name: str, *words: str) -> None:
                argv = [
                    "ip",
                    "netns",
                    "exec",
                    hosts.hosts[name].namespace,
                    sys.executable,
                    "-m",
                    "entrypoints",
                ]
                done = subprocess.run(
                    [*argv, *words], env=envs[name], cwd=ROOT, capture_output=True, text=True, check=False
                )
                if done.returncode != 0:
                    raise SystemExit(f"{name}: evidence {' '.join(words)}: {done.stderr}")

            for name in names:
                cli(name, "init")
                if name != names[0]:
                    cli(names[0], "stations", "approve", name)
            for name in names:
                argv = [
                    "ip",
                    "netns",
                    "exec",
                    hosts.hosts[name].namespace,
                    sys.executable,
                    __file__,
                    "--serve",
                ]
                helpers.append(Helper(argv, envs[name]))

            def append(writers: list[Helper], each: int) -> int:
                for helper in writers:
                    helper.send(f"append {each}")
                return sum(helper.answer()["appended"] for helper in writers)

            append(helpers, 10)  # untimed warm-up: connections, prepared statements
            variants = {
                "1 host": lambda: append(helpers[:1], per_round),
                f"{HOSTS} hosts at once": lambda: append(helpers, args.events),
            }
            runs = method.run_rounds(
                variants, args.rounds, quiet_below=args.quiet_below, quiet_max_wait=args.quiet_max_wait
            )
            cli(names[-1], "audit", "verify")  # the one chain still verifies, from any host
        finally:
            for helper in helpers:
                helper.close()
            cluster.stop()

    spreads = method.spreads(runs)
    print("\nwarm (the database just written); appends per second = events a round / wall")
    rows = [
        [
            name,
            *s.cells(3),
            f"{per_round / s.median:.0f}",
            f"{per_round / s.high:.0f}-{per_round / s.low:.0f}",
        ]
        for name, s in spreads.items()
    ]
    method.table(
        ["variant", "median s", "spread s", "best s", "appends/s (median)", "appends/s (spread)"], rows
    )
    print("`evidence audit verify` exit 0 after all rounds")
    method.footer()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
