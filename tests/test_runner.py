"""The engine's Runner on its own: built from its collaborators, with no Project.

The chain fixture (base ─▶ inked ─▶ framed, and other) is rendered by the local
provider into real files; the runner gets an assessor, the project state, a
materializer and a store, exactly what `Project.run` hands it.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from imaginebuild.engine.assess import Assessor
from imaginebuild.engine.estimates import Estimator
from imaginebuild.engine.facts import RunOptions
from imaginebuild.engine.graph import Dag
from imaginebuild.engine.results import CommandResult
from imaginebuild.engine.runner import Runner
from imaginebuild.events import Message, MessageLevel, RecordingReporter
from imaginebuild.layout import StateLayout
from imaginebuild.mediafile.load import load_mediafile
from imaginebuild.model import InputPolicy
from imaginebuild.remote.link import RemoteLink
from imaginebuild.store.cache import Store
from imaginebuild.store.lockfile import read_lockfile
from imaginebuild.store.materialize import Materializer
from imaginebuild.store.state import ProjectState

CHAIN = Path(__file__).parent / "fixtures" / "projects" / "chain"
ENV = {"XAI_BASE_URL": "http://127.0.0.1:9/v1"}  # no call may leave; no remote, no key


@pytest.fixture
def chain(tmp_path: Path) -> Path:
    shutil.copytree(CHAIN, tmp_path / "chain")
    return tmp_path / "chain"


def _runner(folder: Path, cache: Path, reporter: RecordingReporter, **options: bool) -> Runner:
    """A Runner wired by hand: the collaborators a Project would give it."""
    mediafile = load_mediafile(folder / "mediafile.yaml", InputPolicy.from_env(ENV))
    state = ProjectState(
        mediafile.root,
        mediafile.lockfile_path,
        lambda t: reporter.emit(Message(MessageLevel.WARNING, t)),
    )
    store = Store(cache)
    assessor = Assessor(
        mediafile,
        dag=Dag.from_assets(mediafile.assets),
        store=store,
        state=state,
        remote=RemoteLink(mediafile, ENV, store, warn=print, info=print),
        estimator=Estimator(mediafile),
        env=ENV,
    )
    return Runner(
        RunOptions(jobs=2, no_coordinator=True, **options),
        assessor=assessor,
        state=state,
        materializer=Materializer(mediafile.root, store, state, None),
        reporter=reporter,
    )


def _run(folder: Path, cache: Path, *targets: str, **options: bool) -> CommandResult:
    reporter = RecordingReporter()
    return asyncio.run(_runner(folder, cache, reporter, **options).run(targets))


def _states(result: CommandResult) -> dict[str, str]:
    return {a.name: a.state for a in result.assets}


def test_a_runner_builds_locks_and_materializes_without_a_project(
    chain: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    result = _run(chain, cache)
    assert result.exit_code == 0
    assert _states(result) == dict.fromkeys(["base", "inked", "framed", "other"], "built")
    lock = read_lockfile(chain / "mediafile.lock", print)
    assert sorted(lock) == ["base", "framed", "inked", "other"]
    for name, entry in lock.items():
        (out,) = entry.outputs
        assert out.path == f"out/{name}.png"
        data = (chain / out.path).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert (cache / "blobs" / out.sha256[:2] / out.sha256).read_bytes() == data
    # Nothing failed, so nothing is remembered as failed.
    assert not StateLayout(chain).failures.exists()


def test_a_second_runner_finds_everything_up_to_date_and_restores_a_lost_output(
    chain: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    assert _run(chain, cache).exit_code == 0
    lock_bytes = (chain / "mediafile.lock").read_bytes()
    assert set(_states(_run(chain, cache)).values()) == {"up_to_date"}
    (chain / "out" / "inked.png").unlink()
    result = _run(chain, cache, "framed")
    assert _states(result) == {"base": "up_to_date", "inked": "restored", "framed": "up_to_date"}
    assert (chain / "out" / "inked.png").is_file()
    assert (chain / "mediafile.lock").read_bytes() == lock_bytes


def test_a_failed_step_is_recorded_in_the_project_state_and_skips_its_dependents(
    chain: Path, tmp_path: Path
) -> None:
    (chain / "art" / "logo.png").write_bytes(b"not an image")  # inked's input cannot decode
    result = _run(chain, tmp_path / "cache", keep_going=True)
    assert result.exit_code == 1
    assert _states(result) == {
        "base": "built",
        "inked": "failed",
        "framed": "skipped",
        "other": "built",
    }
    failures = json.loads(StateLayout(chain).failures.read_text(encoding="utf-8"))
    assert list(failures) == ["inked"]  # under inked's key: status says `failed` until it changes
    assert len(failures["inked"]["key"]) == 64
    assert "cannot decode input" in failures["inked"]["error"]  # and why, for status and why


def test_offline_refuses_a_call_without_touching_the_lockfile(chain: Path, tmp_path: Path) -> None:
    result = _run(chain, tmp_path / "cache", "other", offline=True)
    assert result.exit_code == 3
    assert _states(result) == {"other": "skipped"}
    assert not (chain / "mediafile.lock").exists()
    assert not (chain / "out").exists()
