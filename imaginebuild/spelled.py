"""Names that cross every layer as enums spelled as their JSON text: the base class and
the provider names (light: the command line's parser imports it at start-up)."""

from __future__ import annotations

import enum


class Spelled(str, enum.Enum):
    """An enum whose members are their JSON spelling: `str()`, f-strings and `json` give
    the value (`"up_to_date"`), never the member's name, on every Python version."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class ProviderName(Spelled):
    """The providers an asset can be built with, as the mediafile and records spell them."""

    XAI = "xai"  # xAI's Grok Imagine API
    LOCAL = "local"  # offline rehearsal renderer: real files, no call, no bill


PROVIDERS = tuple(p.value for p in ProviderName)


__all__ = ["PROVIDERS", "ProviderName", "Spelled"]
