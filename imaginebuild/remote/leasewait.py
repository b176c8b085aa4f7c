"""How a run waits on another machine's build lease: soon after its push, holding no thread.

A machine that finds a key's lease held looks whether the lease is still there
after pauses that grow from `LeasePace.first_s` by `growth` up to `max_s`. The
holder releases its lease only after pushing its build (or when its call never
happened: a cap, a failure), so once the lease is gone the waiter claims again
at once and either finds the entry or builds. A short build is seen within tens
of milliseconds of its release and a long one costs one HEAD per `max_s` (0.5 s:
7,200 an hour of waiting, a fraction of a cent on S3). Every `reclaim_s` it
claims again regardless, which takes over a lease that expired or whose holder
died.

Each look runs in a worker thread only for its round trip; the pauses are the
event loop's, so any number of waits hold none of the loop's few worker threads
(which the run's downloads, stores and pushes need), and cancelling the task
(Ctrl-C, SIGTERM) ends a wait at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imaginebuild.remote.cache import RemoteCache
    from imaginebuild.store.cache import ActionEntry

AsyncSleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class LeasePace:
    """The pauses of a wait on another's lease (see the module docstring)."""

    first_s: float = 0.05
    max_s: float = 0.5
    growth: float = 1.5
    reclaim_s: float = 5.0

    def next_pause(self, pause: float) -> float:
        """The pause after `pause`."""
        return min(self.max_s, pause * self.growth)


LEASE_PACE = LeasePace()


async def claim_or_wait(
    remote: RemoteCache,
    key: str,
    owner: str,
    *,
    ttl: float,
    timeout: float,
    pace: LeasePace = LEASE_PACE,
    sleep: AsyncSleep = asyncio.sleep,
) -> ActionEntry | None:
    """Before paying for a key missing everywhere: build it, or wait for whoever is.

    Returns None when the caller should build (it holds the lease, or gave up
    waiting after `timeout` seconds; either way it calls `release_lease` after
    its push), or the entry another machine pushed meanwhile.
    """
    clock = remote.clock
    deadline = clock() + timeout
    pause = pace.first_s
    while True:
        held, entry = await asyncio.to_thread(remote.claim, key, owner, ttl)
        if held or entry is not None:
            return entry
        reclaim_at = min(clock() + pace.reclaim_s, deadline)
        while clock() < reclaim_at:
            await sleep(pause)
            pause = pace.next_pause(pause)
            if not await asyncio.to_thread(remote.lease_exists, key):
                break  # released: pushed, or given up; the claim tells which
        else:
            if clock() >= deadline:
                return None
