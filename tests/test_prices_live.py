"""Prices with their confidence: plan marks estimates on unconfirmed figures, shows the time
xAI's rate limits imply, and `prices --refresh` reads xAI's published prices (over real HTTP
on loopback, from a fake that serves the model endpoints of xAI's OpenAPI document)."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import CliResult, xai_env
from test_xai_e2e import KEY, imaginebuild

from imaginebuild.engine.priceoverrides import apply_overrides
from imaginebuild.engine.pricing import Confidence, estimate, load_builtin_prices
from imaginebuild.errors import MediafileError
from imaginebuild.layout import user_prices_path
from imaginebuild.model import Kind
from imaginebuild.project import load
from imaginebuild.providers.xai.models import default_tier_ticks, parse_live_prices
from imaginebuild.testing.fake_xai import FakeXai, Fault, Route

TWELVE_STILLS = """
version: 1
provider: xai
assets:
""" + "".join(f"  still-{i}: {{kind: image, prompt: still number {i}}}\n" for i in range(12))

# The image model's tiers as the spec's ImagePricingTier gives them: price_per_image in
# ticks (1/100,000,000 of a cent); requests carry no `quality`, so medium is what is paid.
LIVE = {
    "grok-imagine-image": {
        "image_price": 2,  # "USD cents" per the spec's description
        "pricing": [
            {"quality": "medium", "resolution": "1k", "price_per_image": 250_000_000},
            {"quality": "medium", "resolution": "2k", "price_per_image": 400_000_000},
            {"quality": "low", "resolution": "1k", "price_per_image": 100_000_000},
        ],
    },
    "grok-imagine-image-quality": {"image_price": 500_000_000},  # ticks, as the spec's example
    "grok-imagine-image-odd": {"image_price": 123_456},  # $1,234 as cents, $0.0000123 as ticks
    "grok-imagine-video": {},  # the API publishes no video price
}


pytestmark = pytest.mark.fake(model_prices=LIVE)


def _project(tmp_path: Path, text: str) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "mediafile.yaml").write_text(textwrap.dedent(text))
    return tmp_path


# ----------------------------------------------------------------- confidence per figure


def test_an_estimate_names_the_unconfirmed_figures_it_rests_on() -> None:
    table = load_builtin_prices()
    one_k = estimate(table, kind=Kind.IMAGE, model="grok-imagine-image", params={})
    assert one_k.unconfirmed == ()  # $0.02 at 1k is on xAI's own overview page
    two_k = estimate(
        table, kind=Kind.EDIT, model="grok-imagine-image", params={"resolution": "2k"},
        input_count=2,
    )  # fmt: skip
    assert two_k.unconfirmed == (
        "grok-imagine-image per_image_usd.2k (third-party)",
        "grok-imagine-image per_input_image_usd (third-party)",
    )


def test_a_figure_the_team_sets_is_its_own_and_one_read_from_the_api_is_confirmed() -> None:
    builtin = load_builtin_prices()
    own = apply_overrides(builtin, {"models": {"grok-imagine-image": {"per_image_usd": "0.03"}}})
    price = own.get("grok-imagine-image")
    assert price is not None
    assert price.trust("per_image_usd.2k") is Confidence.OVERRIDE
    assert price.trust("per_input_image_usd") is Confidence.THIRD_PARTY  # untouched
    api = apply_overrides(
        builtin,
        {"models": {"grok-imagine-image-2.0": {"per_image_usd": {"2k": "0.08"}}}},
        trust=Confidence.CONFIRMED,
    )
    changed = api.get("grok-imagine-image-2.0")
    assert changed is not None and changed.trust("per_image_usd.2k") is Confidence.CONFIRMED
    assert changed.trust("per_image_usd.1k") is Confidence.THIRD_PARTY


# ----------------------------------------------------------------- reading the API's answer


@pytest.mark.parametrize(
    ("value", "ticks"),
    [
        (2, 200_000_000),  # 2 cents, as the spec's description says
        (200_000_000, 200_000_000),  # $0.02 in ticks, as the spec's own example gives it
        (123_456, None),  # $1,234.56 as cents, a millionth of a cent as ticks: neither
        (0, None),
        (-2, None),
        (True, None),
        ("2", None),
    ],
)
def test_the_default_tier_price_is_read_in_whichever_unit_is_a_price(
    value: object, ticks: int | None
) -> None:
    assert default_tier_ticks(value) == ticks


def test_a_malformed_model_list_is_skipped_entry_by_entry_never_priced() -> None:
    live = parse_live_prices(
        {
            "models": [
                {"id": "a", "pricing": [{"quality": "medium", "resolution": "9k",
                                          "price_per_image": 1}]},
                {"id": "b", "pricing": [{"quality": "medium", "resolution": "1k",
                                          "price_per_image": -5}]},
                {"no": "id"},
                "not an object",
                {"id": "c", "pricing": [{"quality": "medium", "resolution": "1k",
                                          "price_per_image": 300_000_000}]},
            ]
        },
        {"models": [{"id": "grok-imagine-video"}]},
    )  # fmt: skip
    assert [(p.model, dict(p.per_image_ticks)) for p in live.images] == [("c", {"1k": 300_000_000})]
    assert live.video_models == ("grok-imagine-video",)
    assert len(live.skipped) == 6  # 9k, -5, two models without a price, two without an id
    with pytest.raises(ValueError, match="models"):
        parse_live_prices({"data": []}, {"models": []})


# ----------------------------------------------------------------- prices --refresh, end to end


def test_refresh_writes_the_api_prices_and_the_next_plan_estimates_with_them(
    fake: FakeXai, tmp_path: Path
) -> None:
    folder = _project(tmp_path / "p", TWELVE_STILLS)
    env = xai_env(fake, key=KEY)
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    before = json.loads(imaginebuild(folder, env, "plan").stdout)
    assert before["estimate_usd"] == "0.24"  # 12 × $0.02, the built-in figure

    done = imaginebuild(folder, env, "prices", "--refresh")
    assert done.code == 0, done.stderr
    refresh = json.loads(done.stdout)
    assert "grok-imagine-image 1k: $0.025 per image (was $0.02)" in refresh["changes"]
    assert "grok-imagine-image-quality 1k: $0.05 per image (was $0.05)" in refresh["changes"]
    assert any("grok-imagine-image-odd" in line for line in refresh["skipped"])
    assert refresh["video_models_without_prices"] == ["grok-imagine-video"]
    assert [r.method for r in fake.log] == ["GET", "GET"] and fake.bills == []

    written = user_prices_path(env)
    assert written == tmp_path / "config" / "imaginebuild" / "prices.json"
    text = written.read_text()
    assert env["XAI_API_KEY"] not in text
    document = json.loads(text)
    assert document["api"]["models"]["grok-imagine-image"]["per_image_usd"] == {
        "1k": "0.025",
        "2k": "0.04",
    }
    after = json.loads(imaginebuild(folder, env, "plan").stdout)
    assert after["estimate_usd"] == "0.3"  # 12 × $0.025
    assert all(a["unconfirmed_prices"] == [] for a in after["assets"])  # xAI's own figure


def test_refresh_keeps_the_users_own_figures(fake: FakeXai, tmp_path: Path) -> None:
    folder = _project(tmp_path / "p", TWELVE_STILLS)
    env = xai_env(fake, key=KEY)
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    path = user_prices_path(env)
    path.parent.mkdir(parents=True)
    own = {"source": "our contract", "models": {"grok-imagine-image": {"per_image_usd": "0.01"}}}
    path.write_text(json.dumps({"format": 1, "own": own}))
    assert imaginebuild(folder, env, "prices", "--refresh").code == 0
    document = json.loads(path.read_text())
    assert document["own"] == own
    plan = json.loads(imaginebuild(folder, env, "plan").stdout)
    assert plan["estimate_usd"] == "0.12"  # the user's own figure wins over the API's


@pytest.mark.parametrize(
    "fault",
    [Fault.http(500), Fault.truncated(), Fault.malformed_json(), Fault.unauthorized()],
    ids=["500", "cut-off", "not-json", "401"],
)
def test_a_refresh_that_fails_leaves_the_price_file_as_it_was(
    fake: FakeXai, tmp_path: Path, fault: Fault
) -> None:
    folder = _project(tmp_path / "p", TWELVE_STILLS)
    env = xai_env(fake, key=KEY)
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    env["IMAGINEBUILD_XAI_BACKOFF"] = "0.001,0.002"
    assert imaginebuild(folder, env, "prices", "--refresh").code == 0
    path = user_prices_path(env)
    good = path.read_bytes()
    fake.inject(Route.MODELS, *([fault] * 10))
    failed = imaginebuild(folder, env, "prices", "--refresh")
    assert failed.code != 0
    assert path.read_bytes() == good
    assert env["XAI_API_KEY"] not in failed.stdout + failed.stderr


def test_refresh_without_a_key_says_so_and_sends_nothing(fake: FakeXai, tmp_path: Path) -> None:
    folder = _project(tmp_path / "p", TWELVE_STILLS)
    env = xai_env(fake)
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    done = imaginebuild(folder, env, "prices", "--refresh")
    assert done.code == 1, done.stderr
    assert "XAI_API_KEY" in done.stdout + done.stderr
    assert fake.log == [] and not user_prices_path(env).exists()


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("{not json", "not valid JSON"),
        ('{"format": 2}', "format 1"),
        ('{"format": 1, "own": {"models": {"grok-imagine-image": {"per_image_usd": "-1"}}}}',
         "negative"),
        ('{"format": 1, "apii": {}}', "unknown key"),
    ],
)  # fmt: skip
def test_a_bad_user_price_file_is_a_located_error_naming_it(
    tmp_path: Path, content: str, words: str
) -> None:
    folder = _project(tmp_path / "p", TWELVE_STILLS)
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config"), "HOME": str(tmp_path)}
    path = user_prices_path(env)
    path.parent.mkdir(parents=True)
    path.write_text(content)
    project = load(folder / "mediafile.yaml", env=env)
    with pytest.raises(MediafileError) as raised:
        project.plan()
    assert str(path) in str(raised.value) and words in str(raised.value)


# ----------------------------------------------------------------- plan


def test_plan_marks_calls_on_unconfirmed_prices_and_shows_the_rate_limit_time(
    tmp_path: Path,
) -> None:
    folder = _project(
        tmp_path,
        TWELVE_STILLS
        + "  wide: {kind: image, prompt: a wide one, resolution: 2k}\n"
        + "  clip-a: {kind: video, prompt: a clip, duration: 2}\n"
        + "  clip-b: {kind: video, prompt: b clip, duration: 2}\n",
    )
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config"), "HOME": str(tmp_path)}
    plan = load(folder / "mediafile.yaml", env=env).plan()
    marked = {a.name: a.unconfirmed_prices for a in plan.assets if a.unconfirmed_prices}
    assert marked == {"wide": ("grok-imagine-image per_image_usd.2k (third-party)",)}
    # 13 images at 5/s take 2.4 s; 2 videos at 1/s take 1 s; the models go side by side
    assert plan.rate_limit_s == pytest.approx(2.4)
    assert plan.to_json()["rate_limit_s"] == 2.4


def test_plan_and_prices_for_people(tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    folder = _project(
        tmp_path / "p", TWELVE_STILLS + "  wide: {kind: image, prompt: w, resolution: 2k}\n"
    )
    plan = cli("plan", cwd=folder)
    assert plan.code == 0, plan.stderr
    shown = plan.stdout + plan.stderr
    assert "$0.02*" in shown and "per_image_usd.2k (third-party)" in shown
    assert "rate limits alone: at least 2.4 s" in shown
    prices = cli("prices", cwd=folder)
    assert prices.code == 0, prices.stderr
    assert "grok-imagine-image          per_image_usd.1k      $0.02   confirmed" in prices.stdout
