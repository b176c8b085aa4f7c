"""A mediafile's `pricing:` block: its JSON Schema, and its figures merged over the price
table, every bad figure a located diagnostic (see `pricing` for the block's shape)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal
from types import MappingProxyType

from imaginebuild.engine.pricing import (
    EXTRA_KEYS,
    RATE_KEY,
    RESOLUTIONS,
    Confidence,
    ModelPrice,
    PriceTable,
    load_builtin_prices,
)
from imaginebuild.errors import MediafileError, Problems, closest_match
from imaginebuild.model import Media
from imaginebuild.money import usd_to_ticks

_UNIT = {Media.IMAGE: "image", Media.VIDEO: "second"}
_OVERRIDE_MODEL_KEYS = ("per_image_usd", "per_second_usd", *EXTRA_KEYS)

_USD_SCHEMA: dict[str, object] = {
    "title": "USD amount",
    "description": "A non-negative amount in US dollars (quote it for an exact decimal).",
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": r"^\$?[0-9]+(\.[0-9]+)?$"},
    ],
}


def _rate_schema(title: str, resolutions: tuple[str, ...]) -> dict[str, object]:
    """One amount for every resolution, or a mapping resolution → amount."""
    return {
        "title": title,
        "description": f"One amount, or one per resolution ({', '.join(resolutions)}).",
        "anyOf": [
            _USD_SCHEMA,
            {
                "type": "object",
                "propertyNames": {"enum": list(resolutions)},
                "additionalProperties": _USD_SCHEMA,
            },
        ],
    }


# Self-contained (no $ref) so it can be embedded anywhere in the mediafile schema.
PRICING_OVERRIDE_SCHEMA: dict[str, object] = {
    "title": "Price overrides",
    "description": (
        "Replace figures of the built-in price table (e.g. for an enterprise contract). "
        "Prices are USD; a model not in the table is added."
    ),
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "source": {
            "title": "Source",
            "description": "Where these prices come from (shown in reports).",
            "type": "string",
        },
        "models": {
            "title": "Per-model prices",
            "description": "Model id → the figures to override.",
            "type": "object",
            "additionalProperties": {
                "title": "Model prices",
                "description": "Priced per image or per second, not both.",
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "per_image_usd": _rate_schema("Price per output image", ("1k", "2k")),
                    "per_second_usd": _rate_schema(
                        "Price per generated video second", ("480p", "720p", "1080p")
                    ),
                    "per_input_image_usd": {
                        **_USD_SCHEMA,
                        "title": "Price per input image",
                        "description": "Added per input image (edits, image-to-video, references).",
                    },
                    "per_input_second_usd": {
                        **_USD_SCHEMA,
                        "title": "Price per input video second",
                        "description": "Added per second of a video edit's input video.",
                    },
                },
                "not": {"required": ["per_image_usd", "per_second_usd"]},
            },
        },
    },
}


def load_price_table(overrides: object = None, *, file: str = "") -> PriceTable:
    """The built-in table with the mediafile's `pricing:` block merged over it.

    Raises MediafileError with every bad figure, located by its JSON path
    (`pricing.models.x.per_image_usd`); line and column are 0 for the caller to fill.
    """
    table = load_builtin_prices()
    if overrides is None or overrides == {}:
        return table
    return apply_overrides(table, overrides, file=file)


def _unknown_key(problems: Problems, path: str, key: object, allowed: tuple[str, ...]) -> None:
    close = closest_match(str(key), allowed)
    hint = f"did you mean '{close}'?" if close else f"expected one of: {', '.join(allowed)}"
    problems.add(f"{path}.{key}", f"unknown key '{key}'", hint)


def _override_usd(value: object, path: str, problems: Problems) -> int | None:
    """Ticks of one overriding amount, or None (and a diagnostic) when it is not a price."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        problems.add(path, f"expected a USD amount, got {type(value).__name__}")
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            problems.add(path, f"expected a finite USD amount, got {value!r}")
            return None
        value = repr(value)  # the shortest form is what the user wrote (0.015)
    try:
        ticks = usd_to_ticks(value)
    except ValueError:
        problems.add(path, f"not a USD amount: {value!r}", "write a number such as 0.015")
        return None
    if ticks < 0:
        problems.add(path, f"a price cannot be negative ({value})")
        return None
    return ticks


def _override_rates(
    value: object, current: Mapping[str, int], media: Media, path: str, problems: Problems
) -> dict[str, int] | None:
    """New per-resolution rates: one amount for every resolution, or a per-resolution mapping."""
    if isinstance(value, Mapping):
        rates = dict(current)
        for res, amount in value.items():
            if res not in RESOLUTIONS[media]:
                _unknown_key(problems, path, res, RESOLUTIONS[media])
                continue
            ticks = _override_usd(amount, f"{path}.{res}", problems)
            if ticks is not None:
                rates[str(res)] = ticks
        return rates
    ticks = _override_usd(value, path, problems)
    if ticks is None:
        return None
    return dict.fromkeys(current or RESOLUTIONS[media], ticks)


def _override_media(
    name: str, spec: Mapping[object, object], known: ModelPrice | None, path: str, p: Problems
) -> Media | None:
    """Whether an overridden model makes images or videos (known, or told by its rate key)."""
    given = [m for m in Media if RATE_KEY[m] in spec]
    if len(given) > 1:
        p.add(path, "a model is priced per image or per second, not both")
        return None
    if known is not None:
        if given and given[0] is not known.media:
            wrong = RATE_KEY[given[0]]
            p.add(
                f"{path}.{wrong}",
                f"'{name}' is priced per {_UNIT[known.media]}",
                f"use {RATE_KEY[known.media]}",
            )
            return None
        return known.media
    if not given:
        p.add(path, f"'{name}' is not in the price table", "give per_image_usd or per_second_usd")
        return None
    return given[0]


def _override_model(
    name: str,
    spec: object,
    known: ModelPrice | None,
    origin: tuple[str, Confidence],
    p: Problems,
) -> ModelPrice | None:
    """The merged prices of one model, or None when its overrides are invalid.

    `origin` is the overrides' source and the confidence every figure they set gets.
    """
    source, trust = origin
    path = f"pricing.models.{name}"
    if not isinstance(spec, Mapping):
        p.add(path, f"expected a mapping of prices, got {type(spec).__name__}")
        return None
    before = len(p.diagnostics)
    for key in spec:
        if key not in _OVERRIDE_MODEL_KEYS:
            _unknown_key(p, path, key, _OVERRIDE_MODEL_KEYS)
    media = _override_media(name, spec, known, path, p)
    if media is None:
        return None
    price = known or ModelPrice(media=media, per_output=MappingProxyType({}))
    rate_key = RATE_KEY[media]
    rates = dict(price.per_output)
    if rate_key in spec:
        rates = (
            _override_rates(spec[rate_key], price.per_output, media, f"{path}.{rate_key}", p)
            or rates
        )
    extras = {
        key: _override_usd(spec[key], f"{path}.{key}", p) for key in EXTRA_KEYS if key in spec
    }
    if len(p.diagnostics) > before:
        return None
    image_fee = extras.get("per_input_image_usd")
    second_fee = extras.get("per_input_second_usd")
    confidence = dict(price.confidence)
    given = spec.get(rate_key)
    for res in given if isinstance(given, Mapping) else (rates if rate_key in spec else ()):
        confidence[price.output_figure(str(res))] = trust
    confidence.update(dict.fromkeys(extras, trust))
    return replace(
        price,
        media=media,
        per_output=MappingProxyType(rates),
        per_input_image=price.per_input_image if image_fee is None else image_fee,
        per_input_second=price.per_input_second if second_fee is None else second_fee,
        source=source if known is None else f"{source} over {known.source}",
        confidence=MappingProxyType(confidence),
    )


def _override_paths(overrides: Mapping[str, object]) -> tuple[str, ...]:
    """The JSON paths of every figure the overrides set, for reports."""
    paths: list[str] = []
    models = overrides.get("models")
    if isinstance(models, Mapping):
        for name, spec in models.items():
            if isinstance(spec, Mapping):
                for key, value in spec.items():
                    base = f"pricing.models.{name}.{key}"
                    if isinstance(value, Mapping):
                        paths.extend(f"{base}.{res}" for res in value)
                    else:
                        paths.append(base)
    return tuple(sorted(paths))


def apply_overrides(
    table: PriceTable,
    overrides: object,
    *,
    file: str = "",
    trust: Confidence = Confidence.OVERRIDE,
) -> PriceTable:
    """Merge a `pricing:` block over `table`; MediafileError lists every bad figure.

    Every figure the block sets is trusted as `trust` (the team's own figure, unless
    it was read from xAI's API).
    """
    problems = Problems(file)
    if not isinstance(overrides, Mapping):
        problems.add("pricing", f"expected a mapping, got {type(overrides).__name__}")
        raise MediafileError(problems.diagnostics)
    for key in overrides:
        if key not in ("source", "models"):
            _unknown_key(problems, "pricing", key, ("models", "source"))
    source = overrides.get("source", "mediafile pricing")
    if not isinstance(source, str):
        problems.add("pricing.source", f"expected a string, got {type(source).__name__}")
        source = "mediafile pricing"
    raw_models = overrides.get("models", {})
    models = dict(table.models)
    if not isinstance(raw_models, Mapping):
        problems.add("pricing.models", f"expected a mapping, got {type(raw_models).__name__}")
        raw_models = {}
    for name, spec in raw_models.items():
        merged = _override_model(str(name), spec, table.get(str(name)), (source, trust), problems)
        if merged is not None:
            models[str(name)] = merged
    if problems.diagnostics:
        raise MediafileError(problems.diagnostics)
    overridden = tuple(sorted({*table.overridden, *_override_paths(overrides)}))
    return replace(table, models=MappingProxyType(models), overridden=overridden)
