"""`imaginebuild prices`: the price table a project estimates with, and a refresh's outcome."""

from __future__ import annotations

import argparse

from imaginebuild.cli.console import table
from imaginebuild.cli.context import emit_json, open_project, result_line
from imaginebuild.engine.pricing import ModelPrice, PriceTable
from imaginebuild.engine.results import CommandResult
from imaginebuild.money import format_usd, usd_json
from imaginebuild.project.prices import PriceRefresh


def cmd_prices(args: argparse.Namespace) -> int:
    """`prices`: the table this project estimates with; `--refresh`: read xAI's prices."""
    project = open_project(args)
    if args.refresh:
        refreshed = project.refresh_prices()
        if args.json:
            emit_json(refreshed.to_json())
        else:
            result_line(refresh_text(refreshed))
        return 0
    prices = project.prices()
    if args.json:
        emit_json(prices_json(prices))
    else:
        result_line(prices_text(prices))
    return 0


def unconfirmed_notes(result: CommandResult) -> list[str]:
    """The plan's footnotes: which figures are unconfirmed, and the rate limits' time."""
    unconfirmed = sorted({f for a in result.assets for f in a.unconfirmed_prices})
    lines = []
    if unconfirmed:
        lines.append(
            "* rests on a price xAI has not confirmed: "
            + "; ".join(unconfirmed)
            + " (see `imaginebuild prices`)"
        )
    if result.rate_limit_s:
        lines.append(f"xAI's rate limits alone: at least {result.rate_limit_s:.1f} s of submitting")
    return lines


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
