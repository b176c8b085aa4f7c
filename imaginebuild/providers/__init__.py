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
from imaginebuild.providers.base import Provider, ProviderContext
from imaginebuild.spelled import PROVIDERS, ProviderName


def provider_name(text: str) -> ProviderName:
    """The provider a user named (`--provider`, IMAGINEBUILD_PROVIDER); UsageError if none is."""
    try:
        return ProviderName(text)
    except ValueError:
        raise UsageError(
            f"unknown provider {text!r}", hint=f"use one of: {', '.join(PROVIDERS)}"
        ) from None


def create_provider(name: str, context: ProviderContext) -> Provider:
    """Build the provider called `name`; its module is imported only now, when needed."""
    which = provider_name(name)
    if which is ProviderName.LOCAL:
        from imaginebuild.providers.local.provider import LocalProvider

        return LocalProvider(context)
    from imaginebuild.providers.xai.provider import XaiProvider

    return XaiProvider(context)
