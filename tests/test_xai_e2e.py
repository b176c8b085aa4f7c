"""Every kind end to end: `imaginebuild run` against the fake xAI server (in-process; a
real process where it is killed)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import CliResult, assert_still_running, run_cli, wait_for_state, xai_env

from imaginebuild.testing.fake_xai import FakeXai, Route

KEY = "xai-E2E-KEY-fedcba9876543210"

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


def project(tmp_path: Path, text: str) -> Path:
    (tmp_path / "mediafile.yaml").write_text(textwrap.dedent(text))
    return tmp_path


def imaginebuild(folder: Path, env: dict[str, str], *args: str) -> CliResult:
    """`imaginebuild --json ARGS…` in-process in `folder` with exactly `env`."""
    return run_cli("--json", *args, cwd=folder, env=env)


def states(done: CliResult) -> dict[str, str]:
    report = json.loads(done.stdout)
    return {a["name"]: a["state"] for a in report["assets"]}


def test_every_kind_builds_then_a_cached_rerun_makes_no_request(
    fake: FakeXai, tmp_path: Path
) -> None:
    folder = project(tmp_path, ALL_KINDS)
    first = imaginebuild(folder, xai_env(fake, key=KEY), "run")
    assert first.code == 0, first.stderr
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
    again = imaginebuild(folder, xai_env(fake), "run")
    assert again.code == 0, again.stderr
    assert set(states(again).values()) == {"up_to_date"}
    assert len(fake.log) == seen  # not one HTTP request, and no key needed
    for path in folder.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
    assert KEY not in first.stderr + first.stdout


def test_a_missing_key_fails_the_step_with_a_hint(fake: FakeXai, tmp_path: Path) -> None:
    folder = project(tmp_path, ONE_VIDEO)
    done = imaginebuild(folder, xai_env(fake), "run")
    assert done.code == 1
    assert "XAI_API_KEY" in done.stderr
    assert fake.log == []


def test_sigkill_while_polling_then_rerun_submits_once(tmp_path: Path) -> None:
    folder = project(tmp_path, ONE_VIDEO)
    with FakeXai(pending_polls=100_000) as server:
        child = subprocess.Popen(
            [sys.executable, "-m", "imaginebuild", "run"],
            cwd=folder, env=xai_env(server, key=KEY),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_for_state(
                lambda: len(server.requests(Route.POLL)) >= 3, "three polls", child=child
            )
            assert_still_running(child, "the kill", lambda: "")
            child.send_signal(signal.SIGKILL)
        finally:
            child.wait(timeout=10)
        assert list((folder / ".imaginebuild" / "journal").glob("*.json"))
        server.pending_polls = 0
        rerun = imaginebuild(folder, xai_env(server, key=KEY), "run")
        assert rerun.code == 0, rerun.stderr
        assert states(rerun) == {"clip": "built"}
        assert len(server.submissions()) == 1
        assert not list((folder / ".imaginebuild" / "journal").glob("*.json"))
