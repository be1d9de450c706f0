"""A party's application to read or copy records (R15, issue 20 item 1), on both databases: recorded by
a custodian, decided by an approver who did not record it, a read viewed under supervision, a copy
delivered as a disclosure package of redacted copies only (never an original), every step audited, the
answer deadline configurable and overdue applications listed. The package of a real rendered redaction
verifies offline with `evidence verify`, which says it is a disclosure."""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, select, update

from evidence_store.accounts import create_user
from evidence_store.bootstrap import Station
from evidence_store.db.tables import (
    audit_events,
    clips,
    disclosure_handovers,
    redaction_renders,
    redaction_specs,
    users,
)
from evidence_store.disclosure import (
    decide_application,
    list_applications,
    record_application,
    record_viewing,
    show_application,
    withdraw_application,
)
from evidence_store.domain.disclosure import DisclosureRefusedError, SegregationError
from evidence_store.domain.model import MediaType
from evidence_store.errors import ConflictError, InputError, NotFoundError
from evidence_store.export.disclosure_package import build_disclosure_package
from evidence_store.status import describe as station_status
from tests import factories
from tests.conftest import run_cli
from web.app import create_app

PASSWORD = "correct horse battery"


def _people(station: Station) -> None:
    for name, role in (
        ("cust", "custodian"),
        ("cust2", "custodian"),
        ("appr", "approver"),
        ("inv", "investigator"),
        ("sup", "supervisor"),
    ):
        factories.add_user(station, name, role)


def _clip(station: Station, label: str) -> tuple[int, str]:
    stored = factories.store_clip(station, label.encode() + os.urandom(4096), media_type=MediaType.VIDEO)
    with station.connect() as connection:
        row = connection.execute(
            select(clips.c.id, clips.c.sha256).where(clips.c.sha256 == stored.sha256)
        ).one()
    return int(row.id), str(row.sha256)


def _spec(station: Station, clip_id: int, version: int) -> int:
    with station.transaction() as session:
        return int(
            session.connection()
            .execute(
                insert(redaction_specs).values(
                    clip_id=clip_id,
                    version=version,
                    spec="{}",
                    spec_sha256=f"{version:064d}",
                    created_by="redactor",
                    created_at=station.clock(),
                )
            )
            .inserted_primary_key[0]
        )


def _render(station: Station, clip_id: int, spec_id: int, original_sha256: str) -> str:
    """A redacted copy on record (its bytes made up: these tests are about the workflow, not the video)."""
    blob = station.blobs.put(io.BytesIO(b"redacted " + os.urandom(2048)))
    with station.transaction() as session:
        session.connection().execute(
            insert(redaction_renders).values(
                clip_id=clip_id,
                spec_id=spec_id,
                kind="redacted",
                sha256=blob.sha256,
                size=blob.size,
                rendered_sha256="1" * 64,
                mime_type="video/mp4",
                derived_from_sha256=original_sha256,
                tool="ffmpeg",
                tool_version="test",
                arguments=[],
                created_by="redactor",
                created_at=station.clock(),
            )
        )
    return blob.sha256


def _apply(station: Station, kind: str, clip_ids: list[int], **fields: object) -> dict:
    return record_application(
        station,
        user=str(fields.pop("user", "cust")),
        party_name="张三",
        id_document_type="resident_id",
        id_document_number="210213198001011234",
        kind=kind,
        purpose="行政复议",
        clip_ids=clip_ids,
        **fields,  # type: ignore[arg-type]
    )


def _actions(station: Station, application_id: int) -> list[str]:
    with station.connect() as connection:
        return list(
            connection.scalars(
                select(audit_events.c.action)
                .where(
                    audit_events.c.object_type == "disclosure",
                    audit_events.c.object_id == str(application_id),
                )
                .order_by(audit_events.c.seq)
            )
        )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_copy_is_recorded_decided_by_another_and_delivered_without_any_original(
    station: Station, tmp_path: Path
) -> None:
    _people(station)
    clip_id, original = _clip(station, "copy")
    redacted = _render(station, clip_id, _spec(station, clip_id, 1), original)

    # only a custodian records an application; the refusal is on record
    with pytest.raises(DisclosureRefusedError, match=r"may not disclosure\.record"):
        _apply(station, "copy", [clip_id], user="inv")
    with pytest.raises(InputError, match="read or to copy"):
        _apply(station, "lend", [clip_id])
    with pytest.raises(NotFoundError, match="no clip 999"):
        _apply(station, "copy", [clip_id, 999])
    made = _apply(station, "copy", [clip_id])
    number = made["id"]
    assert made["state"] == "received" and made["clip_ids"] == [clip_id] and not made["overdue"]
    due = datetime.fromisoformat(made["answer_due"]) - datetime.fromisoformat(made["received_at"])
    assert due == timedelta(days=20)  # the default

    # nothing is handed over before a decision; only an approver decides, never the recorder
    with pytest.raises(DisclosureRefusedError, match="received"):
        build_disclosure_package(station, number, user="cust", out_dir=tmp_path)
    with pytest.raises(DisclosureRefusedError, match=r"may not disclosure\.decide"):
        decide_application(station, number, user="cust2", approve=True)
    with station.engine.begin() as connection:  # the recorder becomes an approver: still not theirs
        connection.execute(update(users).where(users.c.username == "cust").values(role="approver"))
    with pytest.raises(SegregationError, match="may not decide"):
        decide_application(station, number, user="cust", approve=True)
    with station.engine.begin() as connection:
        connection.execute(update(users).where(users.c.username == "cust").values(role="custodian"))
    with pytest.raises(InputError, match="reason"):
        decide_application(station, number, user="appr", approve=False)
    approved = decide_application(station, number, user="appr", approve=True, reason="third parties hidden")
    assert approved["state"] == "approved" and approved["decided_by"] == "appr"
    with pytest.raises(DisclosureRefusedError, match="approved"):
        decide_application(station, number, user="appr", approve=False, reason="changed my mind")

    # only a custodian delivers; the package holds the redacted copy and nothing of the original
    with pytest.raises(DisclosureRefusedError, match=r"may not disclosure\.deliver"):
        build_disclosure_package(station, number, user="appr", out_dir=tmp_path)
    result = build_disclosure_package(station, number, user="cust", out_dir=tmp_path / "out")
    files = [p for p in result.directory.rglob("*") if p.is_file()]
    hashes = {_sha256(p) for p in files}
    assert redacted in hashes and original not in hashes
    assert not any(p.relative_to(result.directory).parts[0] == "originals" for p in files)
    manifest = json.loads((result.directory / "manifest.json").read_text())
    assert manifest["disclosure"]["redacted_only"] is True and manifest["disclosure"]["application"] == number
    assert manifest["disclosure"]["id_document_number"].endswith("1234")
    assert "210213198001011234" not in (result.directory / "manifest.json").read_text()
    assert [item["original"] for item in manifest["items"]] == [None]
    assert "Disclosure to a party" in (result.directory / "note.html").read_text()

    shown = show_application(station, number)
    assert shown["state"] == "delivered"
    assert [h["kind"] for h in shown["handovers"]] == ["delivery"]
    assert shown["handovers"][0]["details"]["manifest_sha256"] == result.manifest_sha256
    assert _actions(station, number) == [
        "disclosure.recorded",
        "disclosure.step_refused",  # the build before the decision
        "disclosure.step_refused",  # the custodian's decision
        "disclosure.step_refused",  # the recorder's own decision
        "disclosure.approved",
        "disclosure.step_refused",  # the second decision
        "disclosure.step_refused",  # the approver's delivery
        "disclosure.delivered",
    ]
    with pytest.raises(DisclosureRefusedError, match="delivered"):  # handed over: no withdrawal
        withdraw_application(station, number, user="cust")


def test_a_clip_without_a_current_render_is_not_disclosed(station: Station, tmp_path: Path) -> None:
    _people(station)
    clip_id, original = _clip(station, "stale")
    bare_id, _ = _clip(station, "bare")
    number = _apply(station, "copy", [clip_id, bare_id])["id"]
    decide_application(station, number, user="appr", approve=True)
    first = _spec(station, clip_id, 1)
    _render(station, clip_id, first, original)
    out = tmp_path / "out"
    with pytest.raises(ConflictError, match=f"clip {bare_id} has no redaction"):
        build_disclosure_package(station, number, user="cust", out_dir=out)
    _spec(station, clip_id, 2)  # a newer specification than the copy: the copy is out of date
    with pytest.raises(ConflictError, match=f"clip {clip_id}'s redaction version 2 is not rendered"):
        build_disclosure_package(station, number, user="cust", out_dir=out)
    assert show_application(station, number)["state"] == "approved"
    assert not out.exists() or not list(out.iterdir())  # nothing left behind


def test_a_read_is_a_supervised_viewing_and_is_never_delivered(station: Station, tmp_path: Path) -> None:
    _people(station)
    clip_id, original = _clip(station, "read")
    redacted = _render(station, clip_id, _spec(station, clip_id, 1), original)
    number = _apply(station, "read", [clip_id])["id"]
    with pytest.raises(DisclosureRefusedError, match="received"):
        record_viewing(station, number, user="cust")
    decide_application(station, number, user="appr", approve=True)
    with pytest.raises(DisclosureRefusedError, match="not to copy"):
        build_disclosure_package(station, number, user="cust", out_dir=tmp_path)
    with pytest.raises(DisclosureRefusedError, match=r"may not disclosure\.deliver"):
        record_viewing(station, number, user="sup")
    shown, copies = record_viewing(station, number, user="cust2")
    assert shown["state"] == "viewed"
    assert [c.sha256 for c in copies] == [redacted] and redacted != original
    record_viewing(station, number, user="cust")  # viewed again: logged again
    with station.connect() as connection:
        rows = connection.execute(select(disclosure_handovers).order_by(disclosure_handovers.c.id)).all()
        viewed = connection.execute(
            select(audit_events.c.actor, audit_events.c.details).where(
                audit_events.c.action == "disclosure.viewed"
            )
        ).all()
    assert [(r.kind, r.by_user) for r in rows] == [("viewing", "cust2"), ("viewing", "cust")]
    details = viewed[0].details if isinstance(viewed[0].details, dict) else json.loads(viewed[0].details)
    assert viewed[0].actor == "cust2" and details["supervised_by"] == "cust2"
    assert details["copies"][0]["sha256"] == redacted


def test_an_unanswered_application_is_overdue_after_the_configured_days(station: Station) -> None:
    _people(station)
    clip_id, _ = _clip(station, "late")
    now = station.clock()
    late = _apply(station, "copy", [clip_id], received_at=now - timedelta(days=21))["id"]
    fresh = _apply(station, "read", [clip_id], received_at=now - timedelta(days=3))["id"]
    answered = _apply(station, "copy", [clip_id], received_at=now - timedelta(days=40))["id"]
    decide_application(station, answered, user="appr", approve=False, reason="not a party to the case")
    assert [a["id"] for a in list_applications(station, only_overdue=True)] == [late]
    assert {a["id"]: a["overdue"] for a in list_applications(station)} == {
        late: True,
        fresh: False,
        answered: False,
    }
    status = station_status(station)["disclosures_overdue"]
    assert status["count"] == 1 and status["applications"][0].startswith(f"{late} (")
    assert status["answer_days"] == 20
    decided = show_application(station, answered)
    assert decided["state"] == "refused" and decided["decision_reason"] == "not a party to the case"
    # newer applications still within their days never push the overdue one (the oldest) off a list
    newer = [_apply(station, "read", [clip_id], received_at=now)["id"] for _ in range(3)]
    assert [a["id"] for a in list_applications(station, only_overdue=True, limit=2)] == [late]
    assert [a["id"] for a in list_applications(station, limit=2)] == newer[:0:-1]


@pytest.mark.usefixtures("ffmpeg_available")
def test_a_disclosure_package_of_a_rendered_redaction_verifies_offline_and_holds_no_original(
    station: Station, station_env: dict[str, str], tmp_path: Path
) -> None:
    from tests.integration.redaction_media import make_face_clip
    from workers import redaction

    volume = tmp_path / "volume"
    volume.mkdir()
    make_face_clip(volume / "face.mp4", seconds=1.0)
    imported = run_cli(
        ["import", str(volume), "--device", "DSJ7", "--officer", "310777", "--json"], station_env
    )
    assert imported.code == 0, imported.stderr
    processed = run_cli(["process", "--json"], station_env, timeout=600)
    assert processed.code == 0, processed.stderr
    with station.connect() as connection:
        clip_id, original = connection.execute(select(clips.c.id, clips.c.sha256)).one()
    redaction.detect(station, clip_id, actor="redactor")
    redaction.render(station, clip_id, actor="redactor")
    for name, role in (("cust", "custodian"), ("appr", "approver")):
        create_user(station, username=name, password=PASSWORD, role=role, actor="test")

    def cli(*args: str, user: str) -> dict:
        done = run_cli(
            ["disclosure", *args, "--user", user, "--password-stdin", "--json"],
            station_env,
            input=PASSWORD + "\n",
            timeout=300,
        )
        assert done.code == 0, done.stderr
        return dict(json.loads(done.stdout))

    made = cli(
        "apply",
        "--party",
        "李四",
        "--id-type",
        "passport",
        "--id-number",
        "E12345678",
        "--kind",
        "copy",
        "--purpose",
        "诉讼",
        "--clip",
        str(clip_id),
        user="cust",
    )
    own = run_cli(
        ["disclosure", "decide", str(made["id"]), "--approve", "--user", "cust", "--password-stdin"],
        station_env,
        input=PASSWORD + "\n",
    )
    assert own.code == 2 and "may not disclosure.decide" in own.stderr
    cli("decide", str(made["id"]), "--approve", user="appr")
    delivered = cli("deliver", str(made["id"]), "--out", str(tmp_path / "out"), user="cust")

    for package in (delivered["directory"], delivered["zip"]):
        verified = run_cli(["verify", package], station_env, timeout=300)
        assert verified.code == 0, verified.stdout + verified.stderr
        assert "VALID DISCLOSURE package" in verified.stdout
    as_json = json.loads(
        run_cli(["verify", delivered["directory"], "--json"], station_env, timeout=300).stdout
    )
    assert as_json["valid"] and as_json["disclosure"]
    # no file of the package is byte-identical to an original of the station
    with station.connect() as connection:
        originals = set(connection.scalars(select(clips.c.sha256)))
    files = [p for p in Path(delivered["directory"]).rglob("*") if p.is_file()]
    assert files and not {_sha256(p) for p in files} & originals
    assert original in originals
    shown = cli("show", str(made["id"]), user="appr")
    assert shown["state"] == "delivered"


def _signed_in(station: Station, username: str) -> tuple[TestClient, str]:
    client = TestClient(create_app(station))
    token = client.get("/api/csrf").json()["csrf_token"]
    response = client.post(
        "/api/login", json={"username": username, "password": PASSWORD}, headers={"X-CSRF-Token": token}
    )
    assert response.status_code == 200, response.text
    return client, str(response.json()["csrf_token"])


def test_the_web_records_decides_shows_a_supervised_viewing_and_delivers_only_redacted_copies(
    station: Station,
) -> None:
    for name, role in (("cust", "custodian"), ("appr", "approver"), ("inv", "investigator")):
        create_user(station, username=name, password=PASSWORD, role=role, actor="test")
    clip_id, original = _clip(station, "web")
    redacted = _render(station, clip_id, _spec(station, clip_id, 1), original)
    late = _apply(station, "copy", [clip_id], received_at=station.clock() - timedelta(days=30))["id"]
    cust, cust_csrf = _signed_in(station, "cust")
    appr, appr_csrf = _signed_in(station, "appr")
    inv, inv_csrf = _signed_in(station, "inv")

    recorded = cust.post(
        "/disclosures",
        data={
            "csrf_token": cust_csrf,
            "party_name": "王五",
            "id_document_type": "resident_id",
            "id_document_number": "110101199001010011",
            "kind": "read",
            "purpose": "了解处罚依据",
            "clip_id": str(clip_id),
        },
        follow_redirects=False,
    )
    assert recorded.status_code == 303, recorded.text
    number = int(recorded.headers["location"].rsplit("/", 1)[1])
    assert inv.get("/disclosures").status_code == 403  # an investigator has no part in it
    assert inv.post(f"/disclosures/{number}/approve", data={"csrf_token": inv_csrf}).status_code == 403
    assert cust.post(f"/disclosures/{number}/approve", data={"csrf_token": cust_csrf}).status_code == 403
    listed = appr.get("/disclosures")
    assert listed.status_code == 200 and "王五" in listed.text
    assert f'data-application-id="{late}"' in listed.text and "overdue" in listed.text
    dashboard = appr.get("/dashboard")
    assert 'id="disclosures-overdue-count">1<' in dashboard.text
    approved = appr.post(
        f"/disclosures/{number}/approve",
        data={"csrf_token": appr_csrf, "reason": "ok"},
        follow_redirects=False,
    )
    assert approved.status_code == 303
    assert appr.post(f"/disclosures/{number}/view", data={"csrf_token": appr_csrf}).status_code == 403

    # the supervised viewing: the page plays the redacted copy, the viewing is on record
    page = cust.post(f"/disclosures/{number}/view", data={"csrf_token": cust_csrf})
    assert page.status_code == 200 and f'src="/disclosures/{number}/copies/1"' in page.text
    played = cust.get(f"/disclosures/{number}/copies/1")
    assert played.status_code == 200
    assert hashlib.sha256(played.content).hexdigest() == redacted != original
    assert cust.get(f"/disclosures/{number}/copies/2").status_code == 404
    assert inv.get(f"/disclosures/{number}/copies/1").status_code == 403
    with station.connect() as connection:
        viewed = connection.execute(
            select(audit_events.c.actor, audit_events.c.source).where(
                audit_events.c.action == "disclosure.viewed"
            )
        ).one()
    assert viewed.actor == "cust" and viewed.source == "testclient"
    assert cust.post(f"/disclosures/{number}/deliver", data={"csrf_token": cust_csrf}).status_code == 409

    # a copy: delivered as a package, downloaded by the custodian, no original in it
    decide_application(station, late, user="appr", approve=True)
    delivered = cust.post(
        f"/disclosures/{late}/deliver", data={"csrf_token": cust_csrf}, follow_redirects=False
    )
    assert delivered.status_code == 303, delivered.text
    zipped = cust.get(f"/disclosures/{late}/package")
    assert zipped.status_code == 200
    with zipfile.ZipFile(io.BytesIO(zipped.content)) as archive:
        inside = {hashlib.sha256(archive.read(name)).hexdigest() for name in archive.namelist()}
        assert not any("/originals/" in name for name in archive.namelist())
    assert redacted in inside and original not in inside
    assert appr.get(f"/disclosures/{late}/package").status_code == 403
