"""The providers of one run: each created on its first call (a cached run creates none),
with a pool that caps its calls in flight at the provider's `max_concurrency`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from pathlib import Path

from imaginebuild.model import Mediafile
from imaginebuild.providers.base import Provider, ProviderContext


class ProviderPool:
    """Providers by name, created lazily with the mediafile's settings for each."""

    def __init__(
        self, mediafile: Mediafile, state_dir: Path, env: Mapping[str, str], retry_expired: bool
    ) -> None:
        self.mediafile = mediafile
        self.state_dir = state_dir
        self.env = env
        self.retry_expired = retry_expired
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

    def context_for(self, name: str) -> ProviderContext:
        """What the provider `name` is created with: its settings, the state folder, the
        environment (its key) and whether expired jobs are retried."""
        return ProviderContext(
            settings=self.mediafile.settings(name),
            state_dir=self.state_dir,
            env=self.env,
            retry_expired=self.retry_expired,
        )

    async def aclose(self) -> None:
        """Close every provider created (their connections); a failing close is ignored."""
        for provider in self.providers.values():
            with contextlib.suppress(Exception):
                await provider.aclose()
