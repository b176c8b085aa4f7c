"""The providers of one run: each created on its first call (a cached run creates none),
with a pool that caps its calls in flight at the provider's `max_concurrency`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from imaginebuild.providers.base import Provider, ProviderContext


class ProviderPool:
    """Providers by name, created lazily from `context_for(name)`."""

    def __init__(self, context_for: Callable[[str], ProviderContext]) -> None:
        self.context_for = context_for
        self.providers: dict[str, Provider] = {}
        self.slots: dict[str, asyncio.Semaphore] = {}

    def get(self, name: str) -> Provider:
        """The provider `name`, created (with its slots) on first use."""
        if name not in self.providers:
            from imaginebuild.providers import create_provider

            provider = create_provider(name, self.context_for(name))
            self.providers[name] = provider
            self.slots[name] = asyncio.Semaphore(max(1, provider.max_concurrency))
        return self.providers[name]

    async def aclose(self) -> None:
        """Close every provider created (their connections); a failing close is ignored."""
        for provider in self.providers.values():
            with contextlib.suppress(Exception):
                await provider.aclose()
