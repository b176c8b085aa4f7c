"""Events the engine emits while it works, and the reporter protocol that receives them.

The library never prints: the CLI passes a reporter (live display, plain lines,
JSON collector) and the engine calls `reporter.emit(event)` from the event loop's
thread, one event at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from imaginebuild.spelled import Spelled


class AssetState(Spelled):
    """How an asset stands after a command, as events, results and `--json` spell it.

    The scheduler's own `StepStatus` (ok/failed/refused/skipped) says only whether a
    step's dependants may start; a state says what happened to the asset.
    """

    UP_TO_DATE = "up_to_date"  # nothing to do: outputs match the lockfile for this key
    RESTORED = "restored"  # put in place from a cache, no call
    BUILT = "built"  # a provider call made it
    FAILED = "failed"
    SKIPPED = "skipped"  # not attempted: a parent failed, a policy refused it, never built
    STALE = "stale"  # status/plan: its key or outputs changed since the last build
    NEVER_BUILT = "never_built"  # status/plan: the lockfile has no entry for it
    PUSHED = "pushed"  # push: uploaded to the remote cache
    PICKED = "picked"  # takes: an earlier take made current
    ACCEPTED = "accepted"  # takes: a rejected take accepted despite the output check
    ADOPTED = "adopted"  # takes: outputs retouched by hand made the current take


class MessageLevel(Spelled):
    """How loud a free-form message is; the display decides what each verbosity shows."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"


@dataclass(frozen=True)
class RunStarted:
    """A run begins: how many steps it selected and, per asset, the seconds a provider
    call for it is expected to take (from its kind and duration; for the live ETA)."""

    total: int
    expected_seconds: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class StepStarted:
    """A step left the queue and is deciding or working (`action`: restore/call)."""

    asset: str
    action: str


@dataclass(frozen=True)
class StepPhase:
    """A provider reported what it is doing (calling, polling, downloading…)."""

    asset: str
    phase: str
    detail: str = ""


@dataclass(frozen=True)
class StepFinished:
    """A step ended in `state`; `cost_ticks` is what its calls were billed."""

    asset: str
    state: AssetState
    reason: str
    seconds: float
    cost_ticks: int = 0
    error: str | None = None


@dataclass(frozen=True)
class Message:
    """A free-form note for humans."""

    level: MessageLevel
    text: str


@dataclass(frozen=True)
class RunFinished:
    """The run is over; counts per state, wall time and spend (ticks)."""

    counts: dict[AssetState, int]
    seconds: float
    cost_ticks: int


Event = RunStarted | StepStarted | StepPhase | StepFinished | Message | RunFinished


class Reporter(Protocol):
    """Receives engine events; implementations decide how (or whether) to show them."""

    def emit(self, event: Event) -> None:
        """Handle one event; must not raise."""
        ...


class NullReporter:
    """A reporter that drops everything (the library default)."""

    def emit(self, event: Event) -> None:
        """Drop the event."""


class RecordingReporter:
    """A reporter that keeps every event in order (tests and the JSON output use it)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        """Remember the event."""
        self.events.append(event)
