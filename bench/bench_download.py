"""Peak memory of the xai provider while it downloads and verifies a large video.

Usage: python bench/bench_download.py [--size-mb 500] [--keep PATH]

1. Encodes a real H.264 MP4 of at least `--size-mb` MB (lossless noise, 1280x720).
2. Serves it from the fake xAI server in its own process (as the result of a video job).
3. Runs the provider in a fresh child process that submits, polls, streams the
   download to disk, verifies it decodes, and reports its own peak RSS.

Prints one JSON object: file size, wall time, throughput, the child's RSS after
imports and its peak RSS. The acceptance bar is a peak under 150 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT_MB = 150.0


def make_video(path: Path, size_mb: int) -> int:
    """Encode lossless noise until the file passes `size_mb` MB; returns its size."""
    import av

    target = size_mb * 1_000_000
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
    from imaginebuild.providers.xai import XaiProvider

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
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
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"bytes": size, "seconds": seconds, "rss_after_imports_mb": baseline,
                      "peak_rss_mb": peak}))  # fmt: skip


def main() -> int:
    """Build the file, start the fake, measure the child; print the figures as JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=500)
    parser.add_argument("--keep", type=Path, default=None, help="reuse/keep the video here")
    parser.add_argument("--child", nargs=2, metavar=("BASE_URL", "WORKDIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return 0
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory(prefix="bench-download-") as tmp:
        video = args.keep or Path(tmp) / "big.mp4"
        if not video.exists():
            make_video(video, args.size_mb)
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
    figures["ok"] = figures["peak_rss_mb"] < LIMIT_MB and figures["bytes"] >= 500_000_000
    print(json.dumps(figures, indent=1, sort_keys=True))
    return 0 if figures["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
