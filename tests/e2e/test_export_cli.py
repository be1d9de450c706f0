"""`evidence export ...` and `evidence verify` as a user runs them, and the package checked with standard
tools alone (sha256sum, openssl pkeyutl, openssl ts, pdftoppm), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from evidence_store.bootstrap import open_station
from evidence_store.credentials import hash_password
from evidence_store.db.tables import clips, export_requests
from evidence_store.settings import load_settings
from tests.conftest import CliResult, run_cli
from tests.fixtures.services import require
from tests.fixtures.tsa import LocalTsa
from tests.integration.test_export import UNIT, add_case_with_document, add_people, ingest_video, tsa_env

NOTE_PAGE_COPY = Path("/tmp/evidence-export-note-page-1.png")


def ok(result: CliResult) -> CliResult:
    assert result.code == 0, result.stdout + result.stderr
    return result


def refused(result: CliResult, text: str) -> None:
    assert result.code == 2, result.stdout + result.stderr
    assert text in result.stderr, result.stderr


@pytest.fixture
def env(station_env: dict[str, str], tmp_path: Path, local_tsa: LocalTsa) -> dict[str, str]:
    require(shutil.which("ffmpeg") is not None, "ffmpeg is not installed")
    full = {**station_env, "EVIDENCE_UNIT_NAME": UNIT, **tsa_env(tmp_path / "tsa", local_tsa)}
    ingest_video(full, tmp_path / "volume")
    station = open_station(load_settings(full))
    try:
        add_people(station, password_hash=hash_password(PASSWORD))
        with station.engine.connect() as connection:
            clip_id = connection.scalar(select(clips.c.id))
        assert clip_id == 1
        full["CASE"] = add_case_with_document(station, clip_id)
    finally:
        station.close()
    return full


PASSWORD = "correct horse battery staple"


def export_cli(
    args: list[str], env: dict[str, str], timeout: float = 120, password: str = PASSWORD
) -> CliResult:
    """`evidence export ...` as the named user, who proves it with the password (on stdin)."""
    return run_cli([*args, "--password-stdin"], env, timeout=timeout, input=password + "\n")


def station_only(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k != "CASE"}


def test_request_approve_build_and_verify_with_standard_tools(env: dict[str, str], tmp_path: Path) -> None:
    case = env["CASE"]
    env = station_only(env)
    requested = ok(
        export_cli(
            [
                "export",
                "request",
                "--user",
                "inv1",
                "--clip",
                "1",
                "--clip",
                "1@00:00:01-00:00:03.5",
                "--cut",
                "keyframe",
                "--disclosure",
                "--case",
                case,
                "--purpose",
                "提交法院",
                "--recipient",
                "某区人民法院",
                "--json",
            ],
            env,
        )
    )
    request = json.loads(requested.stdout)
    assert request["status"] == "pending" and request["items"][1] == {
        "clip_id": 1,
        "start_s": 1.0,
        "end_s": 3.5,
        "cut": "keyframe",
        "disclosure": True,
    }
    rid = str(request["id"])
    refused(export_cli(["export", "build", rid, "--user", "inv1"], env), "not approved yet")
    refused(export_cli(["export", "approve", rid, "--user", "inv1"], env), "not approver")
    ok(export_cli(["export", "approve", rid, "--user", "boss", "--reason", "同意"], env))
    refused(export_cli(["export", "build", rid, "--user", "inv2"], env), "only the requester (inv1)")
    out = tmp_path / "out"
    built = json.loads(
        ok(
            export_cli(
                ["export", "build", rid, "--user", "inv1", "--out", str(out), "--json"], env, timeout=600
            )
        ).stdout
    )
    package = Path(built["directory"])
    zipped = Path(built["zip"])

    # the evidence software, offline, on the directory and on the zip
    verified = ok(run_cli(["verify", str(package)], env))
    assert "VALID" in verified.stdout and "C2PA" in verified.stdout
    ok(run_cli(["verify", str(zipped), "--json"], env))
    manifest = json.loads((package / "manifest.json").read_bytes())
    fingerprint = manifest["station"]["public_key_fingerprint"]
    ok(run_cli(["verify", str(package), "--fingerprint", fingerprint], env))
    wrong = run_cli(["verify", str(package), "--fingerprint", "00" * 32], env)
    assert wrong.code == 1 and "expected key" in wrong.stderr

    # ... on a machine with nothing but the package: no station home, no database
    elsewhere = {k: v for k, v in env.items() if not k.startswith("EVIDENCE_")}
    elsewhere |= {
        "EVIDENCE_HOME": str(tmp_path / "no-such-home"),
        "EVIDENCE_DATABASE_URL": "postgresql://nowhere/x",
    }
    alone = tmp_path / "alone"
    shutil.copytree(package, alone)
    ok(run_cli(["verify", str(alone)], elsewhere))

    # standard tools alone
    if shutil.which("unzip"):
        subprocess.run(["unzip", "-tq", str(zipped)], check=True, capture_output=True)
    subprocess.run(
        ["sha256sum", "--strict", "-c", "SHA256SUMS"], cwd=package, check=True, capture_output=True
    )
    signature = subprocess.run(
        [
            "openssl",
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            "station-ed25519.pub.pem",
            "-rawin",
            "-in",
            "manifest.json",
            "-sigfile",
            "manifest.json.sig",
        ],
        cwd=package,
        capture_output=True,
        text=True,
        check=False,
    )
    assert signature.returncode == 0 and "Signature Verified Successfully" in signature.stdout
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-in", "station-ed25519.pub.pem", "-outform", "DER"],
        cwd=package,
        capture_output=True,
        check=True,
    ).stdout
    import hashlib

    assert hashlib.sha256(der[-32:]).hexdigest() == fingerprint
    sha = manifest["items"][0]["original"]["sha256"]
    token = manifest["items"][0]["timestamps"][0]
    assert token["kind"] == "rfc3161" and token["path"] == f"timestamps/{sha}.tsr"
    for args in (["-digest", sha], ["-data", manifest["items"][0]["original"]["path"]]):
        ts = subprocess.run(
            [
                "openssl",
                "ts",
                "-verify",
                "-token_in",
                "-in",
                token["path"],
                *args,
                "-CAfile",
                "trust/tsa-ca.pem",
            ],
            cwd=package,
            capture_output=True,
            text=True,
            check=False,
        )
        assert ts.returncode == 0 and "Verification: OK" in ts.stdout, ts.stdout + ts.stderr
    other = "0" * 64
    ts = subprocess.run(
        [
            "openssl",
            "ts",
            "-verify",
            "-token_in",
            "-in",
            token["path"],
            "-digest",
            other,
            "-CAfile",
            "trust/tsa-ca.pem",
        ],
        cwd=package,
        capture_output=True,
        text=True,
        check=False,
    )
    assert ts.returncode != 0

    # the note renders, Chinese included (the page is kept for a person to look at)
    require(shutil.which("pdftoppm") is not None, "pdftoppm (poppler-utils) is not installed")
    subprocess.run(
        ["pdftoppm", "-r", "60", "-png", "note.pdf", str(tmp_path / "page")], cwd=package, check=True
    )
    pages = sorted(tmp_path.glob("page*.png"))
    assert pages and pages[0].stat().st_size > 10_000
    shutil.copy(pages[0], NOTE_PAGE_COPY)
    fonts = subprocess.run(
        ["pdffonts", str(package / "note.pdf")], capture_output=True, text=True, check=True
    )
    rows = [line.split() for line in fonts.stdout.splitlines()[2:]]
    assert any("WenQuanYiZenHei" in row[0] for row in rows)
    # every font is embedded but reportlab's always-declared Helvetica (one of the PDF standard 14 that
    # every reader has; no text of the note uses it)
    assert all(row[-5] == "yes" for row in rows if row[0] != "Helvetica"), fonts.stdout

    # one flipped byte in the zip: invalid, and the file is named
    bad = tmp_path / "bad.zip"
    data = bytearray(zipped.read_bytes())
    with zipfile.ZipFile(zipped) as archive:
        member = archive.getinfo(f"{package.name}/note.pdf")
    header = member.header_offset
    name_length, extra_length = struct.unpack("<HH", data[header + 26 : header + 30])
    data[header + 30 + name_length + extra_length + member.file_size // 2] ^= 0x01  # inside note.pdf
    bad.write_bytes(bytes(data))
    broken = run_cli(["verify", str(bad)], env)
    assert broken.code == 1 and "INVALID" in broken.stderr and "note.pdf" in broken.stderr

    # once only; the steps are in the audit log
    refused(export_cli(["export", "build", rid, "--user", "inv1", "--out", str(out)], env), "already built")
    log = json.loads(ok(run_cli(["audit", "log", "--object", f"export:{rid}", "--json"], env)).stdout)[
        "events"
    ]
    actions = [e["action"] for e in reversed(log)]
    assert actions == [
        "export.requested",
        "export.refused",
        "export.refused",
        "export.approved",
        "export.refused",
        "export.built",
        "export.refused",
    ]
    shown = json.loads(ok(export_cli(["export", "show", rid, "--user", "boss", "--json"], env)).stdout)
    assert shown["status"] == "built" and shown["manifest_sha256"] == built["manifest_sha256"]
    ok(run_cli(["audit", "verify"], env))
    ok(run_cli(["scrub"], env))


def test_rejected_and_expired_requests_cannot_be_built(env: dict[str, str], tmp_path: Path) -> None:
    env = station_only(env)
    first = json.loads(
        ok(
            export_cli(
                ["export", "request", "--user", "inv1", "--clip", "1", "--purpose", "review", "--json"], env
            )
        ).stdout
    )
    second = json.loads(  # user names are lower-case: " INV1" is inv1, for every step, not just the password
        ok(
            export_cli(
                ["export", "request", "--user", " INV1", "--clip", "1", "--purpose", "court", "--json"], env
            )
        ).stdout
    )
    assert second["requested_by"] == "inv1"
    refused(
        export_cli(["export", "reject", str(first["id"]), "--user", "clerk", "--reason", "x"], env),
        "not approver",
    )
    ok(export_cli(["export", "reject", str(first["id"]), "--user", "boss", "--reason", "用途不明"], env))
    refused(
        export_cli(["export", "build", str(first["id"]), "--user", "inv1"], env), "rejected by boss: 用途不明"
    )

    ok(export_cli(["export", "approve", str(second["id"]), "--user", "Boss"], env))
    station = open_station(load_settings(env))
    try:  # the approval's validity ran out (as if export_validity_days had passed)
        with station.engine.begin() as connection:
            connection.execute(
                update(export_requests)
                .where(export_requests.c.id == second["id"])
                .values(valid_until=datetime.now(UTC) - timedelta(seconds=1))
            )
    finally:
        station.close()
    refused(
        export_cli(["export", "build", str(second["id"]), "--user", "Inv1", "--out", str(tmp_path)], env),
        "approval expired",
    )
    listed = json.loads(ok(export_cli(["export", "list", "--user", "inv1", "--json"], env)).stdout)["exports"]
    assert {e["id"]: e["status"] for e in listed} == {first["id"]: "rejected", second["id"]: "expired"}
    assert not list(tmp_path.glob("export-*"))
    refused(export_cli(["export", "list", "--user", "nobody"], env), "user 'nobody': wrong password")
    refused(
        export_cli(["export", "request", "--user", "inv1", "--clip", "99", "--purpose", "x"], env),
        "no clip 99",
    )
    refused(
        export_cli(["export", "request", "--user", "inv1", "--clip", "1@5-2", "--purpose", "x"], env),
        "segment",
    )
    not_a_package = run_cli(["verify", str(tmp_path / "missing")], env)
    assert not_a_package.code == 2 and "does not exist" in not_a_package.stderr


def test_the_named_user_must_prove_who_they_are(env: dict[str, str]) -> None:
    env = station_only(env)
    request = ["export", "request", "--user", "inv1", "--clip", "1", "--purpose", "court", "--json"]

    # no password at all (not a terminal, no --password-stdin): refused before anything is read
    unproved = run_cli(request, env)
    assert unproved.code == 2 and "password of 'inv1' is needed" in unproved.stderr

    # a wrong password, or another user's name with one's own password: refused, recorded, audited
    refused(export_cli(request, env, password="not the password"), "user 'inv1': wrong password")
    refused(export_cli(["export", "approve", "1", "--user", "boss"], env, password="guess"), "wrong password")
    listed = json.loads(ok(export_cli(["export", "list", "--user", "inv1", "--json"], env)).stdout)
    assert listed["exports"] == []  # nothing was requested or approved by the refused calls
    log = json.loads(ok(run_cli(["audit", "log", "--action", "auth.login_failed", "--json"], env)).stdout)
    failed = sorted((e["actor"], e["object"]) for e in log["events"])
    assert failed == [("cli:boss", "user:boss"), ("cli:inv1", "user:inv1")]
    assert all(e["details"]["reason"] == "bad_credentials" for e in log["events"])

    # the same limit as the web login: after 5 failures for a name, even the right password waits
    for _ in range(4):
        refused(export_cli(request, env, password="still wrong"), "wrong password")
    refused(export_cli(request, env), "too many failed attempts")
    limited = json.loads(
        ok(run_cli(["audit", "log", "--action", "auth.login_rate_limited", "--json"], env)).stdout
    )
    assert [e["object"] for e in limited["events"]] == ["user:inv1"]
    # another user is not held up by inv1's failures
    ok(export_cli(["export", "list", "--user", "inv2"], env))
    ok(run_cli(["audit", "verify"], env))


def test_no_password_on_stdin_is_a_clear_error_not_a_failed_attempt(station_env: dict[str, str]) -> None:
    """A script that forgot the password gets told so; it does not use up the user's attempts (the
    station is not even opened)."""
    for given in ("", "\n"):  # nothing on stdin, or an empty first line
        empty = run_cli(["export", "list", "--user", "inv1", "--password-stdin"], station_env, input=given)
        assert empty.code == 2
        assert "--password-stdin: no password of 'inv1' on the first line of stdin" in empty.stderr
        assert not Path(station_env["EVIDENCE_HOME"]).exists()
