"""Deterministic numbers from an action key (pure).

Every random choice of the local provider comes from here: a SHA-256 stream over
the key and a label, so the same key draws the same numbers on every machine and
Python version (`hash()` and `random` make no such promise).
"""

from __future__ import annotations

import hashlib

Color = tuple[int, int, int]


class Seed:
    """A stream of numbers drawn from sha256(key, label, counter)."""

    def __init__(self, key: str, *labels: object) -> None:
        self._prefix = "\x1f".join([key, *(str(label) for label in labels)]).encode()
        self._counter = 0
        self._pool = b""

    def child(self, *labels: object) -> Seed:
        """An independent stream for a sub-part (one image of several, one shape…)."""
        return Seed(self._prefix.decode(), *labels)

    def _take(self, n: int) -> bytes:
        while len(self._pool) < n:
            block = hashlib.sha256(self._prefix + b"\x1e" + str(self._counter).encode()).digest()
            self._pool += block
            self._counter += 1
        out, self._pool = self._pool[:n], self._pool[n:]
        return out

    def unit(self) -> float:
        """A float in [0, 1)."""
        return int.from_bytes(self._take(7), "big") / float(1 << 56)

    def integer(self, low: int, high: int) -> int:
        """An integer in [low, high] (inclusive)."""
        return low + int(self.unit() * (high - low + 1))

    def uniform(self, low: float, high: float) -> float:
        """A float in [low, high)."""
        return low + self.unit() * (high - low)

    def choice(self, count: int) -> int:
        """An index in range(count)."""
        return self.integer(0, count - 1)

    def color(self, low: int = 0, high: int = 255) -> Color:
        """An RGB colour with every channel in [low, high]."""
        return (self.integer(low, high), self.integer(low, high), self.integer(low, high))
