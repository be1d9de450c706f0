"""Forwarding a station's spool over a link limited to 1 Gbit/s, against a plain boto3 `upload_file` of
the same bytes to the same radosgw in the same run (issue 18; target >= 0.9x).

The office is made of network namespaces (tests/fixtures/netns.py): a backend namespace running
PostgreSQL and a single-node Ceph radosgw (started by the test fixtures' own code, bound to the backend's
address), and a station namespace whose link to it is limited with `tc qdisc ... tbf rate 1gbit` on the
station's side (its uploads). In the station's namespace one long-lived helper process (this script,
`--serve`) holds an opened spool and backend and a boto3 client, and runs each timed request:

- `forward`: `ingest.spool.forward_spool` of one spooled transfer (its files re-hashed by the backend
  store on the way in, its rows and journal carried into PostgreSQL, one sync), keep 24 h (the spool's
  copy is freed later, untimed here as in the product);
- `upload_file`: boto3's `upload_file` (its default TransferConfig: multipart from 8 MiB, 10 threads) of
  the same files, to a plain bucket (no Object Lock, which would ask for a Content-MD5) on the same
  radosgw, with the same client settings.

Every round makes fresh random files (a recorder folder), spools them (an `evidence import` while the
database is unreachable, untimed), and times both variants on those files, the order rotated every round
(bench/method.py). The files were just written: warm (in the page cache), as a spool forwarded soon after
docking is. The timed wall is the request to the helper and its answer (the helper's start-up is not
timed for either); one untimed warm-up round of both goes first. Needs root, iproute2, tc,
PostgreSQL and Ceph (deploy/install-system-packages.sh test).

    .venv/bin/python bench/bench_forward_wan.py                    # 5 rounds of 4 x 16 MiB
    .venv/bin/python bench/bench_forward_wan.py --files 2 --file-mib 8 --rounds 5   # quick
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import method  # noqa: E402  bench/method.py: the method every benchmark shares

MIB = 1024 * 1024
PLAIN_BUCKET = "bench-plain"
RATE = "1gbit"


# --- the helper in the station's namespace -----------------------------------------------------------


def serve() -> None:
    """Answer `forward` and `upload FOLDER PREFIX` requests on stdin, one JSON line each on stdout."""
    from datetime import timedelta

    from evidence_store.bootstrap import open_spool
    from evidence_store.settings import load_settings
    from ingest.spool import forward_spool, open_backend

    settings = load_settings()
    spool = open_spool(settings)
    backend = open_backend(settings)
    client = backend.blobs.client  # type: ignore[attr-defined]
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=PLAIN_BUCKET)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        words = line.split()
        if words[0] == "forward":
            report = forward_spool(spool, backend, actor="bench", keep=timedelta(hours=24))
            moved = sum(f.bytes for f in report.forwarded)
            answer: dict[str, Any] = {
                "bytes": moved,
                "transfers": len(report.forwarded),
                "problems": report.problems,
            }
        else:
            folder, prefix = Path(words[1]), words[2]
            moved = 0
            for path in sorted(p for p in folder.rglob("*") if p.is_file()):  # clips and device file
                client.upload_file(str(path), PLAIN_BUCKET, f"{prefix}/{path.name}")
                moved += path.stat().st_size
            answer = {"bytes": moved}
        print(json.dumps(answer), flush=True)


# --- the office and the rounds --------------------------------------------------------------------------


def make_folder(root: Path, files: int, size: int) -> Path:
    serial = f"DSJB{uuid.uuid4().hex[:6].upper()}"
    media = root / serial / "DCIM" / "100MEDIA"
    media.mkdir(parents=True)
    (root / serial / "DeviceInfo.txt").write_text(f"Serial={serial}\nOfficer=310777\n", encoding="utf-8")
    for i in range(files):
        with (media / f"{serial}_2026120509{i:02d}00_{i + 1:04d}.MP4").open("wb") as out:
            left = size
            while left:
                block = os.urandom(min(left, 4 * MIB))
                out.write(block)
                left -= len(block)
    return root / serial


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=4, help="files per round (default 4)")
    parser.add_argument("--file-mib", type=int, default=16, help="size of each file, MiB (default 16)")
    parser.add_argument("--dir", type=Path, default=Path("/work"), help="where the temporary directory goes")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    method.add_method_options(parser)
    args = parser.parse_args()
    if args.serve:
        serve()
        return 0
    if os.geteuid() != 0:
        raise SystemExit("network namespaces need root")
    work = Path(tempfile.mkdtemp(prefix="evidence-bench-forward-", dir=args.dir))
    try:
        return _bench(args, work)
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            subprocess.run(["rm", "-rf", str(work)], check=False)


def _bench(args: argparse.Namespace, work: Path) -> int:  # noqa: PLR0915  one office, set up in order
    from tests.fixtures.netns import office
    from tests.fixtures.postgres import PostgresCluster, _pg_bin
    from tests.fixtures.radosgw import running_radosgw

    size = args.file_mib * MIB
    total = args.files * size
    method.header(
        f"spool forward over a {RATE} link, {args.files} x {args.file_mib} MiB a round, vs boto3 upload_file",
        args.rounds,
        [method.WARM],
    )
    bin_dir = _pg_bin()
    if bin_dir is None:
        raise SystemExit("PostgreSQL server binaries not installed")
    with office(["station"]) as hosts:
        station = hosts.hosts["station"]
        where = {"address": hosts.backend.address, "namespace": hosts.backend.namespace}
        cluster = PostgresCluster(bin_dir, **where)
        try:
            cluster.start()
            with running_radosgw(**where) as s3:
                env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
                env.update(
                    {
                        "PYTHONPATH": str(ROOT),
                        "EVIDENCE_HOME": str(work / "station"),
                        "EVIDENCE_STATION_NAME": "bench-station",
                        "EVIDENCE_DATABASE_URL": cluster.new_database(),
                        "EVIDENCE_BLOB_STORE": "s3",
                        "EVIDENCE_S3_ENDPOINT_URL": s3.endpoint_url,
                        "EVIDENCE_S3_BUCKET": "bench-evidence",
                        "EVIDENCE_S3_ACCESS_KEY_ID": s3.access_key_id,
                        "EVIDENCE_S3_SECRET_ACCESS_KEY": s3.secret_access_key,
                        "EVIDENCE_S3_DEFAULT_RETENTION_DAYS": "1",
                        "EVIDENCE_PROCESSING_QUEUE": "none",
                    }
                )
                in_station = ["ip", "netns", "exec", station.namespace, sys.executable]
                subprocess.run([*in_station, "-m", "entrypoints", "init"], env=env, cwd=ROOT, check=True,
                               capture_output=True)  # fmt: skip
                hosts.limit("station", RATE)
                # the database refused (a closed port of the backend): the station docks into its spool
                cut_off = {**env, "EVIDENCE_DATABASE_URL": f"postgresql://nobody@{hosts.backend.address}:1/x"}
                helper = subprocess.Popen(
                    [*in_station, str(Path(__file__).resolve()), "--serve"],
                    env=env, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                )  # fmt: skip
                try:
                    assert helper.stdin is not None and helper.stdout is not None
                    assert json.loads(helper.stdout.readline())["ready"]

                    def ask(request: str) -> dict[str, Any]:
                        assert helper.stdin is not None and helper.stdout is not None
                        helper.stdin.write(request + "\n")
                        helper.stdin.flush()
                        return json.loads(helper.stdout.readline())  # type: ignore[no-any-return]

                    state: dict[str, Any] = {"folder": None, "used": set(), "n": 0}

                    def before(name: str) -> None:
                        if state["folder"] is None or name in state["used"]:
                            state["n"] += 1
                            folder = make_folder(work / f"round-{state['n']}", args.files, size)
                            done = subprocess.run(
                                [*in_station, "-m", "entrypoints", "import", str(folder), "--json"],
                                env=cut_off, cwd=ROOT, capture_output=True, text=True, check=False,
                            )  # fmt: skip
                            if done.returncode != 0 or not json.loads(done.stdout)["spooled"]:
                                raise SystemExit(f"spooling failed: {done.stderr}")
                            state["folder"], state["used"] = folder, set()
                        state["used"].add(name)

                    def check(name: str, run: method.Run[dict[str, Any]]) -> None:
                        expected = sum(p.stat().st_size for p in state["folder"].rglob("*") if p.is_file())
                        if run.result["bytes"] != expected:
                            raise SystemExit(f"{name} moved {run.result} bytes, expected {expected}")

                    variants = {
                        "spool forward (evidence)": lambda: ask("forward"),
                        "boto3 upload_file": lambda: ask(f"upload {state['folder']} r{state['n']}"),
                    }
                    # untimed warm-up of both (first connections, boto3's transfer threads, the SQL caches)
                    before("warm-up")
                    ask("forward")
                    ask(f"upload {state['folder']} warm-up")
                    state["folder"] = None
                    runs = method.run_rounds(
                        variants, args.rounds, before=before, after=check,
                        quiet_below=args.quiet_below, quiet_max_wait=args.quiet_max_wait,
                    )  # fmt: skip
                finally:
                    if helper.stdin is not None:
                        helper.stdin.close()
                    helper.wait(timeout=60)
        finally:
            cluster.stop()

    spreads = method.spreads(runs)
    print(f"\nwarm: the files just written (page cache); link {RATE} (tbf on the station's side)")
    rows = []
    for name, s in spreads.items():
        rate = total / s.median / MIB
        rows.append([name, *s.cells(3), f"{rate:.1f}", f"{total * 8 / s.median / 1e9:.2f}"])
    method.table(["variant", "median s", "spread s", "best s", "MiB/s", "Gbit/s"], rows)
    ratio = spreads["boto3 upload_file"].median / spreads["spool forward (evidence)"].median
    targets = [
        method.Target(
            "spool forward throughput / boto3 upload_file (same bytes, same radosgw)",
            ratio,
            0.9,
            judged=method.judged(args),
        )
    ]
    method.print_targets(targets)
    method.footer()
    return 0 if not args.check or method.targets_ok(targets) else 1


if __name__ == "__main__":
    raise SystemExit(main())
