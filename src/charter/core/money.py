"""Money is ``Decimal`` in US dollars; ``None`` means "no limit"."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

__all__ = ["ZERO", "format_usd", "to_decimal"]

ZERO = Decimal(0)


def to_decimal(value: object) -> Decimal:
    """Exact conversion: floats go through their shortest repr, so 0.1 stays 0.1."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not an amount")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float | str):
        try:
            result = Decimal(str(value).strip())
        except InvalidOperation as exc:
            raise ValueError(f"{value!r} is not a number") from exc
        if not result.is_finite():
            raise ValueError(f"{value!r} is not a finite amount")
        return result
    raise ValueError(f"{value!r} is not an amount")


def format_usd(value: Decimal) -> str:
    """``$0.60``, ``$12.00``, ``$0.000435``: cents always, sub-cent places when there are any
    (model costs are fractions of a cent), at most six."""
    shown = value.quantize(Decimal("0.000001"))
    cents = shown.quantize(Decimal("0.01"))
    if shown == cents:
        return f"${cents}"
    return f"${format(shown.normalize(), 'f')}"
