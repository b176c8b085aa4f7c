"""Branch coverage of the test suite, counting every imaginebuild process the tests start.

    python bench/suite_coverage.py                      # the whole suite, then the tables
    python bench/suite_coverage.py tests/test_cli.py    # some tests only (any pytest arguments)
    python bench/suite_coverage.py --report-only        # the tables of the data already collected
    python bench/suite_coverage.py --report-only --module remote/link.py --module cli/

The settings are pyproject.toml's `[tool.coverage.*]`: branch measurement, one data file per
process, and coverage's `patch = ["subprocess"]`, which hands the measurement to every child
Python through the environment (the tests' `python -m imaginebuild …` runs included). The data
is combined into `.coverage`, written as `coverage.json`, and summed per package. Not part of CI:
under coverage the suite takes about twice as long.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
JSON_REPORT = ROOT / "coverage.json"


@dataclass
class Tally:
    """Statements and branches of a group of files, and how many of each ran."""

    statements: int = 0
    covered_statements: int = 0
    branches: int = 0
    covered_branches: int = 0

    def add(self, summary: dict[str, int]) -> None:
        """Add one file's summary from coverage's JSON report."""
        self.statements += summary["num_statements"]
        self.covered_statements += summary["covered_lines"]
        self.branches += summary["num_branches"]
        self.covered_branches += summary["covered_branches"]

    @property
    def branch_percent(self) -> float:
        """Branches taken ÷ branches (100 when there are none)."""
        return 100.0 * self.covered_branches / self.branches if self.branches else 100.0

    @property
    def combined_percent(self) -> float:
        """coverage.py's own figure: statements and branches together."""
        total = self.statements + self.branches
        ran = self.covered_statements + self.covered_branches
        return 100.0 * ran / total if total else 100.0


def coverage(*args: str) -> int:
    """Run `python -m coverage ARGS…` in the repository root; its exit status."""
    command = [sys.executable, "-m", "coverage", *args]
    return subprocess.run(command, cwd=ROOT, check=False).returncode


def run_suite(pytest_args: list[str]) -> int:
    """Erase old data, run pytest under coverage, combine the per-process files."""
    coverage("erase")
    code = coverage("run", "-m", "pytest", "-q", "-p", "no:cacheprovider", *pytest_args)
    coverage("combine", "-q")
    return code


def package_of(path: str) -> str:
    """`imaginebuild/remote/link.py` → `remote`; a top-level module → `(top-level modules)`."""
    parts = Path(path).parts
    start = parts.index("imaginebuild")
    inner = parts[start + 1 :]
    return inner[0] if len(inner) > 1 else "(top-level modules)"


def tables(report: dict[str, object]) -> tuple[list[tuple[str, Tally]], Tally]:
    """Per package and in total, from coverage's JSON report."""
    files = report["files"]
    assert isinstance(files, dict)
    per_package: dict[str, Tally] = defaultdict(Tally)
    total = Tally()
    for path, entry in files.items():
        per_package[package_of(path)].add(entry["summary"])
        total.add(entry["summary"])
    return sorted(per_package.items()), total


def named_rows(report: dict[str, object], prefixes: list[str]) -> list[tuple[str, Tally]]:
    """One row per prefix: the files under imaginebuild/ whose path starts with it."""
    files = report["files"]
    assert isinstance(files, dict)
    rows = []
    for prefix in prefixes:
        tally = Tally()
        for path, entry in files.items():
            inner = Path(path).as_posix().split("imaginebuild/", 1)[-1]
            if inner.startswith(prefix):
                tally.add(entry["summary"])
        rows.append((f"`{prefix}`", tally))
    return rows


def markdown(rows: list[tuple[str, Tally]], total: Tally) -> str:
    """The table bench/README.md shows."""
    lines = [
        "| package | statements | run | branches | taken | branch % | coverage.py % |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, t in [*rows, ("**total**", total)]:
        lines.append(
            f"| {name} | {t.statements:,} | {t.covered_statements:,} | {t.branches:,} "
            f"| {t.covered_branches:,} | {t.branch_percent:.1f} | {t.combined_percent:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the suite under coverage (unless --report-only) and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report-only", action="store_true", help="report the data collected")
    parser.add_argument("--files", action="store_true", help="also print coverage's per-file table")
    parser.add_argument(
        "--module",
        action="append",
        default=[],
        help="also a row for the files under imaginebuild/ whose path starts with this "
        "(`remote/link.py`, `cli/`); repeatable",
    )
    options, pytest_args = parser.parse_known_args(argv)
    code = 0 if options.report_only else run_suite(pytest_args)
    if coverage("json", "-q", "-o", str(JSON_REPORT)) != 0:
        return 1
    if options.files:
        coverage("report", "--skip-covered", "--sort=cover")
    report = json.loads(JSON_REPORT.read_text())
    rows, total = tables(report)
    print(markdown(rows, total))
    if options.module:
        print()
        print(markdown(named_rows(report, options.module), total))
    if code != 0:
        print(f"\npytest exited {code}: the figures count the tests that ran.", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
