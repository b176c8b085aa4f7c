"""The installed command end to end, as a subprocess: exit codes, --json, every command.

Runs `python -m imaginebuild` with a clean environment (no API key, a private
cache) in fresh copies of the fixture projects.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import (
    SUBPROCESS_TIMEOUT_S,
    CliResult,
    assert_still_running,
    called,
    edit_yaml,
    output_hashes,
    read_lock,
    states,
    wait_for_state,
)

from imaginebuild.testing.fake_xai import FakeXai, Route

Cli = Callable[..., CliResult]
SKYLINE = ("london", "sketch", "clip", "clip_long", "teaser", "moodboard")
ASSET_KEYS = {
    "name", "kind", "state", "reason", "reasons", "outputs", "key",
    "cost_usd", "estimate_usd", "request_ids", "template", "unconfirmed_prices",
}  # fmt: skip
COMMAND_KEYS = {
    "command", "assets", "counts", "cost_usd", "estimate_usd", "seconds", "exit_code", "messages"
}  # fmt: skip


def _tree(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


def test_the_example_runs_then_a_second_run_calls_nothing(cli: Cli, project_dir: Path) -> None:
    first = cli("--json", "run", cwd=project_dir)
    assert first.code == 0, first.stderr
    assert called(first.json) == set(SKYLINE)
    assert first.json["exit_code"] == 0
    second = cli("--json", "run", cwd=project_dir)
    assert second.code == 0
    assert states(second.json) == dict.fromkeys(SKYLINE, "up_to_date")
    assert "up to date 6" in second.stderr


def test_json_prints_exactly_one_object_on_stdout_and_text_on_stderr(
    cli: Cli, chain_dir: Path
) -> None:
    result = cli("--json", "run", cwd=chain_dir)
    assert result.code == 0
    assert json.loads(result.stdout)  # the whole of stdout is one JSON document
    assert set(result.json) == COMMAND_KEYS
    assert "built 4" in result.stderr
    plain = cli("run", cwd=chain_dir)
    assert plain.stdout == ""


def test_json_status_is_stable_and_documented(cli: Cli, chain_dir: Path) -> None:
    assert cli("run", cwd=chain_dir).code == 0
    edit_yaml(chain_dir / "mediafile.yaml", "A red fox", "A grey fox")
    first = cli("--json", "status", cwd=chain_dir)
    second = cli("--json", "status", cwd=chain_dir)
    assert first.code == 0
    assert first.stdout == second.stdout
    data = first.json
    assert set(data) == COMMAND_KEYS
    assert data["command"] == "status"
    for asset in data["assets"]:
        assert set(asset) == ASSET_KEYS, asset["name"]
        assert asset["state"] in {"up_to_date", "stale", "never_built", "failed"}
        assert all(o.startswith("out/") for o in asset["outputs"])
    assert states(data) == {
        "base": "stale", "inked": "stale", "framed": "stale", "other": "up_to_date"
    }  # fmt: skip
    base = next(a for a in data["assets"] if a["name"] == "base")
    assert [r["field"] for r in base["reasons"]] == ["prompt"]


def test_plan_calls_and_writes_nothing(cli: Cli, chain_dir: Path) -> None:
    before = _tree(chain_dir)
    result = cli("--json", "plan", cwd=chain_dir)
    assert result.code == 0
    assert result.json["command"] == "plan"
    assert set(states(result.json).values()) <= {"never_built", "stale"}
    dry = cli("run", "--dry-run", cwd=chain_dir)
    assert dry.code == 0
    assert _tree(chain_dir) == before


@pytest.mark.parametrize(
    ("yaml_text", "needle"),
    [
        ("version: 1\nassets:\n  a: {kind: image, prompt: x, inputs: [nope]}\n", "inputs"),
        ("version: 1\nassets: [\n", "mediafile.yaml:"),
    ],
)
def test_an_invalid_mediafile_exits_2_and_writes_nothing(
    cli: Cli, tmp_path: Path, cache_dir: Path, yaml_text: str, needle: str
) -> None:
    project = tmp_path / "bad"
    project.mkdir()
    (project / "mediafile.yaml").write_text(yaml_text)
    for command in ("run", "status", "plan", "checkout", "validate"):
        result = cli(command, cwd=project)
        assert result.code == 2, (command, result.stderr)
        assert needle in result.stderr
    as_json = cli("--json", "run", cwd=project)
    assert as_json.code == 2
    assert as_json.json["exit_code"] == 2
    assert _tree(project) == {"mediafile.yaml"}
    assert not cache_dir.exists()


def test_a_failed_step_exits_1(cli: Cli, chain_dir: Path) -> None:
    (chain_dir / "art" / "logo.png").write_bytes(b"not an image at all")
    result = cli("--json", "run", cwd=chain_dir)
    assert result.code == 1
    got = states(result.json)
    assert got["inked"] == "failed"
    assert got["framed"] == "skipped"
    assert "inked" in result.stderr


def test_offline_exits_3_when_a_call_is_needed(cli: Cli, chain_dir: Path) -> None:
    result = cli("run", "--offline", cwd=chain_dir)
    assert result.code == 3, result.stderr
    assert "--offline" in result.stderr
    assert not (chain_dir / "mediafile.lock").exists()


def test_locked_exits_3_when_the_lockfile_would_change(cli: Cli, chain_dir: Path) -> None:
    assert cli("run", "--locked", cwd=chain_dir).code == 3
    assert not (chain_dir / "mediafile.lock").exists()
    assert cli("run", cwd=chain_dir).code == 0
    assert cli("run", "--locked", cwd=chain_dir).code == 0
    lock = (chain_dir / "mediafile.lock").read_bytes()
    edit_yaml(chain_dir / "mediafile.yaml", "A red fox", "A grey fox")
    refused = cli("run", "--locked", cwd=chain_dir)
    assert refused.code == 3
    assert "base" in refused.stderr
    assert (chain_dir / "mediafile.lock").read_bytes() == lock


def test_max_cost_zero_refuses_an_api_call_before_any_http(
    cli: Cli, make_project: Callable[[str], Path]
) -> None:
    project = make_project("xai")
    plan = cli("--json", "plan", cwd=project)
    assert plan.json["estimate_usd"] != "0"
    result = cli("--json", "run", "--max-cost", "0", cwd=project)
    # exit 1 would mean a call was attempted (no key, and the base URL is a closed port)
    assert result.code == 3, result.stderr
    assert states(result.json) == {"poster": "skipped"}
    assert "budget" in result.stderr
    assert not (project / ".imaginebuild" / "ledger.jsonl").exists()


# A quick image and a video job the fake xAI server holds pending until the test lets it
# finish, so a run can be interrupted while the video is in flight: never by timing.
HELD_VIDEO = """\
version: 1
provider: xai
providers:
  xai: {poll_interval: 0.02}
assets:
  still: {kind: image, prompt: A quiet harbour, resolution: 1k, aspect_ratio: "16:9"}
  long: {kind: video, prompt: Boats drift across the harbour, resolution: 480p, duration: 15}
"""
HELD_S = 3600.0  # far beyond any test's deadline: the job cannot finish until released


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.usefixtures("sigint_not_ignored")
def test_sigint_exits_130_keeps_finished_steps_and_a_rerun_completes(
    tmp_path: Path, clean_env: dict[str, str], signum: signal.Signals
) -> None:
    project = tmp_path / "held"
    project.mkdir()
    (project / "mediafile.yaml").write_text(HELD_VIDEO)
    err = tmp_path / "run.stderr"
    with FakeXai(pending_polls=0, job_latency=HELD_S) as fake:
        env = {**clean_env, "XAI_BASE_URL": fake.base_url, "XAI_API_KEY": "xai-TEST-signal"}
        argv = [sys.executable, "-m", "imaginebuild", "run", "-j", "2"]
        with err.open("wb") as sink:
            proc = subprocess.Popen(argv, cwd=project, env=env, stdout=subprocess.DEVNULL,
                                    stderr=sink)  # fmt: skip
        try:
            wait_for_state(
                lambda: "built still" in err.read_text() and len(fake.submissions()) == 1,
                "'built still' with the video job submitted",
                child=proc,
                log=err.read_text,
            )
            wait_for_state(
                lambda: len(fake.requests(Route.POLL)) >= 1, "a poll of the held job",
                child=proc, log=err.read_text,
            )  # fmt: skip
            assert_still_running(proc, "the signal", err.read_text, signum)
            proc.send_signal(signum)
            code = proc.wait(timeout=SUBPROCESS_TIMEOUT_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        text = err.read_text()
        assert code == 130, text
        assert "interrupted" in text
        assert sorted(read_lock(project)["assets"]) == ["still"]
        assert list((project / ".imaginebuild" / "journal").glob("*.json"))  # the job is kept

        fake.job_latency = 0.0  # release the held job
        rerun = subprocess.run(
            [sys.executable, "-m", "imaginebuild", "--json", "run"],
            cwd=project, env=env, capture_output=True, text=True,
            timeout=SUBPROCESS_TIMEOUT_S, check=False,
        )  # fmt: skip
        assert rerun.returncode == 0, rerun.stderr
        assert states(json.loads(rerun.stdout)) == {"long": "built", "still": "up_to_date"}
        assert len(fake.submissions()) == 1  # the interrupted job was resumed, not paid twice


def test_why_names_the_changed_field(cli: Cli, chain_dir: Path) -> None:
    assert cli("run", cwd=chain_dir).code == 0
    assert "up to date" in cli("why", "base", cwd=chain_dir).stdout
    edit_yaml(chain_dir / "mediafile.yaml", "A red fox", "A grey fox")
    text = cli("why", "base", cwd=chain_dir)
    assert text.code == 0
    assert "prompt changed" in text.stdout
    assert "grey" in text.stdout
    data = cli("--json", "why", "base", cwd=chain_dir).json
    assert [r["field"] for r in data["reasons"]] == ["prompt"]
    unknown = cli("why", "bsae", cwd=chain_dir)
    assert unknown.code == 2
    assert "did you mean 'base'" in unknown.stderr


def test_show_has_the_provenance_fields(cli: Cli, chain_dir: Path) -> None:
    never = cli("show", "inked", cwd=chain_dir)
    assert never.code == 2
    assert "never been built" in never.stderr
    assert cli("run", cwd=chain_dir).code == 0
    data = cli("--json", "show", "inked", cwd=chain_dir).json
    for key in ("name", "kind", "key", "provider", "model", "prompt", "params", "variant",
                "inputs", "outputs", "record", "earlier_takes"):  # fmt: skip
        assert key in data, key
    assert [i["ref"] for i in data["inputs"]] == ["base", "art/logo.png"]
    assert data["inputs"][0]["asset"] == "base"
    assert data["outputs"][0]["path"] == "out/inked.png"
    for key in ("built_at", "cost_usd", "estimate_usd", "request_ids", "imaginebuild"):
        assert key in data["record"], key
    assert data["key"] == read_lock(chain_dir)["assets"]["inked"]["key"]


@pytest.mark.parametrize(
    ("fmt", "needles"),
    [
        ("text", ["base", "inked", "framed", "other"]),
        ("mermaid", ["flowchart", "base", "-->"]),
        ("dot", ["digraph", '"base" -> "inked"']),
    ],
)
def test_dag_formats(cli: Cli, chain_dir: Path, fmt: str, needles: list[str]) -> None:
    result = cli("dag", "--format", fmt, cwd=chain_dir)
    assert result.code == 0, result.stderr
    for needle in needles:
        assert needle in result.stdout, result.stdout


def test_init_scaffolds_a_mediafile_that_validates(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "new"
    folder.mkdir()
    assert cli("init", cwd=folder).code == 0
    assert ".imaginebuild/" in (folder / ".gitignore").read_text()
    valid = cli("--json", "validate", cwd=folder)
    assert valid.code == 0, valid.stderr
    assert valid.json["valid"] is True
    again = cli("init", cwd=folder)
    assert again.code == 2
    assert "already exists" in again.stderr


def test_gc_dry_run_then_gc_drops_an_orphaned_take(
    cli: Cli, chain_dir: Path, cache_dir: Path
) -> None:
    assert cli("run", cwd=chain_dir).code == 0
    old = read_lock(chain_dir)["assets"]["other"]["outputs"][0]["sha256"]
    edit_yaml(chain_dir / "mediafile.yaml", "A lighthouse at dawn", "A lighthouse at dusk")
    assert cli("run", cwd=chain_dir).code == 0
    blob = cache_dir / "blobs" / old[:2] / old
    dry = cli("--json", "gc", "--dry-run", "--min-age", "0", cwd=chain_dir)
    assert dry.code == 0
    assert dry.json["actions"] == 1 and dry.json["blobs"] == 1 and dry.json["dry_run"] is True
    assert blob.exists()
    young = cli("--json", "gc", "--dry-run", cwd=chain_dir)  # the default grace keeps it
    assert young.json["actions"] == 1 and young.json["blobs"] == 0
    dropped = cli("gc", "--min-age", "0", "--yes", cwd=chain_dir).stdout
    assert "dropped 1 action entries and 1 blobs" in dropped
    assert not blob.exists()


def test_run_targets_builds_them_and_their_ancestors_only(cli: Cli, project_dir: Path) -> None:
    result = cli("--json", "run", "clip", "teaser", cwd=project_dir)
    assert result.code == 0
    assert states(result.json) == dict.fromkeys(("london", "sketch", "clip", "teaser"), "built")
    unknown = cli("run", "clpi", cwd=project_dir)
    assert unknown.code == 2
    assert "did you mean 'clip'" in unknown.stderr


def test_directory_and_file_options(cli: Cli, chain_dir: Path, tmp_path: Path) -> None:
    (chain_dir / "mediafile.yaml").rename(chain_dir / "other.yaml")
    missing = cli("run", cwd=chain_dir)
    assert missing.code == 2
    assert "no mediafile" in missing.stderr
    result = cli("--json", "-C", str(chain_dir), "-f", "other.yaml", "run", cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert len(called(result.json)) == 4
    assert (chain_dir / "other.lock").is_file()
    assert (chain_dir / "out" / "base.png").is_file()


def test_checkout_restores_deleted_outputs_with_no_call(cli: Cli, project_dir: Path) -> None:
    assert cli("run", cwd=project_dir).code == 0
    before = output_hashes(project_dir)
    for path in (project_dir / "out").iterdir():
        path.unlink()
    result = cli("--json", "checkout", cwd=project_dir)
    assert result.code == 0
    assert states(result.json) == dict.fromkeys(sorted(SKYLINE), "restored")
    assert output_hashes(project_dir) == before


def test_a_malformed_lockfile_exits_2_with_a_hint(cli: Cli, chain_dir: Path) -> None:
    (chain_dir / "mediafile.lock").write_text("{ torn")
    result = cli("status", cwd=chain_dir)
    assert result.code == 2
    assert "mediafile.lock" in result.stderr
    assert "hint:" in result.stderr
    (chain_dir / "mediafile.lock").write_text('{"version": 99, "assets": {}}')
    other = cli("status", cwd=chain_dir)
    assert other.code == 2
    assert "version 99" in other.stderr


@pytest.mark.parametrize("text", ["{ torn", '{"version": 99, "assets": {}}'])
def test_run_with_a_bad_lockfile_exits_2_before_any_step(
    cli: Cli, chain_dir: Path, text: str
) -> None:
    (chain_dir / "mediafile.lock").write_text(text)
    result = cli("run", cwd=chain_dir)
    assert result.code == 2
    assert "failed" not in result.stderr
    assert not (chain_dir / "out").exists()


def test_two_concurrent_runs_end_with_a_consistent_lockfile(
    chain_dir: Path, clean_env: dict[str, str]
) -> None:
    argv = [sys.executable, "-m", "imaginebuild", "--json", "run", "-j", "1"]
    procs = [
        subprocess.Popen(
            argv, cwd=chain_dir, env=clean_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1] for o in outputs]
    results = [json.loads(out) for out, _ in outputs]
    builds = sum(len(called(r)) for r in results)
    assert builds == 4  # each asset built once: the second run waited and found it done
    lock = read_lock(chain_dir)
    assert sorted(lock["assets"]) == ["base", "framed", "inked", "other"]
    hashes = output_hashes(chain_dir)
    for entry in lock["assets"].values():
        for out in entry["outputs"]:
            assert hashes[out["path"]] == out["sha256"]


_JSON_COMMANDS = (
    ("run",),
    ("run", "--dry-run"),
    ("plan",),
    ("status",),
    ("why", "inked"),
    ("show", "inked"),
    ("dag",),
    ("validate",),
    ("checkout",),
    ("gc", "--dry-run"),
    ("cost",),
)


def test_every_command_prints_one_json_object_with_json(cli: Cli, chain_dir: Path) -> None:
    assert cli("run", cwd=chain_dir).code == 0
    for argv in _JSON_COMMANDS:
        result = cli("--json", *argv, cwd=chain_dir)
        assert result.code == 0, (argv, result.stderr)
        assert isinstance(json.loads(result.stdout), dict), argv


def test_init_with_json_prints_one_object(cli: Cli, tmp_path: Path) -> None:
    result = cli("--json", "init", cwd=tmp_path)
    assert result.code == 0
    assert isinstance(json.loads(result.stdout), dict)


def test_main_in_process_leaves_the_sigterm_handler_and_the_folder_as_it_found_them(
    chain_dir: Path, clean_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from imaginebuild.cli.app import main

    for name, value in clean_env.items():
        monkeypatch.setenv(name, value)
    handler, folder = signal.getsignal(signal.SIGTERM), Path.cwd()
    assert main(["-C", str(chain_dir), "validate"]) == 0
    assert signal.getsignal(signal.SIGTERM) is handler
    assert Path.cwd() == folder


def test_dash_c_to_a_missing_folder_is_a_usage_error(cli: Cli, tmp_path: Path) -> None:
    result = cli("-C", str(tmp_path / "nowhere"), "status", cwd=tmp_path)
    assert result.code == 2
    assert f"-C {tmp_path / 'nowhere'}: No such file or directory" in result.stderr
    assert "hint: name an existing project folder" in result.stderr
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["run", "--jobs", "many"], "invalid int value: 'many'"),
        (["cost", "--by", "colour"], "invalid choice: 'colour'"),
        (["dag", "--format", "png"], "invalid choice: 'png'"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_option_errors_exit_2_with_the_bad_value_named(
    cli: Cli, chain_dir: Path, argv: list[str], needle: str
) -> None:
    before = _tree(chain_dir)
    result = cli(*argv, cwd=chain_dir)
    assert result.code == 2, result.stderr
    assert needle in result.stderr
    assert _tree(chain_dir) == before  # nothing written


def test_schema_prints_the_mediafile_json_schema(cli: Cli, tmp_path: Path) -> None:
    result = cli("schema", cwd=tmp_path)
    assert result.code == 0, result.stderr
    schema = json.loads(result.stdout)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert {"version", "assets"} <= set(schema["properties"])


def test_text_show_names_the_asset_its_inputs_and_outputs(cli: Cli, chain_dir: Path) -> None:
    assert cli("run", cwd=chain_dir).code == 0
    result = cli("show", "inked", cwd=chain_dir)
    assert result.code == 0, result.stderr
    text = result.stdout + result.stderr
    for needle in (
        "inked",
        "base",
        "art/logo.png",
        "out/inked.png",
        read_lock(chain_dir)["assets"]["inked"]["key"][:12],
    ):
        assert needle in text, (needle, text)
