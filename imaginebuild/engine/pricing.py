"""The price table and cost estimates: what a call to the media API will cost, in ticks.

Money is an integer count of ticks (1 USD = 10**10 ticks, the unit the API
reports in `usage.cost_in_usd_ticks`), or a Decimal at the edges; never a float.

The built-in table is `imaginebuild/data/prices.json` (versioned, dated, with a
source and confidence for every figure). A mediafile may override it for
enterprise contracts:

    pricing:
      source: ACME enterprise contract 2026-10     # optional, shown in reports
      models:
        grok-imagine-image: {per_image_usd: 0.015}             # every resolution
        grok-imagine-video: {per_second_usd: {480p: 0.04}}     # one resolution
        my-private-model:  {per_second_usd: 0.03}              # a new video model

Prices are given in USD as numbers or decimal strings (quote them for
exactness beyond a float's shortest form). Overrides merge over the built-in
table, figure by figure; a model not in the table becomes known by them.
"""

from __future__ import annotations

import enum
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from importlib import resources
from types import MappingProxyType

from imaginebuild.model import Kind, Media
from imaginebuild.money import format_usd, ticks_to_usd, usd_to_ticks

PRICE_TABLE_FORMAT = 1

RESOLUTIONS: Mapping[Media, tuple[str, ...]] = MappingProxyType(
    {Media.IMAGE: ("1k", "2k"), Media.VIDEO: ("480p", "720p", "1080p")}
)
# What the API does when `resolution` is not sent (images 1k, videos 480p).
API_DEFAULT_RESOLUTION: Mapping[Media, str] = MappingProxyType(
    {Media.IMAGE: "1k", Media.VIDEO: "480p"}
)
# Video edits and extensions inherit the input's resolution, capped at 720p.
_INHERITED_RESOLUTIONS = ("480p", "720p")
# Video edit inputs are at most ~8.7 s; assumed when the length is not known.
MAX_VIDEO_EDIT_INPUT_S = Decimal("8.7")
MAX_EXTEND_INPUT_S = Decimal(15)  # xAI docs, video extension: the input is 2-15 s

RATE_KEY = {  # the figure a model of each media is priced by
    Media.IMAGE: "per_image_usd",
    Media.VIDEO: "per_second_usd",
}
EXTRA_KEYS = ("per_input_image_usd", "per_input_second_usd")  # fees per input, any media


def _ticks_times(ticks: int, quantity: Decimal) -> int:
    """`ticks × quantity`, exact, rounded half-up to a whole tick."""
    return int((Decimal(ticks) * quantity).to_integral_value(rounding=ROUND_HALF_UP))


def _quantity(value: Decimal) -> str:
    """A quantity without a needless `.0` (7, 6.5)."""
    return format(value.normalize(), "f") if value != value.to_integral_value() else str(int(value))


# ---------------------------------------------------------------- the table


class Confidence(enum.Enum):
    """How far a price figure can be trusted, strongest first."""

    CONFIRMED = "confirmed"  # xAI's own docs, SDK or API
    OVERRIDE = "override"  # the team's own figure (the mediafile's or the user's `pricing`)
    THIRD_PARTY = "third-party"  # quoted by API relays only
    INFERRED = "inferred"  # our assumption

    @property
    def unconfirmed(self) -> bool:
        """Whether an estimate resting on this figure should say so."""
        return self in (Confidence.THIRD_PARTY, Confidence.INFERRED)


@dataclass(frozen=True)
class ModelPrice:
    """The prices of one model: per output image or video second (by resolution) plus extras.

    `confidence` maps each figure (`per_image_usd.1k`, `per_second_usd.720p`,
    `per_input_image_usd`, `per_input_second_usd`) to how far it can be trusted; a
    figure it does not name is inferred.
    """

    media: Media
    per_output: Mapping[str, int]  # resolution → ticks per image / per second
    per_input_image: int = 0
    per_input_second: int = 0
    source: str = ""
    confidence: Mapping[str, Confidence] = field(default_factory=lambda: MappingProxyType({}))

    def rate(self, resolution: str) -> int | None:
        """Ticks per image / per second at `resolution`, or None if it has no price there."""
        return self.per_output.get(resolution)

    def output_figure(self, resolution: str) -> str:
        """The figure's name of the output rate at `resolution` (`per_image_usd.1k`)."""
        return f"{RATE_KEY[self.media]}.{resolution}"

    def trust(self, figure: str) -> Confidence:
        """How far one figure can be trusted."""
        return self.confidence.get(figure, Confidence.INFERRED)

    @property
    def weakest(self) -> Confidence:
        """The least trusted of the model's figures."""
        order = list(Confidence)
        figures = [self.output_figure(r) for r in self.per_output]
        if self.per_input_image:
            figures.append("per_input_image_usd")
        if self.per_input_second:
            figures.append("per_input_second_usd")
        return max((self.trust(f) for f in figures), key=order.index, default=Confidence.INFERRED)


@dataclass(frozen=True)
class PriceTable:
    """Every known model's prices, with the table's version, date and source."""

    models: Mapping[str, ModelPrice]
    version: str
    as_of: str
    source: str
    overridden: tuple[str, ...] = field(default=())  # JSON paths the mediafile changed

    def get(self, model: str) -> ModelPrice | None:
        """The prices of `model`, or None when the table does not know it."""
        return self.models.get(model)


def _confidences(sources: object) -> Mapping[str, Confidence]:
    """Figure → confidence from the built-in table's per-figure `sources`."""
    found: dict[str, Confidence] = {}
    if isinstance(sources, Mapping):
        for figure, source in sources.items():
            if isinstance(source, Mapping):
                found[str(figure)] = Confidence(source.get("confidence", "inferred"))
    return MappingProxyType(found)


def parse_price_table(raw: Mapping[str, object]) -> PriceTable:
    """Build a PriceTable from the decoded built-in JSON (trusted data; KeyError if malformed)."""
    if raw.get("format") != PRICE_TABLE_FORMAT:
        raise ValueError(f"price table format {raw.get('format')!r} is not {PRICE_TABLE_FORMAT}")
    models: dict[str, ModelPrice] = {}
    raw_models = raw["models"]
    if not isinstance(raw_models, Mapping):
        raise ValueError("the price table has no `models` mapping")
    for name, spec in raw_models.items():
        media = Media(spec["media"])
        rates = spec[RATE_KEY[media]]
        models[name] = ModelPrice(
            media=media,
            per_output=MappingProxyType({r: usd_to_ticks(v) for r, v in rates.items()}),
            per_input_image=usd_to_ticks(spec.get("per_input_image_usd", "0")),
            per_input_second=usd_to_ticks(spec.get("per_input_second_usd", "0")),
            source=f"built-in table {raw['version']} ({raw['as_of']})",
            confidence=_confidences(spec.get("sources", {})),
        )
    return PriceTable(
        models=MappingProxyType(models),
        version=str(raw["version"]),
        as_of=str(raw["as_of"]),
        source=str(raw["source"]),
    )


@functools.lru_cache(maxsize=1)
def load_builtin_prices() -> PriceTable:
    """The price table shipped inside the package (read once; the table is immutable)."""
    text = resources.files("imaginebuild").joinpath("data/prices.json").read_text("utf-8")
    return parse_price_table(json.loads(text))


# ---------------------------------------------------------------- estimates


@dataclass(frozen=True)
class Estimate:
    """What a call would cost: total ticks, one line per charge, and whether any figure was guessed.

    `guessed` is True when the estimate rests on an assumption the table cannot
    back: an unknown model, a resolution the model has no price for, or an
    unknown input video length.
    """

    ticks: int
    lines: tuple[str, ...]
    guessed: bool = False
    unconfirmed: tuple[str, ...] = ()  # figures it used that xAI has not confirmed

    @property
    def usd(self) -> Decimal:
        """The total as an exact USD amount."""
        return ticks_to_usd(self.ticks)


class _Bill:
    """Accumulates charges and their explanation lines."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.ticks = 0
        self.lines: list[str] = []
        self.guessed = False
        self.unconfirmed: list[str] = []

    def charge(
        self,
        quantity: Decimal,
        figure: tuple[ModelPrice, str],
        rate: int,
        unit: str,
        suffix: str = "",
    ) -> None:
        """Add `quantity × rate`; a `unit` starting with `s ` is priced per second.

        `figure` is the model's prices and the name of the figure `rate` comes from.
        """
        if quantity <= 0:
            return
        price, name = figure
        trust = price.trust(name)
        if trust.unconfirmed:
            self.unconfirmed.append(f"{self.model} {name} ({trust.value})")
        self.ticks += _ticks_times(rate, quantity)
        if unit.startswith("s "):
            line = f"{_quantity(quantity)} {unit} at {format_usd(rate)}/s{suffix}"
        else:
            line = f"{_quantity(quantity)} × {unit} at {format_usd(rate)}{suffix}"
        self.lines.append(line)

    def guess(self, line: str) -> None:
        self.guessed = True
        self.lines.append(line)


def _price_for(table: PriceTable, kind: Kind, model: str, bill: _Bill) -> ModelPrice:
    """The model's prices, or the kind's default model's (flagged as a guess)."""
    media = kind.spec.output
    price = table.get(model)
    if price is not None and price.media is media:
        return price
    fallback = kind.spec.default_model
    bill.guess(f"no {media.value} price for model '{model}': guessed from {fallback}")
    bill.model = fallback
    found = table.get(fallback)
    if found is None:  # only reachable if the packaged table lost a default model
        raise ValueError(f"the price table has no price for the default model {fallback}")
    return found


def _rate_for(
    price: ModelPrice, kind: Kind, params: Mapping[str, object], bill: _Bill
) -> tuple[int, str]:
    """(ticks per unit, resolution) — the worst case where the resolution is not known."""
    media = kind.spec.output
    resolution = params.get("resolution")
    if isinstance(resolution, str):
        rate = price.rate(resolution)
        if rate is not None:
            return rate, resolution
        top = max(price.per_output, key=lambda r: price.per_output[r])
        bill.guess(f"no price for {resolution}: assumed {top}")
        return price.per_output[top], top
    if kind in (Kind.VIDEO_EDIT, Kind.EXTEND):
        # the output inherits the input's resolution (capped at 720p): assume the dearest
        known = [r for r in _INHERITED_RESOLUTIONS if r in price.per_output] or list(
            price.per_output
        )
        top = max(known, key=lambda r: price.per_output[r])
        return price.per_output[top], top
    default = API_DEFAULT_RESOLUTION[media]
    if default in price.per_output:
        return price.per_output[default], default
    top = max(price.per_output, key=lambda r: price.per_output[r])
    bill.guess(f"no price for {default}: assumed {top}")
    return price.per_output[top], top


def _int_param(params: Mapping[str, object], name: str, default: int) -> int:
    """An integer parameter, or `default` when it is absent or None."""
    value = params.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def estimate(
    table: PriceTable,
    *,
    kind: Kind,
    model: str,
    params: Mapping[str, object],
    input_count: int = 0,
    input_video_seconds: float | None = None,
) -> Estimate:
    """What the xAI API would charge for one asset of `kind` (whatever provider builds it).

    `params` is `Asset.params()`; `input_count` the number of input images;
    `input_video_seconds` the input video's length for `video_edit` and `extend`.
    A `video_edit` bills its output seconds (as long as the input) plus an
    input-second fee; an `extend` bills the added `duration` at the output rate
    plus the input-second fee on the whole input clip (prices.json,
    `extension_billing`, says why). An unknown input length is assumed the longest
    the API takes (8.7 s to edit, 15 s to extend), flagged as a guess.
    """
    bill = _Bill(model)
    price = _price_for(table, kind, model, bill)
    rate, resolution = _rate_for(price, kind, params, bill)
    output = (price, price.output_figure(resolution))
    image_fee = (price, "per_input_image_usd")
    second_fee = (price, "per_input_second_usd")
    if kind.spec.output is Media.IMAGE:
        count = _int_param(params, "count", 1)
        bill.charge(Decimal(count), output, rate, "image", f" ({resolution})")
        if kind.spec.input_media is Media.IMAGE:
            bill.charge(Decimal(input_count), image_fee, price.per_input_image, "input image")
    elif kind is Kind.VIDEO_EDIT:
        if input_video_seconds is None:
            seconds = MAX_VIDEO_EDIT_INPUT_S
            bill.guess(f"input video length unknown: assumed {_quantity(seconds)} s")
        else:
            seconds = Decimal(repr(float(input_video_seconds)))
        bill.charge(seconds, output, rate, "s of video", f" ({resolution})")
        bill.charge(seconds, second_fee, price.per_input_second, "s of input video")
    elif kind is Kind.EXTEND:
        added = Decimal(_int_param(params, "duration", kind.spec.default_duration or 0))
        bill.charge(added, output, rate, "s of video added", f" ({resolution})")
        if input_video_seconds is None:
            seconds = MAX_EXTEND_INPUT_S
            bill.guess(f"input video length unknown: assumed {_quantity(seconds)} s")
        else:
            seconds = Decimal(repr(float(input_video_seconds)))
        bill.charge(seconds, second_fee, price.per_input_second, "s of input video")
    else:
        default = kind.spec.default_duration or 0
        seconds = Decimal(_int_param(params, "duration", default))
        bill.charge(seconds, output, rate, "s of video", f" ({resolution})")
        if kind.spec.input_media is Media.IMAGE:
            bill.charge(Decimal(input_count), image_fee, price.per_input_image, "input image")
    return Estimate(
        ticks=bill.ticks,
        lines=tuple(bill.lines),
        guessed=bill.guessed,
        unconfirmed=tuple(dict.fromkeys(bill.unconfirmed)),
    )
