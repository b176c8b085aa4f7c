"""Provider registry: a name from the mediafile → a provider instance (imported lazily)."""

from __future__ import annotations

from imaginebuild.errors import UsageError
from imaginebuild.model import PROVIDERS
from imaginebuild.providers.base import Provider, ProviderContext


def create_provider(name: str, context: ProviderContext) -> Provider:
    """Build the provider called `name`; its module is imported only now, when needed."""
    if name == "local":
        from imaginebuild.providers.local.provider import LocalProvider

        return LocalProvider(context)
    if name == "xai":
        from imaginebuild.providers.xai.provider import XaiProvider

        return XaiProvider(context)
    raise UsageError(f"unknown provider {name!r}", hint=f"use one of: {', '.join(PROVIDERS)}")
