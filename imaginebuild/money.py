"""Money: exact USD amounts as integer ticks (10^-10 USD), parsed and printed.

Sums of ticks are exact, so a ledger adds up to the cent the provider bills;
Decimal appears only at the edges (parsing what a user wrote, printing).
"""

from __future__ import annotations

import enum
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

TICKS_PER_USD = 10**10


class Billing(enum.Enum):
    """Whether a call was billed for certain or may have been (its answer was lost)."""

    BILLED = "billed"
    MAYBE_BILLED = "maybe_billed"


MAX_USD_DIGITS = 12
MAX_USD = Decimal(10) ** MAX_USD_DIGITS


def usd_to_ticks(value: Decimal | str | int) -> int:
    """Convert an exact USD amount to ticks, rounding half-up at the tick.

    Floats are refused: their binary value is not the amount the user wrote.
    """
    if isinstance(value, (bool, float)) or not isinstance(value, (Decimal, str, int)):
        raise TypeError(f"USD amounts must be Decimal, str or int, not {type(value).__name__}")
    try:
        amount = Decimal(value.strip().lstrip("$") if isinstance(value, str) else value)
    except InvalidOperation:
        raise ValueError(f"not a USD amount: {value!r}") from None
    # adjusted(): the exponent of the leading digit, read without the context's limits.
    if not amount.is_finite() or (amount and amount.adjusted() >= MAX_USD_DIGITS):
        # A stored record may say anything; one past any real bill is not an amount.
        raise ValueError(f"not a finite USD amount below {MAX_USD:,}: {str(value)[:40]!r}")
    return int((amount * TICKS_PER_USD).to_integral_value(rounding=ROUND_HALF_UP))


def ticks_to_usd(ticks: int) -> Decimal:
    """The exact USD amount of `ticks`."""
    return Decimal(ticks).scaleb(-10)


def format_usd(ticks: int) -> str:
    """Render ticks as dollars: at least cents, more digits only when needed ($0.40, $0.022).

    The one money format of everything a person reads (summaries, plan, cost,
    the report, show, messages); JSON carries `usd_json` strings instead.
    """
    sign = "-" if ticks < 0 else ""
    whole, frac = divmod(abs(ticks), TICKS_PER_USD)
    digits = f"{frac:010d}".rstrip("0").ljust(2, "0")
    return f"{sign}${whole}.{digits}"


def ticks_of_text(text: object) -> int:
    """The ticks of a decimal USD string from an event or a stored record; 0 when it is
    absent, not a text (a stored record may hold anything) or not a finite amount (a
    display never fails on one bad figure)."""
    if text is not None and not isinstance(text, str):
        return 0
    try:
        return usd_to_ticks(text or "0")
    except ValueError:
        return 0


def usd_json(ticks: int) -> str:
    """Ticks as an exact plain decimal string for JSON and records (`0.1`, `12`, no `$`).

    Not for people: whatever a person reads goes through `format_usd`.
    """
    return format(ticks_to_usd(ticks).normalize(), "f")


__all__ = [
    "TICKS_PER_USD",
    "format_usd",
    "ticks_of_text",
    "ticks_to_usd",
    "usd_json",
    "usd_to_ticks",
]
