"""The command line as a new user meets it: global options anywhere, JSON for every
outcome, `status --exit-code`, failure reasons kept, `why` naming the cause, a plan
that fits the terminal, and the small things (one test per item).

Most tests call `main([...])` in-process and read what it printed; a few run the
installed command as a subprocess where the process boundary is the point.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import SUBPROCESS_TIMEOUT_S, CliResult, edit_yaml, run_cli, wait_for_state, xai_env

from imaginebuild.project import Project
from imaginebuild.testing.fake_xai import FakeXai, Route

Cli = Callable[..., CliResult]


@pytest.fixture
def ib(clean_env: dict[str, str], tmp_path: Path) -> Callable[..., CliResult]:
    """`imaginebuild ARGS…` in-process with the clean environment (without CI), in tmp_path."""
    env = {k: v for k, v in clean_env.items() if k != "CI"}

    def run(*args: str) -> CliResult:
        done = run_cli(*args, cwd=tmp_path, env=env)
        assert "Traceback" not in done.stderr, done.stderr
        return done

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
    ib: Callable[..., CliResult], chain_dir: Path, argv: tuple[str, ...]
) -> None:
    assert ib("-q", "-C", str(chain_dir), "run").code == 0
    done = ib(*argv, "-C", str(chain_dir))
    assert done.code == 0, done.stderr
    assert done.json  # stdout is exactly one JSON object


def test_every_global_option_works_after_the_command(
    ib: Callable[..., CliResult], chain_dir: Path, tmp_path: Path
) -> None:
    (chain_dir / "mediafile.yaml").rename(chain_dir / "media.yaml")
    done = ib("run", "-C", str(chain_dir), "-f", "media.yaml", "-q", "--allow-read", str(tmp_path))
    assert done.code == 0, done.stderr
    assert done.stderr.startswith("built 4,")  # -q: no step lines, only the summary
    assert (chain_dir / "out" / "framed.png").is_file()
    verbose = ib("status", "--directory", str(chain_dir), "--file", "media.yaml", "-v")
    assert verbose.code == 0 and "up to date" in verbose.stdout
    both = ib("-v", "status", "-q", "-C", str(chain_dir), "-f", "media.yaml")
    assert both.code == 2 and "exclude each other" in both.stderr


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
    ib: Callable[..., CliResult], chain_dir: Path, argv: tuple[str, ...]
) -> None:
    done = ib("-C", str(chain_dir), *argv)
    assert done.code == 2
    data = done.json
    assert data["exit_code"] == 2 and data["error"], data
    assert done.stdout.count("{") == done.stdout.count("}")  # one object, nothing else
    assert "error:" in done.stderr  # people still read the message on stderr


def test_an_invalid_mediafile_with_json_is_one_object_with_diagnostics(
    ib: Callable[..., CliResult], chain_dir: Path
) -> None:
    edit_yaml(chain_dir / "mediafile.yaml", "inputs: [inked]", "inputs: [inkd]")
    done = ib("validate", "--json", "-C", str(chain_dir))
    assert done.code == 2
    assert "did you mean 'inked'" in done.json["diagnostics"][0]["message"]  # type: ignore[index]


def test_a_subprocess_with_json_after_a_bad_option_prints_json(cli: Cli, chain_dir: Path) -> None:
    done = cli("run", "--bogus", "--json", cwd=chain_dir, real_process=True)
    assert done.code == 2
    assert done.json == {
        "error": "unrecognized arguments: --bogus",
        "hint": "imaginebuild --help",
        "exit_code": 2,
    }


# ---------------------------------------------------------------- item 3: status --exit-code


def test_status_exit_code_is_1_while_anything_is_not_up_to_date(
    ib: Callable[..., CliResult], chain_dir: Path
) -> None:
    at = ("-C", str(chain_dir))
    assert ib(*at, "status").code == 0  # without the option: always 0
    never = ib(*at, "status", "--exit-code")
    assert never.code == 1 and "never built" in never.stdout
    assert ib(*at, "--json", "status", "--exit-code").json["exit_code"] == 1
    assert ib(*at, "-q", "run").code == 0
    assert ib(*at, "status", "--exit-code").code == 0
    assert ib(*at, "status", "--exit-code").code == 0  # the settled answer agrees
    edit_yaml(chain_dir / "mediafile.yaml", "A lighthouse at dawn", "A lighthouse at dusk")
    stale = ib(*at, "status", "--exit-code")
    assert stale.code == 1 and "stale" in stale.stdout
    assert ib(*at, "status", "--exit-code", "base").code == 0  # only what was asked about


# ------------------------------------------- items 4 and 5: a missing key, failures kept

ONE_VIDEO_THREE_IMAGES = """\
version: 1
provider: xai
providers:
  xai: {poll_interval: 0.01}
assets:
  clip: {kind: video, prompt: a clip, duration: 1, resolution: 480p}
  one: {kind: image, prompt: one}
  two: {kind: image, prompt: two}
  three: {kind: image, prompt: three}
"""


@pytest.fixture
def xai_project(tmp_path: Path, cli: Cli) -> Iterator[tuple[Path, FakeXai]]:
    """A video and three images built against the fake xAI server, then the video's
    prompt edited: only the video needs a call."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "mediafile.yaml").write_text(ONE_VIDEO_THREE_IMAGES)
    with FakeXai(pending_polls=0) as fake:
        env = {"XAI_BASE_URL": fake.base_url, "XAI_API_KEY": "xai-test-key"}
        first = cli("run", cwd=folder, env=env)
        assert first.code == 0, first.stderr
        edit_yaml(folder / "mediafile.yaml", "a clip", "a longer clip")
        yield folder, fake


def test_a_missing_key_leaves_up_to_date_assets_up_to_date_not_skipped(
    cli: Cli, xai_project: tuple[Path, FakeXai]
) -> None:
    folder, fake = xai_project
    seen = len(fake.log)
    done = cli("--json", "run", "-j", "1", cwd=folder, env={"XAI_BASE_URL": fake.base_url})
    assert done.code == 1
    assert {a["name"]: a["state"] for a in done.json["assets"]} == {
        "clip": "failed", "one": "up_to_date", "two": "up_to_date", "three": "up_to_date",
    }  # fmt: skip
    assert "up to date 3, failed 1, skipped 0" in done.stderr
    assert len(fake.log) == seen  # no key: no request at all


def test_the_last_failure_is_kept_and_shown_by_status_and_why(
    cli: Cli, xai_project: tuple[Path, FakeXai]
) -> None:
    folder, fake = xai_project
    env = {"XAI_BASE_URL": fake.base_url}
    assert cli("run", cwd=folder, env=env).code == 1
    status = cli("status", cwd=folder, env=env)
    line = next(x for x in status.stdout.splitlines() if x.startswith("clip"))
    assert "failed" in line and "XAI_API_KEY is not set" in line, status.stdout
    data = cli("--json", "why", "clip", cwd=folder, env=env).json
    assert data["state"] == "failed" and "XAI_API_KEY" in data["error"]
    assert data["hint"]
    why = cli("why", "clip", cwd=folder, env=env).stdout
    assert "clip: failed: XAI_API_KEY is not set" in why and "prompt changed" in why
    edit_yaml(folder / "mediafile.yaml", "a longer clip", "another clip")  # a new key
    assert "failed" not in cli("status", "clip", cwd=folder, env=env).stdout


# ------------------------------------------------ item 6: why follows the chain; "new"


def test_why_follows_the_chain_to_the_field_that_changed(
    ib: Callable[..., CliResult], chain_dir: Path
) -> None:
    at = ("-C", str(chain_dir))
    assert ib(*at, "-q", "run").code == 0
    edit_yaml(chain_dir / "mediafile.yaml", "A red fox", "A grey fox")
    why = ib(*at, "why", "framed").stdout.splitlines()
    assert why == [
        "framed: input 'inked' will be built first",
        "  because base: prompt changed: A [-red-] {+grey+} fox in the snow",
    ]
    data = ib(*at, "--json", "why", "framed").json
    causes = data["causes"]
    assert [c["name"] for c in causes] == ["base"]  # type: ignore[union-attr,index]
    assert causes[0]["reasons"][0]["field"] == "prompt"  # type: ignore[index]


def test_plan_says_new_for_what_was_never_built(
    ib: Callable[..., CliResult], chain_dir: Path
) -> None:
    plan = ib("-C", str(chain_dir), "plan").stdout
    rows = {line.split()[0]: line.split()[2] for line in plan.splitlines()[1:5]}
    assert rows == {"base": "new", "other": "new", "inked": "new", "framed": "new"}
    assert "rebuilt" not in plan
    status = ib("-C", str(chain_dir), "status").stdout
    assert "input 'base' will be built first" in status and "rebuilt" not in status


# ------------------------------------- item 7: a plan that fits, --all, resume (paid)


def test_plan_fits_the_terminal_and_lists_up_to_date_assets_only_with_all(
    chain_dir: Path, clean_env: dict[str, str], cli: Cli
) -> None:
    assert cli("-q", "run", cwd=chain_dir).code == 0
    edit_yaml(chain_dir / "mediafile.yaml", "A red fox", "A red fox " + "very " * 30 + "sly")
    piped = cli("plan", cwd=chain_dir, real_process=True)  # stdout a real pipe
    long_line = max(piped.stdout.splitlines(), key=len)
    assert len(long_line) > 100 and "…" not in long_line  # piped: nothing is cut
    assert "other" not in piped.stdout and "1 up to date (plan --all lists them)" in piped.stdout
    every = cli("plan", "--all", cwd=chain_dir).stdout
    assert "other  " in every and "up to date (plan --all" not in every
    on_terminal = on_a_terminal(["plan"], chain_dir, {**clean_env, "COLUMNS": "60"})
    lines = [x for x in on_terminal.splitlines() if x.strip()]
    assert max(len(x) for x in lines) <= 60, on_terminal
    assert any(x.startswith("base ") and "…" in x for x in lines), on_terminal


def on_a_terminal(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    """What `imaginebuild ARGS` prints with stdout on a pseudo-terminal."""
    import os
    import pty

    leader, follower = pty.openpty()
    child = subprocess.Popen(
        [sys.executable, "-m", "imaginebuild", *args],
        cwd=cwd, env=env, stdout=follower, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed its end
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert child.wait(timeout=SUBPROCESS_TIMEOUT_S) == 0
    return b"".join(chunks).decode().replace("\r\n", "\n")


@pytest.mark.fake(pending_polls=100_000)
def test_after_an_interrupt_plan_shows_the_journaled_job_as_resume_paid(
    tmp_path: Path, clean_env: dict[str, str], cli: Cli, fake: FakeXai
) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "mediafile.yaml").write_text(ONE_VIDEO_THREE_IMAGES)
    env = xai_env(fake, key="xai-test-key", base=clean_env)
    child = subprocess.Popen(
        [sys.executable, "-m", "imaginebuild", "run"],
        cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        journal = folder / ".imaginebuild" / "journal"
        wait_for_state(lambda: any(journal.glob("*.json")), "a journaled job", child=child)
        wait_for_state(lambda: len(fake.requests(Route.POLL)) >= 1, "a poll", child=child)
        child.send_signal(signal.SIGINT)
    finally:
        child.wait(timeout=SUBPROCESS_TIMEOUT_S)
    plan = cli("plan", cwd=folder, env=env)
    clip = next(x for x in plan.stdout.splitlines() if x.startswith("clip"))
    assert clip.split(None, 2)[2].strip() == "resume (paid)", plan.stdout
    data = cli("--json", "plan", cwd=folder, env=env).json
    estimate = {a["name"]: a["estimate_usd"] for a in data["assets"]}  # type: ignore[union-attr]
    assert estimate["clip"] == "0"
    fake.pending_polls = 0
    assert cli("-q", "run", cwd=folder, env=env).code == 0
    assert len(fake.submissions(Route.VIDEOS)) == 1  # resumed, never paid twice


# ---------------------------------------------------------------- item 8: the small ones


def test_an_error_that_names_its_asset_is_not_named_twice() -> None:
    import io

    from imaginebuild.cli.console import PlainReporter
    from imaginebuild.cli.live import finished_line
    from imaginebuild.events import AssetState, RunStarted, StepFinished

    stream = io.StringIO()
    reporter = PlainReporter(stream)
    reporter.emit(RunStarted(1))
    failed = StepFinished(
        "banner", AssetState.FAILED, "call failed", 1.0, error="banner: the image is 1×1"
    )
    reporter.emit(failed)
    assert stream.getvalue() == "[1/1] failed banner: the image is 1×1\n"
    assert finished_line(failed, 1, 1).text == "✗ [1/1] failed banner: the image is 1×1"


def test_status_and_why_name_a_failed_asset_once(
    ib: Callable[..., CliResult], chain_dir: Path
) -> None:
    at = ("-C", str(chain_dir))
    (chain_dir / "art" / "logo.png").write_bytes(b"not an image")  # inked cannot decode it
    assert ib(*at, "-q", "run", "--keep-going").code == 1
    row = next(x for x in ib(*at, "status").stdout.splitlines() if x.startswith("inked"))
    assert "failed: cannot decode input" in row and "inked: cannot" not in row, row
    why = ib(*at, "why", "inked").stdout
    assert why.startswith("inked: failed: cannot decode input"), why
    assert "inked: cannot" in ib(*at, "--json", "why", "inked").json["error"]  # kept whole


def test_show_prints_values_not_python_reprs(ib: Callable[..., CliResult], chain_dir: Path) -> None:
    assert ib("-C", str(chain_dir), "-q", "run").code == 0
    shown = ib("-C", str(chain_dir), "show", "base").stdout
    assert "params: aspect_ratio=1:1, count=1, resolution=1k\n" in shown
    assert "request_ids: none\n" in shown
    assert not any(c in shown for c in "{}[]'"), shown


def test_an_unquoted_indexed_input_gets_a_hint_to_quote_it(
    ib: Callable[..., CliResult], chain_dir: Path
) -> None:
    edit_yaml(chain_dir / "mediafile.yaml", "inputs: [inked]", "inputs: [inked[0]]")
    done = ib("-C", str(chain_dir), "validate")
    assert done.code == 2
    assert 'hint: quote an indexed reference inside [...]: ["inked[0]"]' in done.stderr


def test_a_refused_merge_key_is_the_only_complaint_about_its_mapping(
    ib: Callable[..., CliResult], tmp_path: Path
) -> None:
    (tmp_path / "mediafile.yaml").write_text(
        "version: 1\nprovider: local\nbase: &base {kind: image, prompt: p}\n"
        "assets:\n  a: {<<: *base}\n"
    )
    done = ib("-C", str(tmp_path), "validate")
    assert done.code == 2
    assert "merge keys ('<<') are not supported" in done.stderr
    assert "missing required key" not in done.stderr and "required property" not in done.stderr


def test_run_options_take_a_float_budget_as_its_decimal(chain_dir: Path) -> None:
    from decimal import Decimal

    from imaginebuild import RunOptions, load

    assert RunOptions(max_cost_usd=0.0001).max_cost == Decimal("0.0001")
    assert RunOptions(max_cost_usd=5).max_cost == Decimal(5)
    result = load(chain_dir / "mediafile.yaml").run(options=RunOptions(max_cost_usd=0.01))
    assert result.exit_code == 0  # the local provider bills nothing
    for bad in (float("nan"), float("inf"), -1.0, True, [1]):
        with pytest.raises(ValueError, match="max_cost_usd"):
            RunOptions(max_cost_usd=bad)  # type: ignore[arg-type]


def test_the_local_renderer_draws_every_character_of_a_caption() -> None:
    from imaginebuild.providers.local.images import _has_glyph, drawable

    assert not _has_glyph("×")  # the bundled font has no ×: drawn, it would be a box
    caption = drawable("1360×768 café — 50% off → now")
    assert caption == "1360x768 cafe - 50% off -> now"
    assert all(_has_glyph(c) for c in caption)


def test_the_live_eta_expects_videos_to_take_longer_than_images() -> None:
    from imaginebuild.cli.live import Board
    from imaginebuild.events import AssetState, RunStarted, StepFinished, StepStarted

    board = Board()
    expected = (("still", 10.0), ("clip", 150.0), ("clip2", 150.0))  # a 6 s video: 60 + 15 × 6
    board.apply(RunStarted(3, expected), 0.0)
    board.apply(StepStarted("still", "call"), 0.0)
    board.apply(StepFinished("still", AssetState.BUILT, "never built", 1.0), 1.0)  # 10x quicker
    eta = board.eta(1.0)
    assert eta is not None and eta == pytest.approx(30.0)  # 15 s each, one at a time
    pace_only = 1.0 / 1 * 2  # what finished steps per second alone would say
    assert eta > 10 * pace_only


def test_a_run_tells_the_display_what_each_step_is_expected_to_take(
    open_project: Callable[[Path], Project], project_dir: Path
) -> None:
    from imaginebuild.engine.estimates import expected_seconds
    from imaginebuild.events import RecordingReporter, RunStarted

    project = open_project(project_dir)
    project.run()
    assert isinstance(project.reporter, RecordingReporter)
    started = next(e for e in project.reporter.events if isinstance(e, RunStarted))
    expected = dict(started.expected_seconds)
    assert expected == {n: expected_seconds(a) for n, a in project.mediafile.assets.items()}
    assert expected["clip_long"] > expected["london"]


def test_target_has_help_text(ib: Callable[..., CliResult]) -> None:
    for command in ("run", "plan", "status", "dag", "checkout", "push", "pull"):
        shown = ib(command, "--help").stdout
        assert "TARGET" in shown and "quoted glob" in shown, command
