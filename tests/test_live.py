"""The live TTY display: a fake terminal (rich Console on a StringIO) and an injected clock."""

from __future__ import annotations

import io
import re
import sys
import time
from pathlib import Path

import pytest
from conftest import wait_for_state
from rich.console import Console

from imaginebuild.cli.live import (
    VERBOSITY_NORMAL,
    VERBOSITY_QUIET,
    VERBOSITY_VERBOSE,
    Board,
    LiveReporter,
    format_seconds,
    make_console,
    summary_text,
)
from imaginebuild.events import (
    AssetState,
    Message,
    MessageLevel,
    RunFinished,
    RunStarted,
    StepFinished,
    StepPhase,
    StepStarted,
)
from imaginebuild.money import format_usd, usd_to_ticks

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
HIDE_CURSOR = "\x1b[?25l"
SHOW_CURSOR = "\x1b[?25h"


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def terminal(width: int = 100, height: int = 24) -> tuple[io.StringIO, Console]:
    buffer = io.StringIO()
    console = make_console(
        buffer, force_terminal=True, width=width, height=height, color_system=None
    )
    return buffer, console


def frames(buffer: io.StringIO) -> list[str]:
    """The text of each redraw: rich erases lines with ESC[2K before drawing the next frame."""
    return [ANSI.sub("", f) for f in buffer.getvalue().split("\x1b[2K")]


def plain(buffer: io.StringIO) -> str:
    return ANSI.sub("", buffer.getvalue())


def reporter(
    verbosity: int = VERBOSITY_NORMAL, height: int = 24
) -> tuple[LiveReporter, FakeClock, io.StringIO]:
    buffer, console = terminal(height=height)
    clock = FakeClock()
    live = LiveReporter(
        buffer, clock=clock, console=console, verbosity=verbosity, auto_refresh=False
    )
    return live, clock, buffer


# ---------------------------------------------------------------------- pure board


def test_board_tracks_states_counts_cost_and_queue() -> None:
    board = Board()
    board.apply(RunStarted(4), 10.0)
    board.apply(StepStarted("london", "check"), 10.0)
    assert board.rows["london"].state == "checking"
    board.apply(StepStarted("london", "call"), 10.5)
    assert board.rows["london"].state == "calling"
    board.apply(StepPhase("london", "polling", "job r-1 pending"), 12.0)
    assert (board.rows["london"].state, board.rows["london"].detail) == (
        "polling",
        "job r-1 pending",
    )
    assert board.rows["london"].started == 10.0  # elapsed counts from the step's start
    assert board.queued == 3
    board.apply(
        StepFinished("london", AssetState.BUILT, "never built", 4.0, usd_to_ticks("0.07")), 14.0
    )
    board.apply(StepFinished("sketch", AssetState.RESTORED, "from the cache", 0.1, 0), 14.0)
    board.apply(
        StepFinished("clip", AssetState.BUILT, "never built", 9.0, usd_to_ticks("0.202")), 15.0
    )
    assert board.rows == {}
    assert board.done == 3 and board.queued == 1
    assert board.counts == {"built": 2, "restored": 1}
    assert board.cost == usd_to_ticks("0.272")


def test_eta_is_the_pace_so_far_times_steps_left() -> None:
    board = Board()
    board.apply(RunStarted(4), 100.0)
    assert board.eta(130.0) is None  # nothing finished: no pace to extrapolate
    board.apply(StepFinished("a", AssetState.BUILT, "never built", 10.0), 110.0)
    assert board.eta(110.0) == pytest.approx(30.0)  # 10 s per step, 3 left
    board.apply(StepFinished("b", AssetState.BUILT, "never built", 10.0), 140.0)
    assert board.eta(140.0) == pytest.approx(40.0)  # 20 s per step, 2 left
    for name in ("c", "d"):
        board.apply(StepFinished(name, AssetState.RESTORED, "", 0.0), 141.0)
    assert board.eta(141.0) is None  # done


def test_the_board_adds_up_the_ticks_of_the_steps() -> None:
    board = Board()
    board.apply(RunStarted(2), 0.0)
    board.apply(StepFinished("a", AssetState.BUILT, "", 1.0, usd_to_ticks("0.25")), 1.0)
    board.apply(StepFinished("b", AssetState.BUILT, "", 1.0, usd_to_ticks("0.5")), 1.0)
    assert board.cost == usd_to_ticks("0.75")


@pytest.mark.parametrize(
    ("verbosity", "expected"),
    [
        # warnings stay at -q, like the plain lines: a budget refusal is news
        (VERBOSITY_QUIET, ["✗ [3/3] failed c: HTTP 500 after 4 tries", "warning: slow down"]),
        (
            VERBOSITY_NORMAL,
            [
                "✓ [1/3] built a  1.0s  $0.07  (never built)",
                "✗ [3/3] failed c: HTTP 500 after 4 tries",
                "warning: slow down",
                "note",
            ],
        ),
        (
            VERBOSITY_VERBOSE,
            [
                "  a: call",
                "  a: polling job r-1",
                "✓ [1/3] built a  1.0s  $0.07  (never built)",
                "· [2/3] up to date b  0.0s",
                "✗ [3/3] failed c: HTTP 500 after 4 tries",
                "warning: slow down",
                "note",
                "GET /v1/videos/r-1 200",
            ],
        ),
    ],
)
def test_log_lines_follow_verbosity(verbosity: int, expected: list[str]) -> None:
    board = Board(verbosity=verbosity)
    events = [
        RunStarted(3),
        StepStarted("a", "call"),
        StepPhase("a", "polling", "job r-1"),
        StepFinished("a", AssetState.BUILT, "never built", 1.0, usd_to_ticks("0.07")),
        StepFinished("b", AssetState.UP_TO_DATE, "up to date", 0.0),
        StepFinished("c", AssetState.FAILED, "call failed", 2.0, error="HTTP 500 after 4 tries"),
        Message(MessageLevel.WARNING, "slow down"),
        Message(MessageLevel.INFO, "note"),
        Message(MessageLevel.DEBUG, "GET /v1/videos/r-1 200"),
    ]
    lines = [line.text for e in events for line in board.apply(e, 0.0)]
    assert lines == expected


def test_formats() -> None:
    assert format_seconds(4.25) == "4.2s"
    assert format_seconds(65) == "1m05s"
    assert format_seconds(7380) == "2h03m"
    assert format_usd(0) == "$0.00"
    assert format_usd(usd_to_ticks("0.4")) == "$0.40"
    assert format_usd(usd_to_ticks("0.002")) == "$0.002"
    assert format_usd(usd_to_ticks("12")) == "$12.00"
    finished = RunFinished(
        {AssetState.BUILT: 3, AssetState.UP_TO_DATE: 4}, 12.34, usd_to_ticks("0.44")
    )
    assert summary_text(finished) == (
        "built 3, restored 0, up to date 4, failed 0, skipped 0 in 12.3s, $0.44"
    )


# ---------------------------------------------------------------------- fake terminal


def test_live_display_shows_rows_elapsed_cost_and_eta() -> None:
    live, clock, buffer = reporter()
    live.emit(RunStarted(3))
    live.emit(StepStarted("london", "call"))
    clock.advance(2)
    live.emit(StepPhase("london", "polling", "job r-1 pending"))
    assert buffer.getvalue().startswith(HIDE_CURSOR)  # a live display, not plain lines
    last = frames(buffer)[-1]
    assert re.search(r"london\s+polling\s+2\.0s\s+job r-1 pending", last)
    assert "0/3 done · 1 running · 2 queued · $0.00 · 2.0s" in last
    assert "ETA" not in last

    clock.advance(8)
    live.emit(StepFinished("london", AssetState.BUILT, "never built", 10.0, usd_to_ticks("0.07")))
    live.emit(StepStarted("clip", "call"))
    clock.advance(65)
    live.emit(StepPhase("clip", "downloading", "job r-2"))
    last = frames(buffer)[-1]
    assert re.search(r"clip\s+downloading\s+1m05s\s+job r-2", last)
    assert "1/3 done · 1 running · 1 queued · $0.07 · 1m15s · ETA 2m30s" in last
    assert "✓ [1/3] built london  10.0s  $0.07  (never built)" in plain(buffer)


def test_run_finished_erases_the_display_and_leaves_the_summary() -> None:
    live, clock, buffer = reporter()
    live.emit(RunStarted(1))
    live.emit(StepStarted("a", "call"))
    clock.advance(3)
    live.emit(StepFinished("a", AssetState.BUILT, "never built", 3.0, usd_to_ticks("0.05")))
    live.emit(RunFinished({AssetState.BUILT: 1}, 3.0, usd_to_ticks("0.05")))
    out = buffer.getvalue()
    assert SHOW_CURSOR in out
    assert out.rstrip("\n").endswith(
        "built 1, restored 0, up to date 0, failed 0, skipped 0 in 3.0s, $0.05"
    )
    assert out.count(HIDE_CURSOR) == 1
    # Events after the end (none expected) do not bring the display back.
    live.emit(Message(MessageLevel.INFO, "late"))
    assert buffer.getvalue().count(HIDE_CURSOR) == 1


def test_a_run_with_nothing_to_do_prints_its_summary_alone() -> None:
    live, _, buffer = reporter()
    live.emit(RunStarted(3))
    for name in ("a", "b", "c"):
        live.emit(StepFinished(name, AssetState.UP_TO_DATE, "up to date", 0.0))
    live.emit(RunFinished({AssetState.UP_TO_DATE: 3}, 0.0, 0))
    assert buffer.getvalue() == (
        "built 0, restored 0, up to date 3, failed 0, skipped 0 in 0.0s, $0.00\n"
    )


def test_a_real_run_on_a_fake_terminal(tmp_path: Path) -> None:
    """The engine's real event stream, the refresh thread and the real clock together."""
    from imaginebuild.project import load

    (tmp_path / "mediafile.yaml").write_text(
        "version: 1\nprovider: local\nassets:\n"
        "  still: {kind: image, prompt: a red square, count: 2}\n"
        "  moving: {kind: animate, prompt: it spins, inputs: ['still[1]'], duration: 1}\n",
        encoding="utf-8",
    )
    buffer, console = terminal()
    live = LiveReporter(buffer, console=console)
    env = {"IMAGINEBUILD_CACHE_DIR": str(tmp_path / "cache")}
    try:
        result = load(tmp_path / "mediafile.yaml", env=env, reporter=live).run()
    finally:
        live.close()
    assert result.exit_code == 0
    text = plain(buffer)
    assert re.search(r"✓ \[1/2\] built still  \d+\.\ds  \(never built\)", text)
    assert re.search(r"✓ \[2/2\] built moving  \d+\.\ds  \(never built\)", text)
    assert re.search(r"built 2, restored 0, up to date 0, failed 0, skipped 0 in \d", text)
    assert buffer.getvalue().count(HIDE_CURSOR) == 1 and SHOW_CURSOR in buffer.getvalue()


def test_user_text_is_shown_literally_not_as_markup() -> None:
    live, _, buffer = reporter()
    live.emit(RunStarted(1))
    live.emit(StepPhase("a", "polling", "[bold red]job[/] <b>"))
    live.emit(StepFinished("a", AssetState.FAILED, "x", 1.0, error="rejected: '[link=x]y[/link]'"))
    text = plain(buffer)
    assert "[bold red]job[/] <b>" in text
    assert "rejected: '[link=x]y[/link]'" in text


def test_quiet_draws_nothing_live_only_failures_and_summary() -> None:
    live, _, buffer = reporter(VERBOSITY_QUIET)
    live.emit(RunStarted(2))
    live.emit(StepStarted("a", "call"))
    live.emit(StepFinished("a", AssetState.BUILT, "never built", 1.0))
    live.emit(StepStarted("b", "call"))
    live.emit(StepFinished("b", AssetState.FAILED, "x", 1.0, error="boom"))
    live.emit(RunFinished({AssetState.BUILT: 1, AssetState.FAILED: 1}, 2.0, 0))
    assert HIDE_CURSOR not in buffer.getvalue()
    assert plain(buffer).splitlines() == [
        "✗ [2/2] failed b: boom",
        "built 1, restored 0, up to date 0, failed 1, skipped 0 in 2.0s, $0.00",
    ]


def test_rows_beyond_the_terminal_height_are_counted_not_drawn() -> None:
    live, _, buffer = reporter(height=8)
    live.emit(RunStarted(20))
    for i in range(10):
        live.emit(StepStarted(f"asset{i:02d}", "call"))
    last = frames(buffer)[-1]
    assert "asset00" in last and "asset03" in last
    assert "asset04" not in last
    assert "… and 6 more in flight" in last


def test_close_restores_the_terminal_after_an_interrupted_run() -> None:
    live, _, buffer = reporter()
    live.emit(RunStarted(2))
    live.emit(StepStarted("a", "call"))
    live.close()
    live.close()  # idempotent
    out = buffer.getvalue()
    assert out.count(SHOW_CURSOR) == 1
    assert out.index(SHOW_CURSOR) > out.index(HIDE_CURSOR)


def test_auto_refresh_advances_elapsed_time_between_events() -> None:
    buffer, console = terminal()
    clock = FakeClock()
    live = LiveReporter(buffer, clock=clock, console=console)
    try:
        live.emit(RunStarted(1))
        live.emit(StepStarted("teaser", "call"))
        clock.advance(42)  # no event: only the refresh thread can show the new time
        wait_for_state(lambda: "42.0s" in plain(buffer), "a refresh showing 42.0s")
    finally:
        live.close()
    assert re.search(r"teaser\s+calling\s+42\.0s", plain(buffer))


def test_a_closed_terminal_silences_the_reporter() -> None:
    class Broken(io.StringIO):
        attempts = 0

        def write(self, s: str) -> int:
            Broken.attempts += 1
            raise BrokenPipeError(32, "Broken pipe")

    console = make_console(Broken(), force_terminal=True, width=80, color_system=None)
    live = LiveReporter(sys.stderr, clock=FakeClock(), console=console, auto_refresh=False)
    live.emit(RunStarted(2))  # must not raise
    live.emit(StepFinished("a", AssetState.BUILT, "never built", 1.0))
    tried = Broken.attempts
    assert tried >= 1  # it did write, and met the closed pipe
    live.emit(StepFinished("b", AssetState.BUILT, "never built", 1.0))
    live.close()  # rich's default Console would have raised SystemExit above
    assert Broken.attempts == tried  # silenced: nothing more was written after the pipe closed


def test_a_closed_pipe_before_the_display_starts_silences_the_reporter() -> None:
    class Broken(io.StringIO):
        def write(self, s: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    live = LiveReporter(Broken(), clock=FakeClock(), auto_refresh=False)
    live.emit(RunStarted(1))
    live.emit(Message(MessageLevel.WARNING, "budget reached"))  # must not raise
    live.emit(RunFinished({}, 0.0, 0))


def test_rich_loads_only_once_a_step_is_in_flight() -> None:
    import subprocess

    code = """if True:
        import io, sys
        from imaginebuild.events import *
        from imaginebuild.cli.live import LiveReporter
        out = io.StringIO()
        live = LiveReporter(out)
        live.emit(RunStarted(1))
        live.emit(Message(MessageLevel.WARNING, "w"))
        live.emit(StepFinished("a", AssetState.UP_TO_DATE, "up to date", 0.0))
        live.emit(RunFinished({AssetState.UP_TO_DATE: 1}, 0.0, 0))
        print("rich" in sys.modules, repr(out.getvalue()))
    """
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == (
        "False 'warning: w\\nbuilt 0, restored 0, up to date 1, failed 0, skipped 0 in 0.0s, "
        "$0.00\\n'"
    )


def test_importing_the_cli_does_not_import_rich() -> None:
    import subprocess

    code = (
        "import sys, imaginebuild.cli.app, imaginebuild.cli.console; print('rich' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"


# ---------------------------------------------------------------------- the CLI on a real pty

SMALL = (
    "version: 1\nprovider: local\nassets:\n"
    "  still: {kind: image, prompt: a red square}\n"
    "  moving: {kind: animate, prompt: it spins, inputs: [still], duration: 1}\n"
)


def run_cli(args: list[str], cwd: Path, *, tty: bool, ci: bool = False) -> tuple[int, str]:
    """Run `python -m imaginebuild` with stderr on a pseudo-terminal (or a pipe); return it."""
    import fcntl
    import os
    import pty
    import select
    import struct
    import subprocess
    import termios

    env = {k: v for k, v in os.environ.items() if k not in ("CI", "NO_COLOR", "FORCE_COLOR")}
    env.update(TERM="xterm-256color", IMAGINEBUILD_CACHE_DIR=str(cwd / "cache"))
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    if ci:
        env["CI"] = "true"
    argv = [sys.executable, "-m", "imaginebuild", *args]
    if not tty:
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
        return done.returncode, done.stderr
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave
    )
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if not select.select([master], [], [], 1.0)[0]:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed its end
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
        if proc.poll() is None and time.monotonic() >= deadline:
            proc.kill()
    return proc.wait(timeout=120), b"".join(chunks).decode("utf-8", "replace")


@pytest.fixture
def small_project(tmp_path: Path) -> Path:
    (tmp_path / "mediafile.yaml").write_text(SMALL, encoding="utf-8")
    return tmp_path


def test_cli_on_a_terminal_draws_the_live_display(small_project: Path) -> None:
    code, err = run_cli(["run"], small_project, tty=True)
    assert code == 0, err
    assert HIDE_CURSOR in err and SHOW_CURSOR in err
    text = ANSI.sub("", err)
    assert "✓ [1/2] built still" in text and "✓ [2/2] built moving" in text
    assert text.count("built 2, restored 0, up to date 0, failed 0, skipped 0") == 1


@pytest.mark.parametrize("how", ["ci", "pipe"])
def test_cli_in_ci_or_a_pipe_prints_plain_lines(small_project: Path, how: str) -> None:
    code, err = run_cli(["run"], small_project, tty=how == "ci", ci=how == "ci")
    assert code == 0, err
    assert "\x1b" not in err
    lines = err.splitlines()
    assert lines[0].startswith("[1/2] built still  ") and lines[1].startswith("[2/2] built moving")
    assert lines[-1].startswith("built 2, restored 0, up to date 0, failed 0, skipped 0 in ")
    assert len(lines) == 3


def test_cli_quiet_on_a_terminal_prints_only_the_summary(small_project: Path) -> None:
    code, err = run_cli(["-q", "run"], small_project, tty=True)
    assert code == 0, err
    assert "\x1b" not in err
    lines = err.replace("\r\n", "\n").splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("built 2, restored 0, up to date 0, failed 0, skipped 0 in ")
