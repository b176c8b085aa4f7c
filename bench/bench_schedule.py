"""Scheduling: imaginebuild's makespan against the bound its latencies allow, beside make and ninja.

    python bench/bench_schedule.py [--quick] [--seeds N] [--poll S] [--profile] [--json FILE]

The fake xAI server runs in a separate process with deterministic per-prompt
latencies (images and edits held 0.15–0.25 s, video jobs pending 1–3 s, drawn
from sha256(seed, prompt)), so every step's latency is known before the run and
no schedule on J workers can beat

    bound(J) = max(critical path, total work / J)

imaginebuild builds each graph in this process through the library API
(`imaginebuild.load(...).run(options=RunOptions(jobs=J))`), from an empty cache,
with `providers.xai.max_concurrency` set to J so the provider pool does not
bound it below `-j`. The engine's CPU per step is this process's CPU time
(user + sys, all threads) over `run()`, divided by the steps; imports are paid
by a warm-up build first, and the fake's CPU is its own process's.

Cases:

- `random-N/sSEED`: N assets, kinds image/edit/video/animate/extend mixed, each
  asset's inputs drawn from earlier assets of the right media;
- `skewed`: one video chain image → animate → extend × 6, declared after many
  independent images; built critical-path first (the engine) and FIFO (the
  runner's priorities replaced by an empty mapping, so ready steps go in
  topological order, i.e. declaration order);
- `scheduler alone`: the engine's `run_steps` with steps that only sleep their
  latency (no HTTP, no media): the scheduler's own cost;
- `make` / `ninja`: the 100-asset random graph and the skewed graph as rules
  whose recipes `sleep` their latency, at the same J values.

J is the graph's width — the largest antichain, by Dilworth's theorem: steps
minus a maximum matching of the reachability relation; every step of an
antichain could run at once, so at J = width only the critical path binds —
and a smaller J (4).

Columns besides the makespan and its ratio to the bound: *loop busy* is the
run's wall time minus the time the event loop waited in its selector (when it
nears the makespan, the loop itself is the bottleneck); *CP of actual spans* is
the critical path recomputed with each step's measured start-to-finish span (when
it nears the makespan, steps started as soon as their inputs were done and the
gap to the bound is the steps' own inflation, not their order); *max start lag*
is the longest wait of a step between its last input finishing and its start.
`--profile` also profiles one random build at J = width and splits its time per
step by where it went.

Video jobs are polled: a job is seen done at the first poll after it is done,
so up to one poll interval is added per video step on the critical path, and
every poll costs CPU on both sides. The interval is `providers.xai.poll_interval`
(default 2 s, sized for real jobs of one to several minutes); `--poll` sets it
here (default 0.05 s: the default scaled by the ~40× the latencies are
compressed by). The first random graph is also built at 2, 5 and 10 × that
interval, and the skewed graph at 10 ×, to show both costs. `--quick` shrinks
the graphs and scales latencies and interval by 0.25.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import dataclasses
import json
import math
import os
import pstats
import random
import resource
import selectors
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import imaginebuild  # noqa: E402
from imaginebuild.events import Event, StepFinished, StepStarted  # noqa: E402
from imaginebuild.engine.graph import Dag  # noqa: E402
from imaginebuild.engine.scheduler import StepStatus, run_steps  # noqa: E402
from imaginebuild.testing.fake_xai import latency_for  # noqa: E402

IMAGE_KINDS = frozenset({"image", "edit"})
VIDEO_KINDS = frozenset({"video", "animate", "extend"})
MAX_EXTENDABLE_S = 12  # an extend's input stays within the API's 2–15 s (+2 s added)
KEY = "xai-bench-key-not-a-secret"


@dataclass(frozen=True)
class Latencies:
    """What the fake is told: per-prompt latencies drawn from these ranges with this seed."""

    image: tuple[float, float]
    video: tuple[float, float]
    seed: str = "bench"

    def of(self, step: Step) -> float:
        """The seconds the fake holds `step`'s request (or keeps its job pending)."""
        low, high = self.image if step.kind in IMAGE_KINDS else self.video
        return latency_for(step.prompt, low, high, self.seed)


@dataclass(frozen=True)
class Step:
    """One asset of a benchmark graph."""

    name: str
    kind: str
    inputs: tuple[str, ...] = ()
    seconds: int = 0  # the video's length (videos only)
    prompt: str = ""


# -- graphs (pure) ----------------------------------------------------------------------


def random_graph(n: int, seed: int) -> list[Step]:
    """N assets in declaration order; each one's inputs are earlier assets of the right media."""
    rng = random.Random(seed)
    steps: list[Step] = []
    images: list[str] = []
    clips: dict[str, int] = {}  # video name -> its length
    for i in range(n):
        name = f"a{i:03d}"
        kind = rng.choices(("image", "edit", "video", "animate", "extend"), (3, 2, 1, 2, 2))[0]
        extendable = [c for c, s in clips.items() if s <= MAX_EXTENDABLE_S]
        if kind in ("edit", "animate") and not images:
            kind = "image"
        if kind == "extend" and not extendable:
            kind = "video"
        prompt = f"bench {seed} {name} {kind}"
        if kind == "image":
            step = Step(name, kind, prompt=prompt)
        elif kind == "edit":
            picked = rng.sample(images, min(len(images), rng.randint(1, 3)))
            step = Step(name, kind, tuple(picked), prompt=prompt)
        elif kind == "animate":
            step = Step(name, kind, (rng.choice(images),), 2, prompt)
        elif kind == "video":
            step = Step(name, kind, (), 2, prompt)
        else:
            source = rng.choice(extendable)
            step = Step(name, kind, (source,), clips[source] + 2, prompt)
        steps.append(step)
        if kind in IMAGE_KINDS:
            images.append(name)
        else:
            clips[name] = step.seconds
    return steps


def skewed_graph(images: int, extends: int) -> list[Step]:
    """`images` independent images, then one chain image → animate → extend × `extends`."""
    steps = [Step(f"i{i:03d}", "image", prompt=f"bench skew i{i:03d}") for i in range(images)]
    steps.append(Step("c_img", "image", prompt="bench skew chain image"))
    steps.append(Step("c_anim", "animate", ("c_img",), 2, "bench skew chain animate"))
    previous, seconds = "c_anim", 2
    for k in range(extends):
        seconds += 2
        name = f"c_ext{k}"
        steps.append(Step(name, "extend", (previous,), seconds, f"bench skew chain extend {k}"))
        previous = name
    return steps


def critical_path(steps: Sequence[Step], weight: Mapping[str, float]) -> float:
    """The longest path's total weight (steps are in topological order)."""
    finish: dict[str, float] = {}
    for step in steps:
        finish[step.name] = weight[step.name] + max((finish[p] for p in step.inputs), default=0.0)
    return max(finish.values(), default=0.0)


def bound(steps: Sequence[Step], weight: Mapping[str, float], jobs: int) -> float:
    """No schedule on `jobs` workers can finish before max(critical path, work / jobs)."""
    return max(critical_path(steps, weight), sum(weight.values()) / jobs)


def polled(steps: Sequence[Step], weight: Mapping[str, float], poll_s: float) -> dict[str, float]:
    """Latencies as a poller sees them: a video job is seen done at the first poll at or
    after its latency (the first poll goes out right after the submission)."""
    return {
        s.name: math.ceil(weight[s.name] / poll_s - 1e-9) * poll_s
        if s.kind in VIDEO_KINDS
        else weight[s.name]
        for s in steps
    }


def width(steps: Sequence[Step]) -> int:
    """The largest antichain: steps minus a maximum matching of "a reaches b" (Dilworth)."""
    reach: dict[str, set[str]] = {}
    for step in steps:  # ancestors of each step
        seen: set[str] = set()
        for parent in step.inputs:
            seen |= reach[parent] | {parent}
        reach[step.name] = seen
    later: dict[str, list[str]] = {s.name: [] for s in steps}
    for name, ancestors in reach.items():
        for ancestor in ancestors:
            later[ancestor].append(name)
    matched: dict[str, str] = {}  # right side -> left side

    def augment(left: str, visited: set[str]) -> bool:
        for right in later[left]:
            if right in visited:
                continue
            visited.add(right)
            if right not in matched or augment(matched[right], visited):
                matched[right] = left
                return True
        return False

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    size = sum(1 for step in steps if augment(step.name, set()))
    return len(steps) - size


def mediafile(steps: Sequence[Step], jobs: int, poll_s: float) -> str:
    """The mediafile (JSON is YAML) for `steps` against the xai provider."""
    assets: dict[str, dict[str, Any]] = {}
    for step in steps:
        spec: dict[str, Any] = {"kind": step.kind, "prompt": step.prompt}
        if step.inputs:
            spec["inputs"] = list(step.inputs)
        if step.kind in ("video", "animate"):
            spec["duration"] = step.seconds
        elif step.kind == "extend":
            spec["duration"] = 2
        assets[step.name] = spec
    document = {
        "version": 1,
        "provider": "xai",
        "defaults": {
            "image": {"resolution": "1k", "aspect_ratio": "16:9"},
            "video": {"resolution": "480p", "aspect_ratio": "16:9"},
        },
        "providers": {"xai": {"poll_interval": poll_s, "max_concurrency": jobs}},
        "assets": assets,
    }
    return json.dumps(document, indent=1) + "\n"


# -- measurement ------------------------------------------------------------------------


@dataclass
class Row:
    """One measured run."""

    case: str
    tool: str
    steps: int
    jobs: int
    width: int
    critical_path_s: float
    work_s: float
    bound_s: float
    makespan_s: float
    cpu_ms_per_step: float
    poll_s: float | None = None
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """Makespan over the bound (1.0 is a perfect schedule)."""
        return self.makespan_s / self.bound_s


class Timeline:
    """A reporter that notes when each step started and finished (monotonic seconds)."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.finished: dict[str, float] = {}
        self.states: dict[str, str] = {}

    def emit(self, event: Event) -> None:
        """Note step starts and ends."""
        if isinstance(event, StepStarted):
            self.started.setdefault(event.asset, time.monotonic())
        elif isinstance(event, StepFinished):
            self.finished[event.asset] = time.monotonic()
            self.states[event.asset] = event.state


def lags(steps: Sequence[Step], timeline: Timeline, run_start: float) -> list[float]:
    """Per step: its start minus the moment it became ready (its last parent's end)."""
    out = []
    for step in steps:
        ready = max((timeline.finished[p] for p in step.inputs), default=run_start)
        out.append(timeline.started[step.name] - ready)
    return out


@contextlib.contextmanager
def fifo_priorities() -> Iterator[None]:
    """Make the runner's priorities an empty mapping: ties fall back to topological order."""
    original = Dag.priorities
    Dag.priorities = lambda self, nodes, weight: {}  # type: ignore[method-assign]
    try:
        yield
    finally:
        Dag.priorities = original  # type: ignore[method-assign]


@contextlib.contextmanager
def loop_idle() -> Iterator[list[float]]:
    """Sum the seconds the event loop spends waiting in its selector (idle) while open."""
    idle = [0.0]
    selector = selectors.DefaultSelector
    original = selector.select

    def timed(self: selectors.BaseSelector, timeout: float | None = None) -> Any:
        began = time.monotonic()
        try:
            return original(self, timeout)  # type: ignore[arg-type]
        finally:
            idle[0] += time.monotonic() - began

    selector.select = timed  # type: ignore[method-assign]  # measurement code, restored below
    try:
        yield idle
    finally:
        selector.select = original  # type: ignore[method-assign]


class FakeServer:
    """The fake xAI server as a child process (its CPU is not this process's)."""

    def __init__(self, lat: Latencies, image_format: str) -> None:
        command = [
            sys.executable, "-m", "imaginebuild.testing.fake_xai",
            "--pending-polls", "0", "--image-format", image_format,
            "--image-latency", str(lat.image[0]), "--image-latency-max", str(lat.image[1]),
            "--job-latency", str(lat.video[0]), "--job-latency-max", str(lat.video[1]),
            "--latency-seed", lat.seed,
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
        assert self.process.stdout is not None
        self.base_url = self.process.stdout.readline().strip()
        if not self.base_url.startswith("http://127.0.0.1:"):
            self.stop()
            raise RuntimeError("the fake xAI server did not start")

    def cpu_s(self) -> float:
        """The child's CPU time so far (user + sys; 0 where /proc is not there)."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        """Terminate the child and wait for it."""
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def engine_env(base_url: str) -> dict[str, str]:
    """This process's environment without imaginebuild or xAI settings, pointed at the fake."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XAI_", "IMAGINEBUILD_"))}
    env.update(XAI_BASE_URL=base_url, XAI_API_KEY=KEY)
    return env


def run_engine(
    case: str,
    steps: Sequence[Step],
    lat: Latencies,
    jobs: int,
    poll_s: float,
    fake: FakeServer,
    scratch: Path,
    tool: str = "imaginebuild",
    profile: cProfile.Profile | None = None,
) -> Row:
    """Build `steps` from an empty cache at `-j jobs`; the row with makespan and CPU."""
    folder = Path(tempfile.mkdtemp(prefix="sched-", dir=scratch))
    (folder / "mediafile.yaml").write_text(mediafile(steps, jobs, poll_s))
    timeline = Timeline()
    project = imaginebuild.load(
        folder / "mediafile.yaml", env=engine_env(fake.base_url), reporter=timeline
    )
    options = imaginebuild.RunOptions(jobs=jobs)
    fake0, cpu0, wall0 = fake.cpu_s(), time.process_time(), time.monotonic()
    with loop_idle() as idle:
        if profile is not None:
            profile.enable()
        result = project.run(options=options)
        if profile is not None:
            profile.disable()
    wall1, cpu1, fake1 = time.monotonic(), time.process_time(), fake.cpu_s()
    bad = {n: s for n, s in timeline.states.items() if s != "built"}
    if result.exit_code != 0 or bad or len(timeline.states) != len(steps):
        errors = [a.error for a in result.assets if a.error][:3]
        raise RuntimeError(f"{case}: the build did not finish: {bad or result.exit_code} {errors}")
    weight = {s.name: lat.of(s) for s in steps}
    late = lags(steps, timeline, wall0)
    spans = {s.name: timeline.finished[s.name] - timeline.started[s.name] for s in steps}
    extra = {
        "polled_bound_s": bound(steps, polled(steps, weight, poll_s), jobs),
        "cp_actual_s": critical_path(steps, spans),
        "engine_cpu_s": cpu1 - cpu0,
        "fake_cpu_s": fake1 - fake0,
        "loop_busy_s": wall1 - wall0 - idle[0],
        "lag_max_s": max(late),
        "lag_mean_s": statistics.fmean(late),
        "first_start_s": min(timeline.started.values()) - wall0,
        "after_last_s": wall1 - max(timeline.finished.values()),
        "image_overhead_s": _median_over(steps, spans, weight, IMAGE_KINDS),
        "video_overhead_s": _median_over(steps, spans, weight, VIDEO_KINDS),
    }
    shutil.rmtree(folder, ignore_errors=True)
    return Row(
        case, tool, len(steps), jobs, width(steps), critical_path(steps, weight),
        sum(weight.values()), bound(steps, weight, jobs), wall1 - wall0,
        1000 * (cpu1 - cpu0) / len(steps), poll_s, extra,
    )  # fmt: skip


def _median_over(
    steps: Sequence[Step],
    spans: Mapping[str, float],
    weight: Mapping[str, float],
    kinds: frozenset[str],
) -> float:
    """The median of (step's span − its injected latency) over steps of `kinds`."""
    over = [spans[s.name] - weight[s.name] for s in steps if s.kind in kinds]
    return statistics.median(over) if over else 0.0


def run_scheduler_alone(case: str, steps: Sequence[Step], lat: Latencies, jobs: int) -> Row:
    """The engine's `run_steps` over steps that only sleep their latency."""
    weight = {s.name: lat.of(s) for s in steps}
    parents = {s.name: s.inputs for s in steps}
    order = tuple(s.name for s in steps)
    children: dict[str, list[str]] = {n: [] for n in order}
    for step in steps:
        for parent in step.inputs:
            children[parent].append(step.name)
    dag = Dag(parents, {k: tuple(v) for k, v in children.items()}, order)
    priority = dag.priorities(order, weight.__getitem__)

    async def sleep_step(name: str) -> StepStatus:
        await asyncio.sleep(weight[name])
        return StepStatus.OK

    async def go() -> dict[str, StepStatus]:
        return await run_steps(order, parents, priority, sleep_step, jobs=jobs, keep_going=False)

    cpu0, wall0 = time.process_time(), time.monotonic()
    statuses = asyncio.run(go())
    wall1, cpu1 = time.monotonic(), time.process_time()
    assert all(s is StepStatus.OK for s in statuses.values())
    return Row(
        case, "scheduler alone", len(steps), jobs, width(steps), critical_path(steps, weight),
        sum(weight.values()), bound(steps, weight, jobs), wall1 - wall0,
        1000 * (cpu1 - cpu0) / len(steps),
    )  # fmt: skip


def makefile(steps: Sequence[Step], weight: Mapping[str, float]) -> str:
    """A Makefile whose every target sleeps its latency then touches itself."""
    lines = ["all: " + " ".join(s.name for s in steps), ""]
    for step in steps:
        lines += [f"{step.name}: {' '.join(step.inputs)}", f"\t@sleep {weight[step.name]:.3f}"]
        lines += [f"\t@touch {step.name}", ""]
    return "\n".join(lines)


def ninja_file(steps: Sequence[Step], weight: Mapping[str, float]) -> str:
    """The same graph for ninja."""
    lines = ["rule s", "  command = sleep $t && touch $out", ""]
    for step in steps:
        lines += [f"build {step.name}: s {' '.join(step.inputs)}".rstrip(),
                  f"  t = {weight[step.name]:.3f}"]  # fmt: skip
    lines += ["", "default " + " ".join(s.name for s in steps), ""]
    return "\n".join(lines)


def run_peer(
    tool: str, case: str, steps: Sequence[Step], lat: Latencies, jobs: int, scratch: Path
) -> Row:
    """make or ninja over `steps` in a fresh folder at `-j jobs`."""
    weight = {s.name: float(f"{lat.of(s):.3f}") for s in steps}
    folder = Path(tempfile.mkdtemp(prefix=f"{tool}-", dir=scratch))
    if tool == "make":
        (folder / "Makefile").write_text(makefile(steps, weight))
        command = ["make", "-s", "-j", str(jobs)]
    else:
        (folder / "build.ninja").write_text(ninja_file(steps, weight))
        command = ["ninja", "-j", str(jobs)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall0 = time.monotonic()
    subprocess.run(command, cwd=folder, check=True, capture_output=True)
    wall1 = time.monotonic()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    shutil.rmtree(folder, ignore_errors=True)
    return Row(
        case, tool, len(steps), jobs, width(steps), critical_path(steps, weight),
        sum(weight.values()), bound(steps, weight, jobs), wall1 - wall0,
        1000 * cpu / len(steps),
    )  # fmt: skip


def warm_up(lat: Latencies, fake: FakeServer, scratch: Path, poll_s: float) -> None:
    """One small build: imports are paid, and the fake renders each clip length once."""
    steps = [Step("w_img", "image", prompt="warm image")]
    steps.append(Step("w_anim", "animate", ("w_img",), 2, "warm animate"))
    previous, seconds = "w_anim", 2
    for k in range(6):
        seconds += 2
        steps.append(Step(f"w_ext{k}", "extend", (previous,), seconds, f"warm extend {k}"))
        previous = f"w_ext{k}"
    run_engine("warm-up", steps, lat, len(steps), poll_s, fake, scratch)


# Where a profiled run's time goes: (category, substrings of "file:function"), first match wins.
_CATEGORIES = (
    ("idle (waiting on sockets)", ("select.epoll", "select.select")),
    ("fsync (blocks the loop)", ("posix.fsync",)),
    ("media decode/encode/probe", ("PIL", "/av/", "Imaging", "av.", "mediaprobe", "outputcheck")),
    ("JSON (lockfile, records)", ("/json/", "_json")),
    ("HTTP client (httpx/httpcore/h11)", ("httpx", "httpcore", "h11", "anyio", "_socket", "ssl")),
    ("import machinery (failed imports)", ("importlib", "_distutils_hack", "six.py", "editable")),
    ("other file-system calls", ("posix.", "io.open", "shutil", "tempfile", "pathlib")),
    ("sha256", ("_hashlib", "hashlib", "hashing.py")),
    ("sqlite (action cache)", ("sqlite3", "diskcache")),
    ("asyncio event loop", ("asyncio",)),
    ("imaginebuild (own code)", ("imaginebuild",)),
)


def breakdown(profile: cProfile.Profile, steps: int) -> dict[str, float]:
    """Profiled milliseconds per step by category (own time of each function)."""
    totals: dict[str, float] = {}
    for name, func in pstats.Stats(profile).get_stats_profile().func_profiles.items():
        where = f"{func.file_name}:{name}"
        category = next((c for c, marks in _CATEGORIES if any(m in where for m in marks)), "other")
        totals[category] = totals.get(category, 0.0) + 1000 * func.tottime / steps
    return dict(sorted(totals.items(), key=lambda item: -item[1]))


# -- output -----------------------------------------------------------------------------


def table(rows: Sequence[Row]) -> str:
    """The markdown table of every row."""
    head = (
        "| case | tool | steps | -j | width | poll s | critical path s | work s | bound s "
        "| makespan s | ratio | bound with polling s | ratio to it | CPU ms/step | fake CPU s "
        "| loop busy s | CP of actual spans s | max start lag s |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    lines = [head]
    for r in rows:
        poll = f"{r.poll_s:g}" if r.poll_s is not None else ""
        lag = f"{r.extra['lag_max_s']:.3f}" if "lag_max_s" in r.extra else ""
        actual = f"{r.extra['cp_actual_s']:.2f}" if "cp_actual_s" in r.extra else ""
        busy = f"{r.extra['loop_busy_s']:.2f}" if "loop_busy_s" in r.extra else ""
        fake = f"{r.extra['fake_cpu_s']:.2f}" if "fake_cpu_s" in r.extra else ""
        polled_bound = r.extra.get("polled_bound_s")
        pb = f"{polled_bound:.2f} | {r.makespan_s / polled_bound:.3f}" if polled_bound else " | "
        lines.append(
            f"| {r.case} | {r.tool} | {r.steps} | {r.jobs} | {r.width} | {poll} "
            f"| {r.critical_path_s:.2f} | {r.work_s:.2f} | {r.bound_s:.2f} | {r.makespan_s:.2f} "
            f"| {r.ratio:.3f} | {pb} | {r.cpu_ms_per_step:.2f} | {fake} | {busy} | {actual} "
            f"| {lag} |"
        )
    return "\n".join(lines)


def fifo_lines(rows: Sequence[Row]) -> list[str]:
    """FIFO ÷ critical-path-first makespan for each skewed pair (same -j and poll)."""
    out = []
    for fifo in (r for r in rows if r.tool.endswith("FIFO")):
        for cp in rows:
            same = (cp.case, cp.jobs, cp.poll_s) == (fifo.case, fifo.jobs, fifo.poll_s)
            if same and cp.tool == "imaginebuild":
                out.append(
                    f"{fifo.case} -j {fifo.jobs}, poll {fifo.poll_s:g} s: "
                    f"FIFO {fifo.makespan_s:.2f} s / critical-path-first {cp.makespan_s:.2f} s"
                    f" = {fifo.makespan_s / cp.makespan_s:.2f}"
                )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run every case and print the table (and write --json)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small graphs, short latencies")
    parser.add_argument("--seeds", type=int, default=3, help="random graphs to build")
    parser.add_argument("--small-j", type=int, default=4, help="the smaller -j")
    parser.add_argument("--poll", type=float, default=0.05, help="providers.xai.poll_interval")
    parser.add_argument("--image-format", default="jpeg", choices=("jpeg", "png"))
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument(
        "--profile", action="store_true", help="also profile one build and break its time down"
    )
    args = parser.parse_args(argv)
    scale = 0.25 if args.quick else 1.0
    lat = Latencies(image=(0.15 * scale, 0.25 * scale), video=(1.0 * scale, 3.0 * scale))
    if args.quick:
        n_random, n_images, n_extends, n_peers, seeds = 40, 40, 3, 40, 1
    else:
        n_random, n_images, n_extends, n_peers, seeds = 200, 150, 6, 100, args.seeds
    poll_s = args.poll * scale
    small = args.small_j
    rows: list[Row] = []
    profiled: tuple[Row, dict[str, float]] | None = None

    def keep(row: Row) -> None:
        rows.append(row)
        print(table([row]).splitlines()[-1], file=sys.stderr, flush=True)

    skew = skewed_graph(n_images, n_extends)
    peers = random_graph(n_peers, 1)
    with tempfile.TemporaryDirectory(prefix="bench-schedule-") as tmp:
        scratch = Path(tmp)
        fake = FakeServer(lat, args.image_format)
        try:
            warm_up(lat, fake, scratch, poll_s)
            for seed in range(1, seeds + 1):
                steps = random_graph(n_random, seed)
                for jobs in (width(steps), small):
                    keep(
                        run_engine(
                            f"random-{n_random}/s{seed}", steps, lat, jobs, poll_s, fake, scratch
                        )
                    )
            sweep = random_graph(n_random, 1)
            for factor in (2, 5, 10):  # the poll interval's two costs: load and overshoot
                poll = poll_s * factor
                case = f"random-{n_random}/s1"
                keep(run_engine(case, sweep, lat, width(sweep), poll, fake, scratch))
            for jobs in (width(peers), small):
                keep(run_engine(f"random-{n_peers}/s1", peers, lat, jobs, poll_s, fake, scratch))
            keep(run_engine("skewed", skew, lat, width(skew), poll_s, fake, scratch))
            for poll in (poll_s, 10 * poll_s):
                keep(run_engine("skewed", skew, lat, small, poll, fake, scratch))
                with fifo_priorities():
                    keep(
                        run_engine(
                            "skewed", skew, lat, small, poll, fake, scratch, "imaginebuild FIFO"
                        )
                    )
            if args.profile:
                profile = cProfile.Profile()
                steps = random_graph(n_random, 1)
                jobs = width(steps)
                row = run_engine("profiled", steps, lat, jobs, poll_s, fake, scratch, "-", profile)
                profiled = (row, breakdown(profile, len(steps)))
        finally:
            fake.stop()
        for case, steps in ((f"random-{n_peers}/s1", peers), ("skewed", skew)):
            for jobs in (width(steps), small):
                keep(run_scheduler_alone(case, steps, lat, jobs))
                for tool in ("make", "ninja"):
                    keep(run_peer(tool, case, steps, lat, jobs, scratch))
    print(table(rows))
    print()
    for line in fifo_lines(rows):
        print(line)
    if profiled is not None:
        row, parts = profiled
        print(f"\nProfiled build of random-{n_random}/s1 at -j {row.jobs} (profiler on: times")
        print(f"inflated; makespan {row.makespan_s:.2f} s), milliseconds per step:\n")
        print("| where | ms/step |\n|---|---:|")
        for category, ms in parts.items():
            print(f"| {category} | {ms:.2f} |")
    if args.json is not None:
        payload = [{**dataclasses.asdict(r), "ratio": r.ratio} for r in rows]
        document = {"rows": payload, "latencies": dataclasses.asdict(lat), "poll_s": poll_s}
        args.json.write_text(json.dumps(document, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
