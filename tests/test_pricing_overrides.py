"""A mediafile's `pricing:` block: what each figure changes, how far it is then trusted, and
the located message of every figure that is not a price."""

from __future__ import annotations

from typing import Any

import pytest

from imaginebuild.engine.priceoverrides import (
    PRICING_OVERRIDE_SCHEMA,
    apply_overrides,
    load_price_table,
)
from imaginebuild.engine.pricing import Confidence, ModelPrice, estimate, load_builtin_prices
from imaginebuild.errors import Diagnostic, MediafileError
from imaginebuild.model import Kind
from imaginebuild.money import usd_to_ticks

BUILT_IN = "built-in table 2026.11.1 (2026-11-24)"


def problems(overrides: object, **kwargs: Any) -> list[Diagnostic]:
    """The diagnostics of a block that must be refused."""
    with pytest.raises(MediafileError) as caught:
        apply_overrides(load_builtin_prices(), overrides, **kwargs)
    return list(caught.value.diagnostics)


def only(overrides: object) -> tuple[str, str, str | None]:
    """(path, message, hint) of a block with exactly one problem."""
    (found,) = problems(overrides)
    return found.path, found.message, found.hint


def model(overrides: dict[str, Any], name: str) -> ModelPrice:
    price = load_price_table(overrides).get(name)
    assert price is not None
    return price


# ---------------------------------------------------------------- what a figure changes


def test_an_input_fee_alone_changes_that_fee_and_nothing_else() -> None:
    video = model({"models": {"grok-imagine-video": {"per_input_image_usd": "0.005"}}},
                  "grok-imagine-video")  # fmt: skip
    assert video.per_input_image == usd_to_ticks("0.005")
    assert video.per_input_second == usd_to_ticks("0.01")  # the built-in figure
    assert dict(video.per_output) == {"480p": 500_000_000, "720p": 700_000_000}
    assert video.trust("per_input_image_usd") is Confidence.OVERRIDE
    assert video.trust("per_second_usd.480p") is Confidence.CONFIRMED
    assert video.source == f"mediafile pricing over {BUILT_IN}"


def test_an_input_second_fee_changes_what_an_edit_costs() -> None:
    table = load_price_table({"models": {"grok-imagine-video": {"per_input_second_usd": 0}}})
    result = estimate(
        table, kind=Kind.VIDEO_EDIT, model="grok-imagine-video", params={}, input_video_seconds=2
    )
    assert result.ticks == 2 * 700_000_000  # the free input seconds add nothing
    video = table.get("grok-imagine-video")
    assert video is not None and video.per_input_image == usd_to_ticks("0.002")


def test_one_resolution_overridden_is_the_only_one_trusted_as_the_teams() -> None:
    video = model({"source": "ACME", "models": {"grok-imagine-video": {"per_second_usd":
                  {"720p": "0.06"}}}}, "grok-imagine-video")  # fmt: skip
    assert video.trust("per_second_usd.720p") is Confidence.OVERRIDE
    assert video.trust("per_second_usd.480p") is Confidence.CONFIRMED
    assert video.source == f"ACME over {BUILT_IN}"


def test_one_amount_for_every_resolution_is_trusted_at_every_resolution() -> None:
    image = model({"models": {"grok-imagine-image": {"per_image_usd": 0.01}}}, "grok-imagine-image")
    assert dict(image.per_output) == {"1k": 100_000_000, "2k": 100_000_000}
    assert image.trust("per_image_usd.1k") is Confidence.OVERRIDE
    assert image.trust("per_image_usd.2k") is Confidence.OVERRIDE
    assert image.trust("per_input_image_usd") is Confidence.THIRD_PARTY


def test_a_new_model_is_known_with_its_fees_and_its_source() -> None:
    new = model({"source": "ACME", "models": {"acme": {"per_second_usd": {"720p": 1},
                 "per_input_image_usd": "0.5"}}}, "acme")  # fmt: skip
    assert dict(new.per_output) == {"720p": usd_to_ticks(1)}
    assert new.per_input_image == usd_to_ticks("0.5")
    assert new.source == "ACME"
    assert new.weakest is Confidence.OVERRIDE


def test_a_block_with_only_a_source_changes_no_figure() -> None:
    table = load_price_table({"source": "ACME"})
    assert dict(table.models) == dict(load_builtin_prices().models)
    assert table.overridden == ()


def test_a_zero_price_is_a_price() -> None:
    free = model({"models": {"grok-imagine-image": {"per_image_usd": 0}}}, "grok-imagine-image")
    assert dict(free.per_output) == {"1k": 0, "2k": 0}


# ---------------------------------------------------------------- figures that are not prices


@pytest.mark.parametrize(
    ("value", "message", "hint"),
    [
        (True, "expected a USD amount, got bool", None),
        (None, "expected a USD amount, got NoneType", None),
        (float("inf"), "expected a finite USD amount, got inf", None),
        ("cheap", "not a USD amount: 'cheap'", "write a number such as 0.015"),
        (-1, "a price cannot be negative (-1)", None),
    ],
    ids=["bool", "none", "infinite", "words", "negative"],
)
def test_a_figure_that_is_not_a_price_is_located_and_explained(
    value: object, message: str, hint: str | None
) -> None:
    block = {"models": {"grok-imagine-video": {"per_input_second_usd": value}}}
    assert only(block) == ("pricing.models.grok-imagine-video.per_input_second_usd", message, hint)


def test_a_model_priced_both_ways_is_refused() -> None:
    block = {"models": {"acme": {"per_image_usd": 1, "per_second_usd": 1}}}
    assert only(block) == (
        "pricing.models.acme", "a model is priced per image or per second, not both", None,
    )  # fmt: skip


def test_a_known_model_given_the_other_media_rate_is_told_its_own() -> None:
    block = {"models": {"grok-imagine-image": {"per_second_usd": 1}}}
    assert only(block) == (
        "pricing.models.grok-imagine-image.per_second_usd",
        "'grok-imagine-image' is priced per image",
        "use per_image_usd",
    )


def test_a_new_model_without_a_rate_is_told_what_to_give() -> None:
    assert only({"models": {"nobody": {}}}) == (
        "pricing.models.nobody",
        "'nobody' is not in the price table",
        "give per_image_usd or per_second_usd",
    )


def test_a_model_that_is_not_a_mapping_is_refused() -> None:
    assert only({"models": {"acme": 0.02}}) == (
        "pricing.models.acme", "expected a mapping of prices, got float", None,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("block", "where", "message"),
    [
        (["models"], "pricing", "expected a mapping, got list"),
        ({"source": 7}, "pricing.source", "expected a string, got int"),
        ({"models": ["acme"]}, "pricing.models", "expected a mapping, got list"),
    ],
)
def test_a_block_of_the_wrong_shape_is_located(block: object, where: str, message: str) -> None:
    assert only(block) == (where, message, None)


def test_an_unknown_key_with_nothing_close_lists_the_keys_allowed() -> None:
    assert only({"zzz": 1}) == (
        "pricing.zzz",
        "unknown key 'zzz'",
        "expected one of: models, source",
    )


def test_problems_name_no_file_unless_told() -> None:
    assert [d.file for d in problems({"zzz": 1})] == [""]
    with pytest.raises(MediafileError) as caught:
        load_price_table({"zzz": 1})
    assert [d.file for d in caught.value.diagnostics] == [""]


# ---------------------------------------------------------------- the block's schema


def test_every_property_of_the_schema_has_a_title_and_a_description() -> None:
    def walk(node: object, where: str) -> None:
        if isinstance(node, dict):
            for name, sub in node.get("properties", {}).items():
                assert sub.get("title") and sub.get("description"), f"{where}.{name}"
            for key, sub in node.items():
                walk(sub, f"{where}.{key}")
        elif isinstance(node, list):
            for i, sub in enumerate(node):
                walk(sub, f"{where}[{i}]")

    walk(PRICING_OVERRIDE_SCHEMA, "pricing")
    rate = PRICING_OVERRIDE_SCHEMA["properties"]["models"]["additionalProperties"]  # type: ignore[index]
    assert "480p, 720p, 1080p" in rate["properties"]["per_second_usd"]["description"]


def test_the_schema_checks_resolutions_and_amounts_per_resolution() -> None:
    import jsonschema

    validator = jsonschema.Draft202012Validator(PRICING_OVERRIDE_SCHEMA)
    good = {"per_second_usd": {"480p": 0.04, "1080p": "0.2"}}
    assert validator.is_valid({"models": {"m": good}})
    for bad in ({"4k": 1}, {"480p": "cheap"}, {"480p": -1}, [0.04]):
        assert not validator.is_valid({"models": {"m": {"per_second_usd": bad}}}), bad
