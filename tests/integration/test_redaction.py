"""Redaction end to end (issue 20 items 2 and 3, R15, R3): a clip with a real face (scikit-image's
astronaut moved across the frame) is imported and processed; faces are detected on its proxy into a
specification; the rendered copy hides the face, leaves the rest of the frame as it was, silences the
muted range, carries a C2PA manifest naming the original, re-renders to the same bytes, and a changed
specification is a new version whose copy is kept beside the first."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
from sqlalchemy import select

from evidence_store.bootstrap import Station
from evidence_store.db.tables import audit_events, clips, redaction_renders, redaction_specs
from evidence_store.domain.redaction import spec_to_dict
from evidence_store.errors import InputError
from evidence_store.export.c2pa_signing import check_credential
from evidence_store.redactions import clip_media, load_spec, save_spec, spec_versions
from tests.conftest import CliResult, run_cli
from tests.factories import add_user
from tests.integration.redaction_media import (
    FaceClip,
    box_and_rest,
    decoded_frames,
    make_face_clip,
    rotated_copy,
)
from workers import redaction

pytestmark = pytest.mark.usefixtures("ffmpeg_available")

MUTED = (1.0, 2.0)


@pytest.fixture
def face_clip(tmp_path: Path, station_env: dict[str, str], station: Station) -> FaceClip:
    # `station` initialises the data directory and database the commands below use
    volume = tmp_path / "volume"
    volume.mkdir()
    made = make_face_clip(volume / "face.mp4")
    imported = run_cli(
        ["import", str(volume), "--device", "DSJ7", "--officer", "310777", "--json"], station_env
    )
    assert imported.code == 0, imported.stderr
    processed = run_cli(["process", "--json"], station_env, timeout=600)
    assert processed.code == 0, processed.stderr
    return made


def _clip_id(station: Station) -> int:
    with station.connect() as connection:
        return int(connection.execute(select(clips.c.id)).scalar_one())


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24").astype(np.int16) for f in container.decode(video=0)]


def _audio(path: Path) -> tuple[np.ndarray, int]:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        rate = stream.rate
        samples = [f.to_ndarray()[0] for f in container.decode(stream)]  # first channel
    return np.concatenate(samples).astype(np.float64), rate


def _rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples**2)))


def test_faces_are_found_hidden_and_the_rest_kept(
    station: Station, face_clip: FaceClip, tmp_path: Path
) -> None:
    made = face_clip
    clip_id = _clip_id(station)

    detected = redaction.detect(station, clip_id, actor="redactor")
    spec = detected.spec
    assert detected.version == 1 and (spec.width, spec.height) == (made.width, made.height)
    # detection finds the face in >= 95 % of the frames: a track box overlapping the true face
    found = 0
    for index, (x, y, w, h) in enumerate(made.faces):
        t = index / made.fps
        for track in spec.tracks:
            near = [b for b in track.boxes if abs(b.t - t) < 0.5 / made.fps]
            if any(b.x < x + w and x < b.x + b.w and b.y < y + h and y < b.y + b.h for b in near):
                found += 1
                break
    assert found / made.frames >= 0.95, f"face found in {found} of {made.frames} frames"
    assert len(spec.tracks) == 1, "one face moving smoothly is one track"

    raw = spec_to_dict(spec)
    raw["audio"] = [{"start_s": MUTED[0], "end_s": MUTED[1], "effect": "mute"}]
    with_mute = save_spec(station, clip_id, raw, actor="redactor")
    assert with_mute.version == 2 and with_mute.created
    assert save_spec(station, clip_id, raw, actor="redactor").version == 2  # same spec: no new version

    first = redaction.render(station, clip_id, actor="redactor")
    assert first.version == 2
    copy = tmp_path / "redacted.mp4"
    with station.blobs.open(first.sha256) as source:
        copy.write_bytes(source.read())
    with station.connect() as connection:
        original_sha = connection.execute(select(clips.c.sha256)).scalar_one()
    original = station.blobs.path_for(original_sha)  # type: ignore[attr-defined]

    before, after = _frames(original), _frames(copy)
    assert len(before) == len(after) == made.frames
    assert after[0].shape == (made.height, made.width, 3)  # the original's resolution
    face_diff, rest_diff = [], []
    for index, (x, y, w, h) in enumerate(made.faces):
        face_diff.append(
            float(np.abs(before[index][y : y + h, x : x + w] - after[index][y : y + h, x : x + w]).mean())
        )
        rest = np.ones((made.height, made.width), dtype=bool)
        # outside the face and a margin around it (the hidden area is the track window's union, grown)
        rest[max(0, y - 60) : y + h + 60, max(0, x - 60) : x + w + 60] = False
        rest_diff.append(float(np.abs(before[index] - after[index])[rest].mean()))
    print(
        f"found {found}/{made.frames}; face MAD min {min(face_diff):.1f}; rest MAD max {max(rest_diff):.2f}"
    )
    assert min(face_diff) > 20, f"the face region must differ strongly: {min(face_diff):.1f}"
    assert max(rest_diff) < 3, f"the rest of the frame must stay as it was: {max(rest_diff):.2f}"

    samples, rate = _audio(copy)
    muted = samples[int((MUTED[0] + 0.05) * rate) : int((MUTED[1] - 0.05) * rate)]
    heard = samples[int(0.2 * rate) : int(0.8 * rate)]
    assert _rms(muted) < 1e-4 and _rms(heard) > 0.05

    # C2PA: the original as ingredient, the redaction's lineage
    check = check_credential(copy, _trust_anchor(station))
    assert check.ok, check.problems
    assert check.lineage["original_sha256"] == original_sha
    assert check.lineage["spec_sha256"] == with_mute.spec_sha256 and check.lineage["spec_version"] == 2

    # the same spec renders to the same bytes (before signing: the C2PA claim has its own identifier)
    again = redaction.render(station, clip_id, actor="redactor")
    assert again.rendered_sha256 == first.rendered_sha256

    # a changed spec is a new version; both copies are kept
    raw["audio"] = [{"start_s": 0.5, "end_s": 2.5, "effect": "bleep"}]
    changed = save_spec(station, clip_id, raw, actor="redactor")
    assert changed.version == 3
    third = redaction.render(station, clip_id, actor="redactor")
    assert third.version == 3 and third.rendered_sha256 != first.rendered_sha256
    assert station.blobs.exists(first.sha256) and station.blobs.exists(third.sha256)
    versions = spec_versions(station, clip_id)
    assert [v["version"] for v in versions] == [1, 2, 3]
    assert [len(v["renders"]) for v in versions] == [0, 2, 1]
    assert load_spec(station, clip_id, 2).spec_sha256 == with_mute.spec_sha256  # never changed
    bleeped, _ = _audio(_blob_copy(station, third.sha256, tmp_path / "bleeped.mp4"))
    assert _rms(bleeped[int(1.0 * rate) : int(2.0 * rate)]) > 0.1  # the tone, not the voice

    # the original is never touched (R3) and the lineage is in the audit log
    assert _sha256_of(original) == original_sha
    with station.connect() as connection:
        events = connection.execute(
            select(audit_events.c.action, audit_events.c.details).where(
                audit_events.c.action.like("redaction.%")
            )
        ).all()
        assert (
            connection.execute(select(redaction_renders.c.derived_from_sha256)).scalars().all()
            == [original_sha] * 3
        )
        assert connection.execute(select(redaction_specs.c.version)).scalars().all() == [1, 2, 3]
    rendered = [_details(d) for a, d in events if a == "redaction.rendered"]
    assert len(rendered) == 3
    assert rendered[0]["original_sha256"] == original_sha
    assert rendered[0]["spec_sha256"] == with_mute.spec_sha256 and rendered[0]["spec_version"] == 2
    assert rendered[0]["tool_version"].startswith("ffmpeg version")
    assert rendered[0]["detector"].startswith("opencv-python-headless 4.")
    assert any(a == "redaction.faces_detected" for a, _ in events)
    # the integrity scrub knows the redacted copies: none is an orphan blob, and a lost one would be missing
    from evidence_store.scrub import scrub

    scrubbed = scrub(station, actor="test")
    assert scrubbed.ok and scrubbed.orphans == []


def test_a_spec_for_another_frame_size_is_refused(station: Station, face_clip: FaceClip) -> None:
    clip_id = _clip_id(station)
    with pytest.raises(InputError, match=r"1920x1080 frame; clip \d+'s original is 320x240"):
        save_spec(station, clip_id, {"width": 1920, "height": 1080, "duration_s": 3.0}, actor="redactor")
    with pytest.raises(InputError, match="not inside the 320x240 frame"):
        save_spec(
            station,
            clip_id,
            {
                "width": 320,
                "height": 240,
                "duration_s": 3.0,
                "boxes": [{"keyframes": [{"t": 0, "x": 300, "y": 0, "w": 40, "h": 40}]}],
            },
            actor="redactor",
        )


def _sha256_of(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _details(raw: object) -> dict:
    return raw if isinstance(raw, dict) else json.loads(str(raw))


def _blob_copy(station: Station, sha256: str, target: Path) -> Path:
    with station.blobs.open(sha256) as source:
        target.write_bytes(source.read())
    return target


def _trust_anchor(station: Station) -> bytes:
    from evidence_store.export.c2pa_signing import CA_CERT_NAME

    return (station.settings.keys_dir / CA_CERT_NAME).read_bytes()


PASSWORD = "correct horse battery staple"


def _editor_cli(args: list[str], env: dict[str, str], user: str = "clerk", timeout: float = 120) -> CliResult:
    """`evidence redact ...` as the named station user, who proves it with the password on stdin."""
    return run_cli([*args, "--user", user, "--password-stdin"], env, timeout=timeout, input=PASSWORD + "\n")


def test_the_cli_detects_stores_renders_and_refuses(
    station: Station, station_env: dict[str, str], face_clip: FaceClip, tmp_path: Path
) -> None:
    from evidence_store.credentials import hash_password

    secret = hash_password(PASSWORD)
    add_user(station, "clerk", "custodian", password_hash=secret)
    add_user(station, "boss", "approver", password_hash=secret)
    add_user(station, "cop", "officer", password_hash=secret)
    # only a custodian or an investigator edits a redaction (R11, R15): the others are refused
    for role_user in ("boss", "cop"):
        for args in (["redact", "detect", "1"], ["redact", "render", "1"]):
            refused_role = _editor_cli(args, station_env, user=role_user)
            assert refused_role.code == 2 and "does not edit redactions" in refused_role.stderr, refused_role
    nobody = run_cli(["redact", "detect", "1"], station_env)
    assert nobody.code == 2 and "--user" in nobody.stderr
    unsigned = run_cli(["redact", "spec", "1", "--file", str(tmp_path / "x.json")], station_env)
    assert unsigned.code == 2 and "needs --user" in unsigned.stderr
    hidden = _editor_cli(["redact", "detect", "99"], station_env)
    assert hidden.code == 3 and "no clip 99" in hidden.stderr

    detected = _editor_cli(["redact", "detect", "1", "--json"], station_env, timeout=300)
    assert detected.code == 0, detected.stderr
    assert json.loads(detected.stdout)["version"] == 1 and json.loads(detected.stdout)["tracks"]
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps({"width": 320, "height": 240, "duration_s": 3, "frames": [{"start_s": 2, "end_s": 1}]})
    )
    refused = _editor_cli(["redact", "spec", "1", "--file", str(bad)], station_env)
    assert refused.code == 2 and "must come after its start" in refused.stderr
    good = tmp_path / "good.json"
    good.write_text(
        json.dumps(
            {
                "width": 320,
                "height": 240,
                "duration_s": 3,
                "frames": [{"start_s": 1, "end_s": 2, "effect": "black"}],
            }
        )
    )
    stored = _editor_cli(["redact", "spec", "1", "--file", str(good)], station_env)
    assert stored.code == 0, stored.stderr
    assert json.loads(stored.stdout)["version"] == 2
    rendered = _editor_cli(["redact", "render", "1", "--version", "1", "--json"], station_env, timeout=300)
    assert rendered.code == 0, rendered.stderr
    assert json.loads(rendered.stdout)["version"] == 1
    shown = json.loads(run_cli(["redact", "show", "1", "--json"], station_env).stdout)
    assert [len(v["renders"]) for v in shown["versions"]] == [1, 0]
    missing = _editor_cli(["redact", "render", "1", "--version", "9"], station_env)
    assert missing.code == 3 and "no redaction version 9" in missing.stderr
    outside = _editor_cli(["redact", "render", "1", "--start", "2", "--end", "9"], station_env)
    assert outside.code == 2 and "must lie inside the clip" in outside.stderr
    with station.connect() as connection:
        actors = set(
            connection.scalars(select(audit_events.c.actor).where(audit_events.c.action.like("redaction.%")))
        )
    assert actors == {"clerk"}


BOX = (40, 60, 80, 60)  # x, y, w, h in the original's (displayed) pixels


def _black_box_spec(width: int, height: int, duration_s: float, box: tuple[int, int, int, int]) -> dict:
    x, y, w, h = box
    return {
        "width": width,
        "height": height,
        "duration_s": duration_s,
        "box_effect": "black",
        "boxes": [
            {
                "id": 1,
                "label": "screen",
                "keyframes": [
                    {"t": 0.0, "x": x, "y": y, "w": w, "h": h},
                    {"t": duration_s, "x": x, "y": y, "w": w, "h": h},
                ],
            }
        ],
    }


def test_a_segment_of_the_clip_is_rendered_alone_still_redacted(
    station: Station, face_clip: FaceClip, tmp_path: Path
) -> None:
    clip_id = _clip_id(station)
    made = face_clip
    stored = save_spec(station, clip_id, _black_box_spec(made.width, made.height, 3.0, BOX), actor="redactor")
    done = redaction.render(station, clip_id, actor="redactor", start_s=1.0, end_s=2.0)
    assert (done.start_s, done.end_s) == (1.0, 2.0)
    copy = _blob_copy(station, done.sha256, tmp_path / "segment.mp4")
    with station.connect() as connection:
        original_sha = connection.execute(select(clips.c.sha256)).scalar_one()
    before = decoded_frames(station.blobs.path_for(original_sha))  # type: ignore[attr-defined]
    after = decoded_frames(copy)
    # one second of a 25 fps clip: frames 25..49 of the original, and only those
    assert len(after) == made.fps, f"{len(after)} frames in a 1 s segment"
    with av.open(str(copy)) as container:
        assert container.duration is not None and abs(container.duration / 1e6 - 1.0) < 0.1
    measures = [box_and_rest(before[made.fps + i], frame, BOX) for i, frame in enumerate(after)]
    assert min(m[0] for m in measures) > 40, "the box stays hidden inside the segment"
    assert max(m[1] for m in measures) < 3, "the segment is the original's frames at the same times"
    samples, rate = _audio(copy)
    assert abs(len(samples) / rate - 1.0) < 0.1
    # stored with the copy and in its lineage (the row, the audit event, the C2PA manifest)
    with station.connect() as connection:
        row = connection.execute(
            select(redaction_renders).where(redaction_renders.c.id == done.render_id)
        ).one()
        details = _details(
            connection.execute(
                select(audit_events.c.details).where(audit_events.c.action == "redaction.rendered")
            ).scalar_one()
        )
    assert (row.start_s, row.end_s) == (1.0, 2.0)
    assert details["segment"] == {"start_s": 1.0, "end_s": 2.0}
    assert details["spec_sha256"] == stored.spec_sha256 and details["original_sha256"] == original_sha
    check = check_credential(copy, _trust_anchor(station))
    assert check.ok and check.lineage["segment"] == {"start_s": 1.0, "end_s": 2.0}
    versions = spec_versions(station, clip_id)
    assert versions[-1]["renders"][0]["start_s"] == 1.0 and versions[-1]["renders"][0]["end_s"] == 2.0
    with pytest.raises(InputError, match=r"end .* must come after its start"):
        redaction.render(station, clip_id, actor="redactor", start_s=2.0, end_s=1.0)


@pytest.fixture
def rotated_clip(tmp_path: Path, station_env: dict[str, str], station: Station) -> FaceClip:
    """The face clip as a camera mounted sideways writes it: 320x240 pixels, the container asking for
    a rotation of 90 degrees (a player shows 240x320)."""
    volume = tmp_path / "volume"
    volume.mkdir()
    made = make_face_clip(tmp_path / "upright.mp4", seconds=2.0)
    rotated_copy(made.path, volume / "sideways.mp4", 90)
    imported = run_cli(
        ["import", str(volume), "--device", "DSJ7", "--officer", "310777", "--json"], station_env
    )
    assert imported.code == 0, imported.stderr
    processed = run_cli(["process", "--json"], station_env, timeout=600)
    assert processed.code == 0, processed.stderr
    return made


def test_a_rotated_clip_hides_the_box_where_it_is_seen(
    station: Station, rotated_clip: FaceClip, tmp_path: Path
) -> None:
    clip_id = _clip_id(station)
    media = clip_media(station, clip_id)
    assert (media.width, media.height) == (240, 320), "the displayed frame: width and height swapped"
    box = (20, 200, 100, 80)  # in displayed pixels: low in the portrait frame, outside a landscape one
    save_spec(station, clip_id, _black_box_spec(240, 320, media.duration_s, box), actor="redactor")
    done = redaction.render(station, clip_id, actor="redactor")
    copy = _blob_copy(station, done.sha256, tmp_path / "rotated-redacted.mp4")
    original = station.blobs.path_for(media.sha256)  # type: ignore[attr-defined]
    before = decoded_frames(original, displayed=True)
    after = decoded_frames(copy, displayed=True)
    assert before[0].shape == after[0].shape == (320, 240, 3)
    assert len(after) == len(before)
    measures = [box_and_rest(b, a, box) for b, a in zip(before, after, strict=True)]
    hidden, kept = min(m[0] for m in measures), max(m[1] for m in measures)
    print(f"rotated: box MAD min {hidden:.1f}; rest MAD max {kept:.2f}")
    assert min(m[0] for m in measures) > 40, "the box region is hidden where a player shows it"
    assert max(m[1] for m in measures) < 3, "the rest of the displayed frame stays as it was"
    # and the proxy a browser editor draws on has the displayed orientation too
    proxy_sha = media.proxy_sha256
    assert proxy_sha is not None
    proxy_frame = decoded_frames(station.blobs.path_for(proxy_sha), displayed=True)[0]  # type: ignore[attr-defined]
    assert proxy_frame.shape[0] > proxy_frame.shape[1], "the proxy is portrait as displayed"


class _Resources:
    def __init__(self, station: Station) -> None:
        self._station = station

    def station(self) -> Station:
        return self._station

    def toolkit(self) -> object:
        raise AssertionError("redaction jobs use no processing toolkit")


def test_detection_and_rendering_run_as_worker_jobs(station: Station, face_clip: FaceClip) -> None:
    from dramatiq import Worker
    from dramatiq.brokers.stub import StubBroker

    from workers.actors import QUEUE, ProcessingActors

    broker = StubBroker()
    actors = ProcessingActors(broker, _Resources(station))  # type: ignore[arg-type]
    clip_id = _clip_id(station)
    actors.detect_faces.send(clip_id, "redactor")
    worker = Worker(broker, worker_threads=1)
    worker.start()
    try:
        broker.join(QUEUE, fail_fast=True)
        assert load_spec(station, clip_id).version == 1
        actors.render_redaction.send(clip_id, 1, "redactor")
        broker.join(QUEUE, fail_fast=True)
    finally:
        worker.stop()
    assert [len(v["renders"]) for v in spec_versions(station, clip_id)] == [1]


def test_retention_purges_a_clips_redacted_copies_with_it(
    station: Station, station_env: dict[str, str]
) -> None:
    import io
    import os
    from datetime import UTC, datetime

    from sqlalchemy import insert

    from retention.policy import add_months
    from tests.integration.retention_helpers import add_clip

    now = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
    old = add_clip(station, add_months(now, -7))
    young = add_clip(station, add_months(now, -1))
    copies = {}
    for clip_id in (old, young):
        blob = station.blobs.put(io.BytesIO(os.urandom(512)))
        with station.transaction() as session:
            connection = session.connection()
            spec_id = connection.execute(
                insert(redaction_specs).values(
                    clip_id=clip_id,
                    version=1,
                    spec="{}",
                    spec_sha256="0" * 64,
                    created_by="t",
                    created_at=now,
                )
            ).inserted_primary_key[0]
            connection.execute(
                insert(redaction_renders).values(
                    clip_id=clip_id,
                    spec_id=spec_id,
                    kind="redacted",
                    sha256=blob.sha256,
                    size=blob.size,
                    rendered_sha256="1" * 64,
                    mime_type="video/mp4",
                    derived_from_sha256="2" * 64,
                    tool="ffmpeg",
                    tool_version="test",
                    arguments=[],
                    created_by="t",
                    created_at=now,
                )
            )
        copies[clip_id] = blob.sha256
    env = {**station_env, "EVIDENCE_RETENTION_MAX_DELETE_SHARE": "1.0"}
    ran = run_cli(["retention", "run", "--now", now.isoformat(), "--json"], env)
    assert ran.code == 0, ran.stdout + ran.stderr
    assert json.loads(ran.stdout)["deleted"] == 1
    assert not station.blobs.exists(copies[old])
    assert station.blobs.exists(copies[young])
    with station.connect() as connection:
        assert set(connection.scalars(select(redaction_renders.c.clip_id))) == {young}
        assert set(connection.scalars(select(redaction_specs.c.clip_id))) == {old, young}


def test_the_web_edits_detects_renders_and_refuses_by_role(
    station: Station, face_clip: FaceClip, tmp_path: Path
) -> None:
    """The JSON API of the redaction page (issue 20 item 4): only `redaction.edit` (custodian,
    investigator) may read, save, detect and render; a spec the clip's facts refuse answers 409; a
    hidden or missing clip 404; the rendered copy is served to play and to download (audited)."""
    from evidence_store.credentials import hash_password
    from tests.integration.test_web_access import client_for, login

    clip_id = _clip_id(station)
    secret = hash_password(PASSWORD)
    for username, role in (
        ("clerk", "custodian"),
        ("inv", "investigator"),
        ("boss", "approver"),
        ("sup", "supervisor"),
        ("cop", "officer"),
        ("aud", "auditor"),
    ):
        add_user(station, username, role, password_hash=secret)
    base = f"/api/clips/{clip_id}/redaction"
    for username in ("boss", "sup", "cop", "aud"):
        client = client_for(station)
        csrf = login(client, username, PASSWORD)
        headers = {"X-CSRF-Token": csrf}
        assert client.get(base).status_code == 403, username
        assert client.get(f"/clips/{clip_id}/redaction").status_code == 403, username
        assert (
            client.post(
                base, json={"width": 320, "height": 240, "duration_s": 3}, headers=headers
            ).status_code
            == 403
        )
        assert client.post(f"{base}/detect", headers=headers).status_code == 403
        assert client.post(f"{base}/render", json={}, headers=headers).status_code == 403
    client = client_for(station)
    headers = {"X-CSRF-Token": login(client, "inv", PASSWORD)}
    state = client.get(base).json()
    assert state["media"]["width"] == 320 and state["version"] is None and state["spec"]["boxes"] == []
    page = client.get(f"/clips/{clip_id}/redaction")
    assert page.status_code == 200 and 'id="redact-overlay"' in page.text
    assert 'id="redaction-link"' in client.get(f"/clips/{clip_id}").text
    assert client.get("/api/clips/999/redaction").status_code == 404
    # a schema-valid body the clip refuses: 409 with the rule's words, nothing stored
    outside = {**_black_box_spec(320, 240, 3.0, (300, 0, 40, 40))}
    refused = client.post(base, json=outside, headers=headers)
    assert refused.status_code == 409 and "not inside the 320x240 frame" in refused.json()["error"]
    assert (
        client.post(base, json={"width": 1920, "height": 1080, "duration_s": 3}, headers=headers).status_code
        == 409
    )
    assert (
        client.post(
            base, json={"width": 320, "height": 240, "duration_s": 3, "x": 1}, headers=headers
        ).status_code
        == 422
    )
    saved = client.post(base, json=_black_box_spec(320, 240, 3.0, BOX), headers=headers)
    assert saved.status_code == 200 and saved.json()["version"] == 1 and saved.json()["created"]
    detected = client.post(f"{base}/detect", headers=headers)
    assert detected.status_code == 200 and detected.json()["version"] == 2 and detected.json()["tracks"] == 1
    kept = client.get(base).json()
    assert kept["version"] == 2 and len(kept["spec"]["boxes"]) == 1 and len(kept["spec"]["tracks"]) == 1
    bad_segment = client.post(f"{base}/render", json={"start_s": 2.5, "end_s": 9}, headers=headers)
    assert bad_segment.status_code == 409 and "inside the clip" in bad_segment.json()["error"]
    rendered = client.post(
        f"{base}/render", json={"version": 1, "start_s": 0.5, "end_s": 1.5}, headers=headers
    )
    assert rendered.status_code == 200, rendered.text
    done = rendered.json()
    assert (done["version"], done["start_s"], done["end_s"]) == (1, 0.5, 1.5)
    listed = client.get(base).json()["versions"]
    assert [len(v["renders"]) for v in listed] == [1, 0]
    page = client.get(f"/clips/{clip_id}/redaction?rendered={done['render_id']}")
    assert done["url"] in page.text
    played = client.get(done["url"])
    assert played.status_code == 200 and played.headers["content-type"] == "video/mp4"
    assert _sha256_bytes(played.content) == done["sha256"]
    downloaded = client.get(done["url"] + "?download=1")
    assert downloaded.status_code == 200 and "attachment" in downloaded.headers.get("content-disposition", "")
    assert client.get(f"/clips/{clip_id}/redaction/copies/999").status_code == 404
    with station.connect() as connection:
        actions = list(
            connection.execute(
                select(audit_events.c.action, audit_events.c.actor).where(
                    audit_events.c.action.like("redaction.%")
                )
            )
        )
    assert ("redaction.spec_saved", "web:inv") in actions and ("redaction.rendered", "web:inv") in actions
    assert ("redaction.copy_downloaded", "web:inv") in actions and (
        "redaction.copy_played",
        "web:inv",
    ) in actions


def _sha256_bytes(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


FAILING_FFMPEG = """#!/bin/sh
# the real ffmpeg for its version line; any render fails as on an original it cannot decode
case "$1" in -version) exec {real} "$@";; esac
echo "{marker}: Invalid data found when processing input" >&2
exit 1
"""


def test_a_render_that_ffmpeg_fails_is_refused_clearly_and_leaves_nothing(
    station: Station,
    station_env: dict[str, str],
    face_clip: FaceClip,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An original ffmpeg cannot render (R15, R3): the command exits with ffmpeg's own words and the
    web answers 409 with them; no copy is recorded or stored, no `redaction.rendered` is audited, the
    original is untouched and no working file is left behind."""
    import shutil

    from evidence_store.credentials import hash_password
    from tests.integration.test_web_access import client_for, login

    clip_id = _clip_id(station)
    add_user(station, "clerk", "custodian", password_hash=hash_password(PASSWORD))
    saved = save_spec(station, clip_id, _black_box_spec(320, 240, 3.0, BOX), actor="clerk")
    original = clip_media(station, clip_id).sha256
    tools = tmp_path / "tools"
    tools.mkdir()
    fake = tools / "ffmpeg"
    real = shutil.which("ffmpeg")
    fake.write_text(FAILING_FFMPEG.format(real=real, marker="broken-original"), encoding="utf-8")
    fake.chmod(0o755)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    failing = {**station_env, "PATH": f"{tools}:{station_env.get('PATH', '')}", "TMPDIR": str(scratch)}

    refused = _editor_cli(["redact", "render", str(clip_id)], failing)
    assert refused.code != 0 and "broken-original: Invalid data found" in refused.stderr, refused
    assert "Traceback" not in refused.stderr

    monkeypatch.setenv("PATH", failing["PATH"])
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr("tempfile.tempdir", None)  # read TMPDIR again
    client = client_for(station)
    headers = {"X-CSRF-Token": login(client, "clerk", PASSWORD)}
    answered = client.post(f"/api/clips/{clip_id}/redaction/render", json={}, headers=headers)
    assert answered.status_code == 409 and "Invalid data found" in answered.json()["error"], answered.text

    with station.connect() as connection:
        assert connection.execute(select(redaction_renders)).first() is None
        rendered = connection.execute(
            select(audit_events.c.action).where(audit_events.c.action == "redaction.rendered")
        ).first()
        assert rendered is None
    assert saved.version == 1 and load_spec(station, clip_id, None).version == 1
    assert _sha256_of(_blob_copy(station, original, tmp_path / "original.mp4")) == original
    assert list(scratch.iterdir()) == []  # no unsigned or signed copy left behind
