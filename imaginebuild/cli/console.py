"""The CLI's reporters: one plain line per event (CI logs), quiet, and the run summary.

Every line is written whole with one `write` call, so lines of concurrent
steps never interleave mid-line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

from imaginebuild.engine.results import CommandResult, without_name
from imaginebuild.events import (
    AssetState,
    Event,
    Message,
    MessageLevel,
    RunStarted,
    StepFinished,
    StepPhase,
    StepStarted,
)
from imaginebuild.money import format_usd
from imaginebuild.untrusted import printable

VERBOSITY_QUIET = -1
VERBOSITY_NORMAL = 0
VERBOSITY_VERBOSE = 1

SUMMARY_STATES = (  # what a run's summary line counts, in this order
    AssetState.BUILT,
    AssetState.RESTORED,
    AssetState.UP_TO_DATE,
    AssetState.FAILED,
    AssetState.SKIPPED,
)
_WITH_REASON = (AssetState.BUILT, AssetState.SKIPPED, AssetState.PUSHED)  # "(why)" shown


class PlainReporter:
    """`[done/total] state asset  seconds  $cost` lines on a text stream."""

    def __init__(self, stream: TextIO, verbosity: int = VERBOSITY_NORMAL) -> None:
        self.stream = stream
        self.verbosity = verbosity
        self.total = 0
        self.done = 0

    def emit(self, event: Event) -> None:
        """Write the line an event deserves at this verbosity (maybe none)."""
        line = self._line(event)
        if line is not None:
            self.stream.write(printable(line) + "\n")  # server text may carry escapes
            self.stream.flush()

    def _line(self, event: Event) -> str | None:
        if isinstance(event, RunStarted):
            self.total = event.total
            return None
        if isinstance(event, StepFinished):
            self.done += 1
            if event.state == AssetState.FAILED:
                what = without_name(event.asset, event.error or event.reason)
                return f"[{self.done}/{self.total}] failed {event.asset}: {what}"
            if self.verbosity < VERBOSITY_NORMAL:
                return None
            if event.state == AssetState.UP_TO_DATE and self.verbosity < VERBOSITY_VERBOSE:
                return None
            cost = f"  {format_usd(event.cost_ticks)}" if event.cost_ticks else ""
            detail = f"  ({event.reason})" if event.state in _WITH_REASON else ""
            return (
                f"[{self.done}/{self.total}] {event.state.replace('_', ' ')} {event.asset}"
                f"  {event.seconds:.1f}s{cost}{detail}"
            )
        if isinstance(event, StepPhase | StepStarted):
            if self.verbosity < VERBOSITY_VERBOSE:
                return None
            if isinstance(event, StepPhase):
                return f"  {event.asset}: {event.phase} {event.detail}".rstrip()
            return f"  {event.asset}: {event.action}"
        if isinstance(event, Message):
            if event.level == MessageLevel.DEBUG and self.verbosity < VERBOSITY_VERBOSE:
                return None
            if event.level == MessageLevel.INFO and self.verbosity < VERBOSITY_NORMAL:
                return None
            prefix = "warning: " if event.level == MessageLevel.WARNING else ""
            return f"{prefix}{event.text}"
        return None  # RunFinished: the CLI prints the summary from the result


def summary_line(result: CommandResult) -> str:
    """`built 3, restored 1, up to date 4, failed 0, skipped 0 in 12.3s, $0.44`."""
    counts = result.counts
    parts = [f"{state.replace('_', ' ')} {counts.get(state, 0)}" for state in SUMMARY_STATES]
    return f"{', '.join(parts)} in {result.seconds:.1f}s, {format_usd(result.cost_ticks)}"


def grouped(rows: Sequence[tuple[str | None, Sequence[str]]]) -> list[Sequence[str]]:
    """Table rows (the asset's name first) with the expansions of each matrix template
    gathered under a header line, the template's name, and indented beneath it.

    `rows` pairs each row with its asset's template (None for an ordinary asset); a
    group stands where its first expansion came.
    """
    members: dict[str, list[Sequence[str]]] = {}
    for template, row in rows:
        if template is not None:
            members.setdefault(template, []).append(row)
    if not members:
        return [row for _, row in rows]
    result: list[Sequence[str]] = []
    for template, row in rows:
        if template is None:
            result.append(row)
        elif members[template][0] is row:
            group = members[template]
            result.append([template, *[""] * (len(row) - 1)])
            result += [["  " + r[0], *r[1:]] for r in group]
    return result


def table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    """Left-aligned columns separated by two spaces."""
    cells = [[printable(str(c)).replace("\n", " ") for c in r] for r in [header, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def fit_table(
    rows: Sequence[Sequence[str]], header: Sequence[str], squeeze: int, width: int | None
) -> str:
    """`table`, with column `squeeze` cut short (ending in "…") so no line passes `width`
    characters; None means no limit (stdout is piped)."""
    text = table(rows, header)
    longest = max(len(line) for line in text.splitlines())
    if width is None or longest <= width:
        return text
    room = max(len(header[squeeze]), max(len(r[squeeze]) for r in rows) - (longest - width))

    def cut(cell: str) -> str:
        return cell if len(cell) <= room else cell[: max(room - 1, 0)] + "…"

    return table([[*r[:squeeze], cut(r[squeeze]), *r[squeeze + 1 :]] for r in rows], header)
