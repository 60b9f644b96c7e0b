"""Amounts entering the budget and prices are checked: a negative or non-finite one never
gives budget back or makes cost negative (the ledger, the price table)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from charter.core.decision import Decision, Stage, Verdict
from charter.core.errors import ModelConfigError
from charter.policy import pricing
from charter.policy.budget import BudgetLedger, BudgetLimits, Reservation
from charter.policy.pricing import ModelPrice, price_for
from charter.testing import FakeClock


def ledger() -> BudgetLedger:
    return BudgetLedger(
        BudgetLimits(max_total_tokens=1000, max_tool_calls=5, max_usd=Decimal(1)), FakeClock()
    )


BAD = [
    pytest.param({"tokens": -1}, "tokens=-1, which is not a whole number from 0", id="neg-tokens"),
    pytest.param({"tokens": 1.5}, "tokens=1.5, which is not", id="float-tokens"),
    pytest.param({"tokens": True}, "tokens=True, which is not", id="bool-tokens"),
    pytest.param({"tokens": None}, "tokens=None, which is not", id="none-tokens"),
    pytest.param({"tool_calls": -1}, "tool_calls=-1, which is not", id="neg-calls"),
    pytest.param({"usd": Decimal(-1)}, "usd=-1, which is not an amount of money", id="neg-usd"),
    pytest.param({"usd": Decimal("NaN")}, "usd=NaN, which is not", id="nan-usd"),
    pytest.param({"usd": Decimal("-Infinity")}, "usd=-Infinity", id="inf-usd"),
    pytest.param({"usd": 0.5}, "usd=0.5, which is not an amount of money", id="float-usd"),
    pytest.param({"tokens": -(10**40)}, "tokens=<an integer of 133 bits>", id="huge"),
]


@pytest.mark.parametrize(("amounts", "reason"), BAD)
def test_a_reservation_that_cannot_be_judged_is_refused(
    amounts: dict[str, Any], reason: str
) -> None:
    budget = ledger()

    refused = budget.reserve(**amounts)

    assert isinstance(refused, Decision)
    assert (refused.verdict, refused.stage, refused.rule_id) == (
        Verdict.DENY,
        Stage.BUDGET,
        "budget.amount",
    )
    assert reason in refused.reason
    totals = budget.totals()
    assert (totals.tool_calls, totals.total_tokens, totals.cost_usd) == (0, 0, 0)
    # Nothing was reserved either: the whole budget is still there.
    assert isinstance(budget.reserve(tokens=1000, usd=Decimal(1), tool_calls=5), Reservation)


@pytest.mark.parametrize(("amounts", "reason"), [p for p in BAD if "tool_calls" not in p.values[0]])
def test_a_settlement_that_cannot_be_judged_charges_the_reservation(
    amounts: dict[str, Any], reason: str
) -> None:
    budget = ledger()
    reservation = budget.reserve(tokens=300, usd=Decimal("0.25"))
    assert isinstance(reservation, Reservation)
    actual: dict[str, Any] = {"tokens": 10, "usd": Decimal("0.01"), **amounts}

    refused = budget.settle(reservation, **actual)

    assert refused is not None
    assert refused.rule_id == "budget.amount"
    assert reason in refused.reason
    assert "the reserved worst case was charged instead" in refused.reason
    totals = budget.totals()
    assert (totals.total_tokens, totals.cost_usd) == (300, Decimal("0.25"))
    # The reservation is gone: 700 tokens are left, not 400 and not more than 700.
    assert isinstance(budget.reserve(tokens=700), Reservation)
    assert isinstance(budget.reserve(tokens=1), Decision)


def test_negative_usage_cannot_refill_a_spent_budget() -> None:
    budget = ledger()
    first = budget.reserve(tokens=900)
    assert isinstance(first, Reservation)
    assert budget.settle(first, tokens=900, usd=Decimal(0)) is None
    second = budget.reserve(tokens=50)
    assert isinstance(second, Reservation)

    budget.settle(second, tokens=-(10**12), usd=Decimal(-750_000))

    assert budget.totals().total_tokens == 950
    assert budget.totals().cost_usd == 0
    assert isinstance(budget.reserve(tokens=51), Decision)


@pytest.mark.parametrize(
    "changes",
    [
        {"total_tokens": -5},
        {"tool_calls": -1},
        {"cost_usd": "-750000"},
        {"cost_usd": "NaN"},
        {"elapsed_seconds": float("nan")},
        {"elapsed_seconds": -3.0},
    ],
)
def test_a_snapshot_with_an_amount_that_cannot_be_judged_is_not_restored(
    changes: dict[str, Any],
) -> None:
    snapshot: dict[str, Any] = {**ledger().snapshot(), **changes}
    budget = ledger()
    with pytest.raises(ValueError, match=r"a budget snapshot holds .* it cannot be restored"):
        budget.restore(snapshot)
    assert budget.totals().total_tokens == 0


def test_a_good_snapshot_still_restores() -> None:
    budget = ledger()
    spent = budget.reserve(tokens=10, usd=Decimal("0.5"), tool_calls=1)
    assert isinstance(spent, Reservation)
    budget.settle(spent, tokens=8, usd=Decimal("0.4"))
    restored = ledger()
    restored.restore(budget.snapshot())
    totals = restored.totals()
    assert (totals.tool_calls, totals.total_tokens, totals.cost_usd) == (1, 8, Decimal("0.4"))


# -- prices -----------------------------------------------------------------------------------


def test_a_price_is_never_negative() -> None:
    price = ModelPrice("openai", "m", Decimal("0.000001"), Decimal("0.000002"))
    assert price.cost(0, 0) == 0
    assert price.cost(1000, 500) == Decimal("0.002")
    for counts in ((-1, 0), (0, -(10**12)), (1.5, 0), (None, 0), (True, 0)):
        with pytest.raises(ValueError, match="cannot price"):
            price.cost(*counts)  # type: ignore[arg-type]
    for bad in (Decimal(-1), Decimal("NaN"), Decimal("Infinity"), 0.1):
        with pytest.raises(ValueError, match="is not a price from 0"):
            ModelPrice("openai", "m", bad, Decimal(0))  # type: ignore[arg-type]


def test_a_price_table_with_a_negative_price_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Price:
        total_price = -3

    monkeypatch.setattr(pricing, "calc_price", lambda *args, **kwargs: Price())
    price_for.cache_clear()
    try:
        with pytest.raises(ModelConfigError, match="an unusable price"):
            price_for("openai", "broken-table-model")
    finally:
        price_for.cache_clear()
