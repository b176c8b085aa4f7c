"""A job journal record read back from disk is untrusted: a record that is not JSON, has the
wrong version, lacks a field or is not a file fails its step with the file named and a hint,
before any call is sent or billed, and deleting the file (as the hint says) lets the next run
build. End to end through the CLI against the fake xAI server.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import CliResult, states

from imaginebuild.testing.fake_xai import FakeXai

Cli = Callable[..., CliResult]

CLIP = """\
version: 1
provider: xai
providers:
  xai: {poll_interval: 0.01}
assets:
  clip: {kind: video, prompt: a wave breaking, duration: 1, resolution: 480p}
"""

BROKEN_RECORDS = {
    "not JSON": b"not json at all",
    "a JSON list": b"[1, 2]",
    "a version from the future": b'{"version": 99, "key": "k"}',
    "missing fields": b'{"version": 1, "key": "k"}',
}


def project(tmp_path: Path) -> Path:
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "mediafile.yaml").write_text(CLIP)
    return folder


def record_path(cli: Cli, folder: Path, env: dict[str, str]) -> Path:
    """Where the journal keeps the record of the clip's key (from `plan`, which calls nothing)."""
    plan = cli("--json", "plan", cwd=folder, env=env)
    assert plan.code == 0, plan.stderr
    key = plan.json["assets"][0]["key"]
    return folder / ".imaginebuild" / "journal" / f"{key}.json"


@pytest.mark.parametrize("what", sorted(BROKEN_RECORDS))
def test_a_broken_journal_record_fails_its_step_named_and_calls_nothing(
    cli: Cli, fake: FakeXai, tmp_path: Path, what: str
) -> None:
    folder = project(tmp_path)
    env = {"XAI_BASE_URL": fake.base_url, "XAI_API_KEY": "xai-TEST-journal"}
    record = record_path(cli, folder, env)
    record.parent.mkdir(parents=True)
    record.write_bytes(BROKEN_RECORDS[what])

    run = cli("run", cwd=folder, env=env)
    assert run.code == 1, run.stderr
    assert f"{record}: unreadable journal record" in run.stderr
    assert "hint: clip: delete the file; the job it named will be submitted again" in run.stderr
    assert fake.log == [] and fake.bills == []  # nothing sent, nothing billed
    assert not (folder / "out").exists()
    assert record.read_bytes() == BROKEN_RECORDS[what]  # the evidence is left for the user

    record.unlink()
    rerun = cli("--json", "run", cwd=folder, env=env)
    assert rerun.code == 0, rerun.stderr
    assert states(rerun.json) == {"clip": "built"}
    assert not list(record.parent.glob("*.json"))  # the finished job is forgotten


def test_a_journal_record_that_is_not_a_file_is_a_read_error_not_a_crash(
    cli: Cli, fake: FakeXai, tmp_path: Path
) -> None:
    folder = project(tmp_path)
    env = {"XAI_BASE_URL": fake.base_url, "XAI_API_KEY": "xai-TEST-journal"}
    record = record_path(cli, folder, env)
    record.mkdir(parents=True)  # a folder where the record should be

    run = cli("run", cwd=folder, env=env)
    assert run.code == 1, run.stderr
    assert f"{record}: cannot read journal record" in run.stderr
    assert "this is a bug" not in run.stderr
    assert fake.log == [] and fake.bills == []
