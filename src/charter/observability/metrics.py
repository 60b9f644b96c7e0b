"""Prometheus metrics, computed from Charter's database when Prometheus scrapes.

Runs execute in many processes (``charter run``, ``charter demo``, any number of ``charter
worker``), so counters kept in one process's memory would each see a slice and vanish with
it. Everything here is instead read from the tables every process already writes, at scrape
time, with aggregate SQL (``GROUP BY``, bucket counts with ``SUM(CASE ...)``): a scrape
costs a few scans in the database, never a row per run in Python.

Where each metric comes from, and why:

- **The audit log** (``audit_records``, never pruned) for every count of what happened: runs
  ended by outcome (``run_finished`` records), tool calls, tool errors, policy decisions,
  budget breaches, kill-switch refusals, escalations. It is the record of truth (written
  before a call returns) and only grows, so these counters never go down.
- **The runs table** for what only it holds: tokens, cost, model calls, the run's own
  elapsed time (approval waits excluded) and runs still in progress. ``charter prune``
  deletes old runs, and a counter that drops looks like a restart to Prometheus; see
  docs/metrics.md.
- **The spans table** for tool latency (the audit log holds no durations); empty when
  no process stores spans.
- **Approval requests** for what waits on a human now, and how long decisions took.

Label cardinality is bounded to charter, tenant, tool, verdict, rule_id and outcome, all
names from charters or fixed sets. A tool the allowlist refused is labelled
``(not allowlisted)``: its name is whatever the model made up. Histograms leave the tenant
out, because every label value multiplies a histogram's series by its bucket count.

A scrape reads one snapshot (one SQLite read transaction; ``REPEATABLE READ`` on Postgres),
so related counters (runs and their cost) agree with each other.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from prometheus_client import generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from sqlalchemy import (
    JSON,
    ColumnElement,
    Float,
    Numeric,
    Text,
    and_,
    case,
    cast,
    distinct,
    extract,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.selectable import Subquery

from charter.core.clock import Clock, SystemClock
from charter.core.errors import DatabaseUnavailable
from charter.execution.approval_store import status_is
from charter.storage.database import Database, Dialect, from_db_time
from charter.storage.migrate import ensure_schema
from charter.storage.tables import (
    approval_requests,
    audit_records,
    governance_events,
    kill_switches,
    runs,
    spans,
)

__all__ = [
    "APPROVAL_WAIT_BUCKETS",
    "NOT_ALLOWLISTED",
    "RUN_SECONDS_BUCKETS",
    "TOOL_SECONDS_BUCKETS",
    "CharterCollector",
    "render_metrics",
]

_log = logging.getLogger(__name__)

RUN_SECONDS_BUCKETS: Final = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
                              600.0, 1800.0)  # fmt: skip
"""Run duration buckets: agent runs take from well under a second to many minutes."""
TOOL_SECONDS_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                               30.0, 60.0)  # fmt: skip
"""Tool duration buckets: from an in-process lookup to a slow provider near its timeout."""
APPROVAL_WAIT_BUCKETS: Final = (60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0,
                                86400.0, 172800.0, 604800.0)  # fmt: skip
"""Approval wait buckets: a minute to a week, the span of human response times."""

NOT_ALLOWLISTED: Final = "(not allowlisted)"
"""The tool label of calls the allowlist refused (their names are the model's invention)."""

# Not "interrupted": a call a kill stopped is the kill working, not the tool failing.
_TOOL_ERRORS: Final = ("error", "timeout")
# Tool spans of calls that ran: refusals take microseconds and would drown tool latency.
_RAN: Final = ("executed", "error", "timeout", "interrupted")
_TOOL_SPAN_PREFIX: Final = "execute_tool "
_BUDGET_RULE: Final = "budget."
_KILL_RULE: Final = "kill-switch:"

_RUN_KEY = ("charter", "tenant", "outcome")
# Above this a run's tokens or USD are not a figure but a corrupt row (see ``_counted``).
_MAX_AMOUNT: Final = 10**15
_TOOL_KEY = ("charter", "tenant", "tool", "outcome")


@dataclass(slots=True)
class _Histogram:
    """Cumulative bucket counts, their total count and the sum of the observed values."""

    buckets: list[int]
    count: int = 0
    total: float = 0.0

    def add(self, buckets: Sequence[int], count: int, total: float) -> None:
        self.buckets = [a + b for a, b in zip(self.buckets, buckets, strict=True)]
        self.count += count
        self.total += total


class CharterCollector:
    """A Prometheus collector over Charter's database (see the module docstring).

    Register it on a ``CollectorRegistry`` of its own: ``collect`` runs the queries at each
    scrape. If the database cannot be read, a scrape yields only ``charter_database_up 0``
    (and logs why) rather than failing, so Prometheus keeps scraping and alerting works;
    ``families`` raises instead, for one-shot callers that must report the error.

    Args:
        database: Charter's database; its schema must be current (an embedded SQLite file
            is upgraded on open, a Postgres one needs ``charter db upgrade``).
        clock: the time pending approvals have waited until.

    Raises:
        DatabaseUnavailable: the database cannot be reached or is out of date.
    """

    def __init__(self, database: Database, *, clock: Clock | None = None) -> None:
        ensure_schema(database)
        self._database = database
        self._clock = clock or SystemClock()

    def describe(self) -> list[Metric]:
        """Nothing: registering must not query the database (the registry would, otherwise)."""
        return []

    def collect(self) -> Iterator[Metric]:
        try:
            families = self.families()
        except DatabaseUnavailable as exc:
            _log.warning("charter metrics: %s", exc)
            yield _gauge("charter_database_up", _UP_HELP, (), {(): 0})
            return
        yield from families

    def families(self) -> list[Metric]:
        """Every metric family, read now from one snapshot of the database.

        Raises:
            DatabaseUnavailable: the database cannot be read.
        """
        started = time.monotonic()
        now = self._clock.now().astimezone(UTC)
        try:
            with self._database.engine.connect() as connection:
                if self._database.dialect == "postgresql":
                    connection.execution_options(isolation_level="REPEATABLE READ")
                families = _read(connection, self._database.dialect, now)
        except SQLAlchemyError as exc:
            raise DatabaseUnavailable(
                f"cannot read metrics from {self._database.shown_url}: the database failed "
                f"({type(exc).__name__}); check that it is reachable and upgraded"
            ) from None
        families.append(_gauge("charter_database_up", _UP_HELP, (), {(): 1}))
        families.append(
            _gauge(
                "charter_metrics_read_seconds",
                "How long this scrape took to read Charter's database.",
                (),
                {(): time.monotonic() - started},
            )
        )
        return families


def render_metrics(database: Database, *, clock: Clock | None = None) -> str:
    """The Prometheus text exposition of ``database``'s metrics, read now.

    Raises:
        DatabaseUnavailable: the database cannot be reached, read, or is out of date.
    """
    return generate_latest(_Snapshot(CharterCollector(database, clock=clock).families())).decode()


class _Snapshot:
    """Families already read, as a collector (so reading errors surface to the caller)."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self._families


_UP_HELP: Final = "1 when this scrape read Charter's database, 0 when it could not."


# -- reading ------------------------------------------------------------------------------------


def _read(connection: Connection, dialect: Dialect, now: datetime) -> list[Metric]:
    return [
        *_from_audit(connection),
        *_refusals(connection),
        *_from_runs(connection, dialect),
        _tool_durations(connection, dialect),
        *_approvals(connection, dialect, now),
        _kill_switches(connection),
        _rollbacks(connection),
    ]


def _from_audit(connection: Connection) -> list[Metric]:
    """Runs ended, escalations, tool calls, tool errors and decisions: one scan of the log."""
    a = audit_records.c
    # Effects settled after the decision (a deferred call sent or discarded, a write
    # compensated) are recorded by the execute stage; they are not policy decisions.
    settled = and_(a.stage == "execute", a.outcome.in_(("executed", "discarded")))
    rows = (
        select(
            a.kind.label("kind"),
            a.charter_name.label("charter"),
            a.tenant.label("tenant"),
            case((a.stage == "allowlist", NOT_ALLOWLISTED), else_=a.tool).label("tool"),
            a.verdict.label("verdict"),
            a.rule_id.label("rule_id"),
            a.outcome.label("outcome"),
            case((settled, 1), else_=0).label("settled"),
        )
        .where(a.kind.in_(("tool_call", "run_finished")))
        .subquery()
    )
    ended: dict[tuple[str, ...], float] = defaultdict(float)
    escalated: dict[tuple[str, ...], float] = defaultdict(float)
    calls: dict[tuple[str, ...], float] = defaultdict(float)
    errors: dict[tuple[str, ...], float] = defaultdict(float)
    decisions: dict[tuple[str, ...], float] = defaultdict(float)
    for row in _grouped(
        connection,
        rows,
        func.count().label("n"),
        group=("kind", "charter", "tenant", "tool", "verdict", "rule_id", "outcome", "settled"),
    ):
        charter, tenant, outcome = row.charter, row.tenant, row.outcome
        if row.kind == "run_finished":
            ended[(charter, tenant, outcome)] += row.n
            if outcome == "escalated":
                escalated[(charter, tenant)] += row.n
            continue
        tool = row.tool or ""
        calls[(charter, tenant, tool, outcome)] += row.n
        if outcome in _TOOL_ERRORS:
            errors[(charter, tenant, tool)] += row.n
        if not row.settled:
            decisions[(charter, tenant, row.verdict or "", row.rule_id or "")] += row.n
    return [
        _counter("charter_runs", "Runs that ended, by outcome (audit log).", _RUN_KEY, ended),
        _counter(
            "charter_escalations",
            "Runs that ended escalated to a human (audit log).",
            ("charter", "tenant"),
            escalated,
        ),
        _counter(
            "charter_tool_calls",
            "Tool call records in the audit log, by outcome (a deferred call is recorded when "
            "decided and again when sent or discarded).",
            _TOOL_KEY,
            calls,
        ),
        _counter(
            "charter_tool_errors",
            "Tool calls that ran and failed (outcome error or timeout).",
            ("charter", "tenant", "tool"),
            errors,
        ),
        _counter(
            "charter_policy_decisions",
            "Decisions the pipeline made on tool calls, by verdict and the rule that made it.",
            ("charter", "tenant", "verdict", "rule_id"),
            decisions,
        ),
    ]


def _refusals(connection: Connection) -> list[Metric]:
    """Runs that hit a budget limit or a kill switch, by rule.

    Counted in runs, not records: a refused tool call and the run it ends both carry the
    rule, and one refusal must count once.
    """
    a = audit_records.c
    rows = connection.execute(
        select(a.charter_name, a.tenant, a.rule_id, func.count(distinct(a.run_id)).label("n"))
        .where(
            a.kind.in_(("tool_call", "run_finished")),
            or_(
                a.rule_id.startswith(_BUDGET_RULE, autoescape=True),
                a.rule_id.startswith(_KILL_RULE, autoescape=True),
            ),
        )
        .group_by(a.charter_name, a.tenant, a.rule_id)
    )
    budget: dict[tuple[str, ...], float] = {}
    killed: dict[tuple[str, ...], float] = {}
    for charter, tenant, rule_id, n in rows:
        into = budget if rule_id.startswith(_BUDGET_RULE) else killed
        into[(charter, tenant, rule_id)] = n
    key = ("charter", "tenant", "rule_id")
    return [
        _counter(
            "charter_budget_breaches",
            "Runs that hit a budget limit, by limit (rule_id budget.*).",
            key,
            budget,
        ),
        _counter(
            "charter_kill_switch_refusals",
            "Runs a kill switch refused, by switch (rule_id kill-switch:<scope>).",
            key,
            killed,
        ),
    ]


def _counted(amount: ColumnElement[Any]) -> ColumnElement[Any]:
    """``amount`` where it is a usable figure from 0, else 0: a counter must never go down,
    and a row written by a version that trusted a model's usage can hold a negative cost (on
    Postgres NaN too, which sorts above every number and so fails the upper bound)."""
    bound = literal(_MAX_AMOUNT, Numeric())  # typed: not cast to the column's INTEGER
    return case((and_(amount >= 0, amount < bound), amount), else_=0)


def _duration(seconds: ColumnElement[Any]) -> ColumnElement[Any]:
    """A run's stored duration where it is one (from 0, finite), else NULL: left out of the
    histogram rather than a negative or NaN sum (NaN sorts above every number on Postgres,
    and text above every number on SQLite, so both fail the upper bound)."""
    bound = literal(_MAX_AMOUNT, Numeric())
    return case((and_(seconds >= 0, seconds < bound), seconds), else_=None)


def _money(column: ColumnElement[Any], dialect: Dialect) -> ColumnElement[Any]:
    """A money column (exact decimal text) as a number, for ``_counted``. Postgres refuses to
    cast text that is no number (it failed the whole scrape), so only text written the way
    ``str(Decimal)`` writes an amount is cast there, anything else reads 0; SQLite's cast
    never fails (text that is no number is 0)."""
    usd = Numeric(asdecimal=False)  # exact text in the table; Prometheus samples are floats
    if dialect != "postgresql":
        return cast(column, usd)
    return case((column.regexp_match(_AMOUNT_TEXT), cast(column, usd)), else_=0)


# Digits, a fraction, an exponent of at most 4 digits (within Postgres's numeric range).
_AMOUNT_TEXT: Final = r"^[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]{1,4})?$"


def _from_runs(connection: Connection, dialect: Dialect) -> list[Metric]:
    """Usage, cost and duration of runs, and the runs still in progress."""
    r = runs.c
    rows = select(
        r.charter_name.label("charter"),
        r.tenant.label("tenant"),
        r.outcome.label("outcome"),
        _duration(r.elapsed_seconds).label("value"),
        _counted(r.total_tokens).label("total_tokens"),
        r.model_calls,
        _counted(_money(r.cost_usd, dialect)).label("cost_usd"),
        _counted(_money(r.tool_fees_usd, dialect)).label("tool_fees_usd"),
    ).subquery()
    c = rows.c
    in_progress: dict[tuple[str, ...], float] = {}
    tokens: dict[tuple[str, ...], float] = {}
    model_calls: dict[tuple[str, ...], float] = {}
    cost: dict[tuple[str, ...], float] = {}
    fees: dict[tuple[str, ...], float] = {}
    durations: dict[tuple[str, ...], _Histogram] = {}
    for row in _grouped(
        connection,
        rows,
        func.count().label("n"),
        func.sum(c.total_tokens).label("tokens"),
        func.sum(c.model_calls).label("model_calls"),
        func.sum(c.cost_usd).label("cost"),
        func.sum(c.tool_fees_usd).label("fees"),
        *_histogram_columns(c.value, RUN_SECONDS_BUCKETS),
        group=("charter", "tenant", "outcome"),
    ):
        pair = (row.charter, row.tenant)
        in_progress.setdefault(pair, 0)
        if row.outcome == "running":
            in_progress[pair] = row.n
            continue
        key = (row.charter, row.tenant, row.outcome)
        tokens[key] = row.tokens or 0
        model_calls[key] = row.model_calls or 0
        cost[key] = row.cost or 0.0
        fees[key] = row.fees or 0.0
        _add_histogram(durations, (row.charter, row.outcome), row, RUN_SECONDS_BUCKETS)
    return [
        _gauge(
            "charter_runs_in_progress",
            "Runs started and not ended: running, or parked waiting for approval (runs table).",
            ("charter", "tenant"),
            in_progress,
        ),
        _histogram(
            "charter_run_duration_seconds",
            "Run duration on the run's own clock, approval waits excluded (runs table).",
            ("charter", "outcome"),
            durations,
            RUN_SECONDS_BUCKETS,
        ),
        _counter("charter_tokens", "Model tokens used by ended runs.", _RUN_KEY, tokens),
        _counter("charter_model_calls", "Model calls made by ended runs.", _RUN_KEY, model_calls),
        _counter(
            "charter_cost_usd",
            "What ended runs cost in USD: model usage plus tool fees.",
            _RUN_KEY,
            cost,
        ),
        _counter(
            "charter_tool_fees_usd",
            "The tool fees part of charter_cost_usd_total.",
            _RUN_KEY,
            fees,
        ),
    ]


def _tool_durations(connection: Connection, dialect: Dialect) -> Metric:
    """Tool latency from ``execute_tool <tool>`` spans of calls that ran."""
    s = spans.c
    outcome = _json_text(s.attributes, "charter.outcome", dialect)
    rows = (
        select(
            func.coalesce(runs.c.charter_name, "").label("charter"),
            s.name.label("name"),
            outcome.label("outcome"),
            (cast(s.end_ns - s.start_ns, Float) / 1e9).label("value"),
        )
        .select_from(spans.outerjoin(runs, runs.c.id == s.run_id))
        .where(s.name.startswith(_TOOL_SPAN_PREFIX, autoescape=True), outcome.in_(_RAN))
        .subquery()
    )
    durations: dict[tuple[str, ...], _Histogram] = {}
    for row in _grouped(
        connection,
        rows,
        *_histogram_columns(rows.c.value, TOOL_SECONDS_BUCKETS),
        group=("charter", "name", "outcome"),
    ):
        tool = row.name.removeprefix(_TOOL_SPAN_PREFIX)
        _add_histogram(durations, (row.charter, tool, row.outcome), row, TOOL_SECONDS_BUCKETS)
    return _histogram(
        "charter_tool_duration_seconds",
        "Tool call duration, of calls that ran (spans table; empty when spans are not stored).",
        ("charter", "tool", "outcome"),
        durations,
        TOOL_SECONDS_BUCKETS,
    )


def _approvals(connection: Connection, dialect: Dialect, now: datetime) -> list[Metric]:
    """Requests waiting for a human now, and how long decided ones waited.

    Statuses as ``ApprovalStore`` reports them (its own predicate, so the two cannot
    disagree): a pending request past ``expires_at`` is expired (it counts as rejected),
    having waited until ``expires_at``; an ``executed`` request is an approved one whose
    approval was used.
    """
    p = approval_requests.c
    pending = status_is("pending", now)
    expired = status_is("expired", now)
    rows = select(
        p.charter_name.label("charter"),
        p.tenant.label("tenant"),
        p.tool.label("tool"),
        case((pending, 1), else_=0).label("pending"),
        case((pending, p.requested_at)).label("pending_since"),
        case((pending, None), (expired, "expired"), (p.status == "executed", "approved"),
             else_=p.status).label("outcome"),
        _seconds_between(
            p.requested_at, case((expired, p.expires_at), else_=p.decided_at), dialect
        ).label("value"),
    ).subquery()  # fmt: skip
    # Every (charter, tenant, tool) ever asked about is reported, 0 when nothing waits, so
    # a series falls to zero instead of vanishing when its last request is decided.
    waiting: dict[tuple[str, ...], float] = {}
    oldest: dict[tuple[str, ...], datetime] = {}
    for row in _grouped(
        connection,
        rows,
        func.sum(rows.c.pending).label("n"),
        func.min(rows.c.pending_since).label("since"),
        group=("charter", "tenant", "tool"),
    ):
        waiting[(row.charter, row.tenant, row.tool)] = row.n or 0
        if row.since is not None:
            pair = (row.charter, row.tenant)
            since = from_db_time(row.since)
            oldest[pair] = min(oldest.get(pair, since), since)
    decided = rows.select().where(rows.c.outcome.isnot(None)).subquery()
    waits: dict[tuple[str, ...], _Histogram] = {}
    for row in _grouped(
        connection,
        decided,
        *_histogram_columns(decided.c.value, APPROVAL_WAIT_BUCKETS),
        group=("charter", "outcome"),
    ):
        _add_histogram(waits, (row.charter, row.outcome), row, APPROVAL_WAIT_BUCKETS)
    return [
        _gauge(
            "charter_approvals_pending",
            "Approval requests waiting for a decision now (not expired).",
            ("charter", "tenant", "tool"),
            waiting,
        ),
        _gauge(
            "charter_approvals_oldest_pending_seconds",
            "How long the oldest pending approval request has waited so far.",
            ("charter", "tenant"),
            {pair: max((now - since).total_seconds(), 0.0) for pair, since in oldest.items()},
        ),
        _histogram(
            "charter_approval_wait_seconds",
            "How long decided approval requests waited for their decision (expired ones: "
            "until they expired), by outcome.",
            ("charter", "outcome"),
            waits,
            APPROVAL_WAIT_BUCKETS,
        ),
    ]


def _kill_switches(connection: Connection) -> Metric:
    active: dict[tuple[str, ...], float] = {
        (f"{_KILL_RULE}{scope}",): 1.0
        for (scope,) in connection.execute(select(kill_switches.c.scope))
    }
    return _gauge(
        "charter_kill_switches_active",
        "Kill switches in force, by the rule_id their refusals carry.",
        ("rule_id",),
        active,
    )


def _rollbacks(connection: Connection) -> Metric:
    """Rollbacks by people and by the rollout guard (``governance/guard.py``): the
    automatic ones are what an alert should page on."""
    query = (
        select(
            governance_events.c.charter_name,
            governance_events.c.environment,
            governance_events.c.action,
            func.count(),
        )
        .where(governance_events.c.action.in_(("rollback", "auto_rollback")))
        .group_by(
            governance_events.c.charter_name,
            governance_events.c.environment,
            governance_events.c.action,
        )
    )
    counts: dict[tuple[str, ...], float] = {
        (charter, environment or "", "automatic" if action == "auto_rollback" else "manual"): n
        for charter, environment, action, n in connection.execute(query)
    }
    return _counter(
        "charter_rollbacks",
        "Traffic rolled back to the last good release, by charter, environment and kind "
        "(automatic: the rollout guard found the candidate worse).",
        ("charter", "environment", "kind"),
        counts,
    )


# -- SQL helpers --------------------------------------------------------------------------------


def _grouped(
    connection: Connection,
    rows: Subquery,
    *aggregates: ColumnElement[Any],
    group: Sequence[str],
) -> Iterator[Any]:
    """``aggregates`` over ``rows``, grouped by its columns named ``group``.

    Labels are computed in the subquery and grouped by name, never as expressions:
    Postgres refuses a GROUP BY expression whose bound parameters are not the very ones of
    the SELECT list (each use of a Python value is a new parameter).
    """
    keys = [rows.c[name] for name in group]
    yield from connection.execute(select(*keys, *aggregates).group_by(*keys))


def _histogram_columns(value: Any, bounds: Sequence[float]) -> list[ColumnElement[Any]]:
    """COUNT, SUM and one cumulative ``value <= bound`` count per bucket (NULLs left out)."""
    return [
        func.count(value).label("h_count"),
        func.coalesce(func.sum(value), 0.0).label("h_sum"),
        *(
            func.sum(case((value <= bound, 1), else_=0)).label(f"h_le{index}")
            for index, bound in enumerate(bounds)
        ),
    ]


def _add_histogram(
    into: dict[tuple[str, ...], _Histogram],
    key: tuple[str, ...],
    row: Any,
    bounds: Sequence[float],
) -> None:
    """Fold one row of ``_histogram_columns`` into ``into[key]`` (rows may share a key)."""
    if not row.h_count:
        return
    histogram = into.setdefault(key, _Histogram([0] * len(bounds)))
    buckets = [int(getattr(row, f"h_le{index}") or 0) for index in range(len(bounds))]
    histogram.add(buckets, int(row.h_count), float(row.h_sum))


def _seconds_between(start: Any, end: Any, dialect: Dialect) -> ColumnElement[Any]:
    if dialect == "sqlite":
        return (func.julianday(end) - func.julianday(start)) * 86400.0
    return extract("epoch", end - start)


def _json_text(column: Any, key: str, dialect: Dialect) -> ColumnElement[Any]:
    """The text value of top-level ``key`` of a JSON object stored as text."""
    if dialect == "sqlite":
        return func.json_extract(column, f'$."{key}"', type_=Text)
    return func.json_extract_path_text(cast(column, JSON), key, type_=Text)


# -- families -----------------------------------------------------------------------------------


def _counter(
    name: str, help: str, labels: Sequence[str], values: Mapping[tuple[str, ...], float]
) -> Metric:
    family = CounterMetricFamily(name, help, labels=labels)
    for key, value in sorted(values.items()):
        family.add_metric(key, float(value))
    return family


def _gauge(
    name: str, help: str, labels: Sequence[str], values: Mapping[tuple[str, ...], float]
) -> Metric:
    family = GaugeMetricFamily(name, help, labels=labels)
    for key, value in sorted(values.items()):
        family.add_metric(key, float(value))
    return family


def _histogram(
    name: str,
    help: str,
    labels: Sequence[str],
    values: Mapping[tuple[str, ...], _Histogram],
    bounds: Sequence[float],
) -> Metric:
    family = HistogramMetricFamily(name, help, labels=labels)
    for key, histogram in sorted(values.items()):
        # ``le`` as Prometheus's own clients write it: "1.0", "0.005".
        pairs = zip(bounds, histogram.buckets, strict=True)
        buckets = [(repr(float(bound)), float(n)) for bound, n in pairs]
        buckets.append(("+Inf", float(histogram.count)))
        family.add_metric(key, buckets, histogram.total)
    return family
