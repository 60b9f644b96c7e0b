"""Service-level objectives: a charter's ``slos:`` evaluated over its stored runs.

Each SLO is evaluated over its window ending at ``now`` (an argument, so reports are
reproducible and tests need no clock): the window holds the runs of the charter (by name,
every version and tenant) that **started** in ``[now - window, now)`` and had **ended** by
``now``. A run belongs to the window it started in because that is what the runs table
indexes; a run still running at ``now`` is left out until it ends. Every outcome but
``running`` is an end (``approval_required`` too: an in-process run stops at an approval
gate; a durable run waits for the decision instead and counts with the outcome it ends with).

The SLOs measure the agent, not the policy: what a run's refusals and end say about the
agent is decided in one place, ``observability/runs.py`` (``RunRow.violations``,
``RunRow.disposition``). A refused call is a violation, a blocked attack (a charter rule
refused it after the run read untrusted content: the policy working) or a human's decision;
a run succeeded, failed at what it was left to do, was handed to a human by design, or was
stopped by a blocked attack. docs/slos.md says it at length, limits included.

The measures, over the ended runs in the window:

- ``task_success_rate``: runs that ``succeeded`` / runs left to the agent (dispositions
  ``succeeded`` and ``failed``): a run handed to a human or stopped by a blocked attack was
  not the agent's to finish. The report's ``samples`` says how many runs that is.
- ``policy_violations_per_1000_runs``: 1000 x runs with a violation / ended runs. Blocked
  attacks, approvers' refusals, approval gates, budgets and kill switches are not
  violations. A run counts once however many of its calls were violations.
- ``escalation_accuracy``: runs labeled ``confirmed`` / runs labeled at all, among the runs
  that ended ``escalated`` and carry an ``escalation`` label (``charter runs label``).
  Unlabeled escalations are not counted; with no labeled escalation there is no data.
- ``p95_latency_seconds``: the nearest-rank 95th percentile of the runs' own elapsed time
  (``elapsed_seconds``, which excludes time parked for approval): the value at rank
  ceil(0.95 x n) of the n values sorted ascending, so it is always a latency some run had.
  Runs without an elapsed time are left out.
- ``tool_error_rate``: sum of ``tool_errors`` (calls that raised or timed out) / sum of
  ``tool_calls`` (every call that reached the budget stage, including ones then refused).
  With no tool call there is no data.
- ``cost_per_run_usd``: the mean ``cost_usd`` (model cost and tool fees), a ``Decimal``
  shown to six places.

No run (or no labeled escalation, or no tool call) in the window: the value is ``None`` and
the status ``no_data``, which is reported but is not a breach. Otherwise the status is
``met`` when the value satisfies the objective exactly as written (``>= 0.95`` is met by
0.95), else ``breached``. Values are computed as exact fractions, so a value on the bound is
on it, not a float's width either side.

Error budget and burn rate, with ``target`` the objective's number and ``value`` the measure:

- ``>=`` / ``>`` objectives (higher is better; both such measures are rates in [0, 1]):
  allowed bad fraction ``1 - target``, observed bad fraction ``1 - value``,
  burn rate = observed / allowed.
- ``<=`` / ``<`` objectives (lower is better): burn rate = ``value / target``.
- In both, error budget remaining = ``1 - burn rate``: 1 untouched, 0 exactly spent, below 0
  overspent (it can go negative). A burn rate above 1 is a breach of a ``>=``/``<=``
  objective; a strict objective (``>``/``<``) is also breached at exactly 1.
- A zero budget (target 1 for a higher-is-better rate, limit 0 otherwise) allows no bad
  outcome: nothing bad observed gives burn rate 0 and budget 1; anything bad gives burn rate
  ``inf`` and budget ``-inf`` (``null`` in ``as_dict``, with status ``breached``), never a
  division by zero.

The burn rate here is measured over the whole window, so it is also the fraction of the
window's budget spent. Evaluated over a shorter window (``window_seconds``, the CLI's
``--window``) against the same objective it is the classic short-window burn rate alerts
use: 1 spends the budget exactly by the end of the SLO window, 14.4 over one hour spends 2%
of a 30-day budget in that hour.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any, Final, Literal

from charter.contract.schema import Comparator, SloSpec, parse_window
from charter.core.clock import as_utc
from charter.core.errors import UserError
from charter.observability.runs import RunRow, RunStore

__all__ = ["SloResult", "SloStatus", "evaluate_slos"]

SloStatus = Literal["met", "breached", "no_data"]

_PAGE: Final = 10_000  # runs read per query; a window may hold any number of pages
_TIES: Final = 100_000  # runs read at once that started at one instant (the store's most)
_TICK: Final = timedelta(microseconds=1)  # the databases' time resolution
_COMPARE: Final[dict[Comparator, Callable[[Fraction, Fraction], bool]]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}
_USD_PLACES: Final = Decimal("0.000001")


@dataclass(frozen=True, slots=True)
class SloResult:
    """One SLO evaluated over one window (see the module docstring for every definition).

    Attributes:
        name / objective / window: as declared (``window`` is the override when one was given).
        window_start / window_end: the runs counted started in ``[window_start, window_end)``.
        runs: ended runs in the window.
        samples / sample_unit: what the value was computed over (runs, labeled escalations,
            tool calls).
        value: the measure (``Decimal`` USD for ``cost_per_run_usd``), ``None`` with no data.
        budget_remaining / burn_rate: ``None`` with no data; ``-inf`` / ``inf`` when a zero
            budget was spent.
    """

    name: str
    objective: str
    comparator: Comparator
    target: Decimal
    window: str
    window_start: datetime
    window_end: datetime
    runs: int
    samples: int
    sample_unit: str
    value: float | Decimal | None
    status: SloStatus
    budget_remaining: float | None
    burn_rate: float | None

    @property
    def breached(self) -> bool:
        return self.status == "breached"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the USD value as a string (exact), infinities as ``null``."""
        return {
            "name": self.name,
            "objective": self.objective,
            "comparator": self.comparator,
            "target": str(self.target),
            "window": self.window,
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "status": self.status,
            "value": str(self.value) if isinstance(self.value, Decimal) else self.value,
            "budget_remaining": _finite(self.budget_remaining),
            "burn_rate": _finite(self.burn_rate),
            "runs": self.runs,
            "samples": self.samples,
            "sample_unit": self.sample_unit,
        }


@dataclass(frozen=True, slots=True)
class _Measured:
    value: Fraction | None
    samples: int


@dataclass(frozen=True, slots=True)
class _Measure:
    unit: str
    compute: Callable[[Sequence[RunRow], Mapping[str, str]], _Measured]


def evaluate_slos(
    store: RunStore,
    charter_name: str,
    slos: Sequence[SloSpec],
    *,
    now: datetime,
    window: str | None = None,
) -> list[SloResult]:
    """Every SLO in ``slos`` over the runs of ``charter_name``, each window ending at ``now``.

    Args:
        window: evaluate every SLO over this window instead of its own (e.g. ``1h`` for a
            short-window burn rate); parsed like a charter's ``window``.

    Raises:
        UserError: ``now`` has no time zone, or ``window`` is malformed.
        DatabaseUnavailable: the runs cannot be read.
    """
    as_utc(now)  # refuses a naive time
    if not slos:
        return []
    try:
        override = None if window is None else parse_window(window)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    windows = [(spec, override or spec.window_seconds, window or spec.window) for spec in slos]
    earliest = now - timedelta(seconds=max(seconds for _, seconds, _ in windows))
    ended = [r for r in _runs(store, charter_name, earliest, now) if _ended_by(r, now)]
    labels: Mapping[str, str] = {}
    if any(spec.name == "escalation_accuracy" for spec in slos):
        # Every escalation label: they are written by hand, so there are few of them.
        labels = {run_id: label.value for run_id, label in store.labels("escalation").items()}
    results = []
    for spec, seconds, shown in windows:
        start = now - timedelta(seconds=seconds)
        in_window = [r for r in ended if r.started_at >= start]
        results.append(_evaluate(spec, shown, start, now, in_window, labels))
    return results


def _evaluate(
    spec: SloSpec,
    window: str,
    start: datetime,
    end: datetime,
    runs: Sequence[RunRow],
    labels: Mapping[str, str],
) -> SloResult:
    measure = _MEASURES[spec.name]
    measured = measure.compute(runs, labels)
    value = measured.value
    shown: float | Decimal | None = None
    status: SloStatus = "no_data"
    remaining = burn = None
    if value is not None:
        target = Fraction(spec.target)
        status = "met" if _COMPARE[spec.comparator](value, target) else "breached"
        burn = _burn_rate(spec.higher_is_better, target, value)
        remaining = 1 - burn
        shown = _usd(value) if spec.name == "cost_per_run_usd" else float(value)
    return SloResult(
        name=spec.name,
        objective=spec.objective.strip(),
        comparator=spec.comparator,
        target=spec.target,
        window=window,
        window_start=start,
        window_end=end,
        runs=len(runs),
        samples=measured.samples,
        sample_unit=measure.unit,
        value=shown,
        status=status,
        budget_remaining=remaining,
        burn_rate=burn,
    )


def _burn_rate(higher_is_better: bool, target: Fraction, value: Fraction) -> float:
    """Observed bad over allowed bad (see the module docstring); ``inf`` past a zero budget."""
    allowed, observed = (1 - target, 1 - value) if higher_is_better else (target, value)
    if allowed == 0:
        return 0.0 if observed == 0 else math.inf
    return float(observed / allowed)


def _task_success(runs: Sequence[RunRow], labels: Mapping[str, str]) -> _Measured:
    # Runs taken out of the agent's hands (handed to a human, stopped by a blocked attack)
    # were not its to finish: counting them either way would not measure the agent.
    left = [r for r in runs if r.disposition in ("succeeded", "failed")]
    succeeded = sum(1 for r in left if r.disposition == "succeeded")
    return _Measured(Fraction(succeeded, len(left)) if left else None, len(left))


def _violations(runs: Sequence[RunRow], labels: Mapping[str, str]) -> _Measured:
    violating = sum(1 for r in runs if r.violations > 0)
    return _Measured(Fraction(1000 * violating, len(runs)) if runs else None, len(runs))


def _escalation_accuracy(runs: Sequence[RunRow], labels: Mapping[str, str]) -> _Measured:
    judged = [labels[r.id] for r in runs if r.outcome == "escalated" and r.id in labels]
    confirmed = judged.count("confirmed")
    return _Measured(Fraction(confirmed, len(judged)) if judged else None, len(judged))


def _p95_latency(runs: Sequence[RunRow], labels: Mapping[str, str]) -> _Measured:
    latencies = sorted(r.elapsed_seconds for r in runs if r.elapsed_seconds is not None)
    if not latencies:
        return _Measured(None, 0)
    rank = -(-95 * len(latencies) // 100)  # ceil(0.95 n) in integers: no float rounding
    return _Measured(Fraction(latencies[rank - 1]), len(latencies))


def _tool_error_rate(runs: Sequence[RunRow], labels: Mapping[str, str]) -> _Measured:
    # A run whose counts are unreadable (RunRow.unreadable) is left out, not counted as 0.
    calls = errors = 0
    for r in runs:
        if r.tool_calls is not None and r.tool_errors is not None:
            calls += r.tool_calls
            errors += r.tool_errors
    return _Measured(Fraction(errors, calls) if calls else None, calls)


def _cost_per_run(runs: Sequence[RunRow], labels: Mapping[str, str]) -> _Measured:
    # A run whose cost is unreadable is left out: neither $0 nor what it holds.
    costs = [Fraction(r.cost_usd) for r in runs if r.cost_usd is not None]
    if not costs:
        return _Measured(None, 0)
    return _Measured(sum(costs, Fraction(0)) / len(costs), len(costs))


_MEASURES: Final[dict[str, _Measure]] = {
    "task_success_rate": _Measure("runs left to the agent", _task_success),
    "policy_violations_per_1000_runs": _Measure("runs", _violations),
    "escalation_accuracy": _Measure("labeled escalations", _escalation_accuracy),
    "p95_latency_seconds": _Measure("runs", _p95_latency),
    "tool_error_rate": _Measure("tool calls", _tool_error_rate),
    "cost_per_run_usd": _Measure("runs", _cost_per_run),
}


def _runs(store: RunStore, charter_name: str, since: datetime, until: datetime) -> list[RunRow]:
    """Every run of the charter that started in ``[since, until)``, read page by page.

    Pages go back in time: each ends where the previous one's oldest run started. Runs that
    share that instant may straddle the page boundary, so the instant is read whole by itself
    (repeats are dropped by id), and the next page stops before it: every query makes
    progress, whatever the clock resolution.
    """
    found: dict[str, RunRow] = {}
    upper = until
    while True:
        page = store.list(charter=charter_name, since=since, until=upper, limit=_PAGE)
        for row in page:
            found.setdefault(row.id, row)
        if len(page) < _PAGE:
            return list(found.values())
        upper = page[-1].started_at
        ties = store.list(charter=charter_name, since=upper, until=upper + _TICK, limit=_TIES)
        if len(ties) >= _TIES:
            raise UserError(
                f"{len(ties)} or more runs of {charter_name!r} started at {upper.isoformat()}, "
                "more than can be read at once"
            )
        for row in ties:
            found.setdefault(row.id, row)


def _ended_by(run: RunRow, now: datetime) -> bool:
    return run.outcome != "running" and run.finished_at is not None and run.finished_at <= now


def _usd(value: Fraction) -> Decimal:
    return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(_USD_PLACES)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
