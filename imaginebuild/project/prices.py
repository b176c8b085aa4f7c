"""The price table a project estimates with, and refreshing the user's figures from xAI.

Three layers, each over the one before, figure by figure:

    built-in table (imaginebuild/data/prices.json, a source and confidence per figure)
      ◀ the user's price file, `<user config>/prices.json` (layout.user_prices_path)
        ◀ the mediafile's `pricing:` block

The user's file has two `pricing:`-shaped blocks (`source` and `models`, as in a
mediafile), applied in this order:

    {"format": 1,
     "api": {...},    written by `imaginebuild prices --refresh` from xAI's model
                      endpoints; its figures are confirmed (they are xAI's own)
     "own": {...}}    the user's own figures (say, a contract), never touched by a refresh

It is read as untrusted: a bad file is a located error naming it, never a price.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from imaginebuild.atomic import atomic_write_bytes
from imaginebuild.engine.priceoverrides import apply_overrides
from imaginebuild.engine.pricing import Confidence, PriceTable, load_builtin_prices
from imaginebuild.errors import Diagnostic, MediafileError
from imaginebuild.layout import user_prices_path
from imaginebuild.model import Mediafile
from imaginebuild.money import format_usd, usd_json
from imaginebuild.providers.xai.models import LivePrices
from imaginebuild.spelled import ProviderName
from imaginebuild.untrusted import Untrusted, load_json, read_capped

USER_PRICES_FORMAT = 1
USER_PRICES_CAP = 1024 * 1024  # a price file is a few KiB


_BLOCKS = (("api", Confidence.CONFIRMED), ("own", Confidence.OVERRIDE))


@dataclass(frozen=True)
class UserPrices:
    """The user's price file: the figures read from xAI's API and the user's own."""

    path: Path
    api: Mapping[str, object]
    own: Mapping[str, object]

    def over(self, table: PriceTable) -> PriceTable:
        """`table` with the API's figures, then the user's own, over it."""
        for name, trust in _BLOCKS:
            block = getattr(self, name)
            if block:
                table = apply_overrides(table, block, file=str(self.path), trust=trust)
        return table


def _bad(path: Path, message: str, where: str = "") -> MediafileError:
    hint = "fix or delete the file; `imaginebuild prices --refresh` writes it again"
    return MediafileError([Diagnostic(str(path), 0, 0, where, message, hint)])


def read_user_prices(env: Mapping[str, str]) -> UserPrices | None:
    """The user's price file, or None when there is none; MediafileError when it is bad."""
    path = user_prices_path(env)
    try:
        raw = load_json(read_capped(path, USER_PRICES_CAP))
    except FileNotFoundError:
        return None
    except (OSError, Untrusted) as exc:
        raise _bad(path, f"the user's price file cannot be read: {exc}") from None
    if not isinstance(raw, Mapping) or raw.get("format") != USER_PRICES_FORMAT:
        raise _bad(path, f"not a price file of format {USER_PRICES_FORMAT}", "format")
    for key in raw:
        if key not in ("format", "api", "own"):
            raise _bad(path, f"unknown key {key!r}", "expected format, api and own")
    blocks: dict[str, Mapping[str, object]] = {}
    for name, _ in _BLOCKS:
        block = raw.get(name, {})
        if not isinstance(block, Mapping):
            raise _bad(path, "expected a mapping of `source` and `models`", name)
        blocks[name] = block
    user = UserPrices(path, blocks["api"], blocks["own"])
    user.over(load_builtin_prices())  # every figure checked before any is used
    return user


def project_price_table(mediafile: Mediafile, env: Mapping[str, str]) -> PriceTable:
    """The built-in table with the user's figures, then the mediafile's, over it."""
    table = load_builtin_prices()
    user = read_user_prices(env)
    if user is not None:
        table = user.over(table)
    if mediafile.pricing:
        table = apply_overrides(table, mediafile.pricing, file=str(mediafile.path))
    return table


@dataclass(frozen=True)
class PriceRefresh:
    """What `prices --refresh` read from the API and wrote to the user's price file."""

    path: Path
    changes: tuple[str, ...]  # one line per figure: model, resolution, new price (and old)
    skipped: tuple[str, ...]  # figures or entries the API gave that could not be used
    video_models: tuple[str, ...]  # listed by the API without prices

    def to_json(self) -> dict[str, object]:
        """The documented JSON object of a refresh."""
        return {
            "path": str(self.path),
            "changes": list(self.changes),
            "skipped": list(self.skipped),
            "video_models_without_prices": list(self.video_models),
        }


def _api_block(live: LivePrices) -> dict[str, object]:
    """The `api` block of the user's price file for what the model endpoints said."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    models = {
        price.model: {
            "per_image_usd": {r: usd_json(t) for r, t in sorted(price.per_image_ticks.items())}
        }
        for price in live.images
    }
    return {"source": f"xAI API model endpoints, read {stamp}", "models": models}


def _changes(live: LivePrices, before: PriceTable) -> tuple[str, ...]:
    lines = []
    for price in live.images:
        known = before.get(price.model)
        for resolution, ticks in sorted(price.per_image_ticks.items()):
            old = known.rate(resolution) if known is not None else None
            was = "new" if old is None else f"was {format_usd(old)}"
            lines.append(f"{price.model} {resolution}: {format_usd(ticks)} per image ({was})")
    return tuple(lines)


def refresh_user_prices(
    mediafile: Mediafile, env: Mapping[str, str], state_dir: Path
) -> PriceRefresh:
    """Read xAI's published image prices into the user's price file (two GETs, no charge).

    The file's `api` block is replaced by what the API says now; the user's own
    figures stay. The file is replaced atomically, and only when the API answered.
    """
    from imaginebuild.providers.base import ProviderContext
    from imaginebuild.providers.xai.provider import XaiProvider

    before = project_price_table(mediafile, env)  # also: a bad file is refused first
    current = read_user_prices(env)
    provider = XaiProvider(ProviderContext(mediafile.settings(ProviderName.XAI), state_dir, env))

    async def fetch() -> LivePrices:
        try:
            return await provider.live_prices()
        finally:
            await provider.aclose()

    live = asyncio.run(fetch())
    path = user_prices_path(env)
    user = UserPrices(path, _api_block(live), current.own if current is not None else {})
    user.over(load_builtin_prices())  # never write a file that would be refused
    document = {"format": USER_PRICES_FORMAT, "api": user.api, "own": user.own}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, (json.dumps(document, indent=2, sort_keys=True) + "\n").encode())
    return PriceRefresh(path, _changes(live, before), live.skipped, live.video_models)
