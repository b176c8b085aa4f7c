"""Peak memory of the xai provider while it downloads and verifies a large video.

Usage: python bench/bench_download.py [--size 1GiB] [--keep PATH] [--quick]
       [--json FILE] [--markdown]

1. Encodes a real H.264 MP4 of at least `--size` (lossless noise, 1280x720;
   1 GiB by default, 64 MiB with `--quick`; `--size-mb N` is N MB).
2. Serves it from the fake xAI server in its own process (as the result of a video job).
3. Runs the provider in a fresh child process that submits, polls, streams the
   download to disk, verifies it decodes, and reports its own peak RSS.

Prints one JSON object (or, with `--markdown`, a table): file size, wall time,
throughput, the child's RSS after imports and its peak RSS. The acceptance bar
is a peak under 150 MB. The child's peak is its VmHWM from /proc/self/status:
its `ru_maxrss` starts from the parent's high-water mark (the kernel carries it
over the exec, and the parent has just encoded the video), so it is reported
beside it only for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT_MB = 150.0
DEFAULT_SIZE = "1GiB"
QUICK_SIZE = "64MiB"
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9}
_UNITS |= {"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30}


def parse_size(text: str) -> int:
    """Bytes in a size such as `1GiB`, `500MB`, `64 MiB` or `1000000`."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if match is None or match.group(2).lower() not in _UNITS:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 1GiB or 500MB)")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def own_peak_mb() -> float:
    """This process's own peak RSS in MB (VmHWM); ru_maxrss where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_video(path: Path, target: int) -> int:
    """Encode lossless noise until the file passes `target` bytes; returns its size."""
    import av

    frame_bytes = 2_200_000  # lossless 720p noise is about this much per frame
    frames = target // frame_bytes + 30
    noise = [os.urandom(1280 * 720 * 3 // 2) for _ in range(8)]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        stream.options = {"preset": "ultrafast", "qp": "0"}
        for index in range(frames):
            frame = av.VideoFrame(1280, 720, "yuv420p")
            data, offset = noise[index % len(noise)], 0
            for plane in frame.planes:
                plane.update(data[offset : offset + plane.buffer_size])
                offset += plane.buffer_size
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    size = path.stat().st_size
    if size < target:
        raise SystemExit(f"the video came out at {size} bytes, under {target}")
    return size


def child(base_url: str, workdir: Path) -> None:
    """Download one video job with the provider; print this process's memory figures."""
    import asyncio

    from imaginebuild.model import Kind, ProviderSettings
    from imaginebuild.providers.base import GenerationRequest, ProviderContext
    from imaginebuild.providers.xai.provider import XaiProvider

    baseline = own_peak_mb()
    context = ProviderContext(
        settings=ProviderSettings(base_url=base_url, poll_interval=0.05),
        state_dir=workdir / ".imaginebuild",
        env={"XAI_API_KEY": "bench-key"},
    )
    request = GenerationRequest(
        "big", Kind.VIDEO, "benchkey", "a big clip", "grok-imagine-video",
        {"duration": 8}, (), workdir,
    )  # fmt: skip

    async def go() -> int:
        provider = XaiProvider(context, request_timeout=120.0)
        try:
            result = await provider.generate(request)
        finally:
            await provider.aclose()
        return result.outputs[0].path.stat().st_size

    began = time.monotonic()
    size = asyncio.run(go())
    seconds = time.monotonic() - began
    peak = own_peak_mb()
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"bytes": size, "seconds": seconds, "rss_after_imports_mb": baseline,
                      "peak_rss_mb": peak, "ru_maxrss_mb": maxrss}))  # fmt: skip


def markdown(figures: dict[str, object]) -> str:
    """The figures as a one-row markdown table."""
    head = "| video MB | wall s | MB/s | RSS after imports MB | peak RSS MB | bar MB | ok |"
    row = (
        f"| {figures['video_mb']} | {float(str(figures['seconds'])):.1f} | {figures['mb_per_s']} "
        f"| {float(str(figures['rss_after_imports_mb'])):.1f} "
        f"| {float(str(figures['peak_rss_mb'])):.1f} | {figures['limit_mb']:g} "
        f"| {'yes' if figures['ok'] else 'NO'} |"
    )
    return "\n".join([head, "|---:|---:|---:|---:|---:|---:|:-:|", row])


def main() -> int:
    """Build the file, start the fake, measure the child; print the figures as JSON."""
    parser = argparse.ArgumentParser()
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--size", type=parse_size, default=None, help="video size (1GiB)")
    sizes.add_argument("--size-mb", type=int, default=None, help="video size in MB")
    sizes.add_argument("--quick", action="store_true", help=f"a {QUICK_SIZE} video")
    parser.add_argument("--keep", type=Path, default=None, help="reuse/keep the video here")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--markdown", action="store_true", help="print a table, not JSON")
    parser.add_argument("--child", nargs=2, metavar=("BASE_URL", "WORKDIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return 0
    if args.size_mb is not None:
        target = args.size_mb * 1_000_000
    else:
        target = args.size or parse_size(QUICK_SIZE if args.quick else DEFAULT_SIZE)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory(prefix="bench-download-") as tmp:
        video = args.keep or Path(tmp) / "big.mp4"
        if not video.exists():
            make_video(video, target)
        fake = subprocess.Popen(
            [sys.executable, "-m", "imaginebuild.testing.fake_xai", "--port", "0",
             "--video-file", str(video)],
            stdout=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        try:
            assert fake.stdout is not None
            base_url = fake.stdout.readline().strip()
            workdir = Path(tmp) / "work"
            workdir.mkdir()
            done = subprocess.run(
                [sys.executable, __file__, "--child", base_url, str(workdir)],
                env=env, capture_output=True, text=True, check=True,
            )  # fmt: skip
        finally:
            fake.terminate()
            fake.wait(timeout=10)
        figures = json.loads(done.stdout)
    figures["video_mb"] = round(figures["bytes"] / 1e6, 1)
    figures["mb_per_s"] = round(figures["video_mb"] / figures["seconds"], 1)
    figures["limit_mb"] = LIMIT_MB
    figures["target_bytes"] = target
    figures["ok"] = figures["peak_rss_mb"] < LIMIT_MB and figures["bytes"] >= target
    text = json.dumps(figures, indent=1, sort_keys=True)
    print(markdown(figures) if args.markdown else text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0 if figures["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
