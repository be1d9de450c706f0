"""The ffmpeg argv for segments and disclosure copies, built without running ffmpeg."""

from __future__ import annotations

from pathlib import Path

import pytest

from evidence_store.domain.segment import Segment
from evidence_store.errors import InputError
from ingest.transcode.segment import (
    disclosure_arguments,
    drawtext_filter,
    filter_escape,
    overlay_font_size,
    seconds_text,
    segment_arguments,
)

SRC = Path("/pkg/originals/abc.mp4")
OUT = Path("/pkg/.work/seg.mp4")


def test_an_exact_cut_seeks_the_input_and_re_encodes() -> None:
    args = segment_arguments(SRC, OUT, Segment(65, 90.5), "exact")
    assert args[:8] == ["-nostdin", "-y", "-loglevel", "error", "-ss", "65", "-i", str(SRC)]
    assert args[8:10] == ["-t", "25.5"]
    assert args[10:14] == ["-map", "0:v:0?", "-map", "0:a:0?"]
    assert "libx264" in args and "aac" in args and "copy" not in args
    assert args[args.index("-map_metadata") + 1] == "-1"
    assert args[-3:] == ["-f", "mp4", str(OUT)]


def test_a_keyframe_cut_copies_the_streams() -> None:
    args = segment_arguments(SRC, OUT, Segment(2, 4), "keyframe")
    assert args[args.index("-c") + 1] == "copy"
    assert "libx264" not in args and "aac" not in args
    assert args[args.index("-avoid_negative_ts") + 1] == "make_zero"


def test_from_the_start_or_to_the_end_needs_no_seek_or_duration() -> None:
    to_end = segment_arguments(SRC, OUT, Segment(10, None), "exact")
    assert "-t" not in to_end and to_end[to_end.index("-ss") + 1] == "10"
    whole = segment_arguments(SRC, OUT, Segment(0, 5), "exact")
    assert "-ss" not in whole and whole[whole.index("-t") + 1] == "5"


def test_audio_only_drops_video() -> None:
    args = segment_arguments(SRC, OUT, Segment(1, 2), "exact", has_video=False)
    assert "-vn" in args and "libx264" not in args and "0:v:0?" not in args


def test_bad_segments_and_modes_are_refused() -> None:
    with pytest.raises(InputError, match="end after it starts"):
        Segment(5, 5)
    with pytest.raises(InputError, match="before 0"):
        Segment(-1, 5)
    with pytest.raises(ValueError, match="unknown cut mode"):
        segment_arguments(SRC, OUT, Segment(0, 1), "smart")  # type: ignore[arg-type]


def test_seconds_are_plain_decimal() -> None:
    assert seconds_text(0) == "0"
    assert seconds_text(1.5) == "1.5"
    assert seconds_text(3600.0001) == "3600"
    assert seconds_text(1e-7) == "0"
    assert seconds_text(12345678.125) == "12345678.125"


def test_the_overlay_reads_its_text_from_a_file_in_a_cjk_font() -> None:
    font = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
    text = Path("/tmp/work dir/it's:here.txt")
    graph = drawtext_filter(font, text, font_size=20)
    assert graph.startswith("drawtext=fontfile=/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc:")
    assert r"textfile=/tmp/work dir/it\'s\:here.txt" in graph
    assert ":expansion=none:" in graph and ":fontsize=20:" in graph
    args = disclosure_arguments(SRC, OUT, Segment(1, 3), font_file=font, text_file=text, font_size=20)
    assert args[args.index("-vf") + 1] == graph
    assert "libx264" in args and args[args.index("-map") + 1] == "0:v:0"


def test_filter_escaping() -> None:
    assert filter_escape(r"a\b'c:d,e;f[g]h=i") == r"a\\b\'c\:d\,e\;f\[g\]h\=i"


def test_overlay_size_follows_the_picture() -> None:
    assert overlay_font_size(None) == 24
    assert overlay_font_size(120) == 10
    assert overlay_font_size(1080) == 45
