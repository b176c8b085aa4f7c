"""The command line's entry point: a call without a command, and a shell whose working folder
was deleted under it (`-C` still reaches the project; nothing is left changed).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import CliResult

from imaginebuild.cli.app import main

Cli = Callable[..., CliResult]


def test_no_command_prints_the_help_and_exits_2(cli: Cli, tmp_path: Path) -> None:
    result = cli(cwd=tmp_path)
    assert result.code == 2
    assert result.stdout == ""
    assert "usage: imaginebuild" in result.stderr and "COMMAND" in result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_no_command_with_json_is_a_json_usage_error(cli: Cli, tmp_path: Path) -> None:
    result = cli("--json", cwd=tmp_path)
    assert result.code == 2
    answer = json.loads(result.stdout)
    assert answer == {"error": "no command given", "hint": "imaginebuild --help", "exit_code": 2}
    assert "error: no command given" in result.stderr


def test_a_deleted_working_folder_with_C_still_reaches_the_project(
    project_dir: Path,
    tmp_path: Path,
    clean_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in clean_env.items():
        monkeypatch.setenv(name, value)
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)  # the monkeypatch brings the test back to where it started
    shutil.rmtree(gone)  # as when another shell deletes the folder this one stands in

    code = main(["-C", str(project_dir), "--json", "validate"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert json.loads(out)["valid"] is True
    # There was no folder to go back to; the call leaves the process in the project.
    assert Path.cwd() == project_dir.resolve()
