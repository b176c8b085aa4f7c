"""Every kind end to end: `python -m imaginebuild run` against the fake xAI server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from imaginebuild.testing.fake_xai import FakeXai, Route

KEY = "xai-E2E-KEY-fedcba9876543210"
ROOT = Path(__file__).resolve().parents[1]

ALL_KINDS = """
version: 1
provider: xai
providers:
  xai: {poll_interval: 0.01, max_retries: 2}
assets:
  still: {kind: image, prompt: a still, count: 2, resolution: 1k, aspect_ratio: "16:9"}
  sketch: {kind: edit, prompt: sketch it, inputs: ["still[0]", "still[1]"]}
  clip: {kind: video, prompt: a clip, duration: 2, resolution: 480p, aspect_ratio: "16:9"}
  moving: {kind: animate, prompt: animate it, inputs: [sketch], duration: 2, resolution: 480p}
  guided: {kind: reference_video, prompt: guided, inputs: ["still[0]"], duration: 2}
  restyled: {kind: video_edit, prompt: restyle it, inputs: [clip]}
  longer: {kind: extend, prompt: go on, inputs: [clip], duration: 2}
"""

ONE_VIDEO = """
version: 1
provider: xai
providers:
  xai: {poll_interval: 0.01}
assets:
  clip: {kind: video, prompt: a clip, duration: 1, resolution: 480p}
"""


@pytest.fixture
def fake() -> Iterator[FakeXai]:
    with FakeXai(pending_polls=1) as server:
        yield server


def project(tmp_path: Path, text: str) -> Path:
    (tmp_path / "mediafile.yaml").write_text(textwrap.dedent(text))
    return tmp_path


def env_for(fake: FakeXai, key: str | None = KEY) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XAI_", "IMAGINEBUILD_"))}
    env.update(PYTHONPATH=str(ROOT), XAI_BASE_URL=fake.base_url)
    if key is not None:
        env["XAI_API_KEY"] = key
    return env


def imaginebuild(folder: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imaginebuild", "--json", *args],
        cwd=folder, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def states(done: subprocess.CompletedProcess[str]) -> dict[str, str]:
    report = json.loads(done.stdout)
    return {a["name"]: a["state"] for a in report["assets"]}


def test_every_kind_builds_then_a_cached_rerun_makes_no_request(
    fake: FakeXai, tmp_path: Path
) -> None:
    folder = project(tmp_path, ALL_KINDS)
    first = imaginebuild(folder, env_for(fake), "run")
    assert first.returncode == 0, first.stderr
    assert set(states(first).values()) == {"built"}
    assert len(fake.requests(Route.IMAGES)) == 1
    assert len(fake.requests(Route.EDITS)) == 1
    assert len(fake.submissions(Route.VIDEOS)) == 3
    assert len(fake.submissions(Route.VIDEO_EDITS)) == 1
    assert len(fake.submissions(Route.EXTENSIONS)) == 1
    report = json.loads(first.stdout)
    assert all(a["request_ids"] for a in report["assets"] if a["kind"] not in ("image", "edit"))
    assert not list((folder / ".imaginebuild" / "journal").glob("*.json"))
    seen = len(fake.log)
    again = imaginebuild(folder, env_for(fake, key=None), "run")
    assert again.returncode == 0, again.stderr
    assert set(states(again).values()) == {"up_to_date"}
    assert len(fake.log) == seen  # not one HTTP request, and no key needed
    for path in folder.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
    assert KEY not in first.stderr + first.stdout


def test_a_missing_key_fails_the_step_with_a_hint(fake: FakeXai, tmp_path: Path) -> None:
    folder = project(tmp_path, ONE_VIDEO)
    done = imaginebuild(folder, env_for(fake, key=None), "run")
    assert done.returncode == 1
    assert "XAI_API_KEY" in done.stderr
    assert fake.log == []


def test_sigkill_while_polling_then_rerun_submits_once(tmp_path: Path) -> None:
    folder = project(tmp_path, ONE_VIDEO)
    with FakeXai(pending_polls=100_000) as server:
        child = subprocess.Popen(
            [sys.executable, "-m", "imaginebuild", "run"],
            cwd=folder, env=env_for(server), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while len(server.requests(Route.POLL)) < 3:
                assert time.monotonic() < deadline, "the run never polled"
                assert child.poll() is None, "the run ended early"
                time.sleep(0.02)
            child.send_signal(signal.SIGKILL)
        finally:
            child.wait(timeout=10)
        assert list((folder / ".imaginebuild" / "journal").glob("*.json"))
        server.pending_polls = 0
        rerun = imaginebuild(folder, env_for(server), "run")
        assert rerun.returncode == 0, rerun.stderr
        assert states(rerun) == {"clip": "built"}
        assert len(server.submissions()) == 1
        assert not list((folder / ".imaginebuild" / "journal").glob("*.json"))
