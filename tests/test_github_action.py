"""The packaged GitHub Action (`action.yml`): its shell steps run as a runner runs them.

No GitHub runner is available here, so each `run:` step of the composite action is
executed the way the runner does: `bash scripts/github-action.sh STEP` with the
inputs as INPUT_* variables and GITHUB_STEP_SUMMARY, GITHUB_OUTPUT and RUNNER_TEMP
pointing at temporary files. The action file itself is read to check that its steps
call the same script with the inputs it declares.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import PROJECTS

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "github-action.sh"
ACTION = REPO / "action.yml"

XAI_PLAN = """\
version: 1
provider: xai
assets:
  poster: {kind: image, prompt: A poster of a lighthouse}
  teaser: {kind: video, prompt: The lighthouse at night, duration: 4, resolution: 480p}
"""


class Runner:
    """One job's files, as a GitHub runner provides them to a step."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.summary = tmp_path / "step_summary.md"
        self.outputs = tmp_path / "github_output"
        self.temp = tmp_path / "runner_temp"
        self.temp.mkdir()
        self.summary.touch()
        self.outputs.touch()
        self.env = {
            **env,
            "GITHUB_STEP_SUMMARY": str(self.summary),
            "GITHUB_OUTPUT": str(self.outputs),
            "RUNNER_TEMP": str(self.temp),
            "IMAGINEBUILD_PYTHON": sys.executable,
            "PYTHONPATH": str(REPO),
        }

    def step(self, name: str, **inputs: str) -> subprocess.CompletedProcess[str]:
        """Run one step of the action with its inputs (as `INPUT_<NAME>` variables)."""
        env = {**self.env, **{f"INPUT_{k.upper()}": v for k, v in inputs.items()}}
        return subprocess.run(
            ["bash", str(SCRIPT), name], env=env, capture_output=True, text=True, timeout=120
        )

    def output(self) -> dict[str, str]:
        """The step outputs written to GITHUB_OUTPUT (`name=value` lines)."""
        lines = self.outputs.read_text().splitlines()
        return dict(line.split("=", 1) for line in lines)


@pytest.fixture
def runner(tmp_path: Path, clean_env: dict[str, str]) -> Runner:
    return Runner(tmp_path, clean_env)


def test_the_action_declares_its_inputs_and_runs_the_script_for_each_step() -> None:
    action = yaml.safe_load(ACTION.read_text())
    assert action["runs"]["using"] == "composite"
    assert {"command", "remote", "max-cost", "working-directory"} <= set(action["inputs"])
    runs = [s for s in action["runs"]["steps"] if "run" in s]
    scripted = [s for s in runs if "scripts/github-action.sh" in s["run"]]
    assert [s["run"].split()[-1] for s in scripted] == ["run", "report"]
    step_env = scripted[0]["env"]
    for name in ("command", "remote", "max-cost", "working-directory"):
        variable = "INPUT_" + name.upper().replace("-", "_")
        assert step_env[variable] == "${{ inputs." + name + " }}"
    upload = next(s for s in action["runs"]["steps"] if "upload-artifact" in s.get("uses", ""))
    assert upload["with"]["path"] == "${{ steps.report.outputs.report-dir }}"
    for name, spec in action["outputs"].items():
        assert spec["value"] == "${{ steps.imaginebuild.outputs." + name + " }}"


def test_plan_on_a_pull_request_writes_the_plan_and_its_cost(
    runner: Runner, tmp_path: Path
) -> None:
    project = tmp_path / "media"
    project.mkdir()
    (project / "mediafile.yaml").write_text(XAI_PLAN)
    done = runner.step("run", command="plan", working_directory=str(project))
    assert done.returncode == 0, done.stderr
    summary = runner.summary.read_text()
    assert summary.startswith("<!-- imaginebuild -->\n### imaginebuild: `plan`")
    assert "| poster | image | new | $0.02 |" in summary
    assert "| teaser | video | new | $0.20 |" in summary
    assert "**Estimated cost: $0.22**" in summary
    assert "0 of 2 assets up to date." in summary
    outputs = runner.output()
    assert outputs["exit-code"] == "0" and outputs["estimate-usd"] == "0.22"
    assert Path(outputs["comment-file"]).read_text() == summary  # the PR comment's body
    assert json.loads(Path(outputs["result-json"]).read_text())["command"] == "plan"
    assert not (project / "out").exists() and not (project / "mediafile.lock").exists()


def test_run_on_main_builds_under_the_budget_then_the_report_is_ready_to_upload(
    runner: Runner, tmp_path: Path
) -> None:
    project = tmp_path / "chain"
    shutil.copytree(PROJECTS / "chain", project)
    remote = tmp_path / "remote"
    done = runner.step(
        "run",
        command="run",
        max_cost="1.00",
        remote=f"file://{remote}",
        working_directory=str(project),
    )
    assert done.returncode == 0, done.stderr
    summary = runner.summary.read_text()
    assert "`imaginebuild run --max-cost 1.00`: built 4; spent $0.00." in summary
    assert summary.count("### imaginebuild") == 1  # the run's own summary is not repeated
    assert any(remote.rglob("*"))  # the remote input reached the command
    report = runner.step("report", working_directory=str(project), report_dir="report")
    assert report.returncode == 0, report.stderr
    folder = Path(runner.output()["report-dir"])
    assert folder == project / "report" and (folder / "index.html").is_file()


def test_a_failing_command_fails_the_step_and_says_why_in_the_summary(
    runner: Runner, tmp_path: Path
) -> None:
    project = tmp_path / "chain"
    shutil.copytree(PROJECTS / "chain", project)
    done = runner.step("run", command="run --locked", working_directory=str(project))
    assert done.returncode == 3  # --locked and the lockfile would change
    summary = runner.summary.read_text()
    assert "**`imaginebuild run --locked` failed** (exit 3)" in summary
    assert "| base | image | new |" in summary  # the plan still says what it would build
    assert runner.output()["exit-code"] == "3"
    assert not (project / "mediafile.lock").exists()
