"""Providers: a name from the mediafile → a provider instance (imported lazily).

    base      the Provider protocol, the request a step hands over, its context
    local     offline rendering of real PNG and MP4 (Pillow, PyAV)
    xai       xAI's Grok Imagine REST API (httpx)

Layer 2, beside `remote`: a provider turns one request into files in a work folder;
it does not know the cache, the lockfile or the run.
May import: the shared vocabulary, `mediafile` and `store`. (`xai` keeps its job
journal in `store`.)
"""

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
