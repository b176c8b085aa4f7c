"""The run's spending limit: reserve each step's estimate before calling, settle what was billed.

    reserve(a, est) ──call──▶ settle(a, billed)     spent += billed, reservation dropped
           │
           └──no call──────▶ release(a)             reservation dropped

A reservation is refused when spent + reserved + estimate would pass the
limit; exactly reaching it is allowed. All amounts are integer ticks.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType

from imaginebuild.money import usd_to_ticks


def effective_limit(mediafile_usd: Decimal | None, cli_usd: Decimal | None) -> int | None:
    """The run's limit in ticks: the lower of `budget.max_usd` and `--max-cost` (None: no limit)."""
    limits = [usd_to_ticks(v) for v in (mediafile_usd, cli_usd) if v is not None]
    return min(limits) if limits else None


class Budget:
    """Reservations and spending of one run against an optional limit, exact in ticks.

    `spent` starts at what the run has already recorded (e.g. a resumed job);
    cached steps never reserve, so they cost nothing.
    """

    def __init__(self, limit_ticks: int | None, *, spent: int = 0) -> None:
        if limit_ticks is not None and limit_ticks < 0:
            raise ValueError(f"a budget cannot be negative ({limit_ticks} ticks)")
        if spent < 0:
            raise ValueError(f"spending cannot be negative ({spent} ticks)")
        self.limit = limit_ticks
        self._spent = spent
        self._reservations: dict[str, int] = {}
        self._refused: dict[str, int] = {}

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

    def release(self, asset: str) -> None:
        """Drop `asset`'s reservation: its step ended without a billed call (idempotent)."""
        self._reservations.pop(asset, None)
