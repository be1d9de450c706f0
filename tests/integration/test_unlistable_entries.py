"""A FAT recorder whose long file name holds a '/' (crafted as `../../etc/x.MP4`): fusefat's listing of
that directory fails with EIO. The pull records the directory's problem and the refused entry, takes
the ordinary files beside it (by the FAT directory entries where the listing gives nothing) and ends
`partial`, with the exit code saying so (R2, R10)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select

from evidence_store.bootstrap import Station
from evidence_store.domain.model import Clip, TransferOutcome
from tests.conftest import run_cli
from tests.fixtures.recorders import (  # noqa: F401  (fixtures)
    RecorderSpec,
    build_recorder_image,
    dock_tools,
    no_udevd,
)
from tests.integration.test_dock_recorder_files import dock_once

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("dock_tools", "no_udevd")]

PLACEHOLDER = "zz#zz#etc#x.MP4"  # written by mtools, then patched into ../../etc/x.MP4
CRAFTED = "../../etc/x.MP4"
SERIAL, OFFICER = "DSJ0415", "310415"


def patch_long_names(image: Path) -> int:
    """Turn the placeholder's long-name entries into the crafted name (mtools cannot write '/'): the
    LFN checksum covers only the short name, so the entry stays valid. Returns entries patched."""
    data = bytearray(image.read_bytes())
    patched = 0
    for offset in range(0, len(data) - 31, 32):
        if data[offset + 11] != 0x0F or data[offset + 12] != 0:
            continue
        for start, length in ((1, 10), (14, 12), (28, 4)):
            for k in range(offset + start, offset + start + length, 2):
                char = data[k : k + 2]
                if char == "#".encode("utf-16-le"):
                    data[k : k + 2] = "/".encode("utf-16-le")
                    patched += 1
                elif char == "z".encode("utf-16-le"):
                    data[k : k + 2] = ".".encode("utf-16-le")
    image.write_bytes(bytes(data))
    return patched


def crafted_recorder(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A FAT32 recorder: the crafted entry first in BAD/ (the listing gives nothing there), an ordinary
    file beside it, and the usual clips under DCIM."""
    extra = {
        f"BAD/{PLACEHOLDER}": (os.urandom(70_000), None),
        "BAD/beside.MP4": (os.urandom(90_000), None),
    }
    image = build_recorder_image(tmp_path, RecorderSpec(SERIAL, OFFICER, "vfat", clips=1, extra_files=extra))
    assert patch_long_names(image.path) == 3
    files = {p: h for p, h in image.files.items() if PLACEHOLDER not in p}
    return image.path, files


def stored_paths(station: Station) -> dict[str, str]:
    """Stored clips by lower-cased path (a FAT 8.3 name is listed in the case the driver chooses)."""
    with station.sessions() as session:
        return {c.device_path.lower(): c.sha256 for c in session.scalars(select(Clip))}


def test_docking_pulls_the_rest_and_lists_the_refused_entry(
    station: Station, tmp_path: Path, database_url: str
) -> None:
    image, files = crafted_recorder(tmp_path)
    result = dock_once(station, image)
    summary = result.summary  # type: ignore[attr-defined]
    assert summary is not None, result.as_dict()  # type: ignore[attr-defined]
    assert summary.outcome is TransferOutcome.PARTIAL, summary.as_dict()
    assert summary.directories_unlisted == ["BAD"]
    assert any("cannot list BAD" in p for p in summary.problems), summary.problems
    (refused,) = [f for f in summary.files if f.status == "failed"]
    assert refused.path == f"BAD/{CRAFTED}"
    assert "'/'" in refused.warnings[0]
    stored = stored_paths(station)
    for path, sha256 in files.items():
        assert stored.get(path.lower()) == sha256, (path, sorted(stored))


def test_import_of_the_fusefat_mount_completes_partial_with_exit_code_1(
    station: Station, station_env: dict[str, str], tmp_path: Path
) -> None:
    image, files = crafted_recorder(tmp_path)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    # as the dock mounts it: read-only, the image named as the source (so the FAT entries can be read)
    subprocess.run(
        ["fusefat", "-o", f"ro,fsname={image},subtype=fusefat", str(image), str(mnt)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    try:
        result = run_cli(
            ["import", str(mnt), "--device", SERIAL, "--officer", OFFICER, "--json"], station_env
        )
    finally:
        subprocess.run(["fusermount", "-u", str(mnt)], check=True, timeout=60)
    assert "Traceback" not in result.stderr, result.stderr
    summary = json.loads(result.stdout)
    assert result.code == 1, (summary["files_failed"], summary["problems"], summary["directories_unlisted"])
    assert summary["outcome"] == "partial"
    assert [f["path"] for f in summary["files"] if f["status"] == "failed"] == [f"BAD/{CRAFTED}"]
    stored = stored_paths(station)
    for path, sha256 in files.items():
        assert stored.get(path.lower()) == sha256, (path, sorted(stored))
    verify = run_cli(["audit", "verify"], station_env)
    assert verify.code == 0, verify.stderr
