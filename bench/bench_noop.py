"""The no-op run against its peers: each tool's wall time when every output is up to date.

A build tool is run far more often with nothing to do than with work; this is its
floor. For each N (`--sizes`, default 100, 1,000 and 10,000 assets) the pipeline of
`pipeline.py` (N/4 chains image → edit → animate → extend) is built once per tool,
then every command below runs as a fresh process, once to warm up and `--repeat`
times (default 11) in rounds — one run of each command per round, so load that
comes and goes falls on all of them alike. Median and minimum are kept; each
figure includes starting the process from Python (about a millisecond, which
matters only next to make's).

    python -c pass                  the interpreter alone (baseline)
    imaginebuild run / status       `python -m imaginebuild`, bytecode cached
    make -q / make                  GNU make, one explicit rule per output
    snakemake -n / snakemake -c2    Snakemake 9, one wildcard rule per stage
    dvc status / dvc repro          DVC 3 in a git repository, one stage per asset

Every run is checked to have done nothing (imaginebuild's summary says `built 0,
restored 0` and its status lists nothing stale, make -q exits 0, the peers print
that nothing is to be done); a command that did something is reported as not
measured. A command whose warm-up run is slow runs fewer times (as many as fit
in `--time-budget` seconds, at least `--min-repeat`); a run past `--run-timeout`,
a peer build past `--setup-timeout` or a size above a peer's `--cap` is printed
as "not measured: why" instead of hanging.

Builds: imaginebuild's project of N assets is taken from `--projects DIR` when
DIR/nN/ holds a built one (a lockfile), else built with `imaginebuild run -j 2`
and the local provider, whose time is the cold-build throughput in assets/s.
make is built with `make -j2`, Snakemake with `snakemake -c2 --scheduler
greedy`, DVC with `dvc repro` up to `--dvc-repro-max` assets (default 100) and
above that by writing the outputs and `dvc commit -f` (see `peers.py`). Projects
are built in a temporary folder removed at the end, or in `--keep DIR` and reused
by later runs. Snakemake and DVC come from `--peers-venv` (created with pinned
versions when missing).

    python bench/bench_noop.py [--sizes 100,1000,10000] [--repeat 11] [--projects DIR]
        [--keep DIR] [--peers-venv DIR] [--json FILE]

Exits 1 when an imaginebuild command misses its target (a median of 0.10 s at
1,000 assets, 0.5 s at 10,000) or could not be measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import peers
from pipeline import asset_names, mediafile

ROOT = Path(__file__).resolve().parent.parent
TARGETS_S = {1000: 0.10, 10000: 0.5}  # imaginebuild's no-op budget by pipeline size
BUILT_MARK = ".bench-built"  # written into a project once its build succeeded
IB_BUILD = "imaginebuild run -j 2 --provider local"


class NotMeasured(Exception):
    """A case or a project that could not be measured; the message says why."""


@dataclass(frozen=True)
class Case:
    """One command to time; it did nothing when its output holds every `expect`, no `reject`."""

    tool: str
    label: str
    argv: tuple[str, ...]
    cwd: Path
    env: Mapping[str, str]
    expect: tuple[str, ...] = ()
    reject: tuple[str, ...] = ()
    target_s: float | None = None


@dataclass
class Measured:
    """The samples of one case, or why it has none."""

    case: Case
    samples: list[float] = field(default_factory=list)
    warmup_s: float | None = None
    not_measured: str | None = None

    @property
    def median(self) -> float:
        """Median wall time in seconds."""
        return statistics.median(self.samples)

    @property
    def ok(self) -> bool | None:
        """Whether the median is within the target (None when there is no target)."""
        if self.case.target_s is None:
            return None
        return bool(self.samples) and self.median <= self.case.target_s


@dataclass(frozen=True)
class Setup:
    """How a project of one size came to be built, and how long its build took."""

    tool: str
    how: str
    build_s: float | None = None
    files_s: float | None = None
    not_measured: str | None = None


@dataclass(frozen=True)
class Settings:
    """The command-line choices the measurement needs."""

    repeat: int
    min_repeat: int
    time_budget: float
    run_timeout: float
    setup_timeout: float
    caps: Mapping[str, int]
    dvc_repro_max: int


# --- running one command --------------------------------------------------------------


def run_once(
    argv: Sequence[str], cwd: Path, env: Mapping[str, str], timeout: float | None
) -> tuple[float, int, str]:
    """Wall time, exit status and output (stdout and stderr) of one fresh process."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a timeout then stops the command's children too
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise NotMeasured(f"a run took more than {timeout:g} s") from None
    return time.perf_counter() - start, proc.returncode, out


def timed(case: Case, timeout: float) -> float:
    """One run of `case`: its wall time, or NotMeasured when it failed or did something."""
    seconds, code, out = run_once(case.argv, case.cwd, case.env, timeout)
    if code != 0:
        tail = " / ".join(out.strip().splitlines()[-2:])
        raise NotMeasured(f"exited {code}: {tail}")
    missing = [text for text in case.expect if text not in out]
    if missing:
        last = out.strip().splitlines()[-1:] or [""]
        raise NotMeasured(f"not a no-op ({missing[0]!r} not in output; last line {last[0]!r})")
    found = [text for text in case.reject if text in out]
    if found:
        raise NotMeasured(f"not a no-op ({found[0]!r} in output)")
    return seconds


def measure(cases: Sequence[Case], settings: Settings) -> list[Measured]:
    """Warm each case up, then time them in rounds (a slow case gets fewer rounds)."""
    results = [Measured(case) for case in cases]
    rounds: list[int] = []
    for result in results:
        try:
            result.warmup_s = timed(result.case, settings.run_timeout)
        except NotMeasured as why:
            result.not_measured = str(why)
        rounds.append(repeats(result.warmup_s, settings))
    for index in range(max(rounds, default=0)):
        for result, count in zip(results, rounds, strict=True):
            if result.not_measured is None and index < count:
                try:
                    result.samples.append(timed(result.case, settings.run_timeout))
                except NotMeasured as why:
                    result.not_measured = f"run {index + 1}: {why}"
                    result.samples.clear()
    return results


def repeats(warmup_s: float | None, settings: Settings) -> int:
    """How many timed runs a case gets: --repeat, fewer when they would pass the time budget."""
    if warmup_s is None:
        return 0
    fit = int(settings.time_budget // max(warmup_s, 1e-6))
    return max(settings.min_repeat, min(settings.repeat, fit))


# --- the projects ---------------------------------------------------------------------


def imaginebuild_env(pycache: Path) -> dict[str, str]:
    """The environment imaginebuild runs in: this checkout first, bytecode cached in `pycache`."""
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(pycache)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))
    return env


def imaginebuild_project(
    n: int, projects: Path | None, work: Path, env: Mapping[str, str]
) -> tuple[Path, Setup]:
    """A built imaginebuild project of `n` assets: prebuilt under `projects`, kept, or built now."""
    if projects is not None and (projects / f"n{n}" / "mediafile.lock").exists():
        folder = projects / f"n{n}"
        same = (folder / "mediafile.yaml").read_text() == mediafile(n)
        note = "" if same else "; its mediafile differs from pipeline.py's"
        return folder, Setup("imaginebuild", f"prebuilt in --projects{note}")
    folder = work / f"n{n}" / "imaginebuild"
    if (folder / BUILT_MARK).exists():
        return folder, earlier_build("imaginebuild", folder)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / "mediafile.yaml").write_text(mediafile(n))
    argv = [sys.executable, "-m", "imaginebuild", "run", "-j", "2", "--provider", "local"]
    build_s, code, out = run_once(argv, folder, env, None)
    if code != 0 or f"built {len(asset_names(n))}," not in out:
        raise NotMeasured(f"the cold build exited {code}: {out.strip()[-300:]}")
    return folder, mark_built("imaginebuild", folder, IB_BUILD, build_s, None)


def earlier_build(tool: str, folder: Path) -> Setup:
    """The setup of a project an earlier run built and kept (--keep)."""
    earlier = json.loads((folder / BUILT_MARK).read_text())
    how = f"built by an earlier run (--keep): {earlier['how']}"
    return Setup(tool, how, earlier["build_s"], earlier["files_s"])


def mark_built(tool: str, folder: Path, how: str, build_s: float, files_s: float | None) -> Setup:
    """Note in the project that its build succeeded (so --keep reuses it) and how long it took."""
    record = {"how": how, "build_s": build_s, "files_s": files_s}
    (folder / BUILT_MARK).write_text(json.dumps(record))
    return Setup(tool, how, build_s, files_s)


def peer_project(
    peer: peers.Peer, n: int, work: Path, tools: peers.Tools, settings: Settings
) -> tuple[Path, Setup]:
    """A peer's project of `n` assets brought up to date (or reused from --keep)."""
    folder = work / f"n{n}" / peer.name
    cap = settings.caps.get(peer.name)
    if cap is not None and n > cap:
        raise NotMeasured(f"{n} assets is above --cap {peer.name}={cap}")
    if (folder / BUILT_MARK).exists():
        return folder, earlier_build(peer.name, folder)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    try:
        start = time.perf_counter()
        peer.write(folder, n, tools)
        files_s = time.perf_counter() - start
        start = time.perf_counter()
        peer.build(folder, n, tools, settings.setup_timeout)
        build_s = time.perf_counter() - start
    except peers.PeerError as error:
        raise NotMeasured(f"setup failed: {error}") from None
    return folder, mark_built(peer.name, folder, peer.how, build_s, files_s)


def chosen_peer(name: str, n: int, settings: Settings) -> peers.Peer:
    """The peer to build at size `n` (DVC by `dvc commit -f` above --dvc-repro-max)."""
    if name == "dvc" and n > settings.dvc_repro_max:
        return peers.DVC_BY_COMMIT
    return peers.PEERS[name]


# --- one size -------------------------------------------------------------------------


def cases_for(
    n: int,
    ib_folder: Path | None,
    ib_env: Mapping[str, str],
    peer_folders: Mapping[str, Path],
    tools: peers.Tools,
) -> list[Case]:
    """Every command to time at size `n`, baseline first."""
    python = sys.executable
    cases = [Case("python", "python -c pass", (python, "-c", "pass"), ROOT, ib_env)]
    if ib_folder is not None:
        ib = (python, "-m", "imaginebuild")
        target = TARGETS_S.get(n)
        cases += [
            Case(
                "imaginebuild",
                "imaginebuild run",
                (*ib, "run"),
                ib_folder,
                ib_env,
                expect=("built 0,", "restored 0,"),
                target_s=target,
            ),
            Case(
                "imaginebuild",
                "imaginebuild status",
                (*ib, "status"),
                ib_folder,
                ib_env,
                expect=("up to date",),
                reject=("stale", "never built", "failed"),
                target_s=target,
            ),
        ]
    for name, folder in peer_folders.items():
        for command in peers.PEERS[name].commands(tools):
            expect = (command.expect,) if command.expect else ()
            cases.append(Case(name, command.label, command.argv, folder, tools.env, expect))
    return cases


def run_size(
    n: int,
    settings: Settings,
    chosen: Sequence[str],
    work: Path,
    projects: Path | None,
    ib_env: Mapping[str, str],
    tools: peers.Tools,
) -> tuple[list[Setup], list[Measured], dict[str, str]]:
    """Build what size `n` needs and time every command; the setups, results and skips."""
    setups: list[Setup] = []
    skipped: dict[str, str] = {}  # tool → why its commands were not measured
    ib_folder: Path | None = None
    progress(f"n={n}: imaginebuild project")
    try:
        ib_folder, setup = imaginebuild_project(n, projects, work, ib_env)
        setups.append(setup)
    except NotMeasured as why:
        skipped["imaginebuild"] = str(why)
        setups.append(Setup("imaginebuild", IB_BUILD, not_measured=str(why)))
    peer_folders: dict[str, Path] = {}
    for name in chosen:
        progress(f"n={n}: {name} project")
        peer = chosen_peer(name, n, settings)
        try:
            peer_folders[name], setup = peer_project(peer, n, work, tools, settings)
            setups.append(setup)
        except NotMeasured as why:
            skipped[name] = str(why)
            setups.append(Setup(name, peer.how, not_measured=str(why)))
    progress(f"n={n}: timing")
    results = measure(cases_for(n, ib_folder, ib_env, peer_folders, tools), settings)
    return setups, results, skipped


def progress(message: str) -> None:
    """A progress line on stderr (the tables go to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- reporting ------------------------------------------------------------------------


def seconds(value: float) -> str:
    """A duration with the precision its size deserves."""
    if value < 0.1:
        return f"{value:.4f}"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def ratio(value: float, base: float | None) -> str:
    """`value / base` as a multiple, blank without a base."""
    if not base:
        return ""
    r = value / base
    return f"{r:.2f}" if r < 10 else f"{r:,.0f}"


def table(
    n: int, results: Sequence[Measured], skipped: Mapping[str, str], chosen: Sequence[str]
) -> str:
    """The markdown table of one size."""
    base = {m.case.label: m.median for m in results if m.samples}
    make, python = base.get("make"), base.get("python -c pass")
    lines = [
        f"#### N = {n:,} assets",
        "",
        "| command | runs | median s | min s | × make | × python -c pass | target s | ok |",
        "|---|---:|---:|---:|---:|---:|---:|:-:|",
    ]
    for m in results:
        target = "" if m.case.target_s is None else f"{m.case.target_s:.2f}"
        if not m.samples:
            ok = "missed" if target else ""
            lines.append(
                f"| {m.case.label} | 0 | not measured: {m.not_measured} | | | | {target} | {ok} |"
            )
            continue
        ok = {None: "", True: "ok", False: "missed"}[m.ok]
        lines.append(
            f"| {m.case.label} | {len(m.samples)} | {seconds(m.median)} | {seconds(min(m.samples))}"
            f" | {ratio(m.median, make)} | {ratio(m.median, python)} | {target} | {ok} |"
        )
    for tool in ("imaginebuild", *chosen):
        if tool in skipped:
            lines.append(f"| {tool} (all) | 0 | not measured: {skipped[tool]} | | | | | |")
    return "\n".join(lines)


def setup_table(n: int, setups: Sequence[Setup]) -> str:
    """The markdown table of how each project of one size was built."""
    lines = [
        f"Projects at N = {n:,}:",
        "",
        "| tool | how | files s | build s | assets/s |",
        "|---|---|---:|---:|---:|",
    ]
    for s in setups:
        if s.not_measured:
            lines.append(f"| {s.tool} | {s.how} | | not measured: {s.not_measured} | |")
            continue
        files = "" if s.files_s is None else seconds(s.files_s)
        build = "" if s.build_s is None else seconds(s.build_s)
        rate = "" if not s.build_s else f"{n / s.build_s:,.1f}"
        lines.append(f"| {s.tool} | {s.how} | {files} | {build} | {rate} |")
    return "\n".join(lines)


def versions(
    ib_env: Mapping[str, str], tools: peers.Tools, chosen: Sequence[str]
) -> dict[str, str]:
    """The exact version of the interpreter and of every tool measured."""
    found = {"python": f"Python {platform.python_version()}"}
    _, _, out = run_once([sys.executable, "-m", "imaginebuild", "--version"], ROOT, ib_env, 60)
    found["imaginebuild"] = out.strip()
    for name in chosen:
        found[name] = peers.PEERS[name].version(tools)
    if "dvc" in chosen:
        found["git"] = run_once(["git", "--version"], ROOT, tools.env, 60)[2].strip()
    return found


def as_json(
    n: int, setups: Sequence[Setup], results: Sequence[Measured], skipped: Mapping[str, str]
) -> dict[str, object]:
    """One size's raw figures for --json."""
    return {
        "n": n,
        "setups": [vars(s) for s in setups],
        "skipped": dict(skipped),
        "cases": [
            {
                "tool": m.case.tool,
                "label": m.case.label,
                "argv": list(m.case.argv),
                "target_s": m.case.target_s,
                "warmup_s": m.warmup_s,
                "samples_s": m.samples,
                "median_s": m.median if m.samples else None,
                "min_s": min(m.samples) if m.samples else None,
                "not_measured": m.not_measured,
            }
            for m in results
        ],
    }


# --- command line ---------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="100,1000,10000", help="comma-separated asset counts")
    parser.add_argument("--repeat", type=int, default=11, help="timed runs per command")
    parser.add_argument(
        "--min-repeat",
        type=int,
        default=3,
        help="timed runs of a command even when slow (default 3)",
    )
    parser.add_argument(
        "--time-budget",
        type=float,
        default=60,
        help="seconds of timed runs per command before fewer runs (default 60)",
    )
    parser.add_argument(
        "--run-timeout",
        type=float,
        default=300,
        help="seconds one run may take before it is not measured (default 300)",
    )
    parser.add_argument(
        "--setup-timeout",
        type=float,
        default=1800,
        help="seconds a peer's build may take (default 1800)",
    )
    parser.add_argument(
        "--cap",
        action="append",
        default=[],
        metavar="PEER=N",
        help="do not set up PEER above N assets (repeatable)",
    )
    parser.add_argument(
        "--dvc-repro-max",
        type=int,
        default=100,
        help="build DVC with dvc repro up to this N, above with dvc commit -f",
    )
    parser.add_argument("--peers", default=",".join(peers.PEERS), help="which peers to measure")
    parser.add_argument(
        "--peers-venv",
        type=Path,
        default=peers.DEFAULT_VENV,
        help="the venv with snakemake and dvc (created when missing)",
    )
    parser.add_argument(
        "--projects", type=Path, help="DIR/nN/ may hold built imaginebuild projects"
    )
    parser.add_argument("--keep", type=Path, help="build projects here and reuse them next time")
    parser.add_argument("--json", type=Path, help="also write every sample as JSON here")
    return parser.parse_args(argv)


def caps(values: Sequence[str], chosen: Sequence[str]) -> dict[str, int]:
    """--cap PEER=N values as a mapping (a bad one is a usage error)."""
    found: dict[str, int] = {}
    for value in values:
        name, _, size = value.partition("=")
        if name not in chosen or not size.isdigit():
            raise SystemExit(f"--cap {value}: expected PEER=N with PEER one of {', '.join(chosen)}")
        found[name] = int(size)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Build, time and print a table per size; exit 1 when imaginebuild misses a target."""
    args = parse_args(argv)
    chosen = [p for p in args.peers.split(",") if p]
    unknown = set(chosen) - set(peers.PEERS)
    if unknown:
        raise SystemExit(f"--peers: unknown {', '.join(sorted(unknown))}")
    sizes = [int(s) for s in re.split(r"[,\s]+", args.sizes) if s]
    settings = Settings(
        args.repeat,
        args.min_repeat,
        args.time_budget,
        args.run_timeout,
        args.setup_timeout,
        caps(args.cap, chosen),
        args.dvc_repro_max,
    )
    if {"snakemake", "dvc"} & set(chosen):
        tools = peers.ensure_venv(args.peers_venv.resolve())
    else:
        tools = peers.Tools(args.peers_venv, dict(os.environ))
    scratch = Path(tempfile.mkdtemp(prefix="noop-"))
    work = args.keep.resolve() if args.keep else scratch
    ib_env = imaginebuild_env(scratch / "pycache")
    failed = False
    try:
        found = versions(ib_env, tools, chosen)
        print("Versions: " + ", ".join(found.values()))
        print(
            f"Machine: {platform.machine()}, {os.cpu_count()} cores; "
            f"load average {os.getloadavg()[0]:.2f} at start\n"
        )
        done: list[dict[str, object]] = []
        for n in sizes:
            setups, results, skipped = run_size(
                n, settings, chosen, work, args.projects, ib_env, tools
            )
            print(table(n, results, skipped, chosen) + "\n")
            print(setup_table(n, setups) + "\n", flush=True)
            failed |= "imaginebuild" in skipped
            failed |= any(m.ok is False for m in results)
            failed |= any(m.case.tool == "imaginebuild" and not m.samples for m in results)
            done.append(as_json(n, setups, results, skipped))
            if args.json:  # after every size, so a long run leaves what it has
                report = {"versions": found, "settings": vars(settings), "sizes": done}
                args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"load average {os.getloadavg()[0]:.2f} at the end")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
