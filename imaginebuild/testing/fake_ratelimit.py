"""The fake xAI server's per-model rate limits: token buckets shared by every client."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping


class RateLimits:
    """Per-model token buckets shared by every client: N tokens, refilled at N per second."""

    def __init__(self, rates: Mapping[str, int]) -> None:
        self.rates = dict(rates)
        self._tokens = {model: float(n) for model, n in self.rates.items()}
        self._at = {model: time.monotonic() for model in self.rates}
        self._lock = threading.Lock()
        self.refused = 0  # submissions answered 429 so far

    def admit(self, model: str) -> bool:
        """Take a token for `model` (always True for a model without a limit)."""
        rate = self.rates.get(model)
        if rate is None:
            return True
        with self._lock:
            now = time.monotonic()
            tokens = min(float(rate), self._tokens[model] + (now - self._at[model]) * rate)
            self._at[model] = now
            if tokens < 1.0:
                self._tokens[model] = tokens
                self.refused += 1
                return False
            self._tokens[model] = tokens - 1.0
            return True
