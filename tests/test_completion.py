"""Shell completion: the bash function completes commands, options, option values and
asset names when bash runs it; the zsh and fish scripts carry the same grammar; the
quick reading of asset names agrees with the real load."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import PROJECTS, CliResult, run_cli

from imaginebuild.cli.invocation import build_parser
from imaginebuild.mediafile.load import load_mediafile
from imaginebuild.mediafile.names import quick_asset_names
from imaginebuild.model import InputPolicy

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


@pytest.fixture
def shell_env(tmp_path: Path, clean_env: dict[str, str]) -> dict[str, str]:
    """The clean environment with an `imaginebuild` command on PATH (this checkout)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    command = bin_dir / "imaginebuild"
    command.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m imaginebuild "$@"\n')
    command.chmod(0o755)
    return {
        **clean_env,
        "PATH": f"{bin_dir}{os.pathsep}{clean_env['PATH']}",
        "PYTHONPATH": str(REPO),
    }


def complete(line: str, cwd: Path, env: dict[str, str]) -> list[str]:
    """What bash offers for `line` (the cursor at its end) with the generated script."""
    generated = run_cli("completion", "bash", cwd=cwd, env=env)
    assert generated.code == 0, generated.stderr
    script = generated.stdout
    words = line.split(" ")
    driver = (
        f"{script}\nCOMP_WORDS=({' '.join(repr(w) for w in words)})\n"
        f"COMP_CWORD={len(words) - 1}\n_imaginebuild\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n"
    )
    done = subprocess.run(
        ["bash", "--norc", "--noprofile"], input=driver, cwd=cwd, env=env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [w for w in done.stdout.splitlines() if w]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("imaginebuild ru", ["run"]),
        ("imaginebuild st", ["status"]),
        ("imaginebuild --js", ["--json"]),
        ("imaginebuild run --max", ["--max-cost"]),
        ("imaginebuild status --ex", ["--exit-code"]),
        ("imaginebuild status --js", ["--json"]),  # global options after the command too
        ("imaginebuild dag --format m", ["mermaid"]),
        ("imaginebuild cost --by d", ["day"]),
        ("imaginebuild completion f", ["fish"]),
        ("imaginebuild why ", ["base", "inked", "framed", "other"]),
        ("imaginebuild run -j 2 in", ["inked"]),
        ("imaginebuild --json plan --all fr", ["framed"]),
    ],
)
def test_bash_completes_commands_options_values_and_assets(
    line: str, expected: list[str], shell_env: dict[str, str]
) -> None:
    assert complete(line, PROJECTS / "chain", shell_env) == expected


def test_bash_completes_the_assets_of_the_mediafile_named_by_f_and_c(
    shell_env: dict[str, str], tmp_path: Path
) -> None:
    project = tmp_path / "elsewhere"
    shutil.copytree(EXAMPLES / "skyline", project, ignore=shutil.ignore_patterns(".*", "out"))
    (project / "mediafile.yaml").rename(project / "media.yaml")
    line = f"imaginebuild -C {project} -f media.yaml show cl"
    assert complete(line, tmp_path, shell_env) == ["clip", "clip_long"]
    assert complete("imaginebuild show ", tmp_path, shell_env) == []  # no mediafile: quiet


def test_every_shell_script_knows_every_command(
    cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert sub.choices is not None
    for shell in ("bash", "zsh", "fish"):
        done = cli("completion", shell, cwd=tmp_path)
        assert done.code == 0 and done.stderr == ""
        for command in sub.choices:
            assert command in done.stdout, (shell, command)
        assert "completion --assets" in done.stdout
    zsh = cli("completion", "zsh", cwd=tmp_path).stdout
    assert "bashcompinit" in zsh
    assert subprocess.run(["bash", "-n"], input=zsh, text=True).returncode == 0
    fish = cli("completion", "fish", cwd=tmp_path).stdout
    assert "complete -c imaginebuild -n '__fish_seen_subcommand_from dag' -l format -x" in fish
    missing = cli("completion", cwd=tmp_path)
    assert missing.code == 2 and "name a shell" in missing.stderr


@pytest.mark.parametrize("example", ["skyline", "catalog"])
def test_the_asset_names_completion_offers_are_the_loaded_ones(
    example: str, cli: Callable[..., CliResult]
) -> None:
    path = EXAMPLES / example / "mediafile.yaml"
    loaded = list(load_mediafile(path, InputPolicy()).assets)
    quick = quick_asset_names(path.read_text())
    assert quick in (loaded, None)  # a template (catalog) needs the real load
    assert (quick is None) == (example == "catalog")
    offered = cli("completion", "--assets", cwd=path.parent).stdout.split()
    assert offered == loaded


def test_the_quick_reading_handles_comments_quotes_and_nested_keys() -> None:
    text = (
        "version: 1\n# assets: [not, this]\nassets:\n  # a comment\n  first:\n    kind: image\n"
        "    prompt: 'p: q'\n\n  \"second\": {kind: image, prompt: p}\n  third-3:\n"
        "    inputs:\n      - first\nvars:\n  x: y\n"
    )
    assert quick_asset_names(text) == ["first", "second", "third-3"]
    assert quick_asset_names("version: 1\nassets: {a: {kind: image}}\n") is None
    assert quick_asset_names("version: 1\n") is None
