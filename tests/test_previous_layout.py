"""A project built by the previous code layout is read as before.

tests/fixtures/previous-layout/ holds a project (mediafile, lockfile, outputs and
`.imaginebuild/` state) and its cache exactly as imaginebuild wrote them before
the project/runner split (see its README). Today's code must find it up to date,
restore it from that cache, and leave the lockfile's bytes alone on a no-op run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli

from imaginebuild.cli.app import main

FIXTURE = Path(__file__).parent / "fixtures" / "previous-layout"


@pytest.fixture
def old(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the old project and its cache; the CLI is pointed at it."""
    shutil.copytree(FIXTURE / "project", tmp_path / "project")
    shutil.copytree(FIXTURE / "cache", tmp_path / "cache")
    for name in list(os.environ):
        if name.startswith(("XAI_", "IMAGINEBUILD_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("IMAGINEBUILD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("XAI_BASE_URL", "http://127.0.0.1:9/v1")  # no call may leave
    monkeypatch.chdir(tmp_path / "project")
    return tmp_path / "project"


def _json(argv: list[str]) -> tuple[int, dict[str, Any]]:
    done = run_cli("--json", *argv, cwd=Path.cwd(), env=os.environ)
    return done.code, done.json


def _states(data: dict[str, Any]) -> dict[str, str]:
    return {a["name"]: a["state"] for a in data["assets"]}


def _locked_outputs(project: Path) -> dict[str, str]:
    lock = json.loads((project / "mediafile.lock").read_text(encoding="utf-8"))
    return {o["path"]: o["sha256"] for e in lock["assets"].values() for o in e["outputs"]}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_fixture_is_the_old_layout() -> None:
    """The files this test rests on are there (a regenerated or pruned fixture fails here)."""
    project, cache = FIXTURE / "project", FIXTURE / "cache"
    assert (project / ".imaginebuild" / "statcache.json").is_file()
    assert (project / ".imaginebuild" / "settled-mediafile.yaml.json").is_file()
    assert (cache / "actions" / "cache.db").is_file()
    outputs = _locked_outputs(project)
    assert sorted(outputs) == ["out/base.png", "out/inked.png"]
    for sha in outputs.values():
        assert (cache / "blobs" / sha[:2] / sha).is_file()


def test_status_finds_the_old_project_up_to_date(old: Path) -> None:
    code, data = _json(["status"])
    assert code == 0
    assert _states(data) == {"base": "up_to_date", "inked": "up_to_date"}


def test_checkout_restores_the_old_outputs_from_the_old_cache(old: Path) -> None:
    shutil.rmtree(old / "out")
    code, data = _json(["checkout"])
    assert code == 0
    assert _states(data) == {"base": "restored", "inked": "restored"}
    for rel, sha in _locked_outputs(old).items():
        assert _sha(old / rel) == sha


def test_a_no_op_run_leaves_the_old_lockfile_bytes_alone(old: Path) -> None:
    lock = (old / "mediafile.lock").read_bytes()
    code, data = _json(["run", "--no-coordinator"])
    assert code == 0
    assert _states(data) == {"base": "up_to_date", "inked": "up_to_date"}
    assert (old / "mediafile.lock").read_bytes() == lock


def test_the_old_cache_entries_are_kept_and_shown(
    old: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The action cache is read as before: gc keeps every entry and blob, show finds it."""
    assert main(["gc", "--dry-run"]) == 0
    out = capsys.readouterr().out  # gc's result is on stdout
    assert "0 action" in out and "0 blob" in out, out
    code, data = _json(["show", "inked"])
    assert code == 0
    lock = json.loads((old / "mediafile.lock").read_text(encoding="utf-8"))
    assert data["key"] == lock["assets"]["inked"]["key"]
    assert data["record"] == lock["assets"]["inked"]["record"]
