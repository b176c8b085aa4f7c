"""Benchmark the offline `local` provider against its budgets and against bare baselines.

Run from the repository root:

    python bench/bench_local.py [--repeat N] [--json results.json]

Each case renders through `LocalProvider.generate` into a fresh folder and keeps
the median wall time of N runs. Baselines measured in the same run make the
figures comparable across machines: sha256 of the output bytes, a bare Pillow
PNG encode of a blank picture of the same size, and a bare PyAV H.264 encode of
the same number of blank frames with the provider's encoder settings.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import hashlib
import io
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import av
from PIL import Image

from imaginebuild.model import Kind, ProviderSettings
from imaginebuild.providers.base import GenerationRequest, InputFile, ProviderContext
from imaginebuild.providers.local.provider import LocalProvider
from imaginebuild.providers.local import video as encoder_settings

KEY = "b" * 64
PROMPT = "A collage of London landmarks in a stenciled street-art style, evening light"


@dataclass(frozen=True)
class Case:
    """One provider call to time, with its budget in seconds (None: no budget)."""

    name: str
    kind: Kind
    params: Mapping[str, object]
    budget_s: float | None
    inputs: tuple[str, ...] = ()  # names of earlier cases whose first output feeds this one


@dataclass(frozen=True)
class Row:
    """The measured figures of one case."""

    name: str
    median_s: float
    budget_s: float | None
    sha256_s: float
    bare_encode_s: float
    output_bytes: int

    @property
    def within_budget(self) -> bool:
        """True when the median is inside the budget (or there is none)."""
        return self.budget_s is None or self.median_s <= self.budget_s


CASES = (
    Case("image 1k 1:1", Kind.IMAGE, {"resolution": "1k", "aspect_ratio": "1:1"}, 0.2),
    Case("image 1k 16:9", Kind.IMAGE, {"resolution": "1k", "aspect_ratio": "16:9"}, 0.2),
    Case("image 2k 1:1", Kind.IMAGE, {"resolution": "2k", "aspect_ratio": "1:1"}, 0.6),
    Case("image 2k 16:9", Kind.IMAGE, {"resolution": "2k", "aspect_ratio": "16:9"}, 0.6),
    Case("edit 2k of 2", Kind.EDIT, {"resolution": "2k"}, None, ("image 2k 1:1", "image 1k 16:9")),
    Case("video 6 s 720p", Kind.VIDEO, {"resolution": "720p", "duration": 6}, 3.0),
    Case("video 6 s 480p", Kind.VIDEO, {"resolution": "480p", "duration": 6}, None),
    Case("animate 6 s 720p", Kind.ANIMATE, {"resolution": "720p", "duration": 6}, None,
         ("image 1k 16:9",)),
    Case("reference 6 s 720p", Kind.REFERENCE_VIDEO, {"resolution": "720p", "duration": 6}, None,
         ("image 1k 1:1", "image 1k 16:9")),
    Case("video_edit of 6 s 720p", Kind.VIDEO_EDIT, {}, None, ("video 6 s 720p",)),
    Case("extend 6 s 720p by 4 s", Kind.EXTEND, {"duration": 4}, None, ("video 6 s 720p",)),
)  # fmt: skip


def render(case: Case, workdir: Path, inputs: Sequence[Path]) -> Path:
    """Run one case through the provider; return its first output."""
    files = tuple(
        InputFile(p, hashlib.sha256(p.read_bytes()).hexdigest(), "video/mp4" if p.suffix == ".mp4"
                  else "image/png")
        for p in inputs
    )  # fmt: skip
    request = GenerationRequest(
        case.name, case.kind, KEY, PROMPT, "local", case.params, files, workdir
    )
    context = ProviderContext(ProviderSettings(), workdir, {})
    result = asyncio.run(LocalProvider(context).generate(request))
    return result.outputs[0].path


def timed(action: Callable[[], object]) -> float:
    """Wall time of one call, in seconds."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def bare_png(size: tuple[int, int]) -> None:
    """Baseline: encode a blank picture of `size` as PNG with Pillow's defaults."""
    Image.new("RGB", size, (90, 120, 150)).save(io.BytesIO(), "PNG")


def bare_h264(size: tuple[int, int], frames: int, folder: Path) -> None:
    """Baseline: encode `frames` blank frames with the provider's x264 settings."""
    options = {
        "preset": encoder_settings.PRESET,
        "crf": encoder_settings.CRF,
        "x264-params": encoder_settings.X264_PARAMS,
    }
    with av.open(str(folder / "bare.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=24, options=options)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1
        picture = Image.new("RGB", size, (90, 120, 150))
        blank = av.VideoFrame.from_image(picture)  # type: ignore[no-untyped-call]
        for n in range(frames):
            frame = blank.reformat(format="yuv420p")
            frame.pts, frame.time_base = n, Fraction(1, 24)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def baseline(output: Path, folder: Path) -> float:
    """The bare-encode time for an output like `output`."""
    if output.suffix == ".png":
        with Image.open(output) as img:
            size = img.size
        return timed(lambda: bare_png(size))
    with av.open(str(output)) as container:
        stream = container.streams.video[0]
        size, frames = (stream.codec_context.width, stream.codec_context.height), stream.frames
    return timed(lambda: bare_h264(size, frames, folder))


def measure(repeat: int, root: Path) -> list[Row]:
    """Time every case `repeat` times (fresh folder each run) and its baselines once."""
    rows: list[Row] = []
    made: dict[str, Path] = {}
    for index, case in enumerate(CASES):
        inputs = [made[name] for name in case.inputs]
        times = []
        for n in range(repeat):
            start = time.perf_counter()
            output = render(case, root / f"{index}-{n}", inputs)
            times.append(time.perf_counter() - start)
        made[case.name] = output
        data = output.read_bytes()
        rows.append(
            Row(
                case.name,
                statistics.median(times),
                case.budget_s,
                timed(functools.partial(hashlib.sha256, data)),
                baseline(output, root),
                len(data),
            )
        )
    return rows


def table(rows: Sequence[Row]) -> str:
    """The rows as a Markdown table."""
    lines = [
        "| case | median s | budget s | ok | × bare encode | × sha256 | output bytes |",
        "|---|---:|---:|:-:|---:|---:|---:|",
    ]
    for r in rows:
        budget = "" if r.budget_s is None else f"{r.budget_s:.1f}"
        lines.append(
            f"| {r.name} | {r.median_s:.3f} | {budget} | {'yes' if r.within_budget else 'NO'} "
            f"| {r.median_s / r.bare_encode_s:.1f} | {r.median_s / r.sha256_s:.0f} "
            f"| {r.output_bytes:,} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; exit 1 if a case is over its budget."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per case (median kept)")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-local-") as folder:
        rows = measure(args.repeat, Path(folder))
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    return 0 if all(r.within_budget for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
