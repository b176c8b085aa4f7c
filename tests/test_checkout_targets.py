"""`checkout NAME` and `pull NAME` restore the target and its ancestors, nothing else.

Through the CLI (in-process `main`), on the chain fixture built once with the local
provider: base ─▶ inked ─▶ framed, and other. An unknown target is a usage error
(exit 2, did-you-mean) that writes nothing.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import run_cli

from imaginebuild.cli.app import main

CHAIN = Path(__file__).parent / "fixtures" / "projects" / "chain"
OUTPUTS = {"base": "out/base.png", "inked": "out/inked.png", "framed": "out/framed.png",
           "other": "out/other.png"}  # fmt: skip


def _point_at(project: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("XAI_", "IMAGINEBUILD_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("IMAGINEBUILD_CACHE_DIR", str(cache))
    monkeypatch.setenv("XAI_BASE_URL", "http://127.0.0.1:9/v1")  # no call may leave
    monkeypatch.chdir(project)


@pytest.fixture(scope="module")
def built_chain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The chain fixture built once (and pushed to a file remote); tests copy it."""
    root = tmp_path_factory.mktemp("built")
    shutil.copytree(CHAIN, root / "chain")
    with pytest.MonkeyPatch.context() as mp:
        _point_at(root / "chain", root / "cache", mp)
        mp.setenv("IMAGINEBUILD_REMOTE", f"file://{root / 'remote'}")
        assert main(["-q", "run", "--no-coordinator"]) == 0
    return root


@pytest.fixture
def chain(built_chain: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the built chain, its outputs deleted; the CLI is pointed at it."""
    shutil.copytree(built_chain / "chain", tmp_path / "chain")
    shutil.copytree(built_chain / "cache", tmp_path / "cache")
    shutil.copytree(built_chain / "remote", tmp_path / "remote")
    shutil.rmtree(tmp_path / "chain" / "out")
    _point_at(tmp_path / "chain", tmp_path / "cache", monkeypatch)
    return tmp_path / "chain"


def _restored(project: Path) -> set[str]:
    return {name for name, rel in OUTPUTS.items() if (project / rel).is_file()}


def _checkout(argv: list[str]) -> tuple[int, dict[str, str]]:
    done = run_cli("--json", *argv, cwd=Path.cwd(), env=os.environ)
    return done.code, {a["name"]: a["state"] for a in done.json["assets"]}


@pytest.mark.parametrize("command", ["checkout", "pull"])
def test_a_target_restores_itself_and_its_ancestors_only(
    command: str,
    chain: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if command == "pull":
        monkeypatch.setenv("IMAGINEBUILD_REMOTE", f"file://{chain.parent / 'remote'}")
    code, states = _checkout([command, "inked"])
    assert code == 0
    assert states == {"base": "restored", "inked": "restored"}
    assert _restored(chain) == {"base", "inked"}


@pytest.mark.parametrize("command", ["checkout", "pull"])
def test_a_leaf_target_restores_only_itself(
    command: str,
    chain: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if command == "pull":
        monkeypatch.setenv("IMAGINEBUILD_REMOTE", f"file://{chain.parent / 'remote'}")
    code, states = _checkout([command, "other"])
    assert code == 0, states
    assert states == {"other": "restored"}
    assert _restored(chain) == {"other"}


def test_pull_with_a_target_brings_in_only_the_selection(
    chain: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With an empty local cache, `pull base` fetches base's entry and blob, not others'."""
    cache = chain.parent / "cache"
    shutil.rmtree(cache)
    monkeypatch.setenv("IMAGINEBUILD_REMOTE", f"file://{chain.parent / 'remote'}")
    code, states = _checkout(["pull", "base"])
    assert code == 0
    assert states == {"base": "restored"}
    assert _restored(chain) == {"base"}
    lock = json.loads((chain / "mediafile.lock").read_text(encoding="utf-8"))["assets"]
    blobs = {p.name for p in (cache / "blobs").rglob("*") if p.is_file()}
    assert blobs == {lock["base"]["outputs"][0]["sha256"]}


def test_no_target_still_restores_everything(chain: Path) -> None:
    code, states = _checkout(["checkout"])
    assert code == 0
    assert states == dict.fromkeys(OUTPUTS, "restored")
    assert _restored(chain) == set(OUTPUTS)


def test_a_target_never_built_is_reported_skipped(chain: Path) -> None:
    lockfile = chain / "mediafile.lock"
    lock = json.loads(lockfile.read_text(encoding="utf-8"))
    del lock["assets"]["framed"]
    lockfile.write_text(json.dumps(lock), encoding="utf-8")
    code, states = _checkout(["checkout", "framed"])
    assert code == 0
    assert states == {"base": "restored", "inked": "restored", "framed": "skipped"}


@pytest.mark.parametrize("command", ["checkout", "pull"])
def test_an_unknown_target_is_a_usage_error_that_writes_nothing(
    command: str, chain: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = (chain / "mediafile.lock").read_bytes()
    assert main([command, "inkd"]) == 2
    err = capsys.readouterr().err
    assert "unknown target 'inkd'" in err and "did you mean 'inked'?" in err
    assert "Traceback" not in err
    assert _restored(chain) == set()
    assert (chain / "mediafile.lock").read_bytes() == lock
