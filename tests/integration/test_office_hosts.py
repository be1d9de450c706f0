"""An office of several hosts on one backend (issue 18, "must hold, tested across hosts").

Hosts are network namespaces joined by veth links to a bridge in the backend's namespace
(tests/fixtures/netns.py); only the addresses of these namespaces are used. The backend host runs
PostgreSQL, Ceph radosgw (a bucket with Object Lock) and Redis, each bound to the backend's address and
started inside its namespace by the ordinary fixtures' code (tests/fixtures/postgres.py, radosgw.py,
redis.py with a namespace and an address). Two docking-station hosts and a worker host run the real
`evidence` command inside their namespaces, each with its own EVIDENCE_HOME (its own key), enrolled and
approved. Everything is started once for the module (about 20 s) and removed at the end even on failure.

What is checked here:
- both stations import at the same time: every clip arrives once; `audit verify` and `scrub` exit 0 from
  every host;
- a station's link cut while it forwards its spool, at six points where the object store and the
  database are at different stages, then restored and the forward retried: every clip once, the spool
  empty, verify and scrub exit 0 (tests/integration/test_store_and_forward_netns.py cuts the database
  alone, with the store on the station);
- a worker host killed (SIGKILL) mid-transcode: the job completes on another host;
- a host whose key is not approved cannot write (refused, the refusal recorded); the rest of enrolment
  and revocation is tested on one host in tests/integration/test_stations.py.

Needs root, iproute2, tc, PostgreSQL, Ceph and redis-server: skipped without them on a laptop, a failure
under CI=true.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select

from evidence_store.db.tables import audit_events, clips, derivatives, processing_jobs, stations
from evidence_store.domain.model import ClipStatus, DerivativeKind, JobStatus
from tests.conftest import REPO, CliResult
from tests.fixtures.media import make_video, sha256_of
from tests.fixtures.netns import Office, in_namespace, office
from tests.fixtures.postgres import PostgresCluster, _pg_bin
from tests.fixtures.radosgw import missing_binaries, running_radosgw
from tests.fixtures.redis import running_redis
from tests.fixtures.services import require
from tests.integration.test_store_and_forward_netns import CLIENT_TIMEOUTS, SERVER_TIMEOUTS

pytestmark = pytest.mark.slow

STATIONS = ("dock-a", "dock-b")
WORKER = "worker"
# a WAN link lost: each client gives up within seconds (libpq: CLIENT_TIMEOUTS; S3: these)
S3_TIMEOUTS = {
    "EVIDENCE_S3_CONNECT_TIMEOUT_S": "2",
    "EVIDENCE_S3_READ_TIMEOUT_S": "4",
    "EVIDENCE_S3_MAX_ATTEMPTS": "2",
}


@dataclass
class Backend:
    office: Office
    envs: dict[str, dict[str, str]]  # host name -> its environment (home, name, backend addresses)
    database_url: str

    def cli(
        self, host: str, args: list[str], *, env: dict[str, str] | None = None, timeout: float = 300
    ) -> CliResult:
        """The real `evidence` command, run on `host` (inside its namespace)."""
        proc = subprocess.run(
            self.argv(host, "-m", "entrypoints", *args),
            env=env or self.envs[host], cwd=REPO, capture_output=True, text=True, timeout=timeout,
            check=False,
        )  # fmt: skip
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    def argv(self, host: str, *python_args: str) -> list[str]:
        """Python with `python_args`, on `host`."""
        return ["ip", "netns", "exec", self.office.hosts[host].namespace, sys.executable, *python_args]

    def ok(self, host: str, args: list[str], **kwargs: Any) -> CliResult:
        result = self.cli(host, args, **kwargs)
        assert result.code == 0, f"{host}: evidence {' '.join(args)}: {result.stdout}{result.stderr}"
        return result

    def query(self, fn: Callable[[Any], Any]) -> Any:
        """`fn(connection)` against the backend's database, from a station host."""

        def run() -> Any:
            engine = create_engine(self.database_url)
            try:
                with engine.connect() as connection:
                    return fn(connection)
            finally:
                engine.dispose()

        return in_namespace(self.office.hosts[STATIONS[0]].namespace, run)

    def copies(self, hashes: list[str]) -> dict[str, int]:
        """sha256 -> how many clip rows the backend has with it."""
        rows = self.query(
            lambda c: c.execute(
                select(clips.c.sha256, func.count())
                .where(clips.c.sha256.in_(hashes))
                .group_by(clips.c.sha256)
            ).all()
        )
        return {sha: dict(rows).get(sha, 0) for sha in hashes}

    def verified_and_scrubbed(self, host: str) -> None:
        self.ok(host, ["audit", "verify", "--json"])
        self.ok(host, ["scrub", "--json"])


def _require_tools() -> Path:
    require(os.geteuid() == 0, "network namespaces need root")
    for tool in ("ip", "tc", "redis-server"):
        require(shutil.which(tool) is not None, f"{tool} is not installed")
    missing = missing_binaries()
    require(not missing, f"Ceph binaries missing: {', '.join(missing)}")
    bin_dir = _pg_bin()
    require(bin_dir is not None, "PostgreSQL server binaries not installed (Debian package postgresql)")
    assert bin_dir is not None
    return bin_dir


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    bin_dir = _require_tools()
    root = tmp_path_factory.mktemp("office")
    with office([*STATIONS, WORKER]) as hosts:
        where = {"address": hosts.backend.address, "namespace": hosts.backend.namespace}
        cluster = PostgresCluster(bin_dir, **where, server_options=SERVER_TIMEOUTS)
        try:
            cluster.start()
            with running_radosgw(**where) as s3, running_redis(**where) as redis:
                database_url = f"{cluster.new_database()}?{CLIENT_TIMEOUTS}"
                common = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
                common.update(
                    {
                        "EVIDENCE_DATABASE_URL": database_url,
                        "EVIDENCE_BLOB_STORE": "s3",
                        "EVIDENCE_S3_ENDPOINT_URL": s3.endpoint_url,
                        "EVIDENCE_S3_BUCKET": "office-evidence",
                        "EVIDENCE_S3_REGION": s3.region,
                        "EVIDENCE_S3_ACCESS_KEY_ID": s3.access_key_id,
                        "EVIDENCE_S3_SECRET_ACCESS_KEY": s3.secret_access_key,
                        "EVIDENCE_S3_DEFAULT_RETENTION_DAYS": "1",
                        **S3_TIMEOUTS,
                        "EVIDENCE_REDIS_URL": redis.url,
                        "EVIDENCE_PROCESSING_QUEUE": "none",
                        "EVIDENCE_AUDIT_CHECKPOINT_INTERVAL": "5",
                        "EVIDENCE_SPOOL_KEEP_HOURS": "0",
                        "EVIDENCE_WORKER_LEASE_SECONDS": "6",
                    }
                )
                envs = {
                    name: {**common, "EVIDENCE_HOME": str(root / name), "EVIDENCE_STATION_NAME": name}
                    for name in [*STATIONS, WORKER]
                }
                result = Backend(hosts, envs, database_url)
                result.ok(STATIONS[0], ["init"])  # the first host on the database: trusted by bootstrap
                for name in (STATIONS[1], WORKER):
                    result.ok(name, ["init"])  # asks to be enrolled
                    result.ok(STATIONS[0], ["stations", "approve", name])
                yield result
        finally:
            cluster.stop()


def recorder(
    root: Path, serial: str, count: int, *, seconds: float = 1, size: str = "160x120"
) -> dict[str, str]:
    """A recorder volume as a folder of `count` clips of their own bytes; returns path -> sha256."""
    (root / "DCIM" / "100MEDIA").mkdir(parents=True)
    (root / "DeviceInfo.txt").write_text(f"Serial={serial}\nOfficer=310{serial[-3:]}\n", encoding="utf-8")
    made = {}
    for i in range(count):
        path = root / f"DCIM/100MEDIA/{serial}_2026112409{i:02d}00_{i + 1:04d}.MP4"
        make_video(path, seconds=seconds, size=size, tag=f"{serial}-{i}-{uuid.uuid4().hex}")
        made[str(path.relative_to(root))] = sha256_of(path)
    return made


def serial() -> str:
    return f"ZO{random.randint(1000000, 9999999)}"


def test_two_stations_dock_at_once_and_every_clip_arrives_once(
    backend: Backend, tmp_path: Path, ffmpeg_available: None
) -> None:
    made = {name: recorder(tmp_path / name, serial(), 3) for name in STATIONS}
    running = [
        subprocess.Popen(
            backend.argv(name, "-m", "entrypoints", "import", str(tmp_path / name), "--json"),
            env=backend.envs[name],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in STATIONS
    ]
    for name, proc in zip(STATIONS, running, strict=True):
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{name}: {err}"
        summary = json.loads(out)
        assert summary["outcome"] == "complete" and summary["spooled"] is False, summary

    hashes = [sha for per_station in made.values() for sha in per_station.values()]
    assert backend.copies(hashes) == dict.fromkeys(hashes, 1)
    for host in (*STATIONS, WORKER):
        backend.verified_and_scrubbed(host)


# A forward on a station host whose link to the backend is cut at the named point (the link is the
# backend's end of the station's veth pair). "mid-upload": once the first 16 KiB of the forward's bytes
# have left the host (a clip is about 60 KB; the link is limited to 256 kbit/s, so that it takes about
# 2 s, and the cut lands before the first clip's upload has returned); "carry-over":
# as the backend is sent the `spool.forwarded` event that carries the spooled journal entries.
CUT_LINK = """
import subprocess, sys, threading, time
from datetime import timedelta
from sqlalchemy import event
from evidence_store.bootstrap import open_spool
from evidence_store.settings import load_settings
from ingest.spool import forward_spool, open_backend

cut, backend_namespace, link = sys.argv[1:4]
MID_UPLOAD_BYTES = 16 * 1024

seen = []  # the steps passed so far

def cut_now():
    subprocess.run(["ip", "netns", "exec", backend_namespace, "ip", "link", "set", link, "down"], check=True)
    print(f"CUT after steps {seen}", file=sys.stderr, flush=True)

def sent():
    with open("/sys/class/net/eth0/statistics/tx_bytes") as counter:
        return int(counter.read())

def cut_mid_upload(start):
    while sent() - start < MID_UPLOAD_BYTES:
        time.sleep(0.002)
    cut_now()

def step(name):
    seen.append(name)
    if name == cut:
        cut_now()
    elif cut == "mid-upload" and name == "checked":
        threading.Thread(target=cut_mid_upload, args=(sent(),), daemon=True).start()

settings = load_settings()
backend = open_backend(settings)
if cut == "carry-over":
    @event.listens_for(backend.engine, "before_cursor_execute")
    def carrying_over(conn, cursor, statement, parameters, context, executemany):
        if "audit_events" in statement and "spool.forwarded" in repr(parameters):
            cut_now()

forward_spool(open_spool(settings), backend, actor="test", keep=timedelta(0), step=step)
"""

# before any byte; mid-upload; between two clips; every byte synced, nothing in the database yet;
# while the spooled journal is carried over (in the transaction); after the commit, before the
# spool notes it
LINK_CUTS = ["checked", "mid-upload", "bytes.put:0", "bytes.synced", "carry-over", "committed"]


@pytest.mark.parametrize("cut", LINK_CUTS)
def test_a_station_link_cut_mid_forward_delivers_everything_once_after_restore(
    backend: Backend, tmp_path: Path, ffmpeg_available: None, cut: str
) -> None:
    station = STATIONS[1]
    host = backend.office.hosts[station]
    made = recorder(tmp_path / "rec", serial(), 2, seconds=2, size="640x480")
    backend.office.cut(station)  # the branch office loses its link: the station docks into its spool
    try:
        summary = json.loads(backend.ok(station, ["import", str(tmp_path / "rec"), "--json"]).stdout)
        assert summary["spooled"] is True, summary
    finally:
        backend.office.restore(station)

    if cut == "mid-upload":  # slow enough that the cut lands in the first PUTs' bodies
        backend.office.limit(station, "256kbit", burst="4kb")  # a small bucket: no burst of a whole clip
    try:
        forward = subprocess.run(
            ["ip", "netns", "exec", host.namespace, sys.executable, "-c", CUT_LINK, cut,
             backend.office.backend.namespace, host.link],
            env=backend.envs[station], cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        cuts = [line for line in forward.stderr.splitlines() if line.startswith("CUT after steps")]
        assert len(cuts) == 1, forward.stderr  # the cut landed where it was meant to
        passed = cuts[0].removeprefix("CUT after steps ")
        # two clips (bytes.put:0 and 1), then the recorder's device file (bytes.put:2)
        synced = "['checked', 'bytes.put:0', 'bytes.put:1', 'bytes.put:2', 'bytes.synced'"
        expected_steps = {
            "checked": "['checked']",
            "mid-upload": "['checked']",  # no clip's bytes all sent yet
            "bytes.put:0": "['checked', 'bytes.put:0']",
            "bytes.synced": synced + "]",
            "carry-over": synced + "]",  # in the transaction, before it could commit
            "committed": synced + ", 'before_commit', 'committed']",
        }
        assert passed == expected_steps[cut], forward.stderr
        if cut != "committed":  # before the commit a dead link must fail the forward, never pass for done
            assert forward.returncode != 0, f"the forward went on over a dead link: {forward.stderr}"
    finally:
        backend.office.restore(station)
        backend.office.unlimit(station)

    backend.ok(station, ["spool", "forward", "--json"])
    hashes = list(made.values())
    assert backend.copies(hashes) == dict.fromkeys(hashes, 1)
    status = json.loads(backend.ok(station, ["spool", "status", "--json"]).stdout)
    assert status["empty"] and status["held_bytes"] == 0, status
    backend.verified_and_scrubbed(station)


class Worker:
    """`evidence worker` on a host, in its own process group (SIGKILL reaches ffmpeg too)."""

    def __init__(self, backend: Backend, host: str, log: Path) -> None:
        self.log = log
        self._handle = log.open("w")
        self.proc = subprocess.Popen(
            backend.argv(host, "-m", "entrypoints", "worker", "--processes", "1", "--threads", "1"),
            env={**backend.envs[host], "EVIDENCE_PROCESSING_QUEUE": "redis"}, cwd=REPO,
            stdin=subprocess.DEVNULL, stdout=self._handle, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def wait_until(self, condition: Callable[[], bool], what: str, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            text = self.log.read_text(errors="replace")
            assert self.proc.poll() is None, f"worker exited {self.proc.returncode}:\n{text}"
            assert time.monotonic() < deadline, f"timed out waiting until {what}:\n{text[-5000:]}"
            time.sleep(0.3)

    def kill(self) -> None:
        """A power cut: SIGKILL to the whole process group."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._handle.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        self._handle.close()


def test_a_worker_host_killed_mid_transcode_its_job_completes_on_another_host(
    backend: Backend, tmp_path: Path, ffmpeg_available: None
) -> None:
    station = STATIONS[0]
    # long enough (20 s at 1280x720) that the proxy is still being made when the worker is killed
    made = recorder(tmp_path / "rec", serial(), 1, seconds=20, size="1280x720")
    (sha,) = made.values()
    queued = {**backend.envs[station], "EVIDENCE_PROCESSING_QUEUE": "redis"}
    backend.ok(station, ["import", str(tmp_path / "rec"), "--json"], env=queued)

    def proxy_job() -> tuple[str, int] | None:
        row = backend.query(
            lambda c: c.execute(
                select(processing_jobs.c.status, processing_jobs.c.attempts)
                .join(clips, clips.c.id == processing_jobs.c.clip_id)
                .where(clips.c.sha256 == sha, processing_jobs.c.step == "proxy")
            ).first()
        )
        return None if row is None else (str(row.status), int(row.attempts))

    def clip_status() -> str:
        return str(backend.query(lambda c: c.scalar(select(clips.c.status).where(clips.c.sha256 == sha))))

    first = Worker(backend, WORKER, tmp_path / "worker.log")
    second: Worker | None = None
    try:
        first.wait_until(lambda: (proxy_job() or ("",))[0] == JobStatus.RUNNING, "the proxy starts")
        first.kill()
        assert clip_status() == ClipStatus.PROCESSING  # what the dead host left: claimed, nothing derived
        second = Worker(backend, STATIONS[1], tmp_path / "second.log")
        second.wait_until(
            lambda: clip_status() == ClipStatus.READY, "the other host finishes it", timeout=300
        )
    finally:
        first.kill()
        if second is not None:
            second.stop()

    assert proxy_job() == (JobStatus.DONE, 2)
    clip_id = backend.query(lambda c: c.scalar(select(clips.c.id).where(clips.c.sha256 == sha)))
    proxies = backend.query(
        lambda c: c.scalar(
            select(func.count())
            .select_from(derivatives)
            .where(derivatives.c.clip_id == clip_id, derivatives.c.kind == DerivativeKind.PROXY)
        )
    )
    assert proxies == 1  # nothing lost, nothing made twice
    fingerprints = dict(
        backend.query(lambda c: c.execute(select(stations.c.name, stations.c.fingerprint)).all())
    )
    signers = set(
        backend.query(
            lambda c: c.scalars(
                select(audit_events.c.key_fingerprint).where(
                    audit_events.c.object_type == "clip", audit_events.c.object_id == str(clip_id)
                )
            ).all()
        )
    )
    assert fingerprints[STATIONS[1]] in signers  # the other host signed what it made
    backend.verified_and_scrubbed(WORKER)  # the proxy is in the store, hashing to its name


def test_a_host_whose_key_is_not_approved_cannot_write(
    backend: Backend, tmp_path: Path, ffmpeg_available: None
) -> None:
    """One check across hosts; the rest (revocation, keys never enrolled) is in test_stations.py."""
    rogue = {
        **backend.envs[WORKER],
        "EVIDENCE_HOME": str(tmp_path / "rogue"),
        "EVIDENCE_STATION_NAME": "rogue",
    }
    backend.ok(WORKER, ["init"], env=rogue)  # only asks to be enrolled
    made = recorder(tmp_path / "rec", serial(), 1)
    result = backend.cli(WORKER, ["import", str(tmp_path / "rec")], env=rogue)
    assert result.code == 2 and "not approved" in result.stderr, result.stderr
    assert backend.copies(list(made.values())) == dict.fromkeys(made.values(), 0)
    refused_at = backend.query(
        lambda c: c.scalar(select(stations.c.refused_at).where(stations.c.name == "rogue"))
    )
    assert refused_at is not None  # the refusal is recorded, and shows in `stations list`
    backend.verified_and_scrubbed(STATIONS[0])
