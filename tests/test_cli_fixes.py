"""The command line as a new user meets it: global options anywhere, JSON for every
outcome, `status --exit-code`, failure reasons kept, `why` naming the cause, a plan
that fits the terminal, and the small things (one test per item).

Most tests call `main([...])` in-process and read what it printed; a few run the
installed command as a subprocess where the process boundary is the point.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import CliResult, edit_yaml

from imaginebuild.cli.app import main

Cli = Callable[..., CliResult]


@dataclass(frozen=True)
class Printed:
    """What one in-process command printed, and its exit code."""

    code: int
    out: str
    err: str

    @property
    def json(self) -> dict[str, object]:
        """stdout as the one JSON object `--json` promises."""
        data = json.loads(self.out)
        assert isinstance(data, dict), self.out
        return data


@pytest.fixture
def ib(
    capsys: pytest.CaptureFixture[str],
    clean_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., Printed]:
    """`imaginebuild ARGS…` in-process with the clean environment."""
    for name in list(__import__("os").environ):
        if name.startswith(("IMAGINEBUILD_", "XAI_", "GITHUB_")) or name == "CI":
            monkeypatch.delenv(name)
    for name, value in clean_env.items():
        monkeypatch.setenv(name, value)

    def run(*args: str) -> Printed:
        code = main(list(args))
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err, captured.err
        return Printed(code, captured.out, captured.err)

    return run


# ---------------------------------------------------------------- item 2: global options


@pytest.mark.parametrize(
    "argv",
    [
        ("show", "base", "--json"),
        ("why", "base", "--json"),
        ("cost", "--json"),
        ("status", "--json"),
        ("--json", "status"),
        ("status", "-q", "--json"),
    ],
)
def test_json_is_accepted_before_or_after_the_command(
    ib: Callable[..., Printed], chain_dir: Path, argv: tuple[str, ...]
) -> None:
    assert ib("-q", "-C", str(chain_dir), "run").code == 0
    done = ib(*argv, "-C", str(chain_dir))
    assert done.code == 0, done.err
    assert done.json  # stdout is exactly one JSON object


def test_every_global_option_works_after_the_command(
    ib: Callable[..., Printed], chain_dir: Path, tmp_path: Path
) -> None:
    (chain_dir / "mediafile.yaml").rename(chain_dir / "media.yaml")
    done = ib("run", "-C", str(chain_dir), "-f", "media.yaml", "-q", "--allow-read", str(tmp_path))
    assert done.code == 0, done.err
    assert done.err.startswith("built 4,")  # -q: no step lines, only the summary
    assert (chain_dir / "out" / "framed.png").is_file()
    verbose = ib("status", "--directory", str(chain_dir), "--file", "media.yaml", "-v")
    assert verbose.code == 0 and "up to date" in verbose.out
    both = ib("-v", "status", "-q", "-C", str(chain_dir), "-f", "media.yaml")
    assert both.code == 2 and "exclude each other" in both.err


@pytest.mark.parametrize(
    "argv",
    [
        ("--json", "run", "--bogus"),
        ("run", "--bogus", "--json"),
        ("--json",),
        ("--json", "frobnicate"),
        ("--json", "why"),
        ("--json", "run", "-j", "many"),
        ("status", "--json", "-C", "/no/such/folder"),
        ("--json", "show", "nosuchasset"),
    ],
)
def test_with_json_every_usage_error_is_one_json_object(
    ib: Callable[..., Printed], chain_dir: Path, argv: tuple[str, ...]
) -> None:
    done = ib("-C", str(chain_dir), *argv)
    assert done.code == 2
    data = done.json
    assert data["exit_code"] == 2 and data["error"], data
    assert done.out.count("{") == done.out.count("}")  # one object, nothing else
    assert "error:" in done.err  # people still read the message on stderr


def test_an_invalid_mediafile_with_json_is_one_object_with_diagnostics(
    ib: Callable[..., Printed], chain_dir: Path
) -> None:
    edit_yaml(chain_dir / "mediafile.yaml", "inputs: [inked]", "inputs: [inkd]")
    done = ib("validate", "--json", "-C", str(chain_dir))
    assert done.code == 2
    assert "did you mean 'inked'" in done.json["diagnostics"][0]["message"]  # type: ignore[index]


def test_a_subprocess_with_json_after_a_bad_option_prints_json(cli: Cli, chain_dir: Path) -> None:
    done = cli("run", "--bogus", "--json", cwd=chain_dir)
    assert done.code == 2
    assert done.json == {
        "error": "unrecognized arguments: --bogus",
        "hint": "imaginebuild --help",
        "exit_code": 2,
    }
