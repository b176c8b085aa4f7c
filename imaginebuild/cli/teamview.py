"""`imaginebuild team`: parse a change of the team's caps, and render the coordinator's status."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from imaginebuild.coordinator.base import RateLimit, TeamCaps, TeamStatus
from imaginebuild.errors import UsageError
from imaginebuild.money import format_usd, usd_to_ticks


@dataclass(frozen=True)
class CapsChange:
    """What `team set` changes: a cap not given keeps its value; a rate of None is reset."""

    per_day: int | None
    total: int | None
    set_per_day: bool
    set_total: bool
    rates: tuple[tuple[str, RateLimit | None], ...]  # None: back to xAI's default

    def apply(self, caps: TeamCaps) -> TeamCaps:
        """The caps after this change."""
        rates = dict(caps.rates)
        for model, rate in self.rates:
            if rate is None:
                rates.pop(model, None)
            else:
                rates[model] = rate
        return dataclasses.replace(
            caps,
            max_per_day_ticks=self.per_day if self.set_per_day else caps.max_per_day_ticks,
            max_total_ticks=self.total if self.set_total else caps.max_total_ticks,
            rates=rates,
        )


def parse_change(per_day: str | None, total: str | None, rates: Sequence[str]) -> CapsChange:
    """Check `team set`'s values (UsageError, exit 2, naming the option); nothing is touched."""
    parsed_rates = []
    for item in rates:
        model, sep, text = item.partition("=")
        if not sep or not model.strip():
            raise UsageError(f"--rate {item!r}: use MODEL=N[/SECONDS], e.g. grok-imagine-image=5")
        try:
            rate = None if text.strip() == "default" else RateLimit.parse(text)
        except ValueError as exc:
            raise UsageError(f"--rate {item!r}: {exc}") from None
        parsed_rates.append((model.strip(), rate))
    return CapsChange(
        _usd("--max-usd-per-day", per_day),
        _usd("--max-usd-total", total),
        per_day is not None,
        total is not None,
        tuple(parsed_rates),
    )


def _usd(option: str, text: str | None) -> int | None:
    if text is None or text.strip().lower() == "none":
        return None
    try:
        ticks = usd_to_ticks(text)
    except ValueError:
        raise UsageError(f"{option} {text!r} is not an amount in USD (or 'none')") from None
    if ticks < 0:
        raise UsageError(f"{option} {text!r} must not be negative")
    return ticks


def render_status(status: TeamStatus) -> str:
    """The status as lines for a person."""
    caps = status.caps
    lines = [
        f"team {status.team} on {status.backend}",
        f"spent today ({status.day} UTC): {format_usd(status.spent_today_ticks)}"
        f" of {_cap(caps.max_per_day_ticks)}",
        f"spent in total: {format_usd(status.spent_total_ticks)} of {_cap(caps.max_total_ticks)}",
        f"reserved now: {format_usd(status.reserved_ticks)}",
    ]
    for m in status.models:
        lines.append(
            f"rate {m.model}: {m.in_window} of {m.rate.requests} in the last {m.rate.seconds} s"
        )
    for r in status.runners:
        lines.append(
            f"runner {r.runner}: {r.reservations} reservation(s), "
            f"{format_usd(r.reserved_ticks)}, heard from {r.heartbeat_age_s:.1f} s ago"
        )
    if not status.runners:
        lines.append("no runner is active")
    if status.expired:
        lines.append(f"reservations expired from dead runners so far: {status.expired}")
    return "\n".join(lines)


def _cap(ticks: int | None) -> str:
    return "no cap" if ticks is None else format_usd(ticks)
