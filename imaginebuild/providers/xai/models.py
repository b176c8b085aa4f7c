"""The prices xAI's API publishes for its media models, read from its model endpoints.

xAI's OpenAPI document (xai-org/xai-sdk-ts, spec/openapi.json at 41e766a):
- `GET /v1/image-generation-models` answers `ListImageGenerationModelsResponse`:
  `models: ImageGenerationModel[]`, each with `image_price` (the default tier,
  medium quality at 1k) and an optional `pricing: ImagePricingTier[]` of
  `{quality, resolution, price_per_image}`, one per tier the model serves.
  `price_per_image` is "in 1/100,000,000ths of a USD cent": USD ticks.
- `image_price` is described as "USD cents", but the document's own `/v1/models`
  example gives 200000000 for grok-imagine-image, which is $0.02 only as ticks.
  A figure is therefore read as cents or as ticks, whichever gives a plausible
  price per image (PLAUSIBLE_USD); the two readings are 10**8 apart, so at most
  one can be, and a figure neither reading makes plausible is not used.
- `GET /v1/video-generation-models` answers `VideoGenerationModel`s with no price
  at all: video prices cannot be read from the API.
- Requests carry no `quality`, so the API serves the medium tier; only medium
  tiers are read.

Every answer is untrusted: a malformed entry is skipped with a reason, never
turned into a price.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from imaginebuild.model import IMAGE_RESOLUTIONS
from imaginebuild.money import usd_to_ticks
from imaginebuild.untrusted import shown

IMAGE_MODELS_PATH = "/image-generation-models"  # under the base URL, which ends in /v1
VIDEO_MODELS_PATH = "/video-generation-models"
DEFAULT_QUALITY = "medium"  # what the API serves when a request leaves `quality` unset
TICKS_PER_CENT = 100_000_000  # MediaUsage.cost_in_usd_ticks: one cent is 10**8 ticks
PLAUSIBLE_USD = (Decimal("0.001"), Decimal(10))  # a price per image, inclusive


@dataclass(frozen=True)
class LiveImagePrice:
    """What the API says one image model charges per output image, by resolution."""

    model: str
    per_image_ticks: Mapping[str, int]  # resolution → ticks


@dataclass(frozen=True)
class LivePrices:
    """The prices read from the model endpoints, and what could not be used."""

    images: tuple[LiveImagePrice, ...]
    video_models: tuple[str, ...]  # listed by the API, which publishes no video prices
    skipped: tuple[str, ...]  # one line per entry or figure not used, with the reason


def _plausible(ticks: int) -> bool:
    low, high = (usd_to_ticks(bound) for bound in PLAUSIBLE_USD)
    return low <= ticks <= high


def default_tier_ticks(value: object) -> int | None:
    """Ticks of an `image_price` read as cents or as ticks, whichever is plausible."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return None
    readings = [t for t in (value * TICKS_PER_CENT, value) if _plausible(t)]
    return readings[0] if len(readings) == 1 else None


def _tiers(model: str, raw: object, skipped: list[str]) -> dict[str, int]:
    """Resolution → ticks of the medium tiers of one model's `pricing` array."""
    found: dict[str, int] = {}
    if not isinstance(raw, list):
        return found
    for tier in raw:
        if not isinstance(tier, Mapping) or tier.get("quality") != DEFAULT_QUALITY:
            continue
        resolution, price = tier.get("resolution"), tier.get("price_per_image")
        if resolution not in IMAGE_RESOLUTIONS:
            skipped.append(f"{model}: a tier for resolution {shown(resolution)} is not one we send")
        elif isinstance(price, bool) or not isinstance(price, int) or not _plausible(price):
            skipped.append(f"{model} {resolution}: price_per_image {shown(price)} is not a price")
        else:
            found[str(resolution)] = price
    return found


def _image_model(entry: object, skipped: list[str]) -> LiveImagePrice | None:
    if not isinstance(entry, Mapping) or not isinstance(entry.get("id"), str):
        skipped.append(f"an image model entry without an id: {shown(entry)}")
        return None
    model = str(entry["id"])
    prices = _tiers(model, entry.get("pricing"), skipped)
    if "1k" not in prices:
        default = default_tier_ticks(entry.get("image_price"))
        if default is not None:
            prices["1k"] = default
        elif "image_price" in entry:
            skipped.append(
                f"{model}: image_price {shown(entry.get('image_price'))} is a price neither "
                "in cents nor in ticks"
            )
    if not prices:
        skipped.append(f"{model}: the API gave no usable price")
        return None
    return LiveImagePrice(model, prices)


def _models(answer: object, path: str) -> list[object]:
    models = answer.get("models") if isinstance(answer, Mapping) else None
    if not isinstance(models, list):
        raise ValueError(f"{path}: the answer has no `models` list")
    return models


def parse_live_prices(image_answer: object, video_answer: object) -> LivePrices:
    """Read the two model endpoints' answers (decoded JSON); ValueError if either is
    not a model list at all."""
    skipped: list[str] = []
    images = [_image_model(e, skipped) for e in _models(image_answer, IMAGE_MODELS_PATH)]
    videos = [
        str(e["id"])
        for e in _models(video_answer, VIDEO_MODELS_PATH)
        if isinstance(e, Mapping) and isinstance(e.get("id"), str)
    ]
    return LivePrices(
        images=tuple(i for i in images if i is not None),
        video_models=tuple(videos),
        skipped=tuple(skipped),
    )
