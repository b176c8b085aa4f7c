"""The team coordinator's interface: submission slots per model, reservations against team caps.

    take_slot(model) ──granted──▶ POST to the API (at most `rate` per window, team-wide)

    reserve(runner, ticks) ──▶ settle(id, billed)   the call was (or may have been) billed
              │
              ├──────────────▶ release(id)          the call provably never reached the API
              │
              └─runner dies──▶ expired after its TTL: charged at its estimate if a slot was
                               taken for it (it may have been billed), released otherwise

A runner is one imaginebuild process (`host:pid:start`). It heartbeats while it
holds reservations; once it has missed its TTL (`DEFAULT_TTL_S`, or
`IMAGINEBUILD_COORDINATOR_TTL`) any coordinator call expires its reservations.
A reservation is refused when today's spend + every reservation + the amount
would pass the per-day cap, or the total spend + reservations + amount the total
cap; exactly reaching a cap is allowed. Days are UTC. Amounts are integer ticks.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

HEADROOM_PERCENT = 10  # grants spaced 10 % wider than the limit: arrival jitter stays under it
DEFAULT_TTL_S = 60.0  # a runner silent this long is dead: its reservations expire
DEFAULT_SLOT_DEADLINE_S = 600.0  # how long a step waits for a submission slot at most
IMAGE_RATE = "5/1"  # xAI: 5 requests/s per image model, for the whole team
VIDEO_RATE = "1/1"  # xAI: 1 request/s per video model


@dataclass(frozen=True)
class RunnerId:
    """One imaginebuild process: host, pid and start time (a reused pid is another runner)."""

    host: str
    pid: int
    started: int  # Unix time in ms

    @classmethod
    def this_process(cls) -> RunnerId:
        """The id of the calling process."""
        return cls(socket.gethostname(), os.getpid(), time.time_ns() // 1_000_000)

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}:{self.started}"


@dataclass(frozen=True)
class RateLimit:
    """At most `requests` submissions per `seconds`, for one model, team-wide."""

    requests: int
    seconds: int = 1

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        """`N` or `N/SECONDS` (e.g. `5`, `1/1`, `30/60`); ValueError on anything else."""
        head, _, tail = text.strip().partition("/")
        try:
            rate = cls(int(head), int(tail) if tail else 1)
        except ValueError:
            hint = "use N or N/SECONDS, e.g. 5 or 30/60"
            raise ValueError(f"not a rate: {text!r} ({hint})") from None
        if rate.requests < 1 or rate.seconds < 1:
            raise ValueError(f"a rate needs at least 1 request per at least 1 second: {text!r}")
        return rate

    def __str__(self) -> str:
        return f"{self.requests}/{self.seconds}"

    @property
    def interval_ns(self) -> int:
        """The spacing between two grants: `seconds / requests` plus `HEADROOM_PERCENT`, so
        the jitter between a grant and its request's arrival never shows the API more."""
        return -(-self.seconds * 1_000_000_000 * (100 + HEADROOM_PERCENT) // (100 * self.requests))


def default_rate(model: str) -> RateLimit:
    """xAI's documented per-team limit for a model: 1/s for video models, 5/s otherwise."""
    return RateLimit.parse(VIDEO_RATE if "video" in model else IMAGE_RATE)


@dataclass(frozen=True)
class TeamCaps:
    """What the team may spend and how fast it may submit (None: no cap)."""

    max_per_day_ticks: int | None = None
    max_total_ticks: int | None = None
    rates: Mapping[str, RateLimit] = field(default_factory=dict)

    def rate_for(self, model: str) -> RateLimit:
        """The model's rate: set in the coordinator, else xAI's documented default."""
        return self.rates.get(model) or default_rate(model)

    def to_json(self) -> dict[str, object]:
        """A JSON-ready form (ticks as integers, rates as `N/SECONDS`)."""
        return {
            "max_per_day_ticks": self.max_per_day_ticks,
            "max_total_ticks": self.max_total_ticks,
            "rates": {m: str(r) for m, r in sorted(self.rates.items())},
        }


@dataclass(frozen=True)
class ReservationRequest:
    """What a runner asks to hold before a paid call."""

    asset: str
    model: str
    key: str  # the action key of the step
    ticks: int


@dataclass(frozen=True)
class Reservation:
    """Money held for one call in flight."""

    id: str
    runner: str
    asset: str
    model: str
    ticks: int
    submitted: bool = False  # a slot was taken for it: the call may have reached the API


@dataclass(frozen=True)
class SlotAttempt:
    """One try at a submission slot: granted, or the seconds to wait before trying again."""

    granted: bool
    wait_s: float = 0.0


@dataclass(frozen=True)
class Grant:
    """One submission slot given out (the coordinator's own log)."""

    time_ns: int
    model: str
    runner: str


@dataclass(frozen=True)
class ModelUsage:
    """A model's rate and the slots granted in its current window."""

    model: str
    rate: RateLimit
    in_window: int


@dataclass(frozen=True)
class RunnerUsage:
    """What one live runner holds."""

    runner: str
    reservations: int
    reserved_ticks: int
    heartbeat_age_s: float


@dataclass(frozen=True)
class TeamStatus:
    """The coordinator's state as `imaginebuild team status` shows it."""

    backend: str
    team: str
    day: str  # the UTC day the spend counts for
    spent_today_ticks: int
    spent_total_ticks: int
    caps: TeamCaps
    models: tuple[ModelUsage, ...]
    runners: tuple[RunnerUsage, ...]
    expired: int  # reservations expired since the coordinator was created

    @property
    def reserved_ticks(self) -> int:
        """Ticks held by every runner together."""
        return sum(r.reserved_ticks for r in self.runners)

    def to_json(self) -> dict[str, object]:
        """A JSON-ready form of every field."""
        return {
            "backend": self.backend,
            "team": self.team,
            "day": self.day,
            "spent_today_ticks": self.spent_today_ticks,
            "spent_total_ticks": self.spent_total_ticks,
            "reserved_ticks": self.reserved_ticks,
            "caps": self.caps.to_json(),
            "models": [
                {"model": m.model, "rate": str(m.rate), "in_window": m.in_window}
                for m in self.models
            ],
            "runners": [
                {
                    "runner": r.runner,
                    "reservations": r.reservations,
                    "reserved_ticks": r.reserved_ticks,
                    "heartbeat_age_s": round(r.heartbeat_age_s, 3),
                }
                for r in self.runners
            ],
            "expired": self.expired,
        }


class Coordinator(Protocol):
    """One team's rate budget and spend caps, shared by every runner that opens it.

    Every method is atomic across processes (and machines, for a shared backend)
    and raises CoordinatorUnavailable when the backend cannot be reached; a
    reservation that would pass a cap raises TeamCapReached.
    """

    backend: str  # "embedded <path>" or "redis <host:port/db>" (never a password)
    team: str

    def heartbeat(self, runner: RunnerId, ttl_s: float) -> None:
        """Say `runner` is alive for `ttl_s` more seconds (registers it on first call)."""
        ...

    def forget(self, runner: RunnerId) -> None:
        """`runner` ends cleanly; anything it still holds expires at once."""
        ...

    def try_slot(self, model: str, runner: RunnerId, reservation: str | None) -> SlotAttempt:
        """Take a submission slot for `model` now if its rate allows (marks the reservation
        submitted when granted), else say how long to wait."""
        ...

    def reserve(self, runner: RunnerId, request: ReservationRequest) -> Reservation:
        """Hold `request.ticks` against the caps, or raise TeamCapReached (nothing held)."""
        ...

    def settle(self, reservation: str, billed_ticks: int) -> None:
        """Drop the reservation and count what the call was billed (even above the hold)."""
        ...

    def release(self, reservation: str) -> None:
        """Drop the reservation without spending: the call never reached the API."""
        ...

    def caps(self) -> TeamCaps:
        """The caps and rates set for the team."""
        ...

    def set_caps(self, caps: TeamCaps) -> None:
        """Replace the team's caps and rates."""
        ...

    def status(self) -> TeamStatus:
        """Spend, reservations per runner, rates in use and caps (expires dead runners first)."""
        ...

    def grants(self, model: str | None = None) -> tuple[Grant, ...]:
        """The recent slots given out (the last 10 minutes at least), oldest first."""
        ...

    def close(self) -> None:
        """Release connections (the shared state stays)."""
        ...


def utc_day(time_ns: int) -> str:
    """The UTC day (`YYYY-MM-DD`) of a Unix time in nanoseconds."""
    return time.strftime("%Y-%m-%d", time.gmtime(time_ns // 1_000_000_000))


GRANT_LOG_KEEP_NS = 600 * 1_000_000_000  # grants older than this are pruned from the log


def cap_refusal(
    caps: TeamCaps, spent_today: int, spent_total: int, reserved: int, ticks: int
) -> str | None:
    """Why holding `ticks` more would pass a cap (None: it fits; reaching a cap exactly fits)."""
    from imaginebuild.money import format_usd

    held = reserved + ticks
    if caps.max_per_day_ticks is not None and spent_today + held > caps.max_per_day_ticks:
        return (
            f"the team's daily cap of {format_usd(caps.max_per_day_ticks)} would be passed "
            f"(spent today {format_usd(spent_today)}, held {format_usd(reserved)}, "
            f"this call {format_usd(ticks)})"
        )
    if caps.max_total_ticks is not None and spent_total + held > caps.max_total_ticks:
        return (
            f"the team's total cap of {format_usd(caps.max_total_ticks)} would be passed "
            f"(spent {format_usd(spent_total)}, held {format_usd(reserved)}, "
            f"this call {format_usd(ticks)})"
        )
    return None
