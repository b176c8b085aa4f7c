"""Budgets: what a run may still spend, and its reservations against that allowance.

Three limits, each optional, all in integer ticks:

    per run    budget.max_usd / --max-cost (the lower)   this run's calls only
    per day    budget.max_usd_per_day                    the ledger's lines of the current
                                                         UTC day (00:00-24:00 UTC) + this run
    total      budget.max_usd_total                      every line of the ledger + this run

A run's allowance is the least of what each limit has left when it starts
(`Allowance.remaining`); lines that may have been billed count like billed ones.
The run then reserves against that allowance:

    reserve(a, est) ──billed──────▶ settle(a, billed)     spent += billed, reservation dropped
           │        ──maybe billed─▶ settle(a, est)        kept at the estimate; a later bill
           │                                              of the same call: correct(est, bill)
           └──never reached the API─▶ release(a)          reservation dropped

A reservation is refused when spent + reserved + estimate would pass the
allowance; exactly reaching it is allowed. The refusal names the limit that
binds (the one with the least left).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from imaginebuild.layout import StateLayout
from imaginebuild.money import format_usd, usd_json, usd_to_ticks

if TYPE_CHECKING:
    from imaginebuild.model import Mediafile
    from imaginebuild.store.ledger import LedgerEntry


class Limit(enum.Enum):
    """Which budget a figure belongs to; the value is how messages name it."""

    PER_RUN = "per-run"
    PER_DAY = "per-day"
    TOTAL = "total"


@dataclass(frozen=True)
class LimitState:
    """One budget: its cap and what the ledger already shows against it (0 for per run)."""

    limit: Limit
    cap: int
    used: int = 0

    @property
    def remaining(self) -> int:
        """Ticks this budget has left before the run (negative when already overrun)."""
        return self.cap - self.used

    def describe(self) -> str:
        """`per-day budget $5.00: $1.20 used, $3.80 left`."""
        used = "" if self.limit is Limit.PER_RUN else f"{format_usd(self.used)} used, "
        return (
            f"{self.limit.value} budget {format_usd(self.cap)}: "
            f"{used}{format_usd(max(self.remaining, 0))} left"
        )

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict with exact decimal strings."""
        return {
            "limit": self.limit.value,
            "cap_usd": usd_json(self.cap),
            "used_usd": usd_json(self.used),
            "remaining_usd": usd_json(max(self.remaining, 0)),
        }


@dataclass(frozen=True)
class Allowance:
    """Every configured budget of a run; what it may spend is the least any has left."""

    limits: tuple[LimitState, ...] = ()

    @property
    def remaining(self) -> int | None:
        """Ticks the run may spend (None: no budget; never below 0)."""
        if not self.limits:
            return None
        return max(0, min(s.remaining for s in self.limits))

    @property
    def binding(self) -> tuple[LimitState, ...]:
        """The budgets with the least left (several when they tie)."""
        if not self.limits:
            return ()
        least = min(s.remaining for s in self.limits)
        return tuple(s for s in self.limits if s.remaining == least)

    def exceeded_by(self, ticks: int) -> tuple[LimitState, ...]:
        """The budgets that spending `ticks` would pass."""
        return tuple(s for s in self.limits if ticks > s.remaining)


def binding_name(limits: Iterable[LimitState]) -> str:
    """`per-day` or `per-run and total`: the names of these budgets, for a message."""
    return " and ".join(s.limit.value for s in limits)


def effective_limit(mediafile_usd: Decimal | None, cli_usd: Decimal | None) -> int | None:
    """The run's limit in ticks: the lower of `budget.max_usd` and `--max-cost` (None: no limit)."""
    limits = [usd_to_ticks(v) for v in (mediafile_usd, cli_usd) if v is not None]
    return min(limits) if limits else None


def allowance(
    per_run: int | None,
    per_day: int | None,
    total: int | None,
    entries: Iterable[LedgerEntry],
    today: date,
) -> Allowance:
    """The budgets of a run, the per-day and total ones net of the ledger's `entries`
    (billed and may-have-been-billed alike, each request id once; `today` in UTC)."""
    from imaginebuild.store.ledger import counted

    kept = counted(entries)
    states: list[LimitState] = []
    if per_run is not None:
        states.append(LimitState(Limit.PER_RUN, per_run))
    if per_day is not None:
        used = sum(e.ticks for e in kept if e.day == today)
        states.append(LimitState(Limit.PER_DAY, per_day, used))
    if total is not None:
        states.append(LimitState(Limit.TOTAL, total, sum(e.ticks for e in kept)))
    return Allowance(tuple(states))


def run_allowance(
    mediafile: Mediafile,
    cli_usd: Decimal | None,
    state_dir: Path,
    today: date | None = None,
) -> Allowance:
    """A run's allowance from the mediafile's budgets, `--max-cost` and the project's ledger
    (read only when a per-day or total budget is set)."""
    per_day = mediafile.budget_per_day_usd
    total = mediafile.budget_total_usd
    entries: list[LedgerEntry] = []
    if per_day is not None or total is not None:
        from imaginebuild.store.ledger import Ledger

        entries = Ledger(StateLayout(state_dir.parent).ledger).all_entries()
    return allowance(
        effective_limit(mediafile.budget_usd, cli_usd),
        None if per_day is None else usd_to_ticks(per_day),
        None if total is None else usd_to_ticks(total),
        entries,
        today or datetime.now(timezone.utc).date(),
    )


class Budget:
    """Reservations and spending of one run against an optional limit, exact in ticks.

    `spent` starts at what the run has already recorded (e.g. a resumed job);
    cached steps never reserve, so they cost nothing.
    """

    def __init__(
        self, limit_ticks: int | None, *, spent: int = 0, allowance: Allowance | None = None
    ) -> None:
        if limit_ticks is not None and limit_ticks < 0:
            raise ValueError(f"a budget cannot be negative ({limit_ticks} ticks)")
        if spent < 0:
            raise ValueError(f"spending cannot be negative ({spent} ticks)")
        self.limit = limit_ticks
        self.allowance = allowance or Allowance(
            () if limit_ticks is None else (LimitState(Limit.PER_RUN, limit_ticks),)
        )
        self._spent = spent
        self._reservations: dict[str, int] = {}
        self._refused: dict[str, int] = {}

    @classmethod
    def for_run(cls, allowance: Allowance) -> Budget:
        """A run's budget: its limit is what every budget of `allowance` still allows."""
        return cls(allowance.remaining, allowance=allowance)

    @property
    def spent(self) -> int:
        """Ticks billed so far in this run."""
        return self._spent

    @property
    def reserved(self) -> int:
        """Ticks held for calls in flight."""
        return sum(self._reservations.values())

    @property
    def remaining(self) -> int | None:
        """Ticks still available (None without a limit; negative if billing overshot estimates)."""
        return None if self.limit is None else self.limit - self._spent - self.reserved

    @property
    def refused(self) -> Mapping[str, int]:
        """Assets whose reservation was refused, with the estimate that did not fit."""
        return MappingProxyType(self._refused)

    def fits(self, ticks: int) -> bool:
        """Whether a further `ticks` would stay within the limit."""
        remaining = self.remaining
        return remaining is None or ticks <= remaining

    def reserve(self, asset: str, ticks: int) -> bool:
        """Hold `ticks` for `asset`'s call; False (nothing held) if it could pass the limit."""
        if ticks < 0:
            raise ValueError(f"an estimate cannot be negative ({ticks} ticks)")
        if asset in self._reservations:
            raise ValueError(f"'{asset}' already holds a reservation")
        if not self.fits(ticks):
            self._refused[asset] = ticks
            return False
        self._refused.pop(asset, None)
        self._reservations[asset] = ticks
        return True

    def settle(self, asset: str, actual_ticks: int) -> None:
        """Replace `asset`'s reservation (if any) by what the call was billed, even above it."""
        if actual_ticks < 0:
            raise ValueError(f"a bill cannot be negative ({actual_ticks} ticks)")
        self._reservations.pop(asset, None)
        self._spent += actual_ticks

    def correct(self, counted: int, billed: int) -> None:
        """A call counted at `counted` (a may-have-been-billed estimate) turned out billed
        at `billed`: spending follows the bill."""
        if billed < 0:
            raise ValueError(f"a bill cannot be negative ({billed} ticks)")
        self._spent += billed - counted

    def release(self, asset: str) -> None:
        """Drop `asset`'s reservation: its step ended without a billed call (idempotent)."""
        self._reservations.pop(asset, None)

    def refusal(self, asset: str, ticks: int) -> str:
        """Why `asset`'s call of estimated `ticks` was not started, naming the binding budget."""
        binding = self.allowance.binding
        left = format_usd(max(self.remaining or 0, 0))
        details = "; ".join(s.describe() for s in binding)
        return (
            f"{asset} not started: its estimated {format_usd(ticks)} would pass the "
            f"{binding_name(binding)} budget ({left} left for this run; {details})"
        )

    def limit_name(self) -> str:
        """The name of the budget that binds this run (`per-day`), for the run's message."""
        return binding_name(self.allowance.binding)

    def stopped(self, left: Mapping[str, int]) -> str:
        """The run's closing message when this budget stopped it: the binding limit, the
        assets `left` unbuilt and what they would still cost (their estimates in ticks)."""
        return (
            f"{self.limit_name()} budget reached: left unbuilt {', '.join(left)} "
            f"(estimated {format_usd(sum(left.values()))} more)"
        )
