"""One run's use of the team coordinator: heartbeat, hold money, gate each submission, settle.

    hold(asset, ticks) ─▶ gate(hold)(model) before every POST that may bill ─▶ finish(hold, …)

Fail closed for money: once the coordinator cannot be reached, every later hold
raises CoordinatorUnavailable at once (no paid call starts), while calls already
in flight go on; their `finish` only warns, and their holds expire after the TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

from imaginebuild.coordinator.base import (
    DEFAULT_SLOT_DEADLINE_S,
    Coordinator,
    Reservation,
    ReservationRequest,
    RunnerId,
)
from imaginebuild.errors import AuthError, CoordinatorUnavailable, RequestRejected

_T = TypeVar("_T")
SubmitGate = Callable[[str], Awaitable[None]]


class TeamHold:
    """Money held in the coordinator for one step, and whether a slot was taken for it."""

    def __init__(self, reservation: Reservation) -> None:
        self.reservation = reservation
        self.submitted = False


def settlement(
    submitted: bool, billed: int | None, error: BaseException | None, estimate: int
) -> int | None:
    """What a finished step spends from the team's money: ticks to settle at, or None to
    release the hold. A hold is released only when the call provably never reached the
    API: no slot was taken for it, or the API answered with a refusal that bills nothing."""
    if billed is not None:
        return billed
    if not submitted:
        return None
    if isinstance(error, (RequestRejected, AuthError)) and error.info.status_code is not None:
        return None  # the API answered 4xx: nothing was made, nothing billed
    return estimate  # billed, or may have been: counted at the estimate


class TeamSession:
    """The coordinator as one run uses it (created on the run's first paid call)."""

    def __init__(
        self,
        coordinator: Coordinator,
        *,
        ttl_s: float,
        runner: RunnerId | None = None,
        slot_deadline_s: float = DEFAULT_SLOT_DEADLINE_S,
    ) -> None:
        self.coordinator = coordinator
        self.runner = runner or RunnerId.this_process()
        self.ttl_s = ttl_s
        self.slot_deadline_s = slot_deadline_s
        self.down: CoordinatorUnavailable | None = None
        self.warnings: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._rng = random.Random()  # noqa: S311 (jitter, not cryptography)
        self._call(lambda c: c.heartbeat(self.runner, ttl_s))
        self._beat = threading.Thread(target=self._heartbeats, daemon=True, name="team-heartbeat")
        self._beat.start()

    @classmethod
    def open(cls, env: Mapping[str, str]) -> TeamSession:
        """The session on the coordinator the environment names."""
        from imaginebuild.coordinator.config import open_coordinator, ttl_s

        return cls(open_coordinator(env), ttl_s=ttl_s(env))

    def _call(self, fn: Callable[[Coordinator], _T]) -> _T:
        """One coordinator call; the first failure marks the session down for good."""
        if self.down is not None:
            raise self.down
        try:
            with self._lock:
                return fn(self.coordinator)
        except CoordinatorUnavailable as exc:
            self.down = exc
            raise

    def _heartbeats(self) -> None:
        while not self._stop.wait(self.ttl_s / 4):
            with contextlib.suppress(CoordinatorUnavailable):
                self._call(lambda c: c.heartbeat(self.runner, self.ttl_s))

    def hold(self, asset: str, model: str, key: str, ticks: int) -> TeamHold:
        """Hold `ticks` for a step; TeamCapReached or CoordinatorUnavailable refuse it."""
        request = ReservationRequest(asset, model, key, ticks)
        return TeamHold(self._call(lambda c: c.reserve(self.runner, request)))

    def gate(self, hold: TeamHold) -> SubmitGate:
        """The wait for a submission slot before each POST of `hold`'s step."""

        async def take(model: str) -> None:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.slot_deadline_s
            while True:
                attempt = self._call(lambda c: c.try_slot(model, self.runner, hold.reservation.id))
                if attempt.granted:
                    hold.submitted = True
                    return
                if loop.time() + attempt.wait_s > deadline:
                    raise CoordinatorUnavailable(
                        f"{hold.reservation.asset}: no submission slot for {model} within "
                        f"{self.slot_deadline_s:.0f} s (the team's rate is in use elsewhere)",
                        hint="see `imaginebuild team status`; run again later",
                    )
                await asyncio.sleep(attempt.wait_s + self._rng.uniform(0, 0.002))

        return take

    def finish(
        self, hold: TeamHold, billed: int | None, error: BaseException | None, estimate: int
    ) -> None:
        """Settle or release the hold (see `settlement`); an unreachable coordinator only
        warns: the step's result is kept and the hold expires after the TTL."""
        ticks = settlement(hold.submitted, billed, error, estimate)
        rid = hold.reservation.id
        try:
            if ticks is None:
                self._call(lambda c: c.release(rid))
            else:
                self._call(lambda c: c.settle(rid, ticks))
        except CoordinatorUnavailable as exc:
            self.warnings.append(f"{hold.reservation.asset}: not recorded in the team: {exc}")

    def close(self) -> None:
        """Stop heartbeating and tell the coordinator this runner is gone."""
        self._stop.set()
        if self.down is None:
            with contextlib.suppress(CoordinatorUnavailable):
                self._call(lambda c: c.forget(self.runner))
        self.coordinator.close()
