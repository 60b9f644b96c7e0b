"""``BudgetLedger``: reservations under one lock, so racing threads overspend by exactly zero."""

from __future__ import annotations

import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from charter.core.decision import Decision, Stage, Verdict
from charter.policy.budget import BudgetLedger, BudgetLimits, Reservation
from charter.testing import FakeClock


def ledger(**limits: Any) -> BudgetLedger:
    return BudgetLedger(BudgetLimits(**limits), FakeClock())


def race(threads: int, action: Callable[[], object]) -> list[object]:
    """Run ``action`` in ``threads`` real threads released together by a barrier."""
    barrier = threading.Barrier(threads)
    results: list[object] = [None] * threads
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = action()
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=30)
    assert not any(t.is_alive() for t in pool)
    assert errors == []
    return results


def test_fifty_threads_racing_for_the_last_dollar_overspend_by_exactly_zero() -> None:
    book = ledger(max_usd=Decimal("10.00"))
    nine = book.reserve(usd=Decimal("9.00"))
    assert isinstance(nine, Reservation)
    book.settle(nine, tokens=0, usd=Decimal("9.00"))

    results = race(50, lambda: book.reserve(usd=Decimal("0.25")))

    won = [r for r in results if isinstance(r, Reservation)]
    lost = [r for r in results if isinstance(r, Decision)]
    assert len(won) == 4  # exactly the last dollar, in quarters
    assert len(lost) == 46
    assert {d.rule_id for d in lost} == {"budget.max_usd_per_run"}
    assert {d.verdict for d in lost} == {Verdict.DENY}
    for reservation in won:
        book.settle(reservation, tokens=0, usd=reservation.usd)
    spent = book.totals().cost_usd
    assert spent == Decimal("10.00")
    assert spent - Decimal("10.00") == 0  # overspend


def test_fifty_threads_racing_for_one_whole_budget_let_exactly_one_through() -> None:
    book = ledger(max_usd=Decimal("1"))

    results = race(50, lambda: book.reserve(usd=Decimal("1")))

    assert sum(isinstance(r, Reservation) for r in results) == 1


def test_fifty_threads_racing_for_tool_call_slots_get_exactly_the_limit() -> None:
    book = ledger(max_tool_calls=8)

    results = race(50, lambda: book.reserve(tool_calls=1))

    assert sum(isinstance(r, Reservation) for r in results) == 8
    assert book.totals().tool_calls == 8
    rules = {r.rule_id for r in results if isinstance(r, Decision)}
    assert rules == {"budget.max_tool_calls"}


def test_fifty_threads_racing_for_tokens_never_pass_the_limit() -> None:
    book = ledger(max_total_tokens=1000)

    results = race(50, lambda: book.reserve(tokens=90))

    won = [r for r in results if isinstance(r, Reservation)]
    assert len(won) == 11  # 11 * 90 = 990; a 12th would be 1080
    for reservation in won:
        assert book.settle(reservation, tokens=reservation.tokens, usd=Decimal(0)) is None
    assert book.totals().total_tokens == 990


def test_release_returns_money_and_tokens_but_not_the_slot() -> None:
    book = ledger(max_usd=Decimal("1.00"), max_tool_calls=2, max_total_tokens=100)
    first = book.reserve(tool_calls=1, tokens=100, usd=Decimal("1.00"))
    assert isinstance(first, Reservation)
    assert isinstance(book.reserve(usd=Decimal("0.01")), Decision)  # all of it is reserved

    book.release(first)

    second = book.reserve(tool_calls=1, tokens=100, usd=Decimal("1.00"))
    assert isinstance(second, Reservation)
    third = book.reserve(tool_calls=1)
    assert isinstance(third, Decision)
    assert third.rule_id == "budget.max_tool_calls"  # the released call kept its slot
    assert book.totals().cost_usd == 0  # reserved is not spent


def test_settle_replaces_the_reservation_with_the_actual_spend() -> None:
    book = ledger(max_usd=Decimal("1.00"), max_total_tokens=1000)
    reservation = book.reserve(tokens=600, usd=Decimal("0.80"))
    assert isinstance(reservation, Reservation)

    assert book.settle(reservation, tokens=250, usd=Decimal("0.30")) is None

    totals = book.totals()
    assert (totals.total_tokens, totals.cost_usd) == (250, Decimal("0.30"))
    assert isinstance(book.reserve(tokens=750, usd=Decimal("0.70")), Reservation)  # freed
    assert isinstance(book.reserve(tokens=1), Decision)


def test_settle_over_the_limit_records_the_spend_and_reports_the_breach() -> None:
    book = ledger(max_total_tokens=100, max_usd=Decimal("0.10"))
    reservation = book.reserve(tokens=50, usd=Decimal("0.05"))
    assert isinstance(reservation, Reservation)

    breach = book.settle(reservation, tokens=500, usd=Decimal("0.01"))

    assert breach is not None
    assert breach.rule_id == "budget.max_total_tokens"
    assert breach.stage is Stage.BUDGET
    assert book.totals().total_tokens == 500  # recorded, not hidden

    money = ledger(max_usd=Decimal("0.10"))
    held = money.reserve(usd=Decimal("0.05"))
    assert isinstance(held, Reservation)
    usd_breach = money.settle(held, tokens=0, usd=Decimal("0.11"))
    assert usd_breach is not None
    assert usd_breach.rule_id == "budget.max_usd_per_run"


def test_time_budget_closes_at_the_limit_and_reports_seconds_left() -> None:
    clock = FakeClock()
    book = BudgetLedger(BudgetLimits(overall_seconds=25), clock)
    assert book.seconds_left() == 25
    clock.advance(24.5)
    assert book.seconds_left() == pytest.approx(0.5)
    assert isinstance(book.reserve(tool_calls=1), Reservation)

    clock.advance(0.5)

    refused = book.reserve(tool_calls=1)
    assert isinstance(refused, Decision)
    assert refused.rule_id == "budget.timeouts.overall_seconds"
    assert book.seconds_left() == 0
    clock.advance(100)
    assert book.seconds_left() == 0  # never negative


def test_no_limits_means_no_limit() -> None:
    book = ledger()
    for _ in range(1000):
        assert isinstance(book.reserve(tool_calls=1, tokens=10**6, usd=Decimal(10**6)), Reservation)
    assert book.seconds_left() is None


def test_zero_usd_limit_refuses_any_fee_but_allows_free_calls() -> None:
    book = ledger(max_usd=Decimal(0))
    assert isinstance(book.reserve(tool_calls=1), Reservation)
    refused = book.reserve(usd=Decimal("0.0001"))
    assert isinstance(refused, Decision)
    assert refused.rule_id == "budget.max_usd_per_run"
