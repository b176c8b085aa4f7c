"""The run budget at its edges (the unit tests behind the mutation score): its per-run
limit, the refusal message with nothing left, money never below zero, and each
refusal of a negative figure naming it."""

from __future__ import annotations

import pytest

from imaginebuild.engine.budget import Budget, Limit, LimitState
from imaginebuild.money import usd_to_ticks

CENT = usd_to_ticks("0.01")


def test_a_limited_budget_is_one_per_run_limit_and_an_unlimited_one_none() -> None:
    assert Budget(5 * CENT).allowance.limits == (LimitState(Limit.PER_RUN, 5 * CENT),)
    assert Budget(None).allowance.limits == ()
    assert Budget(None).remaining is None


def test_settling_an_unreserved_asset_only_adds_the_bill() -> None:
    budget = Budget(10 * CENT)
    budget.settle("never-reserved", 3 * CENT)
    assert (budget.spent, budget.reserved, budget.remaining) == (3 * CENT, 0, 7 * CENT)


def test_the_refusal_names_the_run_budget_with_nothing_left() -> None:
    budget = Budget(5 * CENT)
    assert budget.reserve("a", 5 * CENT)
    assert not budget.reserve("b", CENT)
    assert budget.refusal("b", CENT) == (
        "b not started: its estimated $0.01 would pass the per-run budget "
        "($0.00 left for this run; per-run budget $0.05: $0.05 left)"
    )


def test_an_overspent_limit_shows_zero_left_never_less() -> None:
    state = LimitState(Limit.PER_DAY, 5 * CENT, used=7 * CENT)
    assert state.remaining == -2 * CENT
    assert state.describe() == "per-day budget $0.05: $0.07 used, $0.00 left"
    assert state.to_json()["remaining_usd"] == "0"


@pytest.mark.parametrize(
    ("act", "message"),
    [
        (lambda: Budget(-1), r"a budget cannot be negative \(-1 ticks\)"),
        (lambda: Budget(None, spent=-1), r"spending cannot be negative \(-1 ticks\)"),
        (lambda: Budget(None).reserve("a", -1), r"an estimate cannot be negative \(-1 ticks\)"),
        (lambda: Budget(None).settle("a", -1), r"a bill cannot be negative \(-1 ticks\)"),
    ],
)
def test_negative_figures_are_refused_by_name(act: object, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        act()  # type: ignore[operator]


def test_the_refusal_says_what_is_left_when_some_is() -> None:
    budget = Budget(5 * CENT)
    assert budget.reserve("a", 2 * CENT)
    assert not budget.reserve("b", 4 * CENT)
    assert "($0.03 left for this run;" in budget.refusal("b", 4 * CENT)


def test_a_refusal_bound_by_two_budgets_names_both() -> None:
    from datetime import date

    from imaginebuild.engine.budget import allowance

    budget = Budget.for_run(allowance(5 * CENT, 5 * CENT, None, [], date(2026, 1, 2)))
    assert not budget.reserve("a", 6 * CENT)
    assert budget.refusal("a", 6 * CENT) == (
        "a not started: its estimated $0.06 would pass the per-run and per-day budget "
        "($0.05 left for this run; per-run budget $0.05: $0.05 left; "
        "per-day budget $0.05: $0.00 used, $0.05 left)"
    )
