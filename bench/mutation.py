"""A mutation score on the pure core, one module at a time, with mutmut.

    nice -n 19 python bench/mutation.py MODULE [MODULE…]   # or `all`
    python bench/mutation.py --list

For each module, a scratch copy of the package and the tests goes to
`bench/.work/mutation/MODULE/` with a `[tool.mutmut]` section that mutates that
module only and runs only its tests; `mutmut run` (one child: the machine is
shared) then judges every mutant. The script prints one table row per module
(killed / survived / no tests / timeouts) and the names of the survivors; `mutmut
show NAME` in the scratch folder prints a survivor's diff. It also applies the
hand-made mutants below (bugs mutmut's operators do not make) and runs the
module's tests against each: each must be killed.

A survivor is then applied again as a plain edit of the source and judged by the
same tests ("killed as an edit"). This catches what mutmut's switch cannot reach:
code that runs while the module is imported (a schema built by a function call at
module level) runs before any mutant is switched on, so no test can see it there.

mutmut is in the optional dependency group `mutation` (`pip install -e .[mutation]`);
this never runs in CI: it takes minutes per module.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work" / "mutation"


@dataclass(frozen=True)
class Module:
    """One module of the pure core and the tests that judge its mutants."""

    path: str
    tests: tuple[str, ...]


PRICING_TESTS = (
    "tests/test_pricing.py",
    "tests/test_pricing_table.py",
    "tests/test_pricing_overrides.py",
)
MODULES = {
    "keys": Module("imaginebuild/engine/keys.py", ("tests/test_keys.py",)),
    "rebuild": Module(
        "imaginebuild/engine/rebuild.py", ("tests/test_rebuild.py", "tests/test_rebuild_reasons.py")
    ),
    "budget": Module(
        "imaginebuild/engine/budget.py",
        ("tests/test_budget.py", "tests/test_budget_edges.py", "tests/test_money.py"),
    ),
    "pricing": Module("imaginebuild/engine/pricing.py", PRICING_TESTS),
    "priceoverrides": Module("imaginebuild/engine/priceoverrides.py", PRICING_TESTS),
    "money": Module("imaginebuild/money.py", ("tests/test_money.py", "tests/test_money_units.py")),
    "lockfile": Module(
        "imaginebuild/store/lockfile.py",
        ("tests/test_lockfile.py", "tests/test_lockfile_parse.py", "tests/test_atomicity.py"),
    ),
    "outputcheck": Module("imaginebuild/engine/outputcheck.py", ("tests/test_outputcheck.py",)),
    "retry": Module("imaginebuild/retry.py", ("tests/test_retry.py", "tests/test_retry_edges.py")),
}


@dataclass(frozen=True)
class HandMutant:
    """A bug mutmut's operators do not make, and the tests that must catch it."""

    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


HAND_MUTANTS = (
    HandMutant(
        "lockfile written in place, not atomically",
        "imaginebuild/store/lockfile.py",
        '    atomic_write_bytes(path, text.encode("utf-8"))',
        '    path.write_bytes(text.encode("utf-8"))',
        ("tests/test_atomicity.py",),
    ),
    HandMutant(
        "the lockfile's `..` guard deleted",
        "imaginebuild/store/lockfile.py",
        """and "path" in out and relative_path(out["path"]) is None:""",
        """and "path" in out and False:""",
        ("tests/test_lockfile_guard.py", "tests/test_lockfile.py", "tests/test_security.py"),
    ),
)


def scratch_copy(name: str) -> Path:
    """A fresh copy of the package, the tests and pyproject.toml for one module's run."""
    folder = WORK / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for item in ("imaginebuild", "tests"):
        shutil.copytree(
            ROOT / item, folder / item, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    shutil.copyfile(ROOT / "pyproject.toml", folder / "pyproject.toml")
    return folder


def configure(folder: Path, module: Module) -> None:
    """Mutate `module` only and run only its tests."""
    section = (
        "\n[tool.mutmut]\n"
        'source_paths = ["imaginebuild"]\n'
        f'only_mutate = ["{module.path}"]\n'
        f"pytest_add_cli_args_test_selection = {json.dumps(list(module.tests))}\n"
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q", "-x"]\n'
    )
    with (folder / "pyproject.toml").open("a", encoding="utf-8") as f:
        f.write(section)


def clean_env(folder: Path) -> dict[str, str]:
    """The environment of the runs: imports resolve inside the scratch copy."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IMAGINEBUILD_", "XAI_"))}
    env["PYTHONPATH"] = str(folder)
    return env


def run_mutmut(name: str, module: Module) -> tuple[Counter[str], list[str]]:
    """mutmut on one module: the count of mutants per outcome, and the survivors' names."""
    folder = scratch_copy(name)
    configure(folder, module)
    mutmut = shutil.which("mutmut") or "mutmut"
    # mutmut writes the mutated package here; the folder must exist before Python starts,
    # or the import system caches the PYTHONPATH entry as missing.
    (folder / "mutants").mkdir()
    env = clean_env(folder / "mutants")
    done = subprocess.run(
        [mutmut, "run", "--max-children", "1"], cwd=folder, env=env, check=False,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"mutmut failed on {name} (exit {done.returncode})")
    meta = json.loads((folder / "mutants" / (module.path + ".meta")).read_text())
    outcome: Counter[str] = Counter()
    survivors: list[str] = []
    for mutant, code in sorted(meta["exit_code_by_key"].items()):
        status = {1: "killed", 3: "killed", 0: "survived", 33: "no tests", 5: "no tests"}.get(
            code, "timeout" if code in (24, -24, 36, 152, 255) else f"exit {code}"
        )
        outcome[status] += 1
        if status == "survived":
            survivors.append(mutant)
    return outcome, survivors


def mutant_as_edit(folder: Path, mutant: str) -> tuple[str, str] | None:
    """(old, new) source text of one mutant from `mutmut show`, or None if it cannot tell."""
    mutmut = shutil.which("mutmut") or "mutmut"
    shown = subprocess.run(
        [mutmut, "show", mutant], cwd=folder, env=clean_env(folder / "mutants"),
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    old: list[str] = []
    new: list[str] = []
    hunks = 0
    for line in shown.stdout.splitlines():
        if line.startswith(("---", "+++")):
            continue
        if line.startswith("@@"):
            hunks += 1
        elif line.startswith("-"):
            old.append(line[1:])
        elif line.startswith("+"):
            new.append(line[1:])
        elif line.startswith(" ") or line == "":
            old.append(line[1:])
            new.append(line[1:])
    if hunks != 1:
        return None
    return "\n".join(old) + "\n", "\n".join(new) + "\n"


def tests_fail(folder: Path, tests: tuple[str, ...]) -> bool:
    """Whether `tests` fail in the scratch copy `folder`."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
        cwd=folder, env=clean_env(folder), check=False, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return done.returncode != 0


def recheck_as_edits(name: str, module: Module, survivors: list[str]) -> list[str]:
    """The survivors the module's tests kill once applied as plain source edits."""
    judged = WORK / name
    folder = scratch_copy(f"{name}-edits")
    target = folder / module.path
    original = target.read_text(encoding="utf-8")
    killed = []
    for mutant in survivors:
        edit = mutant_as_edit(judged, mutant)
        if edit is None or original.count(edit[0]) != 1:
            print(f"  survived (not applied as an edit): {mutant}", file=sys.stderr)
            continue
        target.write_text(original.replace(*edit), encoding="utf-8")
        if tests_fail(folder, module.tests):
            killed.append(mutant)
        else:
            print(f"  survived: {mutant}", file=sys.stderr)
    target.write_text(original, encoding="utf-8")
    return killed


def run_hand_mutant(mutant: HandMutant) -> bool:
    """Apply one hand-made mutant to a scratch copy; True when its tests catch it."""
    folder = scratch_copy("hand")
    target = folder / mutant.path
    text = target.read_text(encoding="utf-8")
    if text.count(mutant.old) != 1:
        raise SystemExit(f"hand mutant {mutant.name!r}: the code it changes has moved")
    target.write_text(text.replace(mutant.old, mutant.new), encoding="utf-8")
    return tests_fail(folder, mutant.tests)


def main() -> int:
    """Run the named modules (and the hand mutants) and print the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("modules", nargs="*", metavar="MODULE")
    parser.add_argument("--list", action="store_true", help="name the modules and stop")
    parser.add_argument("--no-hand", action="store_true", help="skip the hand-made mutants")
    args = parser.parse_args()
    if args.list or not args.modules:
        print(" ".join(MODULES))
        return 0
    names = list(MODULES) if args.modules == ["all"] else args.modules
    if names == ["hand"]:  # only the hand-made mutants
        names = []
    unknown = [n for n in names if n not in MODULES]
    if unknown:
        raise SystemExit(f"unknown module(s): {', '.join(unknown)}; see --list")
    print("| module | mutants | killed | as an edit | survived | no tests | other | killed % |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in names:
        outcome, survivors = run_mutmut(name, MODULES[name])
        as_edit = len(recheck_as_edits(name, MODULES[name], survivors))
        total = sum(outcome.values())
        killed = outcome["killed"] + as_edit
        other = total - outcome["killed"] - outcome["survived"] - outcome["no tests"]
        share = 100 * killed / total if total else 0.0
        print(
            f"| {name} | {total} | {killed} | {as_edit} | {outcome['survived'] - as_edit} "
            f"| {outcome['no tests']} | {other} | {share:.1f} |",
            flush=True,
        )
    if not args.no_hand:
        for mutant in HAND_MUTANTS:
            verdict = "killed" if run_hand_mutant(mutant) else "SURVIVED"
            print(f"hand mutant: {mutant.name}: {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
