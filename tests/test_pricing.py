"""The price table, exact money arithmetic, mediafile overrides and estimates."""

from __future__ import annotations

import json
from decimal import Decimal
from importlib import resources

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imaginebuild.engine.priceoverrides import PRICING_OVERRIDE_SCHEMA, load_price_table
from imaginebuild.engine.pricing import PriceTable, estimate, load_builtin_prices
from imaginebuild.errors import MediafileError
from imaginebuild.model import KIND_SPECS, Asset, Kind
from imaginebuild.money import TICKS_PER_USD, format_usd, ticks_to_usd, usd_to_ticks


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return load_price_table()


# ---------------------------------------------------------------- money


def test_usd_to_ticks_is_exact() -> None:
    assert TICKS_PER_USD == 10**10
    assert usd_to_ticks("0.02") == 200_000_000
    assert usd_to_ticks(Decimal("0.002")) == 20_000_000
    assert usd_to_ticks(5) == 5 * 10**10
    assert usd_to_ticks("$1.50") == 15_000_000_000


def test_usd_to_ticks_rounds_half_up_at_the_tick() -> None:
    assert usd_to_ticks("0.00000000005") == 1
    assert usd_to_ticks("0.000000000049") == 0
    assert usd_to_ticks("0.00000000015") == 2


def test_usd_to_ticks_refuses_floats_and_garbage() -> None:
    with pytest.raises(TypeError):
        usd_to_ticks(0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a USD amount"):
        usd_to_ticks("ten dollars")
    with pytest.raises(ValueError, match="finite"):
        usd_to_ticks("NaN")


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_ticks_round_trip_through_usd(ticks: int) -> None:
    assert usd_to_ticks(ticks_to_usd(ticks)) == ticks
    assert usd_to_ticks(format_usd(ticks).replace("-$", "-")) == ticks


@pytest.mark.parametrize(
    ("ticks", "text"),
    [
        (4 * 10**9, "$0.40"),
        (20_000_000, "$0.002"),
        (0, "$0.00"),
        (1, "$0.0000000001"),
        (12 * 10**10 + 5 * 10**9, "$12.50"),
        (-20_000_000, "-$0.002"),
    ],
)
def test_format_usd(ticks: int, text: str) -> None:
    assert format_usd(ticks) == text


# ---------------------------------------------------------------- the built-in table


def test_builtin_table_is_versioned_dated_and_sourced() -> None:
    raw = json.loads(resources.files("imaginebuild").joinpath("data/prices.json").read_text())
    assert {"format", "version", "as_of", "source", "models"} <= raw.keys()
    for name, spec in raw["models"].items():
        rate_key = "per_image_usd" if spec["media"] == "image" else "per_second_usd"
        figures = [f"{rate_key}.{res}" for res in spec[rate_key]]
        figures += [k for k in ("per_input_image_usd", "per_input_second_usd") if k in spec]
        for figure in figures:
            source = spec["sources"][figure]
            assert source["confidence"] in ("confirmed", "third-party", "inferred"), name
            assert source["ref"], (name, figure)
    prices = load_builtin_prices()
    assert prices.as_of == raw["as_of"] and prices.version == raw["version"]


def test_builtin_table_prices_every_default_model() -> None:
    table = load_builtin_prices()
    for kind, spec in KIND_SPECS.items():
        price = table.get(spec.default_model)
        assert price is not None and price.media is spec.output, kind


# ---------------------------------------------------------------- estimates


def test_image_estimate(table: PriceTable) -> None:
    result = estimate(table, kind=Kind.IMAGE, model="grok-imagine-image", params={"count": 4})
    assert result.ticks == usd_to_ticks("0.08")
    assert result.lines == ("4 × image at $0.02 (1k)",)
    assert not result.guessed


def test_image_estimate_from_asset_params(table: PriceTable) -> None:
    asset = Asset(
        name="a", kind=Kind.IMAGE, provider="local", prompt="p",
        model="grok-imagine-image-pro", resolution="2k", count=3,
    )  # fmt: skip
    result = estimate(table, kind=asset.kind, model=asset.model, params=asset.params())
    assert result.ticks == usd_to_ticks("0.21")


def test_edit_adds_input_images(table: PriceTable) -> None:
    result = estimate(
        table, kind=Kind.EDIT, model="grok-imagine-image-quality", params={"count": 2},
        input_count=3,
    )  # fmt: skip
    assert result.ticks == usd_to_ticks("0.106")  # 2 × 0.05 + 3 × 0.002
    assert result.lines[-1] == "3 × input image at $0.002"


def test_video_seconds_at_720p_are_exact_ticks(table: PriceTable) -> None:
    params = {"duration": 7, "resolution": "720p"}
    one = estimate(table, kind=Kind.VIDEO, model="grok-imagine-video", params=params)
    assert one.ticks == 7 * 700_000_000
    assert one.usd == Decimal("0.49")  # 7 × 0.07 in floats would be 0.49000000000000005


def test_video_default_duration_and_resolution(table: PriceTable) -> None:
    result = estimate(table, kind=Kind.VIDEO, model="grok-imagine-video", params={})
    assert result.ticks == 8 * 500_000_000  # 8 s at the API's default 480p


def test_1080p_on_video_1_5(table: PriceTable) -> None:
    params = {"duration": 10, "resolution": "1080p"}
    result = estimate(table, kind=Kind.VIDEO, model="grok-imagine-video-1.5", params=params)
    assert result.ticks == usd_to_ticks("2.50")


def test_animate_and_reference_add_input_images(table: PriceTable) -> None:
    params = {"duration": 5, "resolution": "480p"}
    animate = estimate(
        table, kind=Kind.ANIMATE, model="grok-imagine-video", params=params, input_count=1
    )
    assert animate.ticks == usd_to_ticks("0.252")
    reference = estimate(
        table, kind=Kind.REFERENCE_VIDEO, model="grok-imagine-video", params=params, input_count=7
    )
    assert reference.ticks == usd_to_ticks("0.264")


def test_video_edit_bills_output_and_input_seconds(table: PriceTable) -> None:
    result = estimate(
        table, kind=Kind.VIDEO_EDIT, model="grok-imagine-video", params={},
        input_video_seconds=6.04,
    )  # fmt: skip
    # same length out as in, at the dearest resolution an edit can produce (720p) + $0.01/s in
    assert result.ticks == usd_to_ticks("0.4832")
    assert not result.guessed


def test_video_edit_without_input_length_assumes_the_longest(table: PriceTable) -> None:
    result = estimate(table, kind=Kind.VIDEO_EDIT, model="grok-imagine-video", params={})
    assert result.guessed
    assert result.ticks == usd_to_ticks("0.696")  # 8.7 s × (0.07 + 0.01)
    assert any("8.7 s" in line for line in result.lines)


def test_extend_bills_the_added_seconds_and_the_input_seconds_fee(table: PriceTable) -> None:
    result = estimate(
        table, kind=Kind.EXTEND, model="grok-imagine-video", params={"duration": 5},
        input_count=1, input_video_seconds=10.0,
    )  # fmt: skip
    assert result.ticks == usd_to_ticks("0.45")  # 5 s × $0.07 (720p) + 10 s × $0.01
    assert not result.guessed
    assert result.lines == (
        "5 s of video added at $0.07/s (720p)",
        "10 s of input video at $0.01/s",
    )


def test_extend_without_input_length_assumes_the_longest_input(table: PriceTable) -> None:
    result = estimate(
        table, kind=Kind.EXTEND, model="grok-imagine-video",
        params={"duration": 2, "resolution": "480p"},
    )  # fmt: skip
    assert result.guessed
    assert result.ticks == usd_to_ticks("0.25")  # 2 s × $0.05 + 15 s × $0.01


def test_the_price_table_records_the_extension_decision_and_its_sources() -> None:
    import json
    from importlib import resources

    raw = json.loads(resources.files("imaginebuild").joinpath("data/prices.json").read_text())
    decision = raw["extension_billing"]
    assert "added" in decision["decision"] and "input" in decision["decision"]
    assert any("docs.x.ai" in s["ref"] for s in decision["sources"])
    assert all(s["confidence"] in ("confirmed", "third-party", "inferred")
               for s in decision["sources"])  # fmt: skip


def test_unknown_model_falls_back_and_is_flagged(table: PriceTable) -> None:
    result = estimate(table, kind=Kind.IMAGE, model="grok-imagine-image-9", params={"count": 2})
    assert result.guessed
    assert result.ticks == usd_to_ticks("0.04")
    assert "grok-imagine-image-9" in result.lines[0] and "grok-imagine-image" in result.lines[0]


def test_image_model_on_a_video_kind_is_a_guess(table: PriceTable) -> None:
    result = estimate(table, kind=Kind.VIDEO, model="grok-imagine-image", params={"duration": 2})
    assert result.guessed
    assert result.ticks == 2 * 500_000_000


def test_resolution_without_a_price_assumes_the_dearest(table: PriceTable) -> None:
    params = {"duration": 1, "resolution": "1080p"}
    result = estimate(table, kind=Kind.VIDEO, model="grok-imagine-video", params=params)
    assert result.guessed
    assert result.ticks == 700_000_000


# ---------------------------------------------------------------- overrides


def test_overrides_win_over_the_builtin_table() -> None:
    table = load_price_table(
        {
            "source": "ACME contract",
            "models": {
                "grok-imagine-image": {"per_image_usd": 0.015},
                "grok-imagine-video": {"per_second_usd": {"480p": "0.04"}},
            },
        }
    )
    image = estimate(table, kind=Kind.IMAGE, model="grok-imagine-image", params={"count": 4})
    assert image.ticks == usd_to_ticks("0.06")
    cheap = estimate(table, kind=Kind.VIDEO, model="grok-imagine-video", params={"duration": 3})
    assert cheap.ticks == usd_to_ticks("0.12")
    params = {"duration": 3, "resolution": "720p"}
    untouched = estimate(table, kind=Kind.VIDEO, model="grok-imagine-video", params=params)
    assert untouched.ticks == usd_to_ticks("0.21")
    assert "pricing.models.grok-imagine-image.per_image_usd" in table.overridden
    price = table.get("grok-imagine-image")
    assert price is not None and price.source.startswith("ACME contract")


def test_override_adds_a_new_model() -> None:
    table = load_price_table({"models": {"acme-video": {"per_second_usd": 0.03}}})
    result = estimate(table, kind=Kind.VIDEO, model="acme-video", params={"duration": 10})
    assert result.ticks == usd_to_ticks("0.30") and not result.guessed


def test_bad_overrides_are_all_located() -> None:
    overrides = {
        "modles": {},
        "models": {
            "grok-imagine-image": {"per_second_usd": 1, "per_imag_usd": 2},
            "grok-imagine-video": {"per_second_usd": {"4k": 1, "720p": -1}},
            "nobody": {},
            "flag": {"per_image_usd": True},
            "words": {"per_image_usd": "cheap"},
        },
    }
    with pytest.raises(MediafileError) as caught:
        load_price_table(overrides, file="mediafile.yaml")
    found = {d.path: d for d in caught.value.diagnostics}
    assert set(found) == {
        "pricing.modles",
        "pricing.models.grok-imagine-image.per_second_usd",
        "pricing.models.grok-imagine-image.per_imag_usd",
        "pricing.models.grok-imagine-video.per_second_usd.4k",
        "pricing.models.grok-imagine-video.per_second_usd.720p",
        "pricing.models.nobody",
        "pricing.models.flag.per_image_usd",
        "pricing.models.words.per_image_usd",
    }
    assert found["pricing.modles"].hint == "did you mean 'models'?"
    assert found["pricing.models.grok-imagine-image.per_imag_usd"].hint == (
        "did you mean 'per_image_usd'?"
    )
    assert all(d.file == "mediafile.yaml" and d.line == 0 for d in found.values())


def test_override_schema_is_valid_json_schema() -> None:
    import jsonschema

    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **PRICING_OVERRIDE_SCHEMA}
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    good = {"models": {"grok-imagine-video": {"per_second_usd": {"480p": 0.04}}}}
    assert validator.is_valid(good)
    assert not validator.is_valid({"models": {"m": {"per_image_usd": 1, "per_second_usd": 1}}})
    assert not validator.is_valid({"models": {"m": {"per_image_usd": {"4k": 1}}}})
    # it must keep working when embedded under the mediafile schema's `pricing` property
    embedded = jsonschema.Draft202012Validator(
        {"type": "object", "properties": {"pricing": PRICING_OVERRIDE_SCHEMA}}
    )
    assert embedded.is_valid({"pricing": {"models": {"m": {"per_image_usd": "0.015"}}}})
    assert not embedded.is_valid({"pricing": {"models": {"m": {"per_image_usd": "cheap"}}}})
