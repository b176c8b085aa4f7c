"""The README's "What goes where" table, checked against the real commands with their
output piped: what each prints on stdout and on stderr, the keys of its `--json`
object, and its exit codes.

The table is read from README.md; each command runs as a subprocess (stdout and
stderr are pipes, as in `imaginebuild status | grep stale`) in one built copy of
the chain fixture. A sample in backticks in a cell must appear in that stream;
a cell that says "nothing" means the stream is empty.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import PROJECTS, CliResult, run_cli

from imaginebuild.cli.invocation import build_parser
from imaginebuild.provenance import NO_RECORD

README = Path(__file__).resolve().parent.parent / "README.md"
BACKTICKED = re.compile(r"`([^`]+)`")

# How each command of the table is run in the built chain project.
ARGV: dict[str, tuple[str, ...]] = {
    "run": ("run",),
    "plan": ("plan",),
    "status": ("status",),
    "why": ("why", "base"),
    "show": ("show", "base"),
    "dag": ("dag",),
    "validate": ("validate",),
    "checkout": ("checkout",),
    "pull": ("pull",),
    "push": ("push",),
    "gc": ("gc", "--dry-run"),
    "clean": ("clean",),
    "cost": ("cost",),
    "prices": ("prices",),
    "report": ("report",),
    "init": ("init",),
    "schema": ("schema",),
    "team": ("team", "status"),
    "completion": ("completion", "bash"),
    "takes": ("takes", "base"),
    "pick": ("pick", "base", "1"),
    "accept": ("accept", "base"),
    "adopt": ("adopt", "base"),
}


@dataclass(frozen=True)
class Row:
    """One row of the table."""

    command: str
    stdout: str
    stderr: str
    json_keys: tuple[str, ...]
    exit_codes: frozenset[int]


def read_table() -> dict[str, Row]:
    """The rows of README's "What goes where" table, by command."""
    text = README.read_text(encoding="utf-8")
    section = text.split("### What goes where", 1)[1]
    rows: dict[str, Row] = {}
    for line in section.splitlines():
        if rows and not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) != 5 or not cells[0].startswith("`"):
            continue
        command = BACKTICKED.findall(cells[0])[0].split()[0]
        codes = frozenset(int(n) for n in re.findall(r"\b\d+\b", cells[4]))
        rows[command] = Row(command, cells[1], cells[2], tuple(BACKTICKED.findall(cells[3])), codes)
    return rows


TABLE = read_table()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """The chain fixture built once with the local provider, with a file:// remote."""
    root = tmp_path_factory.mktemp("streams")
    project = root / "chain"
    shutil.copytree(PROJECTS / "chain", project)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("IMAGINEBUILD_", "XAI_", "GITHUB_", "CI"))
    }
    env.update(
        IMAGINEBUILD_CACHE_DIR=str(root / "cache"),
        IMAGINEBUILD_REMOTE=f"file://{root / 'remote'}",
        XDG_CACHE_HOME=str(root / "user-cache"),
        HOME=str(root / "home"),
        XAI_BASE_URL="http://127.0.0.1:9/v1",
    )
    env.pop("IMAGINEBUILD_COORDINATOR", None)
    first = piped(project, env, "run")
    assert first.code == 0, first.stderr
    yield project, env


def piped(cwd: Path, env: dict[str, str], *args: str) -> CliResult:
    """`imaginebuild ARGS…` as a real process with stdout and stderr as pipes."""
    return run_cli(*args, cwd=cwd, env=env, real_process=True)


def setting_for(
    command: str, built: tuple[Path, dict[str, str]], tmp_path: Path
) -> tuple[Path, dict[str, str]]:
    """Where a command runs and with what environment: `init` in an empty folder; `pick`,
    `accept` and `adopt` in a copy of the built project and its caches (they change the
    lockfile and push), with what they work on (a rejected take, an output retouched by hand); the
    others in the built project."""
    if command == "init":
        return tmp_path, built[1]
    if command not in ("pick", "accept", "adopt"):
        return built
    project, cache, remote = tmp_path / "chain", tmp_path / "cache", tmp_path / "remote"
    shutil.copytree(built[0], project)
    shutil.copytree(built[1]["IMAGINEBUILD_CACHE_DIR"], cache)
    shutil.copytree(built[1]["IMAGINEBUILD_REMOTE"].removeprefix("file://"), remote)
    env = {
        **built[1],
        "IMAGINEBUILD_CACHE_DIR": str(cache),
        "IMAGINEBUILD_REMOTE": f"file://{remote}",
    }
    lock = json.loads((project / "mediafile.lock").read_text())
    if command == "adopt":  # bytes neither the lockfile nor the cache knows
        with (project / lock["assets"]["base"]["outputs"][0]["path"]).open("ab") as out:
            out.write(b"retouched")
        return project, env
    if command == "pick":
        return project, env
    from imaginebuild.store.cache import BlobRef, Store
    from imaginebuild.store.takes import Take, TakeBook, TakeOrigin

    # A rejected take of base's key, as a paid result the output check refused would be.
    base, out = lock["assets"]["base"], lock["assets"]["other"]["outputs"][0]
    blob = BlobRef(out["sha256"], out["bytes"], out["media_type"])
    lockfile = (project / "mediafile.yaml").resolve().with_suffix(".lock")
    take = Take(
        base["key"], (blob,), TakeOrigin.REJECTED, "", NO_RECORD, base["fields"], "too small"
    )
    TakeBook.for_project(Store(cache), lockfile).add("base", take)
    return project, env


def check_cell(cell: str, stream: str, which: str, command: str) -> None:
    """A cell's promise about one stream: "nothing", or every backticked sample appears."""
    if cell.startswith("nothing"):
        assert stream == "", f"{command}: {which} should be empty:\n{stream}"
        return
    samples = BACKTICKED.findall(cell)
    assert samples, f"{command}: the {which} cell gives no sample to check"
    for sample in samples:
        assert sample in stream, f"{command}: {sample!r} not on {which}:\n{stream}"


def test_the_table_lists_every_command() -> None:
    parser = build_parser()
    commands = next(
        a for a in parser._actions if a.dest == "command" and a.choices is not None
    ).choices
    assert commands is not None
    assert set(TABLE) == set(commands) == set(ARGV)


@pytest.mark.parametrize("command", sorted(TABLE))
def test_each_command_prints_what_the_table_says(
    command: str, built: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    row = TABLE[command]
    folder, env = setting_for(command, built, tmp_path)
    done = piped(folder, env, *ARGV[command])
    assert done.code in row.exit_codes and done.code == 0, done.stderr
    check_cell(row.stdout, done.stdout, "stdout", command)
    quiet_stderr = row.stderr.startswith(("nothing", "warnings", "hints", "every"))
    if quiet_stderr:  # nothing to warn about in a built project
        assert done.stderr == "", f"{command}: unexpected stderr:\n{done.stderr}"
    else:
        check_cell(row.stderr, done.stderr, "stderr", command)


@pytest.mark.parametrize("command", sorted(TABLE))
def test_each_command_prints_one_json_object_with_the_table_keys(
    command: str, built: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    row = TABLE[command]
    if not row.json_keys:
        pytest.skip(f"{command} has no JSON form")
    folder, env = setting_for(command, built, tmp_path)
    done = piped(folder, env, "--json", *ARGV[command])
    assert done.code == 0, done.stderr
    data = json.loads(done.stdout)  # the whole of stdout is one JSON document
    assert isinstance(data, dict)
    missing = [k for k in row.json_keys if k not in data]
    assert not missing, f"{command} --json lacks {missing}: {sorted(data)}"


@pytest.mark.parametrize("command", sorted(TABLE))
def test_a_usage_error_is_exit_2_for_every_command(
    command: str, built: tuple[Path, dict[str, str]]
) -> None:
    assert 2 in TABLE[command].exit_codes
    done = piped(built[0], built[1], *ARGV[command], "--no-such-option")
    assert (done.code, done.stdout) == (2, "")
    assert "error: unrecognized arguments: --no-such-option" in done.stderr


@pytest.mark.parametrize("command", sorted(TABLE))
def test_with_json_after_the_command_a_usage_error_is_one_json_object(
    command: str, built: tuple[Path, dict[str, str]]
) -> None:
    done = piped(built[0], built[1], *ARGV[command], "--no-such-option", "--json")
    assert done.code == 2
    assert json.loads(done.stdout) == {
        "error": "unrecognized arguments: --no-such-option",
        "hint": "imaginebuild --help",
        "exit_code": 2,
    }
