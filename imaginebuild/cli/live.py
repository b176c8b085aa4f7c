"""The live progress display of a run on a terminal (rich), fed by engine events.

    events ─▶ Board.apply (pure: rows, counts, spend, lines) ─▶ LiveReporter
                                                              ├─ lines above the display
                                                              └─ rich Live: rows in flight + footer

Only the CLI imports this module, and only for a run on a terminal; rich itself
(~100 ms to import) loads when the first step is in flight, so a run with
nothing to do, and every path that draws nothing live (CI logs, --version,
validate), never pays for it. The clock is injected: times and the ETA are testable.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from imaginebuild.cli.console import SUMMARY_STATES
from imaginebuild.engine.results import without_name
from imaginebuild.events import (
    AssetState,
    Event,
    Message,
    MessageLevel,
    RunFinished,
    RunStarted,
    StepFinished,
    StepPhase,
    StepStarted,
)
from imaginebuild.money import format_usd
from imaginebuild.untrusted import printable

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.live import Live

VERBOSITY_QUIET = -1
VERBOSITY_NORMAL = 0
VERBOSITY_VERBOSE = 1

_ACTION_STATES = {"check": "checking", "call": "calling"}
_STATE_STYLES = {
    "checking": "dim",
    "calling": "cyan",
    "polling": "blue",
    "downloading": "magenta",
    "rendering": "cyan",
    AssetState.BUILT: "green",
    AssetState.RESTORED: "green",
    AssetState.UP_TO_DATE: "dim",
    AssetState.FAILED: "bold red",
    AssetState.SKIPPED: "yellow",
}
_FINISHED_MARKS = {
    AssetState.BUILT: "✓",
    AssetState.RESTORED: "↺",
    AssetState.UP_TO_DATE: "·",
    AssetState.FAILED: "✗",
    AssetState.SKIPPED: "-",
}


def format_seconds(seconds: float) -> str:
    """A short duration: `4.2s`, `1m05s`, `2h03m`."""
    if seconds < 60:
        return f"{max(seconds, 0.0):.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


@dataclass
class Row:
    """One step in flight: what it is doing and since when."""

    asset: str
    state: str
    started: float
    detail: str = ""


@dataclass(frozen=True)
class LogLine:
    """A line to keep above the live display (a finished step, a message)."""

    text: str
    style: str = ""


@dataclass
class Board:
    """The pure state of the display: rows in flight, counts, spend, timings."""

    verbosity: int = VERBOSITY_NORMAL
    total: int = 0
    started_at: float | None = None
    done: int = 0
    counts: dict[AssetState, int] = field(default_factory=dict)
    cost: int = 0  # ticks
    rows: dict[str, Row] = field(default_factory=dict)
    finished: RunFinished | None = None
    expected: dict[str, float] = field(default_factory=dict)  # seconds a call should take
    called_seconds: float = 0.0  # wall time of the finished steps that called a provider…
    called_expected: float = 0.0  # …and what they were expected to take
    peak_in_flight: int = 1
    finished_assets: set[str] = field(default_factory=set)

    def apply(self, event: Event, now: float) -> list[LogLine]:
        """Fold one event into the board; return the lines it leaves above the display."""
        if self.started_at is None:
            self.started_at = now
        if isinstance(event, RunStarted):
            self.total, self.started_at = event.total, now
            self.expected = dict(event.expected_seconds)
            return []
        if isinstance(event, StepStarted):
            return self._started(event, now)
        if isinstance(event, StepPhase):
            return self._phase(event, now)
        if isinstance(event, StepFinished):
            return self._finished(event)
        if isinstance(event, Message):
            return self._message(event)
        self.finished = event
        self.rows.clear()
        return []

    def _started(self, event: StepStarted, now: float) -> list[LogLine]:
        row = self.rows.get(event.asset)
        state = _ACTION_STATES.get(event.action, event.action)
        if row is None:
            self.rows[event.asset] = Row(event.asset, state, now)
            self.peak_in_flight = max(self.peak_in_flight, len(self.rows))
        else:
            row.state, row.detail = state, ""
        if self.verbosity < VERBOSITY_VERBOSE:
            return []
        return [LogLine(f"  {event.asset}: {event.action}", "dim")]

    def _phase(self, event: StepPhase, now: float) -> list[LogLine]:
        row = self.rows.setdefault(event.asset, Row(event.asset, event.phase, now))
        row.state, row.detail = event.phase, event.detail
        if self.verbosity < VERBOSITY_VERBOSE:
            return []
        return [LogLine(f"  {event.asset}: {event.phase} {event.detail}".rstrip(), "dim")]

    def _finished(self, event: StepFinished) -> list[LogLine]:
        self.rows.pop(event.asset, None)
        self.done += 1
        self.finished_assets.add(event.asset)
        if event.state == AssetState.BUILT and self.expected.get(event.asset):
            self.called_seconds += event.seconds
            self.called_expected += self.expected[event.asset]
        self.counts[event.state] = self.counts.get(event.state, 0) + 1
        self.cost += event.cost_ticks
        line = finished_line(event, self.done, self.total)
        if event.state == AssetState.FAILED:
            return [line]
        if self.verbosity < VERBOSITY_NORMAL:
            return []
        if event.state == AssetState.UP_TO_DATE and self.verbosity < VERBOSITY_VERBOSE:
            return []
        return [line]

    def _message(self, event: Message) -> list[LogLine]:
        if event.level == MessageLevel.DEBUG and self.verbosity < VERBOSITY_VERBOSE:
            return []
        if event.level == MessageLevel.INFO and self.verbosity < VERBOSITY_NORMAL:
            return []
        if event.level == MessageLevel.WARNING:
            return [LogLine(f"warning: {event.text}", "yellow")]
        return [LogLine(event.text, "dim" if event.level == MessageLevel.DEBUG else "")]

    @property
    def queued(self) -> int:
        """Steps selected for the run that have not started yet."""
        return max(self.total - self.done - len(self.rows), 0)

    def elapsed(self, now: float) -> float:
        """Seconds since the run started."""
        return 0.0 if self.started_at is None else now - self.started_at

    def eta(self, now: float) -> float | None:
        """Seconds left; None before a step ends.

        Once a step has called a provider, each unfinished step is expected to take
        its expected seconds (by kind and duration: a 15 s video is far slower than an
        image) scaled by how the provider's calls compared with their expectation so
        far; the work left is spread over as many steps as ran at once, and never ends
        before the slowest step left. Before any call ended: the pace so far.
        """
        left = self.total - self.done
        if self.done == 0 or left <= 0:
            return None
        if not self.called_expected or not self.expected:
            return self.elapsed(now) / self.done * left
        scale = self.called_seconds / self.called_expected
        remaining = []
        for name, seconds in self.expected.items():
            if name in self.finished_assets:
                continue
            row = self.rows.get(name)
            spent = now - row.started if row is not None else 0.0
            remaining.append(max(seconds * scale - spent, 0.0))
        if not remaining:
            return 0.0
        return max(sum(remaining) / self.peak_in_flight, max(remaining))


def finished_line(event: StepFinished, done: int, total: int) -> LogLine:
    """`✓ [3/7] built london  4.2s  $0.07  (never built)` for a finished step."""
    mark = _FINISHED_MARKS.get(event.state, "•")
    head = f"{mark} [{done}/{total}] {event.state.replace('_', ' ')} {event.asset}"
    if event.state == AssetState.FAILED:
        what = without_name(event.asset, event.error or event.reason)
        return LogLine(f"{head}: {what}", _STATE_STYLES[AssetState.FAILED])
    money = f"  {format_usd(event.cost_ticks)}" if event.cost_ticks else ""
    why = f"  ({event.reason})" if event.state in (AssetState.BUILT, AssetState.SKIPPED) else ""
    return LogLine(f"{head}  {format_seconds(event.seconds)}{money}{why}", "")


def summary_text(event: RunFinished) -> str:
    """`built 3, restored 1, up to date 4, failed 0, skipped 0 in 12.3s, $0.44`."""
    parts = [f"{s.replace('_', ' ')} {event.counts.get(s, 0)}" for s in SUMMARY_STATES]
    cost = format_usd(event.cost_ticks)
    return f"{', '.join(parts)} in {event.seconds:.1f}s, {cost}"


def render(board: Board, now: float, max_rows: int) -> RenderableType:
    """The live part of the display: a table of steps in flight and a footer."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table.grid(padding=(0, 2))
    table.add_column(no_wrap=True)
    table.add_column(no_wrap=True)
    table.add_column(justify="right", no_wrap=True)
    table.add_column(no_wrap=True, overflow="ellipsis", ratio=1)
    rows = sorted(board.rows.values(), key=lambda r: (r.started, r.asset))
    shown = rows[: max(max_rows, 1)]
    for row in shown:
        table.add_row(
            Text(row.asset, style="bold"),
            Text(row.state, style=_STATE_STYLES.get(row.state, "")),
            Text(format_seconds(now - row.started)),
            Text(printable(row.detail), style="dim"),
        )
    parts: list[RenderableType] = [table] if shown else []
    if len(rows) > len(shown):
        parts.append(Text(f"… and {len(rows) - len(shown)} more in flight", style="dim"))
    parts.append(_footer(board, now))
    return Group(*parts)


def _footer(board: Board, now: float) -> RenderableType:
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    eta = board.eta(now)
    text = Text.assemble(
        (f"{board.done}/{board.total} done", "bold"),
        f" · {len(board.rows)} running · {board.queued} queued",
        f" · {format_usd(board.cost)}",
        f" · {format_seconds(board.elapsed(now))}",
        f" · ETA {format_seconds(eta)}" if eta is not None else "",
    )
    failed = board.counts.get(AssetState.FAILED, 0)
    if failed:
        text.append(f" · {failed} failed", style=_STATE_STYLES[AssetState.FAILED])
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    bar = ProgressBar(total=max(board.total, 1), completed=board.done, width=20)
    grid.add_row(bar, text)
    return grid


def make_console(stream: TextIO, **options: Any) -> Console:
    """The Console the display draws on; tests pass `force_terminal`, `width`, `height`."""
    from rich.console import Console

    class _Console(Console):
        """A rich Console that goes quiet on a closed terminal instead of exiting."""

        def on_broken_pipe(self) -> None:
            """Stop writing (rich's default points stdout at /dev/null and exits)."""
            self.quiet = True

    return _Console(file=stream, highlight=False, soft_wrap=False, **options)


class LiveReporter:
    """The Reporter of a run on a terminal: a live table of steps, running cost and ETA.

    Finished steps and messages are printed above the display as they happen;
    the display erases itself when the run finishes and leaves the summary
    line (so the CLI prints no second summary: `shows_summary`). At `-q`
    nothing live is drawn: failures and the summary only. Until a step is in
    flight lines are written plainly, without loading rich.
    """

    shows_summary = True

    def __init__(
        self,
        stream: TextIO,
        clock: Callable[[], float] = time.monotonic,
        console: Console | None = None,
        *,
        verbosity: int = VERBOSITY_NORMAL,
        auto_refresh: bool = True,
    ) -> None:
        self.stream = stream
        self.console = console
        self.clock = clock
        self.board = Board(verbosity=verbosity)
        self._auto_refresh = auto_refresh
        self._lock = threading.RLock()
        self._live: Live | None = None
        self._broken = False

    def emit(self, event: Event) -> None:
        """Update the display with one event; a broken terminal silences it, never raises."""
        # The board has its own lock and rich's calls are made outside it: the
        # refresh thread holds rich's lock while it asks for the board's picture.
        with self._lock:
            lines = self.board.apply(event, self.clock())
        if self._broken:
            return
        try:
            for line in lines:
                self._print(line)
            if isinstance(event, RunFinished):
                self.close()
                self._print(LogLine(summary_text(event), "bold"))
                return
            # Drawn only once a step is in flight: a no-op run prints its summary alone.
            if isinstance(event, StepStarted | StepPhase):
                self._start()
            if self._live is not None and not self._auto_refresh:
                self._live.refresh()
        except OSError:
            self._broken = True
            self.close()

    def close(self) -> None:
        """Stop the live display (idempotent); called at exit if a run was interrupted."""
        live, self._live = self._live, None
        if live is not None:
            atexit.unregister(self.close)
            with contextlib.suppress(OSError):
                live.stop()

    def _print(self, line: LogLine) -> None:
        text = printable(line.text)  # server messages and lockfile text may carry escapes
        if self.console is None:
            self.stream.write(text + "\n")
            self.stream.flush()
            return
        from rich.text import Text

        self.console.print(Text(text, style=line.style), soft_wrap=True)

    def _start(self) -> None:
        if self._live is not None or self.board.finished is not None:
            return
        if self.board.verbosity < VERBOSITY_NORMAL:
            return
        from rich.live import Live

        if self.console is None:
            self.console = make_console(self.stream)
        self._live = Live(
            console=self.console,
            get_renderable=self._renderable,
            auto_refresh=self._auto_refresh,
            refresh_per_second=4,
            transient=True,
            redirect_stdout=False,
        )
        self._live.start()
        # An interrupted run ends without RunFinished: restore the terminal at exit.
        atexit.register(self.close)

    def _renderable(self) -> RenderableType:
        assert self.console is not None  # set before the display starts
        with self._lock:
            max_rows = max(self.console.size.height - 4, 3)
            return render(self.board, self.clock(), max_rows)
