"""The redaction specification's pure rules (issue 20, R15): reading and checking, canonical JSON and
its hash, interpolation, scaling, track linking, and the ffmpeg filtergraph built from a spec."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evidence_store.domain.redaction import (
    FaceTrack,
    Keyframe,
    Segment,
    canonical_json,
    hidden_pieces,
    interpolate,
    iou,
    keyframe_pieces,
    link_tracks,
    scale_box,
    segment_of,
    spec_from_dict,
    spec_sha256,
    track_pieces,
)
from evidence_store.errors import InputError
from ingest.transcode.redact import RenderSettings, audio_filtergraph, redaction_arguments, video_filtergraph


def _raw(**extra: object) -> dict[str, object]:
    raw: dict[str, object] = {"width": 1920, "height": 1080, "duration_s": 10.0}
    raw.update(extra)
    return raw


def _box(*keyframes: tuple[float, float, float, float, float]) -> dict[str, object]:
    return {"keyframes": [dict(zip("txywh", k, strict=True)) for k in keyframes]}


def test_a_full_spec_reads_back_equal_through_json() -> None:
    raw = _raw(
        tracks=[{"id": 1, "accepted": False, "boxes": [{"t": 0, "x": 1, "y": 2, "w": 30, "h": 40}]}],
        boxes=[_box((0, 10, 10, 100, 100), (2, 200, 50, 120, 80))],
        frames=[{"start_s": 1, "end_s": 2, "effect": "black"}],
        audio=[{"start_s": 3, "end_s": 4, "effect": "bleep"}],
    )
    spec = spec_from_dict(raw)
    again = spec_from_dict(json.loads(canonical_json(spec)))
    assert again == spec
    assert spec_sha256(again) == spec_sha256(spec)
    assert spec.tracks[0].accepted is False


def test_canonical_json_ignores_key_order_and_int_or_float() -> None:
    a = spec_from_dict(_raw(boxes=[_box((0, 10, 10, 100, 100))]))
    b = spec_from_dict(
        {
            "duration_s": 10,
            "boxes": [{"keyframes": [{"h": 100.0, "w": 100, "y": 10, "x": 10, "t": 0}]}],
            "height": 1080,
            "width": 1920,
        }
    )
    assert canonical_json(a) == canonical_json(b)
    assert spec_sha256(a) == spec_sha256(b)
    c = spec_from_dict(_raw(boxes=[_box((0, 10, 10, 100, 101))]))
    assert spec_sha256(c) != spec_sha256(a)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (_raw(boxes=[_box((0, 1900, 10, 100, 100))]), "not inside the 1920x1080 frame"),
        (_raw(boxes=[_box((0, -1, 10, 100, 100))]), "not inside"),
        (_raw(boxes=[_box((0, 10, 10, 0, 100))]), "must be positive"),
        (_raw(boxes=[_box((2, 10, 10, 10, 10), (1, 10, 10, 10, 10))]), "increasing time order"),
        (_raw(boxes=[_box((11, 10, 10, 10, 10))]), "outside the clip"),
        (_raw(boxes=[{"keyframes": []}]), "no keyframes"),
        (_raw(boxes=[{"keyframes": [{"t": 0, "x": 1}]}]), "lacks y, w, h"),
        (_raw(frames=[{"start_s": 2, "end_s": 1}]), "must come after its start"),
        (_raw(audio=[{"start_s": 9, "end_s": 12}]), "outside the clip"),
        (_raw(audio=[{"start_s": 1, "end_s": 2, "effect": "whistle"}]), "mute, bleep"),
        (_raw(box_effect="pink"), "box_effect"),
        ({"width": 0, "height": 10, "duration_s": 1}, "positive integers"),
        (_raw(duration_s="long"), "must be a number"),
        ([], "JSON object"),
    ],
)
def test_invalid_specs_are_refused_with_a_clear_message(raw: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        spec_from_dict(raw)


def test_interpolation_is_linear_between_keyframes_and_absent_outside() -> None:
    frames = (Keyframe(1, 0, 0, 10, 10), Keyframe(3, 100, 50, 30, 10))
    assert interpolate(frames, 2) == Keyframe(2, 50, 25, 20, 10)
    assert interpolate(frames, 1) == Keyframe(1, 0, 0, 10, 10)
    assert interpolate(frames, 0.5) is None
    assert interpolate(frames, 3.5) is None
    assert interpolate((Keyframe(1, 5, 5, 5, 5),), 1) == Keyframe(1, 5, 5, 5, 5)


def test_boxes_found_on_the_proxy_scale_to_the_original() -> None:
    assert scale_box(Keyframe(0, 64, 36, 128, 72), (1280, 720), (1920, 1080)) == Keyframe(0, 96, 54, 192, 108)
    edge = scale_box(Keyframe(0, 300.003, 200.003, 19.997, 39.997), (320, 240), (1000, 700))
    assert edge.x + edge.w <= 1000 and edge.y + edge.h <= 700


def test_tracks_link_overlapping_boxes_and_split_apart_ones() -> None:
    left = [Keyframe(t / 25, 10 + t, 10, 50, 50) for t in range(10)]
    right = [Keyframe(t / 25, 300 - t, 100, 40, 40) for t in range(10)]
    detections = [(t / 25, [right[t], left[t]] if t != 4 else [left[t]]) for t in range(10)]
    tracks = link_tracks(detections)
    assert len(tracks) == 2
    assert [len(t.boxes) for t in tracks] == [10, 9]
    assert tracks[0].boxes[0].x == 10 and tracks[1].boxes[0].x == 300
    # a face gone longer than max_gap_s starts a new track
    late = link_tracks([(0.0, [left[0]]), (2.0, [left[1]])])
    assert len(late) == 2
    assert iou(left[0], right[0]) == 0.0


def test_a_drawn_box_covers_both_keyframes_sizes() -> None:
    (piece,) = keyframe_pieces((Keyframe(0, 100, 100, 20, 20), Keyframe(1, 200, 100, 40, 60)), 1920, 1080)
    assert (piece.w, piece.h) == (40, 60)
    assert (piece.x0, piece.y0) == (90, 80)  # centred on the first keyframe's centre
    assert (piece.x1, piece.y1) == (200, 100)


def test_track_pieces_cover_every_box_with_a_margin() -> None:
    boxes = tuple(Keyframe(t / 25, 100 + 4 * t, 100, 50, 50) for t in range(50))
    pieces = track_pieces(FaceTrack(1, boxes), 640, 480)
    assert pieces[0].start_s == 0 and pieces[-1].end_s == pytest.approx(49 / 25 + 0.04)
    for box in boxes:
        covering = [p for p in pieces if p.start_s <= box.t <= p.end_s]
        assert covering
        assert any(
            p.x0 <= box.x and p.y0 <= box.y and box.x + box.w <= p.x0 + p.w and box.y + box.h <= p.y0 + p.h
            for p in covering
        )
    rejected = spec_from_dict(
        _raw(tracks=[{"accepted": False, "boxes": [{"t": 0, "x": 1, "y": 1, "w": 9, "h": 9}]}])
    )
    assert hidden_pieces(rejected) == []


def test_the_filtergraph_hides_boxes_frames_and_audio() -> None:
    spec = spec_from_dict(
        _raw(
            boxes=[_box((1, 100, 100, 50, 50), (3, 300, 100, 50, 50))],
            frames=[{"start_s": 5, "end_s": 6, "effect": "black"}, {"start_s": 7, "end_s": 8}],
            audio=[
                {"start_s": 2, "end_s": 3, "effect": "mute"},
                {"start_s": 4, "end_s": 5, "effect": "bleep"},
            ],
        )
    )
    video = video_filtergraph(spec, RenderSettings())
    assert video.startswith("[0:v:0]split=2[base][c0];")
    assert "crop=w=50:h=50:x='floor(100+200*clip((t-1)/2,0,1))':y='100',boxblur=" in video
    assert "chroma_power=3:enable='between(t,1,3)'[h0]" in video  # the blur runs only over its span
    assert "overlay=x='floor(100+200*clip((t-1)/2,0,1))':y='100':enable='between(t,1,3)'[o0]" in video
    assert "drawbox=x=0:y=0:w=iw:h=ih:color=black:t=fill:enable='between(t,5,6)'" in video
    assert (
        "boxblur=luma_radius=54:luma_power=3:chroma_radius=27:chroma_power=3:enable='between(t,7,8)'" in video
    )
    assert video.endswith("[v]")
    audio = audio_filtergraph(spec, 48000)
    assert "volume=volume=0:enable='between(t,2,3)',volume=volume=0:enable='between(t,4,5)'" in audio
    assert "aevalsrc=exprs='0.25*sin(2*PI*1000*t)*gt(between(t,4,5),0)'" in audio
    assert audio.endswith("amix=inputs=2:duration=first:normalize=0[a]")


def test_a_track_is_one_chain_with_a_piecewise_position() -> None:
    boxes = [{"t": i / 25, "x": 100 + 4 * i, "y": 100, "w": 50, "h": 50} for i in range(50)]
    spec = spec_from_dict(_raw(tracks=[{"boxes": boxes}]))
    video = video_filtergraph(spec, RenderSettings())
    assert video.startswith("[0:v:0]split=2[base][c0];")  # 4 pieces, one crop and one overlay
    assert video.count("overlay=") == 1 and video.count("crop=") == 1
    assert "x='if(lt(t,0.52),85,if(lt(t,1.04),137,if(lt(t,1.56),189,237)))'" in video
    assert "enable='between(t,0,2)'" in video
    long_track = [{"t": i / 25, "x": 100, "y": 100, "w": 50, "h": 50} for i in range(25 * 9)]
    longer = video_filtergraph(spec_from_dict(_raw(tracks=[{"boxes": long_track}])), RenderSettings())
    assert longer.count("overlay=") == 1
    very_long = spec_from_dict(
        {
            "width": 640,
            "height": 480,
            "duration_s": 100.0,
            "tracks": [{"boxes": [{"t": i / 5, "x": 1, "y": 1, "w": 9, "h": 9} for i in range(450)]}],
        }
    )
    # 90 s at 5 boxes a second: 150 windows of 0.5 s, at most 60 to a chain (nesting stays bounded)
    assert len(track_pieces(very_long.tracks[0], 640, 480)) == 150
    assert video_filtergraph(very_long, RenderSettings()).count("overlay=") == 3


def test_the_argv_is_reproducible_and_never_scales() -> None:
    spec = spec_from_dict(_raw(boxes=[_box((0, 10, 10, 100, 100))]))
    argv = redaction_arguments(Path("in.mp4"), Path("out.mp4"), spec, has_audio=False)
    assert argv == redaction_arguments(Path("in.mp4"), Path("out.mp4"), spec, has_audio=False)
    assert argv[argv.index("-threads") + 1] == "1"
    assert "+bitexact" in argv and "-an" not in argv and "[a]" not in argv
    assert "scale" not in argv[argv.index("-filter_complex") + 1]
    assert argv[-1] == "out.mp4" and argv[argv.index("-i") + 1] == "in.mp4"
    plain = redaction_arguments(Path("in.mp4"), Path("out.mp4"), spec_from_dict(_raw()), has_audio=True)
    assert plain[plain.index("-filter_complex") + 1] == "[0:v:0]null[v];[0:a:0]anull[a]"


def test_a_segment_is_checked_against_the_clip() -> None:
    spec = spec_from_dict(_raw())
    assert segment_of(spec, None, None) is None
    assert segment_of(spec, 0, 10.0) is None  # the whole clip is no segment
    assert segment_of(spec, 2, None) == Segment(2.0, 10.0)
    assert segment_of(spec, None, 4.5) == Segment(0.0, 4.5)
    with pytest.raises(InputError, match="must lie inside the clip"):
        segment_of(spec, 2, 11)
    with pytest.raises(InputError, match="must come after its start"):
        segment_of(spec, 5, 5)


def test_a_segment_is_cut_after_the_redaction_in_the_originals_times() -> None:
    spec = spec_from_dict(_raw(boxes=[_box((0, 10, 10, 100, 100), (9, 10, 10, 100, 100))]))
    argv = redaction_arguments(
        Path("in.mp4"), Path("out.mp4"), spec, has_audio=True, segment=Segment(2.0, 5.5)
    )
    graph = argv[argv.index("-filter_complex") + 1]
    # the boxes' expressions keep the original's times; the trim comes after them
    assert "between(t,0,9)" in graph
    assert graph.index("[v]trim=start=2:end=5.5,setpts=PTS-STARTPTS[vs]") > graph.index("overlay")
    assert "[a]atrim=start=2:end=5.5,asetpts=PTS-STARTPTS[as]" in graph
    maps = [argv[i + 1] for i, a in enumerate(argv) if a == "-map"]
    assert maps == ["[vs]", "[as]"]
