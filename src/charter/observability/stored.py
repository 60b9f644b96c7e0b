"""Reading back the amounts and counts a database holds, which may not be what Charter wrote.

A ``runs`` row may hold a value that is no amount: written by a version that trusted a
model's usage (minus $750,000, minus 2 * 10**12 tokens), altered by hand, or, in SQLite,
text where a number belongs (its columns take any value). Each reader here gives the value,
or ``None`` when it is not one a run can have used; the caller shows ``None`` as unknown and
leaves it out of every sum, so garbage is never counted as money, tokens or time, and
reading it never raises.

- money (``stored_usd``): exact decimal text, finite, from 0 and under ``MAX_USD`` (a
  quadrillion dollars: no run costs that, and past it formatting an amount would fail);
- counts (``stored_count``): an integer from 0 (a bool is not a count);
- seconds (``stored_seconds``): a finite number from 0.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation

__all__ = ["MAX_USD", "stored_count", "stored_seconds", "stored_usd"]

MAX_USD = Decimal(10**15)


def stored_usd(value: object) -> Decimal | None:
    """A stored amount of money, or None when it is not one from 0 (negative, NaN, infinite,
    not a number at all, or not stored as text or a number)."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        return None
    try:
        amount = Decimal(value.strip() if isinstance(value, str) else value)
    except (InvalidOperation, ValueError):
        return None
    return amount if amount.is_finite() and 0 <= amount < MAX_USD else None


def stored_count(value: object) -> int | None:
    """A stored count, or None when it is not an integer from 0."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if value >= 0 else None


def stored_seconds(value: object) -> float | None:
    """A stored duration in seconds, or None when it is not a finite number from 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        seconds = float(value)
    except OverflowError:  # an integer too large for a float
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None
