"""Budgets that fail closed: tokens, tool calls, wall time and USD, reserved atomically.

A call first *reserves* its worst case (a tool's declared fee; a model call's prompt plus its
``max_output_tokens``), under one lock, against ``committed + reserved``; so any number of
threads racing for the last dollar overspend by exactly zero. When the call finishes it
*settles* the actual amount, or *releases* the reservation if it never ran.

Every tool call that reaches the budget stage uses one tool-call slot, even if a later stage
denies it: a hijacked model looping on forbidden calls must run out of attempts.

Amounts are checked where they enter (``reserve``, ``settle``, ``restore``): counts are whole
numbers from 0 and money a finite ``Decimal`` from 0. A negative amount would give budget back
(a model reporting ``-10**12`` tokens once refilled a run's budget and booked a cost of minus
$750,000), and NaN compares false with every limit. A reservation that cannot be judged is
refused; a settlement that cannot be judged charges what was reserved, the worst case.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from decimal import Decimal

from charter.core.clock import Clock
from charter.core.decision import Decision, Stage
from charter.core.money import format_usd

__all__ = ["BudgetLedger", "BudgetLimits", "BudgetTotals", "Reservation"]


@dataclass(frozen=True, slots=True)
class BudgetLimits:
    max_total_tokens: int | None = None
    max_tool_calls: int | None = None
    max_usd: Decimal | None = None
    overall_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class Reservation:
    tool_calls: int
    tokens: int
    usd: Decimal


@dataclass(frozen=True, slots=True)
class BudgetTotals:
    tool_calls: int
    total_tokens: int
    cost_usd: Decimal
    elapsed_seconds: float


class BudgetLedger:
    """One run's spending. Thread-safe."""

    def __init__(self, limits: BudgetLimits, clock: Clock) -> None:
        self.limits = limits
        self._clock = clock
        self._started = clock.monotonic()
        self._lock = threading.Lock()
        self._calls = 0
        self._tokens = 0
        self._usd = Decimal(0)
        self._reserved_tokens = 0
        self._reserved_usd = Decimal(0)

    def snapshot(self) -> dict[str, str | int | float]:
        """What has been spent, as plain data, between calls (no reservation outstanding).

        Time is stored as seconds used, not as a start instant: a durable run resumed in
        another process (or after hours waiting for a human) continues its clock where it
        stopped, so waiting for an approver does not use up the run's time budget.
        """
        with self._lock:
            if self._reserved_tokens or self._reserved_usd:
                raise RuntimeError("a budget snapshot was taken while a call held a reservation")
            return {
                "tool_calls": self._calls,
                "total_tokens": self._tokens,
                "cost_usd": str(self._usd),
                "elapsed_seconds": self._clock.monotonic() - self._started,
            }

    def restore(self, snapshot: dict[str, str | int | float]) -> None:
        """Become exactly the ledger ``snapshot`` was taken of, its clock resumed from now.

        Raises:
            ValueError: the snapshot holds an amount that is not a count or money from 0 (it
                was altered, or written by a version without these checks).
        """
        calls, tokens = snapshot["tool_calls"], snapshot["total_tokens"]
        usd = Decimal(str(snapshot["cost_usd"]))
        elapsed = float(snapshot["elapsed_seconds"])
        problem = _bad_amount(tool_calls=calls, tokens=tokens, usd=usd)
        if problem is None and not (math.isfinite(elapsed) and elapsed >= 0):
            problem = f"elapsed_seconds={elapsed!r}"
        if problem is not None:
            raise ValueError(f"a budget snapshot holds {problem}; it cannot be restored")
        with self._lock:
            self._calls = int(calls)
            self._tokens = int(tokens)
            self._usd = usd
            self._reserved_tokens = 0
            self._reserved_usd = Decimal(0)
            self._started = self._clock.monotonic() - elapsed

    def reserve(
        self, *, tool_calls: int = 0, tokens: int = 0, usd: Decimal = Decimal(0)
    ) -> Reservation | Decision:
        """Reserve, or return the deny ``Decision`` naming the budget that would break (or
        refusing an amount that is not a count from 0 or money from 0: rule ``budget.amount``)."""
        problem = _bad_amount(tool_calls=tool_calls, tokens=tokens, usd=usd)
        if problem is not None:
            return Decision.deny(Stage.BUDGET, f"budget refused {problem}", "budget.amount")
        limits = self.limits
        with self._lock:
            elapsed = self._clock.monotonic() - self._started
            if limits.overall_seconds is not None and elapsed >= limits.overall_seconds:
                return _breach(
                    "timeouts.overall_seconds",
                    f"the run has used {elapsed:.1f}s of its {limits.overall_seconds}s",
                )
            if (
                limits.max_tool_calls is not None
                and self._calls + tool_calls > limits.max_tool_calls
            ):
                return _breach(
                    "max_tool_calls", f"all {limits.max_tool_calls} tool calls of this run are used"
                )
            if (
                limits.max_total_tokens is not None
                and self._tokens + self._reserved_tokens + tokens > limits.max_total_tokens
            ):
                return _breach(
                    "max_total_tokens",
                    f"{tokens} more tokens would pass the run's limit of "
                    f"{limits.max_total_tokens} ({self._tokens} used)",
                )
            if limits.max_usd is not None and self._usd + self._reserved_usd + usd > limits.max_usd:
                return _breach(
                    "max_usd_per_run",
                    f"{format_usd(usd)} more would pass the run's limit of "
                    f"{format_usd(limits.max_usd)} ({format_usd(self._usd)} spent)",
                )
            self._calls += tool_calls  # slots are used on attempt, see module docstring
            self._reserved_tokens += tokens
            self._reserved_usd += usd
            return Reservation(tool_calls, tokens, usd)

    def settle(self, reservation: Reservation, *, tokens: int, usd: Decimal) -> Decision | None:
        """Replace a reservation with what was actually spent.

        Returns a deny ``Decision`` if the actual spend broke a limit (possible only when a
        provider exceeds the output limit it was given); the spend is still recorded. An
        amount that cannot be judged (see the module docstring) is not recorded: the reserved
        worst case is, and the deny ``Decision`` (rule ``budget.amount``) says why.
        """
        problem = _bad_amount(tokens=tokens, usd=usd)
        with self._lock:
            self._reserved_tokens -= reservation.tokens
            self._reserved_usd -= reservation.usd
            if problem is not None:
                self._tokens += reservation.tokens
                self._usd += reservation.usd
                return Decision.deny(
                    Stage.BUDGET,
                    f"budget refused {problem}; the reserved worst case was charged instead",
                    "budget.amount",
                )
            self._tokens += tokens
            self._usd += usd
            limits = self.limits
            if limits.max_total_tokens is not None and self._tokens > limits.max_total_tokens:
                return _breach(
                    "max_total_tokens",
                    f"actual use {self._tokens} passed the limit {limits.max_total_tokens}",
                )
            if limits.max_usd is not None and self._usd > limits.max_usd:
                return _breach(
                    "max_usd_per_run",
                    f"actual spend {format_usd(self._usd)} passed the limit "
                    f"{format_usd(limits.max_usd)}",
                )
            return None

    def release(self, reservation: Reservation) -> None:
        """Give back the tokens and money of a call that did not run (not its slot)."""
        with self._lock:
            self._reserved_tokens -= reservation.tokens
            self._reserved_usd -= reservation.usd

    def totals(self) -> BudgetTotals:
        with self._lock:
            return BudgetTotals(
                self._calls, self._tokens, self._usd, self._clock.monotonic() - self._started
            )

    def seconds_left(self) -> float | None:
        if self.limits.overall_seconds is None:
            return None
        return max(0.0, self.limits.overall_seconds - (self._clock.monotonic() - self._started))


def _bad_amount(**amounts: object) -> str | None:
    """The first amount that is not a count from 0 (``tool_calls``, ``tokens``) or money from
    0 (``usd``: a finite ``Decimal``), as ``name=value``; None when all are."""
    for name, value in amounts.items():
        if name == "usd":
            good = isinstance(value, Decimal) and value.is_finite() and value >= 0
        else:
            good = type(value) is int and value >= 0
        if not good:
            what = "an amount of money" if name == "usd" else "a whole number"
            return f"{name}={_shown(value)}, which is not {what} from 0"
    return None


def _shown(value: object) -> str:
    if type(value) is int and abs(value) >= 10**30:  # repr of a huge int can raise
        return f"<an integer of {value.bit_length()} bits>"
    if value is None or type(value) in (bool, int, float, Decimal):
        return str(value)
    return f"<{type(value).__name__}>"


def _breach(rule: str, reason: str) -> Decision:
    return Decision.deny(Stage.BUDGET, f"budget exceeded: {reason}", f"budget.{rule}")
