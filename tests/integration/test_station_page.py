"""The station page, its kiosk view, `/api/station` and the event stream (issue 19): each bay in words
in both languages (no state or error code shows in the Chinese page), "safe to unplug" only for a
complete transfer whose recorder the dock released, and the stream's one event for a client that does
not ask for a live stream."""

from __future__ import annotations

import os
import re
from pathlib import Path

from fastapi.testclient import TestClient

from evidence_store.accounts import create_user
from evidence_store.bootstrap import Station
from evidence_store.domain.dock_status import DockError, DockState
from evidence_store.domain.model import TransferSource
from ingest.pull import PullRequest, pull
from ingest.service import choose_profile
from ingest.transfer_record import release_transfer
from tests.integration.test_readable_pages import visible_text
from web.app import create_app

PASSWORD = "a long enough password"


def dock_folder(station: Station, root: Path, serial: str, officer: str, *, release: bool) -> int:
    (root / "DCIM").mkdir(parents=True)
    for i in range(3):
        (root / "DCIM" / f"clip{i}.mp4").write_bytes(os.urandom(200_000))
    profile, facts = choose_profile(station, root, "generic")
    request = PullRequest(
        root=root,
        profile=profile,
        source=TransferSource.DOCK,
        volume=facts,
        device_serial=serial,
        officer_badge=officer,
    )
    summary = pull(station, request)
    if release:
        release_transfer(station, "dock:test", summary.transfer_id, unmounted=True, problems=[])
    return summary.transfer_id


def signed_in(station: Station, role: str, lang: str = "zh-CN") -> TestClient:
    create_user(
        station,
        username=f"{role}-{lang.lower()}",
        password=PASSWORD,
        role=role,
        unit="U1",
        officer_badge="310001" if role == "officer" else None,  # the officer of the first recorder
        actor="test",
    )
    client = TestClient(create_app(station))
    client.cookies.set("lang", lang)
    token = client.get("/api/csrf").json()["csrf_token"]
    response = client.post(
        "/api/login",
        json={"username": f"{role}-{lang.lower()}", "password": PASSWORD},
        headers={"X-CSRF-Token": token},
    )
    assert response.status_code == 200, response.text
    return client


def test_the_bays_in_words_and_safe_to_unplug_only_when_released(station: Station, tmp_path: Path) -> None:
    released = dock_folder(station, tmp_path / "a", "DSJ-A", "310001", release=True)
    held = dock_folder(station, tmp_path / "b", "DSJ-B", "310002", release=False)
    officer = signed_in(station, "officer")
    bays = {b["transfer_id"]: b for b in officer.get("/api/station").json()["bays"]}
    assert bays[released]["safe_to_unplug"] is True and bays[released]["state"] == "done"
    assert bays[held]["safe_to_unplug"] is False and bays[held]["state"] == "releasing"
    assert bays[released]["files_total"] == 3 and bays[released]["files_verified"] == 3
    assert bays[released]["bytes_done"] == bays[released]["bytes_total"] == 600_000
    assert bays[released]["officer_badge"] == "310001" and bays[released]["device_serial"] == "DSJ-A"

    codes = {s.value for s in DockState} | {e.value for e in DockError}
    for path in ("/station", "/station/kiosk"):
        page = officer.get(path)
        assert page.status_code == 200
        text = visible_text(page.text)
        assert "可以拔出" in text and "记录仪 DSJ-A" in text and "警号 310002" in text
        assert not {c for c in codes if re.search(rf"(?<![\w-]){c}(?![\w-])", text)}, text
        # one "safe" mark: the held recorder says not to unplug it
        assert text.count("可以拔出") == 1 and "请勿拔出" in text
    kiosk = officer.get("/station/kiosk").text
    assert 'id="nav-search"' not in kiosk and "/static/station.js" in kiosk
    english = signed_in(station, "auditor", "en")
    text = visible_text(english.get("/station").text)
    assert "Safe to unplug" in text and "All stored; releasing the recorder" in text


def test_the_event_stream_sends_the_bays(station: Station, tmp_path: Path) -> None:
    transfer = dock_folder(station, tmp_path / "a", "DSJ-S", "310009", release=True)
    client = signed_in(station, "custodian")
    # a client that does not ask for text/event-stream gets one event and the end of the body
    response = client.get("/api/station/events")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    body = response.text
    assert body.startswith("retry: ")
    assert "event: bays\n" in body and f'id="bay-{transfer}"' in body
    assert all(line.startswith(("retry:", "event:", "data:")) for line in body.splitlines() if line)
    # signed out: nothing
    assert TestClient(create_app(station)).get("/api/station/events").status_code == 401
