"""Money's parsing and printing at their edges (the unit tests behind the mutation score).

Each case pins a behaviour a mutant of `money.py` changed while the rest of the
suite still passed: the `$` prefix, half-up rounding at the tick, refused floats
and booleans, the messages that name the bad value, and plain decimals in JSON.
"""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from imaginebuild.money import (
    TICKS_PER_USD,
    format_usd,
    ticks_of_text,
    ticks_to_usd,
    usd_json,
    usd_to_ticks,
)


def test_a_dollar_sign_in_front_is_allowed_and_nothing_else_is_stripped() -> None:
    assert usd_to_ticks("$1.50") == 15 * TICKS_PER_USD // 10
    assert usd_to_ticks(" 2 ") == 2 * TICKS_PER_USD
    for text in ("1.50$", "X1", "1$"):
        with pytest.raises(ValueError, match=re.escape(f"not a USD amount: {text!r}")):
            usd_to_ticks(text)


def test_rounding_is_half_up_at_the_tick() -> None:
    assert usd_to_ticks("0.00000000005") == 1  # half a tick rounds up, not to even
    assert usd_to_ticks("0.00000000015") == 2
    assert usd_to_ticks("0.00000000004") == 0


@pytest.mark.parametrize("value", [0.1, True, None, [1]])
def test_floats_booleans_and_other_types_are_refused_by_name(value: object) -> None:
    with pytest.raises(TypeError, match=f"not {type(value).__name__}$"):
        usd_to_ticks(value)  # type: ignore[arg-type]


def test_infinite_amounts_are_refused_naming_the_value() -> None:
    with pytest.raises(
        ValueError, match="not a finite USD amount below 1,000,000,000,000: 'Infinity'"
    ):
        usd_to_ticks("Infinity")
    with pytest.raises(ValueError, match="not a finite USD amount below 1,000,000,000,000: 'NaN'"):
        usd_to_ticks(Decimal("NaN"))


def test_text_of_an_event_reads_as_zero_when_absent_or_bad() -> None:
    assert ticks_of_text(None) == ticks_of_text("") == ticks_of_text("nonsense") == 0
    assert ticks_of_text("0.25") == TICKS_PER_USD // 4


def test_json_amounts_are_plain_decimals_never_exponents() -> None:
    assert usd_json(1) == "0.0000000001"
    assert usd_json(10 * TICKS_PER_USD) == "10"
    assert usd_json(TICKS_PER_USD // 10) == "0.1"
    assert ticks_to_usd(1) == Decimal("1E-10")


def test_people_read_cents_and_more_digits_only_when_needed() -> None:
    assert format_usd(0) == "$0.00"
    assert format_usd(TICKS_PER_USD // 10) == "$0.10"
    assert format_usd(22 * TICKS_PER_USD // 1000) == "$0.022"
    assert format_usd(-TICKS_PER_USD) == "-$1.00"


def test_the_bound_is_below_a_trillion_dollars_and_the_value_shown_cut_at_40() -> None:
    assert usd_to_ticks("999999999999.99") == 99999999999999 * TICKS_PER_USD // 100
    bound = "not a finite USD amount below 1,000,000,000,000: "
    with pytest.raises(ValueError, match=re.escape(f"{bound}'1E+12'")):
        usd_to_ticks(Decimal("1E+12"))
    with pytest.raises(ValueError, match=re.escape(f"{bound}{'9' * 40!r}") + "$"):
        usd_to_ticks("9" * 50)
