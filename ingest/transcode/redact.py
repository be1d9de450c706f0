"""Rendering a redaction specification into a copy of the original (R15, issue 20).

`redaction_arguments` is pure: it builds the ffmpeg argv (without the binary name) from the
specification, so tests check the filtergraph without running ffmpeg; `render_redaction` runs it. The
original is only read (R3): the copy is written elsewhere and becomes a derivative.

The filtergraph, at the original's resolution (no scaling anywhere):

* each hidden area (an accepted face track's window, a hand-drawn box between two keyframes) is a
  `crop` of a copy of the frame at the area's position (`t`-dependent expressions for a moving box),
  blurred (`boxblur`, power 3) or filled black, then laid back with `overlay` at the same position,
  `enable`d only over its span. Only the area changes; the rest of the frame is the decoded original
  re-encoded with the same settings.
* whole-frame ranges: `boxblur` or a full-frame `drawbox` with `enable='between(t,a,b)'`.
* audio: `volume=0` over each muted or bleeped range; a bleep adds a 1 kHz tone over its ranges
  (`aevalsrc`, mixed with `amix` without level normalisation so the rest keeps its level).
* a segment (a party's copy of one part of the clip): `trim`/`atrim` AFTER the redaction, so every
  expression above keeps the original's times, then `setpts`/`asetpts` to start the copy at 0.

The render runs ffmpeg with `RENDER_ENVIRONMENT`, glibc malloc tunables that keep freed memory on the
heap (no fresh `mmap` below 64 MiB, no trim below 256 MiB). With glibc's defaults, frame-sized buffers
that the split/crop/overlay graph allocates and frees on every frame went back to the kernel and were
faulted in again, zeroed, each time. Measured by hand (two rounds, a throw-away script, not bench/)
with `perf` on a 20 s 1080p render: the kernel's share (page clearing and faults) fell from 8 % of the
run to 2.7 %, and the render from 1.26x to 1.18x of a plain re-encode (which itself gains nothing from
the tunables). bench/bench_redaction.py measures the 60 s render: 1.25x with them, both plain
variants side by side.

Encoding is made reproducible: libx264 at fixed preset/crf with ONE thread (x264's multithreaded
encoder is not bit-exact between runs), `-fflags +bitexact`/`-flags +bitexact` (no version strings or
times in the container), no metadata copied. The same specification and the same ffmpeg then give the
same bytes, which the integration test checks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from evidence_store.domain.redaction import Piece, RedactionSpec, Segment, TimeRange, hidden_areas
from ingest.transcode.tools import (
    FFMPEG,
    ToolRun,
    check_output,
    ffmpeg_version,
    refuse_to_overwrite,
    remove_quietly,
    run_tool,
)

PRESET = "veryfast"
CRF = 18
ENCODER_THREADS = 1  # determinism: see the module docstring
AUDIO_BITRATE = "128k"
BLEEP_HZ = 1000
BLEEP_LEVEL = 0.25
MAX_PIECES_PER_CHAIN = 60  # 30 s of a face track: bounds the nesting of one position expression
# see the module docstring; harmless where the C library is not glibc (the variable is ignored)
RENDER_ENVIRONMENT = {
    "GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=67108864:glibc.malloc.trim_threshold=268435456"
}
MIN_AREA = 8  # pixels: boxblur needs a radius of at least 1 on the half-size chroma planes


@dataclass(frozen=True)
class RenderSettings:
    preset: str = PRESET
    crf: int = CRF
    threads: int = ENCODER_THREADS
    fps: float = 25.0  # the original's frame rate: a track's last box is held for one frame


def _num(value: float) -> str:
    """A number as ffmpeg expression text: short, exact enough, never exponent notation."""
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def _even_size(value: float, limit: int) -> int:
    # yuv420p crops and overlays work on even sizes and positions; round up so nothing is uncovered
    size = max(MIN_AREA, 2 * math.ceil(value / 2))
    return min(size, limit - limit % 2)


def _linear(piece: Piece, a: float, b: float) -> str:
    """A corner moving linearly from `a` at the piece's start to `b` at its end."""
    if abs(a - b) < 0.5 or piece.end_s <= piece.start_s:
        return _num(math.floor(a))
    share = f"clip((t-{_num(piece.start_s)})/{_num(piece.end_s - piece.start_s)},0,1)"
    return f"floor({_num(a)}+{_num(b - a)}*{share})"


def _piecewise(pieces: list[Piece], values: list[tuple[float, float]]) -> str:
    """One expression over all the pieces: each piece's position until its end, then the next's
    (`if(lt(t,end),this,rest)`), so an area is one crop and one overlay however long it is."""
    expression = _linear(pieces[-1], *values[-1])
    for piece, (a, b) in zip(reversed(pieces[:-1]), reversed(values[:-1]), strict=True):
        expression = f"if(lt(t,{_num(piece.end_s)}),{_linear(piece, a, b)},{expression})"
    return expression


def _between(start: float, end: float) -> str:
    return f"between(t,{_num(start)},{_num(end)})"


def _area_effect(effect: str, w: int, h: int, enable: str) -> str:
    # `enable` here too, not only on the overlay: a filter chain runs on every frame, and a disabled
    # boxblur passes the frame through untouched, so an area costs (almost) nothing outside its span
    if effect == "black":
        return f"drawbox=x=0:y=0:w=iw:h=ih:color=black:t=fill:enable='{enable}'"
    luma = max(1, min(w, h) // 5)
    chroma = max(1, min(w, h) // 10)
    return f"boxblur=luma_radius={luma}:luma_power=3:chroma_radius={chroma}:chroma_power=3:enable='{enable}'"


def _recentred(start: float, end: float, size: float, box: int, limit: int) -> tuple[float, float]:
    """A piece's corner positions for the chain's larger `box`, centred the same, inside the frame."""
    grow = (box - size) / 2
    return (min(max(start - grow, 0.0), limit - box), min(max(end - grow, 0.0), limit - box))


def _chunks(area: list[Piece]) -> list[list[Piece]]:
    return [area[i : i + MAX_PIECES_PER_CHAIN] for i in range(0, len(area), MAX_PIECES_PER_CHAIN)]


def video_filtergraph(spec: RedactionSpec, settings: RenderSettings) -> str:
    """The video part of the filtergraph: input `[0:v:0]`, output `[v]`.

    One crop/blur/overlay chain per hidden area (per `MAX_PIECES_PER_CHAIN` pieces of it), not per
    piece: ffmpeg's filtergraph scheduler scans its filters for each frame it moves, so a graph of
    hundreds of filters (a face track of 60 s is 120 pieces) cost 3.6x a plain re-encode. The chain's
    box has the largest size of its pieces, each piece's position re-centred on it."""
    chains: list[str] = []
    groups = [chunk for area in hidden_areas(spec, frame_s=1 / settings.fps) for chunk in _chunks(area)]
    current = "[0:v:0]"
    if groups:
        copies = "".join(f"[c{i}]" for i in range(len(groups)))
        chains.append(f"[0:v:0]split={len(groups) + 1}[base]{copies}")
        current = "[base]"
    for index, pieces in enumerate(groups):
        w = _even_size(max(p.w for p in pieces), spec.width)
        h = _even_size(max(p.h for p in pieces), spec.height)
        x = _piecewise(pieces, [_recentred(p.x0, p.x1, p.w, w, spec.width) for p in pieces])
        y = _piecewise(pieces, [_recentred(p.y0, p.y1, p.h, h, spec.height) for p in pieces])
        enable = _between(pieces[0].start_s, pieces[-1].end_s)
        effect = _area_effect(spec.box_effect, w, h, enable)
        chains.append(f"[c{index}]crop=w={w}:h={h}:x='{x}':y='{y}',{effect}[h{index}]")
        chains.append(f"{current}[h{index}]overlay=x='{x}':y='{y}':enable='{enable}'[o{index}]")
        current = f"[o{index}]"
    frame_filters = [_frame_filter(r, spec) for r in spec.frames]
    # a null filter when nothing is hidden keeps one shape of argv: the graph always ends in [v]
    chains.append(f"{current}{','.join(frame_filters) or 'null'}[v]")
    return ";".join(chains)


def _frame_filter(span: TimeRange, spec: RedactionSpec) -> str:
    enable = f"enable='{_between(span.start_s, span.end_s)}'"
    if span.effect == "black":
        return f"drawbox=x=0:y=0:w=iw:h=ih:color=black:t=fill:{enable}"
    luma = max(2, min(spec.width, spec.height) // 20)
    return (
        f"boxblur=luma_radius={luma}:luma_power=3:chroma_radius={max(1, luma // 2)}:chroma_power=3:{enable}"
    )


def audio_filtergraph(spec: RedactionSpec, sample_rate: int) -> str:
    """The audio part: input `[0:a:0]`, output `[a]`; every range silenced, bleeps a tone on top."""
    mutes = [f"volume=volume=0:enable='{_between(r.start_s, r.end_s)}'" for r in spec.audio]
    chain = f"[0:a:0]{','.join(mutes) or 'anull'}"
    bleeps = [r for r in spec.audio if r.effect == "bleep"]
    if not bleeps:
        return f"{chain}[a]"
    gate = "+".join(_between(r.start_s, r.end_s) for r in bleeps)
    tone = (
        f"aevalsrc=exprs='{_num(BLEEP_LEVEL)}*sin(2*PI*{BLEEP_HZ}*t)*gt({gate},0)'"
        f":sample_rate={sample_rate}:duration={_num(spec.duration_s)}[tone]"
    )
    return f"{chain}[quiet];{tone};[quiet][tone]amix=inputs=2:duration=first:normalize=0[a]"


def redaction_arguments(
    source: Path,
    target: Path,
    spec: RedactionSpec,
    *,
    has_audio: bool,
    sample_rate: int = 48000,
    settings: RenderSettings | None = None,
    segment: Segment | None = None,
) -> list[str]:
    """The ffmpeg argv (without the binary name) that renders `spec` from `source` into `target`: the
    whole clip, or only `segment` of it (in the original's times)."""
    settings = settings or RenderSettings()
    graph = video_filtergraph(spec, settings)
    video, audio = "[v]", "[a]"
    if segment is not None:
        span = f"start={_num(segment.start_s)}:end={_num(segment.end_s)}"
        graph += f";[v]trim={span},setpts=PTS-STARTPTS[vs]"
        video = "[vs]"
    if has_audio:
        graph += ";" + audio_filtergraph(spec, sample_rate)
        if segment is not None:
            graph += f";[a]atrim={span},asetpts=PTS-STARTPTS[as]"
            audio = "[as]"
    argv = [
        "-nostdin",
        "-loglevel",
        "error",
        "-y",
        "-i",
        str(source),
        "-filter_complex",
        graph,
        "-map",
        video,
    ]
    argv += ["-c:v", "libx264", "-preset", settings.preset, "-crf", str(settings.crf), "-pix_fmt", "yuv420p"]
    argv += ["-threads", str(settings.threads), "-flags:v", "+bitexact"]
    if has_audio:
        argv += ["-map", audio, "-c:a", "aac", "-b:a", AUDIO_BITRATE, "-flags:a", "+bitexact"]
    argv += ["-map_metadata", "-1", "-map_chapters", "-1", "-fflags", "+bitexact"]
    argv += ["-movflags", "+faststart", "-f", "mp4", str(target)]
    return argv


def render_redaction(
    source: Path,
    target: Path,
    spec: RedactionSpec,
    *,
    has_audio: bool,
    sample_rate: int = 48000,
    settings: RenderSettings | None = None,
    segment: Segment | None = None,
    timeout_s: float | None = None,
) -> ToolRun:
    """Render into `target` (never over `source`); `PermanentError`/`TransientError` as for proxies."""
    refuse_to_overwrite(source, target)
    arguments = redaction_arguments(
        source,
        target,
        spec,
        has_audio=has_audio,
        sample_rate=sample_rate,
        settings=settings,
        segment=segment,
    )
    version = ffmpeg_version()
    try:
        run_tool(arguments, timeout_s, extra_env=RENDER_ENVIRONMENT)
        check_output(target)
    except BaseException:
        remove_quietly(target)
        raise
    return ToolRun(
        output=target, tool=FFMPEG, tool_version=version, arguments=arguments, mime_type="video/mp4"
    )
