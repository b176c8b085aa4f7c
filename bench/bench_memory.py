"""Peak memory of `plan`, `status` and `validate` on a large, never-built mediafile.

The mediafile is `bench/pipeline.py`'s pipeline of `--assets` assets (10,000 by
default), never built, so every asset is planned. Each command runs as a fresh
process under `/usr/bin/time`, whose "maximum resident set size" is the
command's own peak: a child measured from a Python parent with
`getrusage(RUSAGE_CHILDREN)` or `wait4` starts from the parent's resident size
(the kernel carries the pre-exec high-water mark over), which would hide
anything smaller than the parent. Baselines from the same run: `python -c pass`
and `python -c "import yaml"`.

    python bench/bench_memory.py [--quick] [--assets N] [--repeat N] [--json FILE]

Prints a markdown table; exits 1 when a command exits non-zero or peaks over
`--limit-mb` (300 MB).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import pipeline  # noqa: E402  (the bench folder is not a package)

TIME = Path("/usr/bin/time")
LIMIT_MB = 300.0


@dataclass
class Case:
    """One command's peaks and wall times over the repeats."""

    name: str
    budgeted: bool
    peak_mb: list[float]
    seconds: list[float]
    exit_codes: list[int]

    @property
    def worst_mb(self) -> float:
        """The highest peak of the repeats (what the budget is held against)."""
        return max(self.peak_mb)


def peak_and_time(
    argv: Sequence[str], cwd: Path, env: Mapping[str, str], scratch: Path
) -> tuple[float, float, int]:
    """Peak RSS in MB, wall seconds and exit code of one run of `argv` under /usr/bin/time."""
    figures = scratch / "time.txt"
    log = scratch / "output.log"
    with log.open("wb") as out:
        done = subprocess.run(
            [str(TIME), "-f", "%M %e %x", "-o", str(figures), *argv],
            cwd=cwd,
            env=dict(env),
            stdout=out,
            stderr=out,
        )
    line = figures.read_text().strip().splitlines()[-1]  # after "Command exited …", if any
    kb, seconds, code = line.split()
    if done.returncode != int(code):
        raise SystemExit(f"/usr/bin/time said {code}, the run {done.returncode}")
    return int(kb) / 1024, float(seconds), int(code)


def commands(python: str) -> list[tuple[str, list[str], bool]]:
    """(name, argv, held to the budget) for every case, baselines first."""
    ib = [python, "-m", "imaginebuild"]
    return [
        ("python -c pass", [python, "-c", "pass"], False),
        ('python -c "import yaml"', [python, "-c", "import yaml"], False),
        ("imaginebuild validate", [*ib, "validate"], True),
        ("imaginebuild plan", [*ib, "plan"], True),
        ("imaginebuild --json plan", [*ib, "--json", "plan"], True),
        ("imaginebuild status", [*ib, "status"], True),
    ]


def measure(project: Path, repeat: int, env: Mapping[str, str], scratch: Path) -> list[Case]:
    """Run every case once to warm up, then `repeat` times round robin."""
    cases = [Case(name, budgeted, [], [], []) for name, _, budgeted in commands(sys.executable)]
    argvs = [argv for _, argv, _ in commands(sys.executable)]
    for argv in argvs:
        peak_and_time(argv, project, env, scratch)  # bytecode, page cache
    for _ in range(repeat):
        for case, argv in zip(cases, argvs, strict=True):
            peak, seconds, code = peak_and_time(argv, project, env, scratch)
            case.peak_mb.append(peak)
            case.seconds.append(seconds)
            case.exit_codes.append(code)
    return cases


def ok(case: Case, limit_mb: float) -> bool:
    """A case passes when every run exited 0 and, if budgeted, peaked within the limit."""
    clean = not any(case.exit_codes)
    return clean and (not case.budgeted or case.worst_mb <= limit_mb)


def print_table(cases: Sequence[Case], assets: int, limit_mb: float) -> None:
    """The figures as a markdown table, with ratios to `import yaml`."""
    yaml_mb = statistics.median(cases[1].peak_mb)
    print(f"### Peak RSS on a never-built {assets:,}-asset mediafile\n")
    print("| command | median peak MB | max peak MB | × import yaml | median s | exit | ok |")
    print("|---|---:|---:|---:|---:|---:|:-:|")
    for c in cases:
        median = statistics.median(c.peak_mb)
        verdict = "yes" if ok(c, limit_mb) else "NO"
        codes = ",".join(sorted({str(x) for x in c.exit_codes}))
        print(
            f"| {c.name} | {median:.1f} | {c.worst_mb:.1f} | {median / yaml_mb:.2f} "
            f"| {statistics.median(c.seconds):.2f} | {codes} | {verdict} |"
        )
    print(f"\nBudget: {limit_mb:g} MB peak for validate, plan and status.\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Write the mediafile, measure every command, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="400 assets, one repeat")
    parser.add_argument("--assets", type=int, default=None, help="pipeline size (10000)")
    parser.add_argument("--repeat", type=int, default=None, help="runs per command (3)")
    parser.add_argument("--limit-mb", type=float, default=LIMIT_MB)
    parser.add_argument("--json", type=Path, default=None, help="write every figure here")
    args = parser.parse_args(argv)
    assets = args.assets or (400 if args.quick else 10_000)
    repeat = args.repeat or (1 if args.quick else 3)
    if not TIME.is_file():
        raise SystemExit(f"{TIME} (GNU time) is needed to measure a child's own peak")
    work = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONPYCACHEPREFIX": str(work / "pycache")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    try:
        project = work / "project"
        project.mkdir()
        (project / "mediafile.yaml").write_text(pipeline.mediafile(assets))
        cases = measure(project, repeat, env, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_table(cases, assets, args.limit_mb)
    passed = all(ok(c, args.limit_mb) for c in cases)
    if args.json:
        report = {
            "assets": assets,
            "repeat": repeat,
            "limit_mb": args.limit_mb,
            "ok": passed,
            "cases": [{**asdict(c), "ok": ok(c, args.limit_mb)} for c in cases],
        }
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
