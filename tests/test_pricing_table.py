"""Reading a price table and what an estimate says: each line, each guess, each figure xAI has
not confirmed, and the rounding of a charge to whole ticks."""

from __future__ import annotations

import json
from decimal import Decimal
from importlib import resources
from typing import Any

import pytest

from imaginebuild.engine.priceoverrides import load_price_table
from imaginebuild.engine.pricing import (
    Confidence,
    PriceTable,
    estimate,
    load_builtin_prices,
    parse_price_table,
)
from imaginebuild.model import Kind, Media
from imaginebuild.money import usd_to_ticks


def packaged() -> dict[str, Any]:
    """The packaged table as decoded JSON (parsed afresh by each test, never from the cache)."""
    text = resources.files("imaginebuild").joinpath("data/prices.json").read_text("utf-8")
    return dict(json.loads(text))


def small_table(**models: dict[str, Any]) -> dict[str, Any]:
    """A minimal raw table holding `models`."""
    return {
        "format": 1,
        "version": "v9",
        "as_of": "2026-01-02",
        "source": "tests",
        "models": models,
    }


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return load_price_table()


# ---------------------------------------------------------------- parsing the table


def test_parsing_the_packaged_table_gives_every_figure_and_its_confidence() -> None:
    parsed = parse_price_table(packaged())
    assert parsed == load_builtin_prices()
    assert (parsed.version, parsed.as_of) == ("2026.11.1", "2026-11-24")
    assert parsed.source.startswith("xAI Grok Imagine pricing")
    video = parsed.get("grok-imagine-video")
    assert video is not None and video.media is Media.VIDEO
    assert dict(video.per_output) == {"480p": 500_000_000, "720p": 700_000_000}
    assert (video.per_input_image, video.per_input_second) == (20_000_000, 100_000_000)
    assert video.source == "built-in table 2026.11.1 (2026-11-24)"
    assert video.trust("per_second_usd.480p") is Confidence.CONFIRMED
    assert video.trust("per_second_usd.720p") is Confidence.THIRD_PARTY
    assert video.trust("per_second_usd.1080p") is Confidence.INFERRED  # a figure it does not name
    assert parsed.get("no-such-model") is None


def test_a_model_without_fees_or_sources_has_zero_fees_and_inferred_figures() -> None:
    raw = small_table(
        plain={"media": "image", "per_image_usd": {"1k": "0.01"}},
        half={
            "media": "video",
            "per_second_usd": {"480p": "0.03"},
            "sources": {"per_second_usd.480p": {"ref": "a note, no confidence"}, "junk": "x"},
        },
    )
    parsed = parse_price_table(raw)
    plain, half = parsed.get("plain"), parsed.get("half")
    assert plain is not None and half is not None
    assert (plain.per_input_image, plain.per_input_second) == (0, 0)
    assert plain.weakest is Confidence.INFERRED
    assert half.trust("per_second_usd.480p") is Confidence.INFERRED
    assert dict(half.confidence) == {"per_second_usd.480p": Confidence.INFERRED}
    assert (parsed.version, parsed.as_of, parsed.source) == ("v9", "2026-01-02", "tests")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({**small_table(), "format": 2}, "price table format 2 is not 1"),
        (
            {k: v for k, v in small_table().items() if k != "format"},
            "price table format None is not 1",
        ),
        ({**small_table(), "models": ["m"]}, "the price table has no `models` mapping"),
    ],
    ids=["newer-format", "no-format", "models-not-a-mapping"],
)
def test_a_malformed_table_is_refused_with_its_reason(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as refused:
        parse_price_table(raw)
    assert str(refused.value) == message


def test_a_table_that_lost_a_default_model_says_which() -> None:
    raw = small_table(other={"media": "image", "per_image_usd": {"1k": "0.01"}})
    with pytest.raises(ValueError, match="no price for the default model grok-imagine-image"):
        estimate(parse_price_table(raw), kind=Kind.IMAGE, model="other-9", params={})


# ---------------------------------------------------------------- what an estimate says


def test_an_estimate_is_exact_in_usd_and_names_its_unit(table: PriceTable) -> None:
    params = {"duration": 7, "resolution": "720p"}
    result = estimate(table, kind=Kind.VIDEO, model="grok-imagine-video", params=params)
    assert result.usd == Decimal("0.49")  # 7 × 0.07, no float on the way
    assert result.lines == ("7 s of video at $0.07/s (720p)",)
    assert result.guessed is False


def test_image_count_defaults_to_one(table: PriceTable) -> None:
    result = estimate(table, kind=Kind.IMAGE, model="grok-imagine-image", params={})
    assert result.ticks == usd_to_ticks("0.02")
    assert result.lines == ("1 × image at $0.02 (1k)",)


def test_no_input_count_means_no_input_fee(table: PriceTable) -> None:
    result = estimate(table, kind=Kind.ANIMATE, model="grok-imagine-video", params={})
    assert result.lines == ("8 s of video at $0.05/s (480p)",)
    assert result.ticks == usd_to_ticks("0.40")


def test_animate_lines_name_the_video_and_the_input_images(table: PriceTable) -> None:
    result = estimate(
        table, kind=Kind.ANIMATE, model="grok-imagine-video", params={"duration": 2},
        input_count=2,
    )  # fmt: skip
    assert result.lines == ("2 s of video at $0.05/s (480p)", "2 × input image at $0.002")


def test_a_video_edit_bills_at_720p_even_where_1080p_is_priced(table: PriceTable) -> None:
    result = estimate(
        table, kind=Kind.VIDEO_EDIT, model="grok-imagine-video-1.5", params={},
        input_video_seconds=2.0,
    )  # fmt: skip
    assert result.lines == ("2 s of video at $0.14/s (720p)", "2 s of input video at $0.01/s")
    assert result.ticks == usd_to_ticks("0.30")


def test_a_video_edit_line_shows_a_tiny_length_as_a_plain_decimal(table: PriceTable) -> None:
    result = estimate(
        table, kind=Kind.VIDEO_EDIT, model="grok-imagine-video", params={},
        input_video_seconds=5e-7,
    )  # fmt: skip
    assert result.lines[0] == "0.0000005 s of video at $0.07/s (720p)"
    assert result.ticks == 350 + 50  # 5e-7 s × (7e8 + 1e8) ticks


def test_an_extend_without_a_duration_adds_the_default_six_seconds(table: PriceTable) -> None:
    result = estimate(
        table, kind=Kind.EXTEND, model="grok-imagine-video", params={}, input_video_seconds=4.0
    )
    assert result.lines == ("6 s of video added at $0.07/s (720p)", "4 s of input video at $0.01/s")


def test_an_extend_of_unknown_length_says_what_it_assumed(table: PriceTable) -> None:
    result = estimate(table, kind=Kind.EXTEND, model="grok-imagine-video", params={"duration": 2})
    assert result.guessed
    assert "input video length unknown: assumed 15 s" in result.lines


def test_the_estimate_names_each_unconfirmed_figure_once(table: PriceTable) -> None:
    confirmed = estimate(table, kind=Kind.VIDEO, model="grok-imagine-video", params={})
    assert confirmed.unconfirmed == ()  # 480p output is xAI's own figure
    edit = estimate(
        table, kind=Kind.EDIT, model="grok-imagine-image", params={"resolution": "2k"},
        input_count=2,
    )  # fmt: skip
    assert edit.unconfirmed == (
        "grok-imagine-image per_image_usd.2k (third-party)",
        "grok-imagine-image per_input_image_usd (third-party)",
    )
    extend = estimate(
        table, kind=Kind.EXTEND, model="grok-imagine-video", params={"duration": 1},
        input_video_seconds=1.0,
    )  # fmt: skip
    assert extend.unconfirmed == (
        "grok-imagine-video per_second_usd.720p (third-party)",
        "grok-imagine-video per_input_second_usd (third-party)",
    )


def test_an_unknown_model_is_priced_and_named_as_its_fallback(table: PriceTable) -> None:
    result = estimate(
        table, kind=Kind.IMAGE, model="grok-imagine-image-9", params={"resolution": "2k"}
    )
    assert result.unconfirmed == ("grok-imagine-image per_image_usd.2k (third-party)",)


def test_unpriced_resolutions_assume_the_dearest_figure_not_the_last_name() -> None:
    # 1080p is the dearest here but sorts before 720p and 480p: the guess follows the price.
    table = load_price_table(
        {"models": {"acme": {"per_second_usd": {"720p": "0.10", "1080p": "0.30"}}}}
    )
    default = estimate(table, kind=Kind.VIDEO, model="acme", params={"duration": 1})
    assert default.lines[0] == "no price for 480p: assumed 1080p"
    assert default.ticks == usd_to_ticks("0.30")
    given = estimate(table, kind=Kind.VIDEO, model="acme", params={"resolution": "480p"})
    assert given.lines[0] == "no price for 480p: assumed 1080p"
    assert given.guessed


def test_an_edit_assumes_the_dearest_inherited_resolution() -> None:
    cheap_720 = load_price_table(
        {"models": {"odd": {"per_second_usd": {"480p": "0.09", "720p": "0.05"}}}}
    )
    result = estimate(
        cheap_720, kind=Kind.VIDEO_EDIT, model="odd", params={}, input_video_seconds=1
    )
    assert result.lines[0] == "1 s of video at $0.09/s (480p)"
    only_1080 = load_price_table({"models": {"big": {"per_second_usd": {"1080p": "0.25"}}}})
    result = estimate(only_1080, kind=Kind.EXTEND, model="big", params={"duration": 2})
    assert result.lines[0] == "2 s of video added at $0.25/s (1080p)"


def test_a_charge_rounds_half_a_tick_up() -> None:
    one_tick = load_price_table({"models": {"t": {"per_second_usd": "0.0000000001"}}})
    result = estimate(one_tick, kind=Kind.VIDEO_EDIT, model="t", params={}, input_video_seconds=2.5)
    assert result.ticks == 3  # 2.5 ticks: half-up, where half-even would give 2
