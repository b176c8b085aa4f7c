"""`gc` keeps git history: every blob a committed mediafile.lock names survives it.

Each test is a real git repository in tmp with the xai provider pointed at the fake
xAI server: commit, change the prompt, rebuild, commit, collect; going back a commit
must then restore from the cache and plan at $0, with no call made.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import subprocess
import sys
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from imaginebuild.testing.fake_xai import FakeXai
from tests.conftest import SUBPROCESS_TIMEOUT_S, CliResult, edit_yaml, read_lock, wait_for_state

MEDIAFILE = """\
version: 1
provider: xai
defaults:
  image: {resolution: 1k, aspect_ratio: "1:1"}
assets:
  poster:
    kind: image
    prompt: A poster of a lighthouse
"""
Cli = Callable[..., CliResult]


def git(folder: Path, *args: str) -> str:
    """Run git in `folder` (a fixed identity, no user config) and return its stdout."""
    env = {
        **os.environ,
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }
    done = subprocess.run(
        ["git", *args], cwd=folder, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


@pytest.fixture
def fake() -> Iterator[FakeXai]:
    """The fake xAI server on 127.0.0.1."""
    with FakeXai() as server:
        yield server


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git work tree holding a one-asset xai mediafile (outputs and state ignored)."""
    folder = tmp_path / "studio"
    folder.mkdir()
    (folder / "mediafile.yaml").write_text(MEDIAFILE)
    (folder / ".gitignore").write_text(".imaginebuild/\nout/\n")
    git(folder, "init", "-q", "-b", "main")
    return folder


def xai_env(fake: FakeXai) -> dict[str, str]:
    return {"XAI_BASE_URL": fake.base_url, "XAI_API_KEY": "xai-TEST-gc-history"}


def build_two_commits(cli: Cli, repo: Path, fake: FakeXai) -> tuple[str, str]:
    """Build, commit, change the prompt, rebuild, commit; the two outputs' hashes."""
    env = xai_env(fake)
    assert cli("run", cwd=repo, env=env).code == 0
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "first poster")
    first = read_lock(repo)["assets"]["poster"]["outputs"][0]["sha256"]
    edit_yaml(repo / "mediafile.yaml", "of a lighthouse", "of a lighthouse at night")
    rebuilt = cli("run", cwd=repo, env=env)
    assert rebuilt.code == 0, rebuilt.stderr
    git(repo, "commit", "-q", "-am", "night poster")
    second = read_lock(repo)["assets"]["poster"]["outputs"][0]["sha256"]
    assert first != second
    return first, second


def test_gc_keeps_what_an_earlier_commit_needs_and_going_back_costs_nothing(
    cli: Cli, repo: Path, fake: FakeXai, cache_dir: Path
) -> None:
    first, _ = build_two_commits(cli, repo, fake)
    blob = cache_dir / "blobs" / first[:2] / first
    current_only = cli("--json", "gc", "--min-age", "0", "--dry-run", "--only-current", cwd=repo)
    assert current_only.code == 0, current_only.stderr
    # what only history names: the first poster
    assert [b["sha256"] for b in current_only.json["dropped_blobs"]] == [first]

    collected = cli("--json", "gc", "--min-age", "0", "--yes", cwd=repo)
    assert collected.code == 0, collected.stderr
    assert collected.json["dropped_blobs"] == [] and collected.json["dry_run"] is False
    assert collected.json["history_versions"] == 2
    assert blob.is_file()

    calls = len(fake.log)
    git(repo, "checkout", "HEAD~1", "--", "mediafile.yaml", "mediafile.lock")
    checkout = cli("--json", "checkout", cwd=repo, env=xai_env(fake))
    assert checkout.code == 0, checkout.stderr
    assert {a["name"]: a["state"] for a in checkout.json["assets"]} == {"poster": "restored"}
    assert (repo / "out" / "poster.png").read_bytes() == blob.read_bytes()
    plan = cli("--json", "plan", cwd=repo, env=xai_env(fake))
    assert plan.code == 0, plan.stderr
    assert Decimal(plan.json["estimate_usd"]) == Decimal(plan.json["billable_usd"]) == 0
    assert {a["state"] for a in plan.json["assets"]} == {"up_to_date"}
    assert len(fake.log) == calls  # nothing was asked of the API


def test_only_current_drops_what_only_history_names(
    cli: Cli, repo: Path, fake: FakeXai, cache_dir: Path
) -> None:
    first, second = build_two_commits(cli, repo, fake)
    dropped = cli("--json", "gc", "--min-age", "0", "--yes", "--only-current", cwd=repo)
    assert dropped.code == 0, dropped.stderr
    assert [b["sha256"] for b in dropped.json["dropped_blobs"]] == [first]
    assert not (cache_dir / "blobs" / first[:2] / first).exists()
    assert (cache_dir / "blobs" / second[:2] / second).is_file()


def test_gc_without_a_terminal_or_yes_refuses_and_drops_nothing(
    cli: Cli, repo: Path, fake: FakeXai, cache_dir: Path
) -> None:
    first, _ = build_two_commits(cli, repo, fake)
    refused = cli("gc", "--min-age", "0", "--only-current", cwd=repo)
    assert refused.code == 2
    assert "not a terminal" in refused.stderr and "--yes" in refused.stderr
    assert (cache_dir / "blobs" / first[:2] / first).is_file()
    nothing = cli("gc", "--min-age", "0", cwd=repo)  # history keeps everything: no question to ask
    assert nothing.code == 0, nothing.stderr
    assert "would" not in nothing.stdout and "dropped 0 action entries and 0 blobs" in (
        nothing.stdout
    )


def test_a_hostile_historical_lockfile_is_skipped_with_a_warning(
    cli: Cli, repo: Path, fake: FakeXai, cache_dir: Path
) -> None:
    first, _ = build_two_commits(cli, repo, fake)
    good = (repo / "mediafile.lock").read_text()
    hostile = json.loads(good)
    out = hostile["assets"]["poster"]["outputs"][0]
    out["sha256"] = "../../" + "a" * 58  # a path, not a hash
    hostile["assets"]["poster"]["key"] = first.upper()  # upper case: not how keys are written
    hostile["assets"]["ghost"] = ["not", "an", "entry"]
    (repo / "mediafile.lock").write_text(json.dumps(hostile))
    git(repo, "commit", "-q", "-am", "a hand-edited lockfile")
    (repo / "notes.txt").write_text("x")
    git(repo, "add", "notes.txt")
    (repo / "mediafile.lock").write_text(good)  # the work tree's lockfile is sound again
    git(repo, "commit", "-q", "-am", "restore the lockfile")
    outside = repo.parent / ("a" * 58)
    outside.write_text("must stay")

    result = cli("--json", "gc", "--min-age", "0", "--yes", cwd=repo)
    assert result.code == 0, result.stderr
    assert "not a sha256 (64 lowercase hex digits); skipped" in result.stderr
    assert "assets.poster.outputs[0].sha256" in result.stderr
    assert result.json["dropped_blobs"] == []  # the sound versions still keep both posters
    assert (cache_dir / "blobs" / first[:2] / first).is_file()
    assert outside.read_text() == "must stay"


def test_gc_asks_on_a_terminal_and_only_yes_drops(
    clean_env: dict[str, str], cli: Cli, repo: Path, fake: FakeXai, cache_dir: Path
) -> None:
    first, _ = build_two_commits(cli, repo, fake)
    blob = cache_dir / "blobs" / first[:2] / first
    no = answer_on_a_terminal(clean_env, repo, "n\n")
    assert no.code == 0 and "drop them? [y/N]" in no.stderr and "nothing dropped" in no.stdout
    assert f"blob {first[:12]}" in no.stderr  # the listing names what would go, with its size
    assert blob.is_file()
    yes = answer_on_a_terminal(clean_env, repo, "y\n")
    assert yes.code == 0, yes.stderr
    assert "dropped 1 action entries and 1 blobs" in yes.stdout
    assert not blob.exists()


def answer_on_a_terminal(env: dict[str, str], folder: Path, answer: str) -> CliResult:
    """`gc --only-current` with a pseudo-terminal as stdin: wait for the question, answer."""
    leader, follower = pty.openpty()
    child = subprocess.Popen(
        [sys.executable, "-m", "imaginebuild", "gc", "--min-age", "0", "--only-current"],
        cwd=folder,
        env=env,
        stdin=follower,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    os.close(follower)
    assert child.stderr is not None and child.stdout is not None
    fcntl.fcntl(child.stderr, fcntl.F_SETFL, os.O_NONBLOCK)
    seen = bytearray()

    def asked() -> bool:
        assert child.stderr is not None
        chunk = child.stderr.read()
        seen.extend(chunk or b"")
        return b"[y/N]" in seen

    try:
        wait_for_state(asked, "the question", child=child, log=lambda: seen.decode())
        os.write(leader, answer.encode())
        fcntl.fcntl(child.stderr, fcntl.F_SETFL, 0)
        stdout, rest = child.communicate(timeout=SUBPROCESS_TIMEOUT_S)
        seen.extend(rest)
    finally:
        os.close(leader)
        if child.poll() is None:
            child.kill()
            child.wait()
    return CliResult(child.returncode, stdout.decode(), seen.decode())
