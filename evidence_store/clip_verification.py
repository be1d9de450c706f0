"""Verify one clip now (R3): re-hash its stored original and put the result on the audit record."""

from __future__ import annotations

from typing import Any

from evidence_store.bootstrap import Station
from evidence_store.errors import BlobNotFoundError, StoreError


def verify_now(station: Station, clip_id: int, sha256: str, *, actor: str, source: str) -> dict[str, Any]:
    """Re-hash the stored original now and record the result (R3)."""
    try:
        actual: str | None = station.blobs.rehash(sha256)
        problem = ""
    except BlobNotFoundError:
        actual, problem = None, "missing"
    except StoreError as exc:
        actual, problem = None, f"store error: {exc}"
    ok = actual == sha256
    result = {"sha256": sha256, "actual": actual, "ok": ok, "problem": problem or ("" if ok else "altered")}
    with station.transaction() as session:
        station.audit.record(
            session,
            actor=actor,
            action="clip.verified",
            object_type="clip",
            object_id=clip_id,
            details=result,
            source=source,
        )
    return result
