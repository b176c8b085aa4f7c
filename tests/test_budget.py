"""Budget reservations: exact in ticks, the lower limit wins, bills above estimates count."""

from __future__ import annotations

from decimal import Decimal

import pytest

from imaginebuild.engine.budget import Budget, effective_limit
from imaginebuild.money import usd_to_ticks

CENT = usd_to_ticks("0.01")


def test_reserving_exactly_up_to_the_limit_is_allowed() -> None:
    budget = Budget(100 * CENT)
    assert budget.reserve("a", 60 * CENT)
    assert budget.reserve("b", 40 * CENT)
    assert budget.remaining == 0


def test_one_tick_over_the_limit_is_refused() -> None:
    budget = Budget(100 * CENT)
    assert budget.reserve("a", 60 * CENT)
    assert not budget.reserve("b", 40 * CENT + 1)
    assert budget.reserved == 60 * CENT
    assert budget.refused == {"b": 40 * CENT + 1}


def test_no_limit_always_allows() -> None:
    budget = Budget(None)
    assert budget.reserve("a", 10**20)
    assert budget.remaining is None


def test_settle_replaces_the_reservation_with_the_bill() -> None:
    budget = Budget(100 * CENT)
    budget.reserve("a", 50 * CENT)
    budget.settle("a", 30 * CENT)
    assert (budget.spent, budget.reserved, budget.remaining) == (30 * CENT, 0, 70 * CENT)


def test_settle_above_the_estimate_counts_the_real_spend() -> None:
    budget = Budget(100 * CENT)
    budget.reserve("a", 50 * CENT)
    budget.settle("a", 80 * CENT)
    assert budget.spent == 80 * CENT
    assert not budget.reserve("b", 21 * CENT)
    assert budget.reserve("b", 20 * CENT)


def test_release_frees_a_step_that_did_not_call() -> None:
    budget = Budget(100 * CENT)
    budget.reserve("a", 100 * CENT)
    assert not budget.reserve("b", 1)
    budget.release("a")
    budget.release("a")  # idempotent
    assert budget.reserve("b", 100 * CENT)
    assert budget.spent == 0


def test_spending_already_recorded_counts() -> None:
    budget = Budget(100 * CENT, spent=90 * CENT)
    assert not budget.reserve("a", 11 * CENT)
    assert budget.reserve("a", 10 * CENT)


def test_a_refused_asset_may_fit_later() -> None:
    budget = Budget(10 * CENT)
    budget.reserve("a", 10 * CENT)
    assert not budget.reserve("b", 5 * CENT)
    budget.settle("a", 5 * CENT)
    assert budget.reserve("b", 5 * CENT)
    assert budget.refused == {}


def test_double_reservation_and_negative_amounts_are_errors() -> None:
    budget = Budget(10 * CENT)
    budget.reserve("a", 1)
    with pytest.raises(ValueError, match="already"):
        budget.reserve("a", 1)
    with pytest.raises(ValueError):
        budget.reserve("b", -1)
    with pytest.raises(ValueError):
        Budget(-1)


def test_many_small_reservations_stay_exact() -> None:
    budget = Budget(usd_to_ticks("1.00"))
    for i in range(50):
        assert budget.reserve(f"s{i}", usd_to_ticks("0.02"))
    assert not budget.reserve("one-more", 1)
    assert budget.remaining == 0


@pytest.mark.parametrize(
    ("mediafile", "cli", "expected"),
    [
        (None, None, None),
        (Decimal("5.00"), None, usd_to_ticks("5")),
        (None, Decimal("2.5"), usd_to_ticks("2.5")),
        (Decimal("5.00"), Decimal("2.50"), usd_to_ticks("2.5")),
        (Decimal("1.00"), Decimal("2.50"), usd_to_ticks("1")),
        (Decimal("0"), Decimal("2.50"), 0),
    ],
)
def test_the_lower_limit_wins(
    mediafile: Decimal | None, cli: Decimal | None, expected: int | None
) -> None:
    assert effective_limit(mediafile, cli) == expected
