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
    """USD per token, input and output, for one provider's model."""

    provider: str
    model: str
    input_per_token: Decimal
    output_per_token: Decimal

    def cost(self, input_tokens: int, output_tokens: int) -> Decimal:
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
    return ModelPrice(
        provider,
        model,
        Decimal(inputs.total_price) / million,
        Decimal(outputs.total_price) / million,
    )
