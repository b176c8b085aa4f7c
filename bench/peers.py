"""The comparison's peers — make, Snakemake and DVC — on the benchmark pipeline.

Each peer gets the shape `pipeline.py` gives imaginebuild (N/4 independent chains
image → edit → animate → extend, same output paths) with a cheap action per asset:
it copies its upstream output and appends its own name, so every output is a few
bytes and the tools' own bookkeeping is all that is measured.

    make        Makefile, one explicit rule per output; built with `make -j2`
    snakemake   Snakefile, one wildcard rule per stage (the idiomatic form);
                built with `snakemake -c2 --scheduler greedy`
    dvc         git + DVC project, dvc.yaml with one stage per asset (deps: the
                upstream output, outs: its output); built with `dvc repro`, or
                (`DVC_BY_COMMIT`, for large N, where repro's build grows with the
                square of the stage count) by writing the outputs directly and
                recording them with `dvc commit -f`, which leaves the same state

Snakemake and DVC live in their own virtual environment so the project's
dependencies stay clean: `ensure_venv` creates it on demand with the pinned
versions below.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pipeline import STAGES, SUFFIX, asset_names, chain_count, output_path, upstream

DVC = "dvc==3.67.1"
SNAKEMAKE = "snakemake==9.27.1"
DEFAULT_VENV = Path(__file__).resolve().parent / ".peers"


class PeerError(Exception):
    """A peer command failed or ran past its time limit."""


@dataclass(frozen=True)
class Tools:
    """Where the peers' programs are and the environment they run in."""

    venv: Path
    env: Mapping[str, str]

    def bin(self, name: str) -> str:
        """The path of a program installed in the peers' venv."""
        return str(self.venv / "bin" / name)


@dataclass(frozen=True)
class Command:
    """A no-op command of a peer: `expect` appears in its output when nothing was done."""

    label: str
    argv: tuple[str, ...]
    expect: str = ""


@dataclass(frozen=True)
class Peer:
    """One tool of the comparison: how to write its project, build it and time its no-ops."""

    name: str
    how: str  # how `build` brings the project up to date, in words
    write: Callable[[Path, int, Tools], None]
    build: Callable[[Path, int, Tools, float], None]
    commands: Callable[[Tools], tuple[Command, ...]]
    version: Callable[[Tools], str]


def ensure_venv(venv: Path) -> Tools:
    """The peers' tools in `venv`, creating the venv and installing them when missing."""
    if not (venv / "bin" / "dvc").exists() or not (venv / "bin" / "snakemake").exists():
        print(f"installing {DVC} and {SNAKEMAKE} into {venv}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        (venv / ".gitignore").write_text("*\n")
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", DVC, SNAKEMAKE]
        subprocess.run(pip, check=True, stdout=sys.stderr)
    env = {
        **os.environ,
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "DVC_NO_ANALYTICS": "1",
    }
    for name in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONPYCACHEPREFIX"):
        env.pop(name, None)
    return Tools(venv=venv, env=env)


def run(argv: list[str], cwd: Path, tools: Tools, timeout: float) -> str:
    """Run a peer command to completion; its output, or PeerError on failure or timeout."""
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=dict(tools.env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # so a timeout can stop the tool's children too
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise PeerError(f"{' '.join(argv[:2])} took more than {timeout:.0f} s") from None
    if proc.returncode != 0:
        tail = "\n".join(out.splitlines()[-5:])
        raise PeerError(f"{' '.join(argv)} exited {proc.returncode}: {tail}")
    return out


# --- the action every peer runs for an asset ------------------------------------------


def action(name: str) -> str:
    """The shell command that makes `name`'s output: its upstream's bytes, then its name."""
    out, up = output_path(name), upstream(name)
    if up is None:
        return f"echo {name} > {out}"
    return f"cat {output_path(up)} > {out} && echo {name} >> {out}"


def output_bytes(name: str) -> bytes:
    """What `action(name)` writes (the chain's names so far, one a line)."""
    up = upstream(name)
    return (b"" if up is None else output_bytes(up)) + f"{name}\n".encode()


# --- make -----------------------------------------------------------------------------


def makefile(n: int) -> str:
    """A Makefile with one explicit rule per output, each depending on its upstream output."""
    names = asset_names(n)
    lines = [".PHONY: all", f"all: {' '.join(output_path(a) for a in names)}", ""]
    for name in names:
        up = upstream(name)
        lines += [f"{output_path(name)}: {'' if up is None else output_path(up)}".rstrip()]
        lines += [f"\t@{action(name)}", ""]
    return "\n".join(lines)


def write_make(folder: Path, n: int, tools: Tools) -> None:
    """The make project: its Makefile and an empty out/."""
    (folder / "out").mkdir(parents=True, exist_ok=True)
    (folder / "Makefile").write_text(makefile(n))


def build_make(folder: Path, n: int, tools: Tools, timeout: float) -> None:
    """Bring the make project up to date (`make -j2`)."""
    run(["make", "-j2"], folder, tools, timeout)


def make_commands(tools: Tools) -> tuple[Command, ...]:
    """make's no-ops: the question (`make -q`, exit 0 when up to date) and the run."""
    return (Command("make -q", ("make", "-q")), Command("make", ("make",), "Nothing to be done"))


def make_version(tools: Tools) -> str:
    """`GNU Make 4.3`."""
    return run(["make", "--version"], Path.cwd(), tools, 30).splitlines()[0]


# --- Snakemake ------------------------------------------------------------------------


def snakefile(n: int) -> str:
    """A Snakefile with one wildcard rule per stage and `all` asking for every output."""
    pattern = {stage: f"out/{stage}{{c}}.{SUFFIX[stage]}" for stage in STAGES}
    lines = [
        f"CHAINS = range({chain_count(n)})",
        "",
        "wildcard_constraints:",
        '    c=r"\\d+"',
        "",
        "rule all:",
        "    input:",
        *(f'        expand("{pattern[s]}", c=CHAINS),' for s in STAGES),
    ]
    for index, stage in enumerate(STAGES):
        lines += ["", f"rule {stage}:"]
        previous = STAGES[index - 1] if index else None
        if previous is None:
            shell = f"echo {stage}{{wildcards.c}} > {{output}}"
        else:
            lines.append(f'    input: "{pattern[previous]}"')
            shell = f"cat {{input}} > {{output}} && echo {stage}{{wildcards.c}} >> {{output}}"
        lines += [f'    output: "{pattern[stage]}"', f'    shell: "{shell}"']
    return "\n".join(lines) + "\n"


def write_snakemake(folder: Path, n: int, tools: Tools) -> None:
    """The Snakemake project: its Snakefile."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Snakefile").write_text(snakefile(n))


def build_snakemake(folder: Path, n: int, tools: Tools, timeout: float) -> None:
    """Bring the Snakemake project up to date (`snakemake -c2 --scheduler greedy`).

    The default ILP scheduler re-solves its job selection over every ready job, so
    with thousands of independent chains the build slows to a few jobs a second
    (hours at 10,000); the greedy one is Snakemake's own fast choice.
    """
    argv = [tools.bin("snakemake"), "-c2", "--scheduler", "greedy", "--quiet"]
    run(argv, folder, tools, timeout)


def snakemake_commands(tools: Tools) -> tuple[Command, ...]:
    """Snakemake's no-ops: the dry run and the run, on two cores."""
    snakemake = tools.bin("snakemake")
    return (
        Command("snakemake -n", (snakemake, "-n"), "Nothing to be done"),
        Command("snakemake -c2", (snakemake, "-c2"), "Nothing to be done"),
    )


def snakemake_version(tools: Tools) -> str:
    """`snakemake 9.27.1`."""
    return "snakemake " + run([tools.bin("snakemake"), "--version"], Path.cwd(), tools, 60).strip()


# --- DVC ------------------------------------------------------------------------------


def dvc_yaml(n: int) -> str:
    """dvc.yaml with one stage per asset: deps its upstream output, outs its output."""
    lines = ["stages:"]
    for name in asset_names(n):
        up = upstream(name)
        lines += [f"  {name}:", f"    cmd: {json.dumps(action(name))}"]
        if up is not None:
            lines += ["    deps:", f"    - {output_path(up)}"]
        lines += ["    outs:", f"    - {output_path(name)}"]
    return "\n".join(lines) + "\n"


def write_dvc(folder: Path, n: int, tools: Tools) -> None:
    """The DVC project: a git repository, `dvc init`, dvc.yaml and an empty out/.

    Analytics and update checks are off, and DVC's site cache (its index and state
    databases, by default in a system-wide folder) stays inside the project, so
    nothing is left behind elsewhere — also by the set-up commands, which run
    before the setting exists.
    """
    (folder / "out").mkdir(parents=True, exist_ok=True)
    site = str(folder.resolve() / ".dvc" / "tmp" / "site")
    setup = Tools(tools.venv, {**tools.env, "DVC_SITE_CACHE_DIR": site})
    dvc = tools.bin("dvc")
    run(["git", "init", "-q"], folder, setup, 60)
    run([dvc, "init", "-q"], folder, setup, 120)
    for key, value in (
        ("core.analytics", "false"),
        ("core.check_update", "false"),
        ("core.site_cache_dir", site),
    ):
        run([dvc, "config", key, value], folder, setup, 60)
    (folder / "dvc.yaml").write_text(dvc_yaml(n))


def build_dvc(folder: Path, n: int, tools: Tools, timeout: float) -> None:
    """Bring the DVC project up to date with `dvc repro` (runs every stage's command)."""
    run([tools.bin("dvc"), "repro", "-q"], folder, tools, timeout)


def commit_dvc(folder: Path, n: int, tools: Tools, timeout: float) -> None:
    """Bring the DVC project up to date faster: write the outputs, then `dvc commit -f`.

    The outputs get the bytes the stages' commands would write, out/.gitignore
    the lines `dvc repro` would add, and `dvc commit` records the outputs in
    dvc.lock and the cache: the state `dvc repro` leaves, without repro's cost of
    rewriting dvc.lock after every stage (its build time grows with the square of
    the stage count).
    """
    names = asset_names(n)
    for name in names:
        (folder / output_path(name)).write_bytes(output_bytes(name))
    ignored = "".join(f"/{Path(output_path(name)).name}\n" for name in names)
    (folder / "out" / ".gitignore").write_text(ignored)
    run([tools.bin("dvc"), "commit", "-f", "-q"], folder, tools, timeout)


def dvc_commands(tools: Tools) -> tuple[Command, ...]:
    """DVC's no-ops: `dvc status` and `dvc repro` with nothing to reproduce."""
    dvc = tools.bin("dvc")
    return (
        Command("dvc status", (dvc, "status"), "Data and pipelines are up to date"),
        Command("dvc repro", (dvc, "repro"), "Data and pipelines are up to date"),
    )


def dvc_version(tools: Tools) -> str:
    """`dvc 3.67.1`."""
    return "dvc " + run([tools.bin("dvc"), "--version"], Path.cwd(), tools, 60).strip()


PEERS = {
    "make": Peer("make", "make -j2", write_make, build_make, make_commands, make_version),
    "snakemake": Peer(
        "snakemake",
        "snakemake -c2 --scheduler greedy",
        write_snakemake,
        build_snakemake,
        snakemake_commands,
        snakemake_version,
    ),
    "dvc": Peer("dvc", "dvc repro", write_dvc, build_dvc, dvc_commands, dvc_version),
}
DVC_BY_COMMIT = Peer(
    "dvc", "outputs written, then dvc commit -f", write_dvc, commit_dvc, dvc_commands, dvc_version
)
