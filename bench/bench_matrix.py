"""Benchmark matrix assets: a catalog written as matrix templates against the same assets
written out by hand, for `validate`, a no-op `run` and `plan`.

Run from the repository root:

    python bench/bench_matrix.py [--products 50] [--formats 4] [--repeat 15]
                                 [--keep DIR] [--json results.json]

The catalog has, per product, a hero image, a detail image, a lifestyle edit and
its animation, and per product and format five edits (spot, poster, banner, thumb,
social): 24 assets a product, 1,200 for 50 products × 4 formats. The matrix file
declares them in nine templates; the hand-written file lists all of them, as a
team would before matrices. Both projects share one cache: the hand-written one is
built (local provider), the matrix one is then brought up to date from the cache
without a call, which is itself the check that the two declare the same assets.

Every command runs as a fresh process, in rounds (each command once a round, so
a change of load hits all alike); the figure is the median, and each is reported
as the ratio matrix ÷ hand-written (target ≤ 1.2). Each timed no-op run is
checked to have done nothing, and one run of each with `-X importtime` must not
import yaml or the matrix module: the no-op answer comes from the settled
snapshot without parsing the file.
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
LOGO = REPO / "examples" / "catalog" / "art" / "logo.png"
TARGET = 1.2
FORMATS = (("wide", "16:9"), ("tall", "9:16"), ("square", "1:1"), ("classic", "4:3"))
NOT_ON_NOOP = ("yaml", "imaginebuild.mediafile.matrix", "imaginebuild.mediafile.load")

HEAD = """\
version: 1
provider: local
defaults:
  image: {resolution: 1k}
  video: {resolution: 480p, duration: 1}
"""

# (name, kind, prompt, inputs, per format) in dependency order; {p} is the product,
# {f} the format's name, {r} its ratio. Products are `prod00`, `prod01`, …
TEMPLATES: tuple[tuple[str, str, str, tuple[str, ...], bool], ...] = (
    ("hero-{p}", "image", "Studio shot of the {p} headphones on white", (), False),
    ("detail-{p}", "image", "Macro shot of the {p} headphones' hinge", (), False),
    ("life-{p}", "edit", "Put <IMAGE_0> on a desk by a window", ("hero-{p}",), False),
    ("clip-{p}", "animate", "The camera circles the {p} headphones", ("life-{p}",), False),
    ("spot-{p}-{f}", "edit", "Place <IMAGE_0> on a {f} billboard", ("hero-{p}", "logo"), True),
    ("poster-{p}-{f}", "edit", "A {f} poster built around <IMAGE_0>", ("spot-{p}-{f}",), True),
    ("banner-{p}-{f}", "edit", "A {f} banner of <IMAGE_0>", ("spot-{p}-{f}", "logo"), True),
    ("thumb-{p}-{f}", "edit", "A {f} thumbnail of <IMAGE_0>", ("poster-{p}-{f}",), True),
    ("social-{p}-{f}", "edit", "A {f} social post of <IMAGE_0>", ("banner-{p}-{f}",), True),
)


def products(count: int) -> list[str]:
    """The product names of a catalog of `count` products."""
    return [f"prod{i:02d}" for i in range(count)]


def _inputs(refs: Sequence[str], fill: dict[str, str]) -> str:
    paths = ["art/logo.png" if r == "logo" else r.format(**fill) for r in refs]
    return "[" + ", ".join(f'"{p}"' for p in paths) + "]"


def matrix_text(n_products: int, n_formats: int) -> str:
    """The catalog as matrix templates."""
    listed = ", ".join(products(n_products))
    formats = ", ".join(f'{{name: {n}, ratio: "{r}"}}' for n, r in FORMATS[:n_formats])
    lines = [HEAD.rstrip(), "vars:", f"  products: [{listed}]", f"  formats: [{formats}]"]
    lines.append("assets:")
    fill = {"p": "${product}", "f": "${format.name}"}
    both, one = '{product: "${products}", format: "${formats}"}', '{product: "${products}"}'
    for name, kind, prompt, refs, per_format in TEMPLATES:
        lines.append(f"  {name.format(**fill)}:")
        lines.append(f"    matrix: {both if per_format else one}")
        lines += [f"    kind: {kind}", f"    prompt: {prompt.format(**fill)}"]
        if refs:
            lines.append(f"    inputs: {_inputs(refs, fill)}")
        if per_format and kind == "edit":
            lines.append("    aspect_ratio: ${format.ratio}")
    return "\n".join(lines) + "\n"


def hand_text(n_products: int, n_formats: int) -> str:
    """The same catalog with every asset written out, in the order the matrix expands."""
    lines = [HEAD.rstrip(), "assets:"]
    for name, kind, prompt, refs, per_format in TEMPLATES:
        for product in products(n_products):
            for fname, ratio in FORMATS[:n_formats] if per_format else (("", ""),):
                fill = {"p": product, "f": fname}
                lines += [
                    f"  {name.format(**fill)}:",
                    f"    kind: {kind}",
                    f"    prompt: {prompt.format(**fill)}",
                ]
                if refs:
                    lines.append(f"    inputs: {_inputs(refs, fill)}")
                if per_format and kind == "edit":
                    lines.append(f'    aspect_ratio: "{ratio}"')
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Row:
    """One command timed on both files."""

    name: str
    hand_s: float
    matrix_s: float
    target: float | None

    @property
    def ratio(self) -> float:
        """Matrix ÷ hand-written."""
        return self.matrix_s / self.hand_s

    @property
    def ok(self) -> bool:
        """Within the target (or without one)."""
        return self.target is None or self.ratio <= self.target


def environment(pycache: Path, cache: Path) -> dict[str, str]:
    """This checkout importable, compiled modules kept aside, one cache for both projects."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGINEBUILD_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    env["IMAGINEBUILD_CACHE_DIR"] = str(cache)
    for name in ("PYTHONDONTWRITEBYTECODE", "PYTHONPROFILEIMPORTTIME"):
        env.pop(name, None)
    return env


def _project(folder: Path, text: str) -> Path:
    (folder / "art").mkdir(parents=True, exist_ok=True)
    shutil.copy(LOGO, folder / "art" / "logo.png")
    mediafile = folder / "mediafile.yaml"
    if not mediafile.is_file() or mediafile.read_text(encoding="utf-8") != text:
        mediafile.write_text(text, encoding="utf-8")
    return folder


def _ib(args: Sequence[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "imaginebuild", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"imaginebuild {' '.join(args)} in {cwd} exited {done.returncode}:\n"
                         f"{done.stderr[-2000:]}")  # fmt: skip
    return done.stderr


def prepare(work: Path, n_products: int, n_formats: int, env: dict[str, str]) -> dict[str, Path]:
    """Four projects: each file built (with its settled verdict) and fresh (no state folder)."""
    texts = {"hand": hand_text(n_products, n_formats), "matrix": matrix_text(n_products, n_formats)}
    folders: dict[str, Path] = {}
    for which, text in texts.items():
        built = _project(work / f"{which}-built", text)
        fresh = work / f"{which}-fresh"
        shutil.rmtree(fresh, ignore_errors=True)
        folders[f"{which}-fresh"] = _project(fresh, text)
        started = time.perf_counter()
        summary = _ib(["-q", "run", "-j", "2"], built, env)
        took = time.perf_counter() - started
        print(f"{which}: {summary.strip().splitlines()[-1]} ({took:.0f} s)", file=sys.stderr)
        if which == "matrix" and "built 0," not in summary:
            raise SystemExit(f"the matrix file called the provider after the hand-written build:\n"
                             f"{summary}")  # fmt: skip
        _ib(["-q", "run"], built, env)  # the no-op that records the settled verdict
        folders[f"{which}-built"] = built
    locks = [(folders[f"{w}-built"] / "mediafile.lock").read_bytes() for w in texts]
    if locks[0] != locks[1]:
        raise SystemExit("the two files' lockfiles differ: they do not declare the same assets")
    return folders


def time_once(args: Sequence[str], cwd: Path, env: dict[str, str], expect: str | None) -> float:
    """Wall time of one fresh `imaginebuild ARGS` process; its stderr must contain `expect`."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "imaginebuild", *args], cwd=cwd, env=env, capture_output=True,
        text=True, check=False,
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    if done.returncode != 0 or (expect is not None and expect not in done.stderr):
        raise SystemExit(f"imaginebuild {' '.join(args)} in {cwd}: {done.stderr[-2000:]}")
    return elapsed


def imported_on_noop(cwd: Path, env: dict[str, str]) -> tuple[str, ...]:
    """The modules of NOT_ON_NOOP a no-op run imports (from `-X importtime`)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "imaginebuild", "-q", "run"],
        cwd=cwd, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    names = {
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and line.count("|") == 2
    }
    return tuple(m for m in NOT_ON_NOOP if m in names)


CASES: tuple[tuple[str, str, tuple[str, ...], str | None, float | None], ...] = (
    ("validate, file changed (schema checked)", "fresh", ("validate",), "valid", TARGET),
    ("validate, file unchanged", "built", ("validate",), "valid", TARGET),
    ("no-op run", "built", ("run",), "built 0, restored 0", TARGET),
    ("plan (full decision, no snapshot)", "built", ("plan",), "estimated total", None),
)


def measure(folders: dict[str, Path], repeat: int, env: dict[str, str]) -> list[Row]:
    """Time every case on both files, in rounds; medians."""
    samples: dict[tuple[str, str], list[float]] = {}
    for _name, state, args, expect, _ in CASES:  # warm-up: compile, fill the OS cache
        for which in ("hand", "matrix"):
            time_once(args, folders[f"{which}-{state}"], env, expect)
    for _ in range(repeat):
        for name, state, args, expect, _ in CASES:
            for which in ("hand", "matrix"):
                took = time_once(args, folders[f"{which}-{state}"], env, expect)
                samples.setdefault((name, which), []).append(took)
    return [
        Row(
            name,
            statistics.median(samples[(name, "hand")]),
            statistics.median(samples[(name, "matrix")]),
            target,
        )
        for name, _, _, _, target in CASES
    ]


def table(rows: Sequence[Row], assets: int, sizes: dict[str, int]) -> str:
    """Markdown results."""
    lines = [
        f"{assets:,} assets; mediafile: hand-written {sizes['hand']:,} bytes, "
        f"matrix {sizes['matrix']:,} bytes",
        "",
        "| command | hand-written s | matrix s | matrix ÷ hand | target | ok |",
        "|---|---:|---:|---:|---:|:-:|",
    ]
    for r in rows:
        target = f"≤ {r.target}" if r.target else ""
        lines.append(
            f"| {r.name} | {r.hand_s:.3f} | {r.matrix_s:.3f} | **{r.ratio:.2f}** | {target} "
            f"| {'yes' if r.ok else 'NO'} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Build, time, print the table; exit 1 if a ratio misses its target or a no-op parses."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=50)
    parser.add_argument("--formats", type=int, default=4, choices=range(1, len(FORMATS) + 1))
    parser.add_argument("--repeat", type=int, default=15, help="timed rounds (default 15)")
    parser.add_argument("--keep", type=Path, help="build the projects here and keep them")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep.resolve() / "matrix" if args.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        env = environment(Path(tmp) / "pycache", work / "cache")
        folders = prepare(work, args.products, args.formats, env)
        parsed = {w: imported_on_noop(folders[f"{w}-built"], env) for w in ("hand", "matrix")}
        rows = measure(folders, args.repeat, env)
        sizes = {w: (folders[f"{w}-built"] / "mediafile.yaml").stat().st_size for w in parsed}
    per_product = len(TEMPLATES) - 5 + 5 * args.formats
    print(table(rows, args.products * per_product, sizes))
    for which, modules in parsed.items():
        shown = ", ".join(modules) or "none of " + ", ".join(NOT_ON_NOOP)
        print(f"\nno-op run ({which}) imports: {shown}")
    if args.json:
        data = {"rows": [{**asdict(r), "ratio": r.ratio} for r in rows], "noop_imports": parsed}
        args.json.write_text(json.dumps(data, indent=2) + "\n")
    return 0 if all(r.ok for r in rows) and not any(parsed.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
