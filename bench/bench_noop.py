"""The no-op run: how long `imaginebuild run` takes when every asset is up to date.

A build tool is run far more often with nothing to do than with work; this is
its floor. Baselines measured in the same run:

- `python -c pass`: the interpreter alone;
- `make` on a Makefile with one rule per asset and the same files (a peer's no-op);
- `imaginebuild run` on the 6-asset example and on a generated 200-asset chain.

    python bench/bench_noop.py [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed(argv: list[str], cwd: Path, env: dict[str, str], repeat: int) -> tuple[float, float]:
    """Median and minimum wall time in ms of `argv` (after one warm-up)."""
    subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True)
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), min(samples)


def chain_mediafile(count: int) -> str:
    """A mediafile of `count` image edits in a chain (built once with the local provider)."""
    lines = ["version: 1", "provider: local", "assets:", "  a0: {kind: image, prompt: start}"]
    for i in range(1, count):
        lines.append(f'  a{i}: {{kind: edit, prompt: "step {i}", inputs: [a{i - 1}]}}')
    return "\n".join(lines) + "\n"


def makefile_for(folder: Path) -> None:
    """One rule per output file, each depending on the mediafile: make's no-op on the same tree."""
    outputs = sorted(p.relative_to(folder).as_posix() for p in (folder / "out").iterdir())
    rules = [f"all: {' '.join(outputs)}", ""]
    rules += [f"{o}: mediafile.yaml\n\ttouch {o}\n" for o in outputs]
    (folder / "Makefile").write_text("\n".join(rules))


def main() -> int:
    """Run the cases and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--chain", type=int, default=200)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="noop-"))
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(work / "pycache")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    try:
        example = work / "skyline"
        shutil.copytree(
            ROOT / "examples" / "skyline",
            example,
            ignore=shutil.ignore_patterns(".imaginebuild", "out", "mediafile.lock"),
        )
        chain = work / "chain"
        chain.mkdir()
        (chain / "mediafile.yaml").write_text(chain_mediafile(args.chain))
        ib = [sys.executable, "-m", "imaginebuild", "-q", "run"]
        for folder in (example, chain):
            subprocess.run(ib, cwd=folder, env=env, check=True, capture_output=True)
        makefile_for(example)
        cases = [
            ("python -c pass", [sys.executable, "-c", "pass"], example),
            ("make (6 up-to-date targets)", ["make", "-s"], example),
            ("imaginebuild run, 6 assets", ib, example),
            (f"imaginebuild run, {args.chain} assets", ib, chain),
        ]
        base = None
        print("| case | median ms | min ms | × python -c pass |")
        print("|---|---:|---:|---:|")
        for name, argv, cwd in cases:
            median, low = timed(argv, cwd, env, args.repeat)
            base = base or median
            print(f"| {name} | {median:.1f} | {low:.1f} | {median / base:.2f} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
