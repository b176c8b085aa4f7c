"""Events the engine emits while it works, and the reporter protocol that receives them.

The library never prints: the CLI passes a reporter (live display, plain lines,
JSON collector) and the engine calls `reporter.emit(event)` from the event loop's
thread, one event at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


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
    """A step ended in `state` (up_to_date/restored/built/failed/skipped)."""

    asset: str
    state: str
    reason: str
    seconds: float
    cost_usd: str = "0"
    error: str | None = None


@dataclass(frozen=True)
class Message:
    """A free-form note for humans (`level`: info, warning, debug)."""

    level: str
    text: str


@dataclass(frozen=True)
class RunFinished:
    """The run is over; counts per state, wall time and spend."""

    counts: dict[str, int]
    seconds: float
    cost_usd: str


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
