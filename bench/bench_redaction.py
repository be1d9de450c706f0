"""Benchmark (issue 20): face detection on a 720p proxy, and rendering a redaction of a 60 s 1080p clip
against a plain ffmpeg re-encode of the same clip with the same encoder settings, in the same run.

The source is made first, not timed: 60 s of 1080p30 `testsrc2` with scikit-image's astronaut head
(about 200 px) moving across it, and a 440 Hz tone; its browser proxy (720p) is made with the
project's own `make_proxy`.

* Detection: `ingest.transcode.faces.detect_faces` on the proxy (PyAV decode, OpenCV alt2 cascade at
  360 lines), ``--detect-rounds`` rounds (default 3; there is no target, the figure is frames per
  second against the clip's 30 fps, on this machine's 2 cores).
* Rendering, alternating by the method of bench/method.py (``--rounds``, default 5, order rotated
  every round, medians judged):
  - ``plain re-encode``: ffmpeg with the redaction's argv but an empty specification (a `null`
    filter): same decoder, same libx264 settings (veryfast, CRF 18, one thread), same AAC, same muxer;
  - ``redaction``: the argv of a specification holding the detected face track(s) (accepted), one
    hand-drawn box moving over 20 s, a 2 s whole-frame blur and a 3 s mute.
  Both run with the render's environment (`RENDER_ENVIRONMENT`: glibc malloc tunables, see
  ingest/transcode/redact.py); ``plain re-encode, default malloc`` is the same plain re-encode without
  it, shown beside (the tunables do not flatter the baseline's side of the ratio).
  Target: redaction / plain <= 1.3 (medians). The redaction's output is also rendered twice and its
  sha256 compared (determinism).

Usage: .venv/bin/python bench/bench_redaction.py [--seconds 60] [--rounds 5] [--detect-rounds 3]
       [--dir /work] [--keep] [--check]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import method  # bench/method.py: the method every benchmark shares

TARGET_RATIO = 1.3


def make_source(work: Path, seconds: int) -> Path:
    import cv2
    from skimage import data

    head = data.astronaut()[20:200, 140:310]
    head = cv2.resize(head, (round(head.shape[1] * 2.1), round(head.shape[0] * 2.1)))
    png = work / "head.png"
    cv2.imwrite(str(png), cv2.cvtColor(head, cv2.COLOR_RGB2BGR))
    source = work / "source.mp4"
    move = f"x='100+t*(1920-500)/{seconds}':y='150+t*300/{seconds}'"
    subprocess.run(
        [
            *("ffmpeg", "-nostdin", "-y", "-loglevel", "error"),
            *("-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30"),
            *("-loop", "1", "-i", str(png)),
            *("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"),
            *("-filter_complex", f"[0:v][1:v]overlay={move}:shortest=1[v]", "-map", "[v]", "-map", "2:a"),
            *("-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast", "-crf", "23"),
            *("-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", "2", str(source)),
        ],
        check=True,
    )
    return source


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def main() -> int:  # noqa: PLR0915 - one straight script, read top to bottom
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--detect-rounds", type=int, default=3)
    parser.add_argument("--dir", default="/work")
    method.add_method_options(parser)
    args = parser.parse_args()

    from evidence_store.domain.redaction import (
        RedactionSpec,
        link_tracks,
        scale_box,
        spec_from_dict,
        spec_to_dict,
    )
    from ingest.transcode.faces import detect_faces, opencv_version
    from ingest.transcode.probe import probe_media
    from ingest.transcode.proxy import make_proxy
    from ingest.transcode.redact import RENDER_ENVIRONMENT, RenderSettings, redaction_arguments
    from ingest.transcode.tools import ffmpeg_version

    work = Path(tempfile.mkdtemp(prefix="bench-redaction-", dir=args.dir))
    try:
        method.header(
            "redaction: detection on the proxy, rendering against a plain re-encode",
            args.rounds,
            [method.WARM],
        )
        print(f"{ffmpeg_version()}; {opencv_version()}")
        source = make_source(work, args.seconds)
        probe = probe_media(source)
        proxy = make_proxy(source, work / "proxy", probe).output

        detections = []
        for round_ in range(args.detect_rounds):
            run = method.timed(lambda: detect_faces(proxy))
            detections.append(run)
            print(f"  detect round {round_ + 1}/{args.detect_rounds} {run.wall:8.3f} s", file=sys.stderr)
        found = detections[-1].result
        detect = method.spread(r.wall for r in detections)
        with_face = sum(1 for f in found.frames if f.boxes)
        print()
        print(f"detection ({found.width}x{found.height} proxy, {len(found.frames)} frames, warm):")
        method.table(
            [
                "median s",
                "min-max s",
                "best s",
                "frames/s (median)",
                "x real time (30 fps)",
                "frames with a face",
            ],
            [
                [
                    *detect.cells(2),
                    f"{len(found.frames) / detect.median:.1f}",
                    f"{len(found.frames) / detect.median / 30:.2f}x",
                    f"{with_face}/{len(found.frames)}",
                ]
            ],
        )

        size = (probe.width or 1920, probe.height or 1080)
        tracks = link_tracks(
            (f.t, [scale_box(b, (found.width, found.height), size) for b in f.boxes]) for f in found.frames
        )
        duration = float(probe.duration_s or args.seconds)
        raw = spec_to_dict(RedactionSpec(size[0], size[1], duration, tracks=tracks))
        raw["tracks"] = [
            {**t, "boxes": [{**b, "t": min(b["t"], duration)} for b in t["boxes"]]} for t in raw["tracks"]
        ]
        d = duration  # the drawn box, the blurred and the muted spans at fixed shares of the clip
        raw["boxes"] = [
            {
                "keyframes": [
                    {"t": 0.08 * d, "x": 100, "y": 700, "w": 300, "h": 200},
                    {"t": 0.42 * d, "x": 1500, "y": 800, "w": 300, "h": 200},
                ]
            }
        ]
        raw["frames"] = [{"start_s": 0.5 * d, "end_s": 0.533 * d, "effect": "blur"}]
        raw["audio"] = [{"start_s": 0.66 * d, "end_s": 0.71 * d, "effect": "mute"}]
        spec = spec_from_dict(raw)
        empty = RedactionSpec(size[0], size[1], duration)
        settings = RenderSettings(fps=30.0)

        def render(which: RedactionSpec, name: str, tuned: bool = True):
            # both variants run as the product runs the render (RENDER_ENVIRONMENT), so the ratio
            # compares like with like; the plain re-encode also runs without it, as a user types it
            env = {**os.environ, **RENDER_ENVIRONMENT} if tuned else None

            def go() -> Path:
                target = work / f"{name}.mp4"
                argv = redaction_arguments(source, target, which, has_audio=True, settings=settings)
                subprocess.run(["ffmpeg", *argv], check=True, stdin=subprocess.DEVNULL, env=env)
                return target

            return go

        digests: dict[str, set[str]] = {
            "plain re-encode": set(),
            "plain re-encode, default malloc": set(),
            "redaction": set(),
        }

        def after(name: str, run: method.Run[Path]) -> None:
            digests[name].add(sha256_of(run.result))
            run.result.unlink()

        runs = method.run_rounds(
            {
                "plain re-encode": render(empty, "plain"),
                "plain re-encode, default malloc": render(empty, "plain-default", tuned=False),
                "redaction": render(spec, "redacted"),
            },
            args.rounds,
            after=after,
            quiet_below=args.quiet_below,
            quiet_max_wait=args.quiet_max_wait,
        )
        spreads = method.spreads(runs)
        ratio = spreads["redaction"].median / spreads["plain re-encode"].median
        print()
        print(
            f"rendering {args.seconds} s 1080p30 ({len(tracks)} face track(s), "
            f"{len(spec.boxes)} drawn box, warm):"
        )
        method.table(
            ["variant", "median s", "min-max s", "best s", "x real time (median)", "distinct outputs"],
            [
                [name, *s.cells(2), f"{args.seconds / s.median:.2f}x", str(len(digests[name]))]
                for name, s in spreads.items()
            ],
        )
        targets = [
            method.Target(
                "redaction / plain re-encode (medians)",
                ratio,
                TARGET_RATIO,
                higher_is_better=False,
                judged=method.judged(args),
            )
        ]
        method.print_targets(targets)
        print(
            "deterministic:",
            "yes" if all(len(d) == 1 for d in digests.values()) else "NO",
            "(one sha256 per variant over the rounds)",
        )
        method.footer()
        return 0 if not args.check or method.targets_ok(targets) else 1
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
