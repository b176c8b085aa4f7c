"""Benchmark CLI start-up: `--version`, `validate` of a 10-asset mediafile, and a run
and a status with nothing to do, end to end.

Run from the repository root:

    python bench/bench_startup.py [--repeat N] [--json results.json]

Each case runs the command as a fresh process N times and keeps the median wall
time. Baselines measured in the same run make the figures comparable across
machines: `python -c pass` (the interpreter alone) and `python -c "import
argparse, yaml"` (what any Python CLI reading YAML pays). For each case the
modules a display, a report, a graph view or a network call would need (HEAVY:
networkx, jsonschema, httpx, rich, av, PIL among them) are listed if they were
imported, and a case that imports one fails: on these paths none may be (validate
may load jsonschema when the file changed since its last check: checking it
against the schema is its job). networkx in particular is only for `dag --format
json|graphml`, `plan --critical-path`, the report and a mediafile with a cycle.

The mediafile is the skyline example plus four images (10 assets). Shell completion
of asset names (`completion --assets`, what the bash, zsh and fish scripts call on
TAB) is timed on a 1,000-asset file against its own budget, 0.10 s. `validate` is
timed twice: in a copy without a state folder, where every run checks the file
against the schema (what an editor or a pre-commit hook pays after each edit), and
in a built copy whose unchanged file was checked before (the schema verdict is
remembered). `run` and `status` are timed in the built copy, where nothing is to do.

Bytecode is written to a temporary PYTHONPYCACHEPREFIX during the warm-up run,
so the timed runs load compiled modules as an installed package does, even where
PYTHONDONTWRITEBYTECODE is set, and the checkout gets no __pycache__ folders.
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
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "skyline"
BUDGET_S = 0.08
COMPLETION_BUDGET_S = 0.10  # completing asset names on a 1,000-asset file
COMPLETION_ASSETS = 1000
EXTRA_ASSETS = """\
  harbour:
    kind: image
    prompt: Fishing boats in a harbour at dawn, ${style}
  market:
    kind: image
    prompt: A flower market under a glass roof, ${style}
  bridge:
    kind: image
    prompt: A rope bridge over a river gorge, ${style}
  tower:
    kind: image
    prompt: A clock tower in the rain, ${style}
"""
# Modules that cost start-up time and that neither --version nor validate needs.
HEAVY = (
    "rich",
    "playwright",
    "httpx",
    "jsonschema",
    "networkx",
    "diskcache",
    "av",
    "PIL",
    "asyncio",
    "imaginebuild.cli.live",
    "imaginebuild.cli.report",
    "imaginebuild.cli.reportpage",
)


@dataclass(frozen=True)
class Case:
    """One command line to time (argv after the interpreter), with its budget."""

    name: str
    argv: tuple[str, ...]
    budget_s: float | None
    imaginebuild: bool = True
    allowed: tuple[str, ...] = ()  # heavy modules this command legitimately needs


@dataclass(frozen=True)
class Row:
    """The measured figures of one case."""

    name: str
    median_s: float
    min_s: float
    budget_s: float | None
    heavy_imports: tuple[str, ...]

    @property
    def within_budget(self) -> bool:
        """True when the median is inside the budget and nothing heavy was imported."""
        fast = self.budget_s is None or self.median_s <= self.budget_s
        return fast and not self.heavy_imports


def cases(fresh: Path, built: Path) -> tuple[Case, ...]:
    """The cases: two baselines, then the commands under their budget."""
    first, again = str(fresh / "mediafile.yaml"), str(built / "mediafile.yaml")
    ib = ("-m", "imaginebuild")
    return (
        Case("python -c pass", ("-c", "pass"), None, imaginebuild=False),
        Case("import argparse, yaml", ("-c", "import argparse, yaml"), None, imaginebuild=False),
        Case("imaginebuild --version", (*ib, "--version"), BUDGET_S),
        Case(
            "validate, file changed since its last check",
            (*ib, "-f", first, "validate"),
            BUDGET_S,
            allowed=("jsonschema",),
        ),
        Case(
            "--json validate, file changed",
            (*ib, "-f", first, "--json", "validate"),
            BUDGET_S,
            allowed=("jsonschema",),
        ),
        Case("validate, file unchanged", (*ib, "-f", again, "validate"), BUDGET_S),
        Case("run, nothing to do", (*ib, "-f", again, "run"), BUDGET_S),
        Case("status, nothing to do", (*ib, "-f", again, "status"), BUDGET_S),
        Case(
            f"completion of asset names, {COMPLETION_ASSETS:,} assets",
            (*ib, "-f", str(fresh / "many.yaml"), "completion", "--assets"),
            COMPLETION_BUDGET_S,
        ),
    )


def many_assets(count: int) -> str:
    """A mediafile of `count` image assets (what a shell completes names from)."""
    lines = ["version: 1", "provider: local", "assets:"]
    for n in range(count):
        lines += [f"  image-{n:04d}:", "    kind: image", f"    prompt: Picture number {n}"]
    return "\n".join(lines) + "\n"


def projects(tmp: Path, env: dict[str, str]) -> tuple[Path, Path]:
    """Two copies of the 10-asset project: one never touched, one built (local provider)."""
    copies = []
    for name in ("fresh", "built"):
        folder = tmp / name
        shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns(".imaginebuild", "out"))
        with (folder / "mediafile.yaml").open("a", encoding="utf-8") as handle:
            handle.write(EXTRA_ASSETS)
        copies.append(folder)
    fresh, built = copies
    (fresh / "many.yaml").write_text(many_assets(COMPLETION_ASSETS), encoding="utf-8")
    for _ in range(2):  # build, then a no-op that records the settled verdict
        subprocess.run(
            [sys.executable, "-m", "imaginebuild", "-q", "run"], cwd=built, env=env, check=True
        )
    return fresh, built


def environment(pycache: Path) -> dict[str, str]:
    """The environment of the timed processes: this checkout importable, no stray config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGINEBUILD_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    for name in ("PYTHONDONTWRITEBYTECODE", "PYTHONPROFILEIMPORTTIME"):
        env.pop(name, None)
    return env


def time_once(argv: Sequence[str], env: dict[str, str], cwd: Path) -> float:
    """Wall time of one run of the interpreter with `argv`; fails loudly on a non-zero exit."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *argv], env=env, cwd=cwd, capture_output=True, check=False
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr.decode()}")
    return elapsed


def heavy_imports(case: Case, env: dict[str, str], cwd: Path) -> tuple[str, ...]:
    """The HEAVY modules a run imports that it is not allowed, from `-X importtime`."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *case.argv],
        env=env,
        cwd=cwd,
        capture_output=True,
        check=False,
    )
    names = set()
    for line in done.stderr.decode().splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            names.add(line.rsplit("|", 1)[1].strip())
    return tuple(h for h in HEAVY if h in names and h not in case.allowed)


def measure(case: Case, repeat: int, env: dict[str, str], cwd: Path) -> Row:
    """Warm up once, then keep the median and the minimum of `repeat` runs."""
    time_once(case.argv, env, cwd)
    times = [time_once(case.argv, env, cwd) for _ in range(repeat)]
    heavy = heavy_imports(case, env, cwd) if case.imaginebuild else ()
    return Row(case.name, statistics.median(times), min(times), case.budget_s, heavy)


def table(rows: Sequence[Row]) -> str:
    """Markdown results, with ratios against both baselines of the same run."""
    bare, cli = rows[0].median_s, rows[1].median_s
    lines = [
        "| case | median ms | min ms | budget ms | ok | × python -c pass | × argparse+yaml "
        "| heavy imports |",
        "|---|---:|---:|---:|:-:|---:|---:|---|",
    ]
    for r in rows:
        budget = f"{r.budget_s * 1000:.0f}" if r.budget_s else ""
        lines.append(
            f"| {r.name} | {r.median_s * 1000:.1f} | {r.min_s * 1000:.1f} | {budget} "
            f"| {'yes' if r.within_budget else 'NO'} | {r.median_s / bare:.2f} "
            f"| {r.median_s / cli:.2f} | {', '.join(r.heavy_imports) or 'none'} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run every case; print the table; exit 1 if a command is over budget or imports too much."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=21, help="timed runs per case (default 21)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        env = environment(Path(tmp) / "pycache")
        env["IMAGINEBUILD_CACHE_DIR"] = str(Path(tmp) / "cache")
        fresh, built = projects(Path(tmp), env)
        rows = [measure(c, args.repeat, env, Path(tmp)) for c in cases(fresh, built)]
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    return 0 if all(r.within_budget for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
