"""Team scale: four runners, one Redis coordinator, one remote cache, one rate-limited API.

    python bench/bench_team.py [--images 100] [--videos 10] [--runners 4] [--json F] [--timeline]

Four `imaginebuild run` processes, each in its own clone of one project of
`--images` images and `--videos` one-second videos, share a Redis coordinator
(`IMAGINEBUILD_COORDINATOR`), a SeaweedFS remote cache (`IMAGINEBUILD_REMOTE`,
moto when the `weed` binary is missing) and the fake xAI server, which answers
429 to any submission above 5/s for the image model and 1/s for the video model,
counted across every client (xAI's team limits).

Two rounds, each on a fresh team, remote prefix and set of clones:

  1. cap above the cost: every run must finish, with zero 429s, each key paid
     once, and the makespan is compared with the bound the rate limits imply;
  2. cap at half the cost: the runs stop with exit 3 naming the cap, and the
     fake's total bill must not pass it.

The bound: with the fake's token buckets (burst = one second of rate), the last
of n submissions of a model can start no sooner than (n - rate) / rate seconds
after the first, and a video then renders for the job latency; the bound is the
larger of the two models' figures. The runs start from cold processes, so
start-up, polls, downloads and pushes all count against it. Beside it the table
shows the coordinator's own floor (grants evenly spaced 10 % wider than the
limit, no burst: (n - 1) × 1.1 / rate) and when the first and last submissions
reached the fake, so start-up and tail can be read off each round.

`--timeline` prints, per round, where the makespan went (`team_timeline.py`):
each runner's session, slots, lease waits and end, and the submission stream
against the ideal one.

Exit 1 when an invariant breaks or the ratio passes 1.15.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from redisserver import RedisServer
from s3server import ACCESS_KEY, BUCKET, REGION, SECRET_KEY, start_s3
from team_timeline import RunnerTimes, summary

from imaginebuild.coordinator.base import RateLimit
from imaginebuild.coordinator.redisteam import RedisCoordinator
from imaginebuild.money import format_usd, usd_to_ticks
from imaginebuild.testing.fake_xai import FakeXai, Route

ROOT = Path(__file__).resolve().parent.parent

IMAGE_MODEL, VIDEO_MODEL = "grok-imagine-image", "grok-imagine-video"
RATES = {IMAGE_MODEL: 5, VIDEO_MODEL: 1}  # submissions per second, team-wide (xAI's limits)
JOB_LATENCY_S = 1.0  # how long the fake renders a video
TARGET_RATIO = 1.15
KEY = "xai-BENCH-TEAM-0123456789abcdef"


@dataclass(frozen=True)
class Round:
    """What one round of runners did."""

    cap_usd: str
    estimate_usd: str
    makespan_s: float
    bound_s: float
    floor_s: float  # the coordinator's own least makespan: even grants, 10 % apart, no burst
    first_submission_s: float  # from the start of the runners
    last_submission_s: float
    exit_codes: tuple[int, ...]
    refused_429: int
    submissions: int
    keys_paid_twice: int
    paid_twice: tuple[str, ...]  # the prompts submitted more than once
    warnings: tuple[str, ...]  # distinct warning lines of the runners (the remote lost…)
    billed_usd: str
    billed_ticks: int
    cap_ticks: int
    timeline: tuple[str, ...] = ()

    @property
    def ratio(self) -> float:
        """Makespan over the bound the rate limits imply."""
        return self.makespan_s / self.bound_s

    @property
    def floor_ratio(self) -> float:
        """Makespan over the coordinator's floor."""
        return self.makespan_s / self.floor_s


def mediafile(images: int, videos: int) -> str:
    """The project: independent images and one-second videos on the xai provider, with as
    many provider slots as the runs have jobs."""
    lines = [f"  img{i}: {{kind: image, prompt: product shot {i}}}" for i in range(images)]
    lines += [
        f"  vid{i}: {{kind: video, prompt: turntable {i}, duration: 1}}" for i in range(videos)
    ]
    # max_concurrency 16 to match `run -j 16`: with the default 8, the ten videos (first:
    # critical path) fill every slot while they wait for their 1/s turns, and no image
    # starts until they go (see "Team scale" in bench/README.md).
    head = (
        "version: 1\nprovider: xai\nproviders:\n"
        "  xai: {poll_interval: 0.05, max_concurrency: 16}\nassets:\n"
    )
    return head + "\n".join(lines) + "\n"


def bound_s(images: int, videos: int) -> float:
    """The least makespan the team rate limits allow (see the module docstring)."""
    image = max(0, images - RATES[IMAGE_MODEL]) / RATES[IMAGE_MODEL]
    video = max(0, videos - RATES[VIDEO_MODEL]) / RATES[VIDEO_MODEL] + JOB_LATENCY_S
    return max(image, video if videos else 0.0)


def floor_s(images: int, videos: int) -> float:
    """The least makespan the coordinator itself allows: it spaces grants evenly (no
    burst), 10 % wider than the limit, so n submissions take (n - 1) intervals."""
    image = max(0, images - 1) * RateLimit(RATES[IMAGE_MODEL]).interval_ns / 1e9
    spacing = RateLimit(RATES[VIDEO_MODEL]).interval_ns / 1e9
    video = max(0, videos - 1) * spacing + JOB_LATENCY_S
    return max(image, video if videos else 0.0)


def imaginebuild(folder: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """One CLI command in `folder`, waited for."""
    return subprocess.run(
        [sys.executable, "-m", "imaginebuild", *args],
        cwd=folder, env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip


def one_round(
    work: Path, env: dict[str, str], fake: FakeXai, args: argparse.Namespace, cap_share: float
) -> Round:
    """Clone the project per runner, set the team cap, start every runner at once."""
    text = mediafile(args.images, args.videos)
    clones = []
    for i in range(args.runners):
        clone = work / f"clone-{i}"
        clone.mkdir(parents=True)
        (clone / "mediafile.yaml").write_text(text)
        clones.append(clone)
    plan = imaginebuild(clones[0], env, "--json", "plan")
    if plan.returncode != 0:
        raise SystemExit(f"plan failed: {plan.stderr}")
    estimate = usd_to_ticks(Decimal(json.loads(plan.stdout)["billable_usd"]))
    cap_ticks = int(estimate * cap_share)
    cap = str(Decimal(cap_ticks) / Decimal(10**10))
    capped = imaginebuild(clones[0], env, "team", "set", "--max-usd-per-day", cap)
    if capped.returncode != 0:
        raise SystemExit(f"team set failed: {capped.stderr}")
    seen, refused = len(fake.log), fake.rate_limits.refused
    billed_before = fake.billed_ticks()
    t0, started = time.time(), time.perf_counter()
    argv = [sys.executable, "-m", "imaginebuild", "run", "-j", "16"]
    procs = [
        subprocess.Popen(argv, cwd=c, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for c in clones
    ]
    errors, ended = wait_all(procs)
    makespan = time.perf_counter() - started
    codes = tuple(p.returncode for p in procs)
    for code, err in zip(codes, errors, strict=True):
        if code not in (0, 3):
            print(err[-3000:], file=sys.stderr)
    new = fake.log[seen:]
    prompts = Counter(
        str(r.body.get("prompt")) for r in new if r.route in (Route.IMAGES, Route.VIDEOS)
        and r.status == 200 and isinstance(r.body, dict)
    )  # fmt: skip
    billed = fake.billed_ticks() - billed_before
    arrivals = [r.at for r in new if r.route in (Route.IMAGES, Route.VIDEOS) and r.status == 200]
    timeline: list[str] = []
    if args.timeline:
        times = [
            RunnerTimes(p.pid, t0, end, e.count("waiting for its push"))
            for p, end, e in zip(procs, ended, errors, strict=True)
        ]
        team = RedisCoordinator(env["IMAGINEBUILD_COORDINATOR"], team=env["IMAGINEBUILD_TEAM"])
        grants = team.grants()
        team.close()
        timeline = summary(t0, times, grants, new, RATES, args.startup_s)
    return Round(
        cap_usd=format_usd(cap_ticks),
        estimate_usd=format_usd(estimate),
        makespan_s=round(makespan, 3),
        bound_s=bound_s(args.images, args.videos),
        floor_s=floor_s(args.images, args.videos),
        first_submission_s=round(min(arrivals, default=t0) - t0, 3),
        last_submission_s=round(max(arrivals, default=t0) - t0, 3),
        exit_codes=codes,
        refused_429=fake.rate_limits.refused - refused,
        submissions=sum(prompts.values()),
        keys_paid_twice=sum(1 for n in prompts.values() if n > 1),
        paid_twice=tuple(sorted(p for p, n in prompts.items() if n > 1)),
        warnings=tuple(sorted({w for e in errors for w in e.splitlines() if "warning" in w})),
        billed_usd=format_usd(billed),
        billed_ticks=billed,
        cap_ticks=cap_ticks,
        timeline=tuple(timeline),
    )


def wait_all(procs: list[subprocess.Popen[bytes]]) -> tuple[list[str], list[float]]:
    """Every runner's stderr and the wall-clock time it ended, each waited for on its own."""
    errors, ended = [""] * len(procs), [0.0] * len(procs)

    def wait(i: int) -> None:
        errors[i] = procs[i].communicate(timeout=1800)[1].decode("utf-8", "replace")
        ended[i] = time.time()

    threads = [threading.Thread(target=wait, args=(i,)) for i in range(len(procs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors, ended


def startup_s() -> float:
    """The best of five `python -m imaginebuild --version`: a runner's bare start-up."""
    best = float("inf")
    for _ in range(5):
        began = time.perf_counter()
        subprocess.run([sys.executable, "-m", "imaginebuild", "--version"], cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                       check=True)  # fmt: skip
        best = min(best, time.perf_counter() - began)
    return best


def main() -> int:
    """Run both rounds and print the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--videos", type=int, default=10)
    parser.add_argument("--runners", type=int, default=4)
    parser.add_argument("--json", metavar="F", help="write the rounds as JSON here")
    parser.add_argument("--timeline", action="store_true", help="print where the time went")
    args = parser.parse_args()
    args.startup_s = startup_s()
    with tempfile.TemporaryDirectory(prefix="bench-team-") as tmp:
        folder = Path(tmp)
        redis = RedisServer.start_in(folder / "redis")
        s3 = start_s3(folder / "s3")
        rounds: dict[str, Round] = {}
        try:
            with FakeXai(rate_limits=RATES, job_latency=JOB_LATENCY_S) as fake:
                base = {
                    k: v for k, v in os.environ.items() if not k.startswith(("XAI_", "IMAGINE"))
                }
                base.update(
                    PYTHONPATH=str(ROOT), XAI_BASE_URL=fake.base_url, XAI_API_KEY=KEY,
                    IMAGINEBUILD_COORDINATOR=redis.url, AWS_ACCESS_KEY_ID=ACCESS_KEY,
                    AWS_SECRET_ACCESS_KEY=SECRET_KEY, AWS_ENDPOINT_URL_S3=s3.endpoint,
                    AWS_REGION=REGION,
                )  # fmt: skip
                for name, share in (("cap above the cost", 2.0), ("cap at half the cost", 0.5)):
                    slug = "over" if share > 1 else "under"
                    env = {
                        **base,
                        "IMAGINEBUILD_TEAM": f"bench-{slug}",
                        "IMAGINEBUILD_REMOTE": f"s3://{BUCKET}/bench-team-{slug}",
                        "XDG_CACHE_HOME": str(folder / f"user-cache-{slug}"),
                    }
                    rounds[name] = one_round(folder / slug, env, fake, args, share)
                    shutil.rmtree(folder / slug, ignore_errors=True)
        finally:
            s3.stop()
            redis.stop()
    return report(rounds, args)


def report(rounds: dict[str, Round], args: argparse.Namespace) -> int:
    """Print the table; 1 when an invariant breaks or the ratio passes the target."""
    print(
        f"{args.runners} runners × ({args.images} images + {args.videos} videos), Redis "
        f"coordinator, one remote cache, fake xAI at {RATES[IMAGE_MODEL]}/s and "
        f"{RATES[VIDEO_MODEL]}/s (429 above)\n"
    )
    print("| round | exits | 429s | submissions | paid twice | billed | cap | makespan s "
          "| bound s | ratio | first / last submission s | floor s | ÷ floor |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    ok = True
    for name, r in rounds.items():
        print(
            f"| {name} | {','.join(map(str, r.exit_codes))} | {r.refused_429} | {r.submissions} "
            f"| {r.keys_paid_twice} | {r.billed_usd} | {r.cap_usd} | {r.makespan_s:.1f} "
            f"| {r.bound_s:.1f} | {r.ratio:.2f} | {r.first_submission_s:.2f} / "
            f"{r.last_submission_s:.2f} | {r.floor_s:.1f} | {r.floor_ratio:.2f} |"
        )
        ok &= r.refused_429 == 0 and r.keys_paid_twice == 0 and r.billed_ticks <= r.cap_ticks
    over, under = rounds["cap above the cost"], rounds["cap at half the cost"]
    ok &= set(over.exit_codes) == {0} and over.submissions == args.images + args.videos
    ok &= 3 in under.exit_codes and set(under.exit_codes) <= {0, 3}
    ok &= over.ratio <= TARGET_RATIO
    for name, r in rounds.items():
        if r.paid_twice:
            print(f"\n{name}: submitted more than once: {', '.join(r.paid_twice)}")
        for line in r.warnings[:10]:
            print(f"{name}: a runner said: {line[:300]}")
        if r.timeline:
            print(f"\n{name}, " + "\n".join(r.timeline))
    print(f"\nmakespan ÷ bound (cap above the cost): {over.ratio:.2f} (target ≤ {TARGET_RATIO})")
    print(f"makespan ÷ the coordinator's floor: {over.floor_ratio:.2f} (reported, not the target)")
    print("invariants and target: " + ("ok" if ok else "MISSED"))
    if args.json:
        data = {
            n: {**asdict(r), "ratio": r.ratio, "floor_ratio": r.floor_ratio}
            for n, r in rounds.items()
        }
        Path(args.json).write_text(json.dumps(data, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
