"""A key is paid once per run: steps that need the same action key take turns.

Two assets with the same prompt, inputs and parameters have the same action key.
The first step to need a call for it makes the call; the others wait for it and
then find the key in the cache (or, after a forced re-roll, in this run's
`built` set) and restore its outputs instead of paying again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class KeyTurns:
    """One lock per action key of a run, and the keys this run has built."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self.built: set[str] = set()

    @contextlib.asynccontextmanager
    async def turn(self, key: str) -> AsyncIterator[bool]:
        """Hold `key` for one step; yields whether another step had it first (the
        decision must then be made again: the key may now be in the cache)."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        waited = lock.locked()
        async with lock:
            yield waited or key in self.built
