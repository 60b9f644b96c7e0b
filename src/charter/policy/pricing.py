"""Model prices from the offline ``genai-prices`` table."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

from genai_prices import Usage, calc_price

from charter.core.errors import ModelConfigError

__all__ = ["ModelPrice", "price_for"]


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per token, input and output, for one provider's model.

    Raises:
        ValueError: a price per token is not a finite ``Decimal`` from 0.
    """

    provider: str
    model: str
    input_per_token: Decimal
    output_per_token: Decimal

    def __post_init__(self) -> None:
        for name in ("input_per_token", "output_per_token"):
            value = getattr(self, name)
            if not (isinstance(value, Decimal) and value.is_finite() and value >= 0):
                raise ValueError(
                    f"{self.provider}:{self.model} {name} {value!r} is not a price from 0"
                )

    def cost(self, input_tokens: int, output_tokens: int) -> Decimal:
        """What the tokens cost, never negative.

        Raises:
            ValueError: a count is not a whole number from 0 (``checked_response`` in
                ``execution/model.py`` refuses such usage before it is priced).
        """
        for name, count in (("input_tokens", input_tokens), ("output_tokens", output_tokens)):
            if type(count) is not int or count < 0:
                what = "a negative int" if type(count) is int else type(count).__name__
                raise ValueError(f"cannot price {name}: a count of tokens, not {what}")
        return self.input_per_token * input_tokens + self.output_per_token * output_tokens


@lru_cache(maxsize=256)
def price_for(provider: str, model: str) -> ModelPrice:
    """The price of ``provider``'s ``model``; ``ModelConfigError`` when the table lacks it."""
    million = 1_000_000
    try:
        inputs = calc_price(
            Usage(input_tokens=million, output_tokens=0), model, provider_id=provider
        )
        outputs = calc_price(
            Usage(input_tokens=0, output_tokens=million), model, provider_id=provider
        )
    except LookupError as exc:
        raise ModelConfigError(
            f"no price is known for {provider}:{model} ({exc}); set model.priced_as to a "
            "known 'provider:model' so budgets in USD can be enforced"
        ) from None
    try:
        return ModelPrice(
            provider,
            model,
            Decimal(inputs.total_price) / million,
            Decimal(outputs.total_price) / million,
        )
    except ValueError as exc:  # a price table entry that is negative or not a number
        raise ModelConfigError(
            f"the price table gives {provider}:{model} an unusable price ({exc}); set "
            "model.priced_as to a known 'provider:model'"
        ) from None
