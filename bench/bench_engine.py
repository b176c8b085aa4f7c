"""The engine's own CPU per step: a build whose every step is restored from the cache.

A restore does everything a step does except the provider call: decide the asset
(input digests, key, lockfile), find the action, copy and verify its outputs,
record the lockfile entry, report. Its CPU time per step is therefore the
engine's overhead per step, the figure the provider's seconds of latency hide.

    python bench/bench_engine.py --project DIR [--repeat N] [--json FILE]

DIR is a built project (for instance bench/.work/n1000 made by bench_noop.py,
or `python bench/pipeline.py 1000 DIR && imaginebuild -C DIR run`). Each repeat
copies its mediafile into a fresh folder that shares DIR's cache, then times
`imaginebuild run` there as a child process: user + sys CPU (from wait4) and
wall time. The same is timed for a restore of the first asset alone (the same
mediafile, so the same start-up, imports and validation), and the engine's CPU
per step is the difference over the other steps: the marginal cost of a step,
not start-up spread thin. Baselines in the same run: `python -c pass` and
`imaginebuild run` with nothing to do in DIR.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Sample:
    """One timed child process."""

    wall_s: float
    cpu_s: float


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[Sample, str]:
    """Run `argv` as a child; its wall time, its own user + sys CPU, and its stderr."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, usage = os.wait4(proc.pid, 0)[1:]
    wall = time.perf_counter() - start
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    if proc.stdout:
        proc.stdout.close()
    if proc.stderr:
        proc.stderr.close()
    return Sample(wall, usage.ru_utime + usage.ru_stime), stderr


def count(summary: str, state: str) -> int:
    """How many assets the run's summary line puts in `state` ('restored', 'up to date'…)."""
    found = re.search(rf"{state} (\d+)", summary)
    return int(found.group(1)) if found else 0


def first_asset(mediafile: Path) -> str:
    """The first asset named in a mediafile written by bench/pipeline.py (or alike)."""
    lines = mediafile.read_text(encoding="utf-8").splitlines()
    start = lines.index("assets:") + 1
    return lines[start].strip().split(":", 1)[0]


def main() -> int:
    """Time restore-only builds and print the engine's CPU per step."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, required=True, help="a built project folder")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    project = args.project.resolve()
    if not (project / "mediafile.lock").is_file():
        raise SystemExit(f"{project} has no lockfile: build it first")
    work = Path(tempfile.mkdtemp(prefix="engine-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGINEBUILD_")}
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["IMAGINEBUILD_CACHE_DIR"] = str(project / ".imaginebuild" / "cache")
    ib = [sys.executable, "-m", "imaginebuild", "-q"]
    try:
        subprocess.run([*ib, "run"], cwd=project, env=env, check=True, capture_output=True)
        bare = [timed([sys.executable, "-c", "pass"], work, env)[0] for _ in range(args.repeat)]
        noop = [timed([*ib, "run"], project, env)[0] for _ in range(args.repeat)]
        first = first_asset(project / "mediafile.yaml")
        restores: list[Sample] = []
        singles: list[Sample] = []
        steps = 0
        for i in range(args.repeat):
            for targets, into in (((), restores), ((first,), singles)):
                folder = work / f"copy{i}-{len(targets)}"
                folder.mkdir()
                shutil.copy2(project / "mediafile.yaml", folder / "mediafile.yaml")
                argv = [*ib, "run", "-j", str(args.jobs), *targets]
                sample, stderr = timed(argv, folder, env)
                restored = count(stderr, "restored")
                if restored == 0 or count(stderr, "built") != 0:
                    raise SystemExit(f"expected a restore-only build, got: {stderr.strip()}")
                if not targets:
                    steps = restored
                into.append(sample)
                shutil.rmtree(folder)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = {
        name: Sample(
            statistics.median(s.wall_s for s in samples),
            statistics.median(s.cpu_s for s in samples),
        )
        for name, samples in (
            ("python -c pass", bare),
            ("no-op run", noop),
            ("restore of one asset", singles),
            (f"restore of all {steps}", restores),
        )
    }
    whole, one = med[f"restore of all {steps}"], med["restore of one asset"]
    per_step_cpu = (whole.cpu_s - one.cpu_s) / (steps - 1)
    per_step_wall = (whole.wall_s - one.wall_s) / (steps - 1)
    print(f"{steps} steps restored from the cache, -j {args.jobs}, median of {args.repeat}\n")
    print("| case | wall s | CPU s |")
    print("|---|---:|---:|")
    for name, s in med.items():
        print(f"| {name} | {s.wall_s:.3f} | {s.cpu_s:.3f} |")
    print(
        f"\nengine CPU per step: {per_step_cpu * 1000:.2f} ms (target 2 ms); "
        f"wall per step {per_step_wall * 1000:.2f} ms"
    )
    if args.json:
        data = {
            "steps": steps,
            "jobs": args.jobs,
            "samples": {
                "python -c pass": [asdict(s) for s in bare],
                "no-op run": [asdict(s) for s in noop],
                "restore of one asset": [asdict(s) for s in singles],
                "restore": [asdict(s) for s in restores],
            },
            "engine_cpu_ms_per_step": per_step_cpu * 1000,
        }
        args.json.write_text(json.dumps(data, indent=2) + "\n")
    return 0 if per_step_cpu <= 0.002 else 1


if __name__ == "__main__":
    raise SystemExit(main())
