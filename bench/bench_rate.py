"""Pacing within xAI's rate limits: 200 images and 20 videos against a fake that enforces them.

Usage: python bench/bench_rate.py [--images 200] [--videos 20] [--quick] [--json FILE]

The fake xAI server answers 429 above 5 submissions/s for grok-imagine-image and
1/s for grok-imagine-video (xAI's documented per-team limits, docs.x.ai "Rate
limits"), with no other delay: images answer at once, videos are done on the
first poll. The xai provider makes every asset at once (no concurrency limit)
with retries off, so a single 429 fails a step. Reported: the 429s seen (must be
0), the makespan, the bound the rate limits alone imply (the slower model's
`(n - 1) / rate`), and their ratio (target ≤ 1.10). Time is the wall clock of one
run on a shared machine: a benchmark, not a timed test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from imaginebuild.model import Kind, ProviderSettings
from imaginebuild.providers.base import GenerationRequest, ProviderContext
from imaginebuild.providers.xai.pacing import rate_bound_s
from imaginebuild.providers.xai.provider import XaiProvider
from imaginebuild.testing.fake_xai import FakeXai

RATES = {"grok-imagine-image": 5, "grok-imagine-video": 1}


def _requests(folder: Path, images: int, videos: int) -> list[GenerationRequest]:
    made = []
    for index in range(images + videos):
        kind = Kind.IMAGE if index < images else Kind.VIDEO
        workdir = folder / f"w{index}"
        workdir.mkdir()
        params: dict[str, object] = {"duration": 1} if kind is Kind.VIDEO else {}
        made.append(
            GenerationRequest(
                asset=f"a{index}",
                kind=kind,
                key=f"{index:08d}" + "k" * 8,
                prompt=f"p{index}",
                model=kind.spec.default_model,
                params=params,
                inputs=(),
                workdir=workdir,
            )
        )
    return made


async def _make_all(provider: XaiProvider, requests: list[GenerationRequest]) -> None:
    try:
        await asyncio.gather(*(provider.generate(r) for r in requests))
    finally:
        await provider.aclose()


def measure(images: int, videos: int) -> dict[str, float | int]:
    """One run: 429s, makespan, the rate-limit bound and their ratio."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        FakeXai(rate_limits=RATES, pending_polls=0, full_size=False) as fake,
    ):
        settings = ProviderSettings(base_url=fake.base_url, poll_interval=0.05, max_retries=0)
        context = ProviderContext(settings, Path(tmp) / ".imaginebuild", {"XAI_API_KEY": "bench"})
        provider = XaiProvider(context, deferred_images=False)
        requests = _requests(Path(tmp), images, videos)
        began = time.monotonic()
        asyncio.run(_make_all(provider, requests))
        makespan = time.monotonic() - began
        refused = fake.rate_limits.refused
    bound = max(rate_bound_s(images, RATES["grok-imagine-image"]),
                rate_bound_s(videos, RATES["grok-imagine-video"]))  # fmt: skip
    return {
        "images": images,
        "videos": videos,
        "http_429": refused,
        "makespan_s": round(makespan, 3),
        "bound_s": round(bound, 3),
        "ratio": round(makespan / bound, 3) if bound else 0.0,
    }


def main() -> int:
    """Run the benchmark and print its result (and write it with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--videos", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="40 images and 5 videos")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    images, videos = (40, 5) if args.quick else (args.images, args.videos)
    result = measure(images, videos)
    text = json.dumps(result, indent=1)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n")
    ok = result["http_429"] == 0 and result["ratio"] <= 1.10
    print(
        f"429s: {result['http_429']}, makespan ÷ bound: {result['ratio']} ({'ok' if ok else 'NO'})"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
