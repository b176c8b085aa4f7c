"""`imaginebuild prices`: the price table a project estimates with, and a refresh's outcome."""

from __future__ import annotations

from imaginebuild.cli.console import table
from imaginebuild.engine.pricing import ModelPrice, PriceTable
from imaginebuild.money import format_usd, usd_json
from imaginebuild.project.prices import PriceRefresh


def _figures(price: ModelPrice) -> list[tuple[str, int]]:
    """(figure name, ticks) of every figure of one model, output rates first."""
    figures = [(price.output_figure(r), t) for r, t in price.per_output.items()]
    if price.per_input_image:
        figures.append(("per_input_image_usd", price.per_input_image))
    if price.per_input_second:
        figures.append(("per_input_second_usd", price.per_input_second))
    return figures


def prices_text(prices: PriceTable) -> str:
    """One row per figure: model, figure, price, confidence; then the table's source."""
    rows = [
        (model, figure, format_usd(ticks), price.trust(figure).value)
        for model, price in sorted(prices.models.items())
        for figure, ticks in _figures(price)
    ]
    lines = [table(rows, ("model", "figure", "price", "confidence"))]
    lines.append(f"built-in table {prices.version} ({prices.as_of})")
    if prices.overridden:
        lines.append("set over it: " + ", ".join(prices.overridden))
    lines.append(
        "confidence: confirmed = xAI's docs, SDK or API; override = your own figure; "
        "third-party = quoted by API relays; inferred = assumed"
    )
    return "\n".join(lines)


def prices_json(prices: PriceTable) -> dict[str, object]:
    """The documented JSON object of the price table."""
    return {
        "version": prices.version,
        "as_of": prices.as_of,
        "overridden": list(prices.overridden),
        "models": {
            model: {
                "media": price.media.value,
                "source": price.source,
                "figures": {
                    figure: {"usd": usd_json(ticks), "confidence": price.trust(figure).value}
                    for figure, ticks in _figures(price)
                },
            }
            for model, price in sorted(prices.models.items())
        },
    }


def refresh_text(refresh: PriceRefresh) -> str:
    """What a refresh changed, what it could not use, and where it wrote."""
    lines = [f"wrote {refresh.path}"]
    lines += [f"  {line}" for line in refresh.changes]
    lines += [f"not used: {line}" for line in refresh.skipped]
    if refresh.video_models:
        lines.append(
            "xAI's API publishes no video prices; the figures for "
            + ", ".join(refresh.video_models)
            + " stay as they were"
        )
    return "\n".join(lines)
