"""SHA256SUMS, canonical JSON, the note's model and HTML, the C2PA manifest definition (pure)."""

from __future__ import annotations

import hashlib
import json

import pytest

from evidence_store.export.c2pa_signing import LINEAGE_LABEL, derivative_manifest
from evidence_store.export.manifest import canonical_json, check_path, fingerprint_line, parse_sums, sums_text
from evidence_store.export.note import note_model, render_html, render_pdf, show_time

SHA = "ab" * 32


def test_sums_round_trip_in_gnu_format() -> None:
    hashes = {"originals/x.mp4": SHA, "manifest.json": "cd" * 32, "note.html": "ef" * 32}
    text = sums_text(hashes)
    assert text.splitlines()[0] == f"{'cd' * 32}  manifest.json"
    assert text.endswith("\n")
    assert parse_sums(text) == (hashes, [])


def test_sums_problems_are_named() -> None:
    found, problems = parse_sums(f"{SHA}  a\nnot a line\n{SHA}  a\n{SHA}  ../etc/passwd\n{SHA}  b")
    assert found == {"a": SHA, "b": SHA}
    assert problems == [
        "the last line does not end with a newline",
        "line 2 is not '<sha256>  <path>'",
        "line 3 lists a a second time",
        "line 4 names an unsafe path '../etc/passwd'",
    ]


@pytest.mark.parametrize("path", ["../x", "/abs", "a//b", "a/./b", "spa ce", "中文", "a\nb", ""])
def test_unsafe_paths(path: str) -> None:
    with pytest.raises(ValueError):
        check_path(path)


def test_canonical_json_is_sorted_compact_utf8() -> None:
    assert canonical_json({"b": 1, "a": ["案", 1.5, None]}) == '{"a":["案",1.5,null],"b":1}'.encode()
    assert fingerprint_line("0123456789abcdef") == "0123 4567 89ab cdef"


def test_times_for_people() -> None:
    assert show_time("2026-11-24T08:00:00+00:00", "Asia/Shanghai") == (
        "2026-11-24 16:00:00 (Asia/Shanghai) = 2026-11-24T08:00:00Z"
    )
    assert show_time("2026-11-24T16:00:05", "Asia/Shanghai") == "2026-11-24 16:00:05（设备时钟 device clock）"
    assert show_time(None, "UTC") == "—"


def body() -> dict:
    clip = {
        "clip_id": 7,
        "original_name": "DSJ_001.MP4",
        "producer": {"badge_number": "310777", "name": "张三", "unit": "一大队"},
        "device": {"serial": "DSJ7", "model": "X1", "vendor": "V"},
        "recording": {
            "device_start": "2026-11-24T16:00:05",
            "clock_offset_s": 5.0,
            "utc_start": "2026-11-24T08:00:00+00:00",
        },
        "handover": {
            "handed_over_by": {"badge_number": "310777", "name": "张三"},
            "started_at": "2026-11-24T09:00:00+00:00",
            "dock_station": {"name": "采集站1", "location": "二楼"},
        },
        "documents": [{"case_number": "C-1", "external_id": "D-1", "kind": "现场检查笔录", "title": "笔录"}],
    }
    return {
        "station": {
            "timezone": "Asia/Shanghai",
            "public_key_fingerprint": "ab" * 32,
            "public_key": "station-ed25519.pub.pem",
        },
        "producing_unit": "某支队",
        "export": {
            "id": 3,
            "purpose": "诉讼",
            "recipient": "法院",
            "requested_by": "inv1",
            "approved_by": "boss",
            "extracted_by": "inv1",
            "extracted_at": "2026-11-25T01:00:00+00:00",
        },
        "case": {"number": "C-1", "title": "某案"},
        "items": [
            {
                "clip": clip,
                "original": {"path": f"originals/{SHA}.mp4", "sha256": SHA, "size": 10},
                "segment": {"start_s": 1.0, "end_s": 2.0, "cut": "keyframe"},
                "derivatives": [
                    {
                        "kind": "segment",
                        "cut": "keyframe",
                        "path": "derivatives/s.mp4",
                        "sha256": "cd" * 32,
                        "derived_from_sha256": SHA,
                        "start_s": 1.0,
                        "end_s": 2.0,
                        "content_credential": {"signer": "station C2PA signer"},
                    },
                ],
                "timestamps": [
                    {
                        "kind": "rfc3161",
                        "authority": "http://tsa",
                        "gen_time": "2026-11-24T09:00:00+00:00",
                        "serial": "0x1",
                        "path": f"timestamps/{SHA}.tsr",
                    }
                ],
                "custody_events": [
                    {"seq": 1, "at": "2026-11-24T09:00:00.000000Z", "actor": "dock", "action": "clip.stored"}
                ],
            }
        ],
        "trust": {"tsa_ca": "trust/tsa-ca.pem", "c2pa_ca": "trust/c2pa-ca.pem"},
    }


def test_the_note_says_every_fact_in_both_languages() -> None:
    sections, header = note_model(body())
    assert header["export_id"] == "3"
    labels = {(row.zh, row.en) for section in sections for row in section.rows}
    for pair in [
        ("制作单位", "Producing unit"),
        ("提取人", "Extracted by"),
        ("提取时间", "Extraction time"),
        ("案号", "Case number"),
        ("批准人", "Approved by"),
        ("制作人（拍摄民警）", "Producer (recording officer)"),
        ("时钟偏差", "Device clock offset (device - station)"),
        ("移交人", "Handed over by"),
    ]:
        assert pair in labels
    page = render_html(body()).decode()
    for text in (
        "张三",
        "310777",
        "DSJ7",
        "采集站1",
        "某案",
        "C-1",
        "D-1",
        "+5.0 s",
        "关键帧剪辑",
        "keyframe cut",
        "RFC 3161",
        "clip.stored",
        "abab abab",
        SHA,
        "sha256sum --strict -c SHA256SUMS",
        "openssl pkeyutl",
    ):
        assert text in page, text
    assert "<script" not in page


def test_the_note_escapes_what_it_is_given() -> None:
    hostile = body()
    hostile["export"]["purpose"] = "<script>alert(1)</script>"
    page = render_html(hostile).decode()
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_the_c2pa_manifest_names_the_original_as_parent() -> None:
    manifest = derivative_manifest(
        title="s.mp4",
        original_title="DSJ_001.MP4",
        original_sha256=SHA,
        original_format="video/mp4",
        description="exact cut",
        lineage={"export_id": 3},
        software="ffmpeg 5.1",
    )
    ingredient = manifest["ingredients"][0]
    assert ingredient["relationship"] == "parentOf" and ingredient["instance_id"] == f"urn:sha256:{SHA}"
    actions = manifest["assertions"][0]["data"]["actions"]
    assert actions[0] == {"action": "c2pa.opened", "parameters": {"ingredientIds": [ingredient["label"]]}}
    lineage = next(a for a in manifest["assertions"] if a["label"] == LINEAGE_LABEL)["data"]
    assert lineage == {"original_sha256": SHA, "export_id": 3}
    assert json.loads(json.dumps(manifest)) == manifest
    assert (
        hashlib.sha256(canonical_json(manifest)).hexdigest()
        == hashlib.sha256(canonical_json(manifest)).hexdigest()
    )


def test_the_note_pdf_is_dated_when_it_was_extracted_and_stays_reproducible() -> None:
    # issue 19: the PDF said it was created on 2000-01-01 (reportlab's invariant date)
    first, again = render_pdf(body()), render_pdf(body())
    assert b"D:20000101" not in first
    assert b"(D:20261125010000+00'00')" in first  # the extraction time, UTC
    assert first == again  # the same facts still give the same bytes
    later = body()
    later["export"]["extracted_at"] = "2026-11-26T02:30:00+00:00"
    assert b"(D:20261126023000+00'00')" in render_pdf(later)


def test_the_note_lists_what_was_done_with_the_clip_not_refused_attempts() -> None:
    # issue 19: an officer's denied view attempt was listed among the custody events
    given = body()
    given["items"][0]["custody_events"].append(
        {"seq": 2, "at": "2026-11-24T10:00:00.000000Z", "actor": "web:officer7", "action": "access.denied"}
    )
    given["items"][0]["custody_events"].append(
        {"seq": 3, "at": "2026-11-24T11:00:00.000000Z", "actor": "web:custodian", "action": "clip.viewed"}
    )
    page = render_html(given).decode()
    assert "clip.stored" in page and "clip.viewed" in page
    assert "access.denied" not in page and "web:officer7" not in page


def test_the_note_names_station_users_by_their_names_with_the_login_the_records_use() -> None:
    # issue 19: the note named the requester and the approver by login ("qian")
    given = body()
    given["export"]["names"] = {"inv1": "钱调查", "boss": "孙审批"}
    page = render_html(given).decode()
    assert "钱调查 (inv1)" in page and "孙审批 (boss)" in page
    # a login without a name on record (a CLI operator) is shown as it is
    given["export"]["extracted_by"] = "cli:root"
    assert "cli:root" in render_html(given).decode()


def test_the_note_names_a_documents_kind_by_its_form_title() -> None:
    # issue 19: the note printed the document kind as a code (on_site_inspection)
    given = body()
    document = given["items"][0]["clip"]["documents"][0]
    document.update(kind="on_site_inspection", kind_name="现场检查笔录")
    assert "现场检查笔录 (on_site_inspection)" in render_html(given).decode()
    document.pop("kind_name")  # a kind the station's table does not know: the code as recorded
    assert "on_site_inspection" in render_html(given).decode()
