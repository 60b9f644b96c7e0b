"""Prometheus metrics read from the database: exact values derived from real runs.

Every expected value here comes from what the runs reported (their ``RunResult``s, the run
store, the exported spans), never from the metrics code, so a wrong query fails a test.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from charter_examples.support_desk.demo import CHARTER_PATH, run_demo
from charter_examples.support_desk.desk import SupportDesk
from charter_examples.support_desk.model import GullibleSupportModel
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import event, insert, text

from charter import Principal, Runtime, Settings
from charter.contract.loader import Charter
from charter.core.errors import DatabaseUnavailable
from charter.execution.agent import RunResult
from charter.identity.secrets import EnvSecretProvider
from charter.observability.metrics import (
    APPROVAL_WAIT_BUCKETS,
    NOT_ALLOWLISTED,
    RUN_SECONDS_BUCKETS,
    TOOL_SECONDS_BUCKETS,
    CharterCollector,
    render_metrics,
)
from charter.observability.tracing import PresetIdGenerator
from charter.storage import Database, upgrade
from charter.storage.tables import spans
from charter.testing import FakeClock, ScriptedModel, reply, tool_call
from tests.parking import ParkedSteps

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "charter-dashboard.json"
CHARTER = "support-triage"
SECRETS = {"CHARTER_SECRET_PAYMENTS_REFUND": "sk_test_x"}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass
class Demo:
    runtime: Runtime
    database: Database
    clock: FakeClock
    results: list[RunResult]
    exporter: InMemorySpanExporter


def scrape(database: Database, clock: FakeClock) -> Samples:
    """Every sample of one scrape, parsed back from the text exposition (which checks it)."""
    samples: Samples = {}
    for family in text_string_to_metric_families(render_metrics(database, clock=clock)):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def values(samples: Samples, name: str, *keys: str, **where: str) -> dict[Any, float]:
    """The samples named ``name`` matching ``where``, keyed by the labels ``keys``."""
    found: dict[Any, float] = {}
    for (sample, labels), value in samples.items():
        labelled = dict(labels)
        if sample == name and all(labelled.get(k) == v for k, v in where.items()):
            key = tuple(labelled[k] for k in keys)
            found[key[0] if len(key) == 1 else key] = value
    return found


def run_ticket(runtime: Runtime, charter: Charter, ticket: str, tenant: str = "acme") -> RunResult:
    return asyncio.run(
        runtime.run_agent(
            charter,
            GullibleSupportModel(),
            f"Please handle ticket {ticket}.",
            principal=Principal("alice", tenant, roles=("support",)),
            environment="prod",
            resources=(SupportDesk.default(),),
        )
    )


def tight_budget_charter(tmp_path: Path) -> Charter:
    """The support desk charter allowing two tool calls a run, so a refund run breaches it."""
    folder = tmp_path / "tight"
    shutil.copytree(CHARTER_PATH.parent, folder, ignore=shutil.ignore_patterns("*.py*"))
    path = folder / "charter.yaml"
    body = path.read_text(encoding="utf-8")
    assert "max_tool_calls: 8" in body
    path.write_text(body.replace("max_tool_calls: 8", "max_tool_calls: 2"), encoding="utf-8")
    return Charter.load(path)


def store_spans(database: Database, finished: tuple[ReadableSpan, ...]) -> None:
    """Write spans into the ``spans`` table as Charter's span store keeps them."""
    rows = [
        {
            "span_id": format(s.context.span_id, "016x"),
            "trace_id": format(s.context.trace_id, "032x"),
            "parent_span_id": format(s.parent.span_id, "016x") if s.parent else None,
            "run_id": (s.attributes or {}).get("charter.run_id"),
            "name": s.name,
            "start_ns": s.start_time,
            "end_ns": s.end_time,
            "status": s.status.status_code.name,
            "status_message": s.status.description or "",
            "attributes": json.dumps(dict(s.attributes or {})),
        }
        for s in finished
    ]
    with database.engine.begin() as connection:
        connection.execute(insert(spans), rows)


@pytest.fixture
def demo(db_url: str, tmp_path: Path) -> Iterator[Demo]:
    """The support-desk demo, plus a run with a tool error and an unlisted tool, a run that
    breaches its tool-call budget, a run refused by a kill switch, one rejected approval, and
    the spans of every run stored."""
    if db_url.startswith("postgresql"):
        database = Database(db_url)
        upgrade(database)
        database.dispose()
    clock = FakeClock()
    exporter = InMemorySpanExporter()
    provider = TracerProvider(id_generator=PresetIdGenerator())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = Settings(home=tmp_path / "home", secrets_dir=tmp_path / "secrets",
                        database_url=db_url)  # fmt: skip
    runtime = Runtime(settings, clock=clock, tracer_provider=provider,
                      secret_providers=[EnvSecretProvider(SECRETS)])  # fmt: skip
    with runtime:
        # Parked at approvals as durable runs are, so the inbox has requests to count.
        results = [row.result for row in asyncio.run(run_demo(runtime, steps=ParkedSteps()))]
        assert len(results) == 7
        charter = Charter.load(CHARTER_PATH)
        confused = ScriptedModel([
            reply("", tool_call("get_ticket", ticket_id="T-9999")),  # the desk raises: error
            reply("", tool_call("exfiltrate_all", target="x")),  # not in the charter
            reply("Done."),
        ])  # fmt: skip
        results.append(
            asyncio.run(
                runtime.run_agent(
                    charter, confused, "Ticket T-9999?", principal=Principal("bob", "acme"),
                    resources=(SupportDesk.default(),),
                )
            )
        )  # fmt: skip
        results.append(run_ticket(runtime, tight_budget_charter(tmp_path), "T-1001"))
        runtime.kill_switches.kill("tenant:globex", "incident 42", by="ops")
        results.append(run_ticket(runtime, charter, "T-1004", tenant="globex"))
        runtime.roles.grant("acme", "carol", "approver", by="admin")
        first = next(r for r in results if r.approval is not None)
        assert first.approval is not None
        clock.advance(120)
        runtime.approvals.decide(first.approval.id, "reject", by="carol", reason="too much")
        clock.advance(30)
        runtime.flush_traces()
        store_spans(runtime.database, tuple(exporter.get_finished_spans()))
        yield Demo(runtime, runtime.database, clock, results, exporter)


def test_runs_by_outcome_and_escalations_are_the_runs_outcomes(demo: Demo) -> None:
    samples = scrape(demo.database, demo.clock)
    expected = Counter((CHARTER, r.tenant, r.outcome) for r in demo.results)
    assert values(samples, "charter_runs_total", "charter", "tenant", "outcome") == expected
    demo_outcomes = Counter(r.outcome for r in demo.results[:7])
    assert demo_outcomes == {"succeeded": 2, "approval_required": 2, "denied": 2, "escalated": 1}
    # The budget breach escalates too (on_exceed: escalate); the kill stops its run.
    assert demo.results[8].outcome == "escalated"
    assert demo.results[9].outcome == "killed"
    assert values(samples, "charter_escalations_total", "tenant") == {"acme": 2}


def test_policy_decisions_by_verdict_and_rule(demo: Demo) -> None:
    samples = scrape(demo.database, demo.clock)
    decisions = values(samples, "charter_policy_decisions_total", "verdict", "rule_id")
    assert decisions[("deny", "deny[0]")] == 1
    assert decisions[("deny", "constraints.send_email.to.domain_in")] == 1
    assert decisions[("require_approval", "require_approval_for[0]")] == 1
    assert decisions[("require_approval", "untrusted_content.issue_refund")] == 1
    assert decisions[("deny", "allowlist")] == 1
    assert decisions[("deny", "budget.max_tool_calls")] == 1
    # One decision per call the agent asked for. Effects sent, discarded or compensated
    # after the decision are recorded by the execute stage; they are not decisions.
    calls = [c for r in demo.results for c in r.tool_calls]
    after = ("executed", "discarded")
    settled = [c for c in calls if c.decision.stage == "execute" and c.outcome in after]
    asked = [c for c in calls if c not in settled]
    assert len(settled) == 3  # the demo's sent e-mail and its two compensated updates
    assert decisions == Counter((c.decision.verdict, c.decision.rule_id) for c in asked)


def test_tool_calls_and_errors_by_tool_and_outcome(demo: Demo) -> None:
    samples = scrape(demo.database, demo.clock)
    expected = Counter(
        (r.tenant, NOT_ALLOWLISTED if c.decision.rule_id == "allowlist" else c.tool, c.outcome)
        for r in demo.results
        for c in r.tool_calls
    )
    got = values(samples, "charter_tool_calls_total", "tenant", "tool", "outcome")
    assert got == expected
    assert ("acme", "exfiltrate_all", "denied") not in got  # the model's invention is no label
    assert values(samples, "charter_tool_errors_total", "tool") == {"get_ticket": 1}
    [error] = [c for c in demo.results[7].tool_calls if c.outcome == "error"]
    assert error.tool == "get_ticket"


def test_budget_breaches_and_kill_switch_refusals_count_runs(demo: Demo) -> None:
    samples = scrape(demo.database, demo.clock)
    breaches = values(samples, "charter_budget_breaches_total", "tenant", "rule_id")
    assert breaches == {("acme", "budget.max_tool_calls"): 1}
    refusals = values(samples, "charter_kill_switch_refusals_total", "tenant", "rule_id")
    assert refusals == {("globex", "kill-switch:tenant:globex"): 1}
    assert values(samples, "charter_kill_switches_active", "rule_id") == {
        "kill-switch:tenant:globex": 1
    }
    # The breached call and the run it ended both carry the rule: two records, one run.
    with demo.database.engine.connect() as connection:
        records = connection.execute(
            text("SELECT count(*) FROM audit_records WHERE rule_id = 'budget.max_tool_calls'")
        ).scalar_one()
    assert records == 2


def test_usage_and_cost_come_from_the_runs_table(demo: Demo) -> None:
    samples = scrape(demo.database, demo.clock)
    tokens: Counter[tuple[str, str]] = Counter()
    calls: Counter[tuple[str, str]] = Counter()
    cost: Counter[tuple[str, str]] = Counter()
    for r in demo.results:
        tokens[(r.tenant, r.outcome)] += r.total_tokens
        calls[(r.tenant, r.outcome)] += r.model_calls
        cost[(r.tenant, r.outcome)] += float(r.cost_usd)
    assert values(samples, "charter_tokens_total", "tenant", "outcome") == tokens
    assert values(samples, "charter_model_calls_total", "tenant", "outcome") == calls
    got_cost = values(samples, "charter_cost_usd_total", "tenant", "outcome")
    assert got_cost == pytest.approx(dict(cost), rel=1e-9)
    fees = values(samples, "charter_tool_fees_usd_total", "tenant", "outcome")
    assert fees[("acme", "succeeded")] == pytest.approx(0.01)  # the $45 refund's fee
    assert sum(fees.values()) == pytest.approx(0.01)
    assert values(samples, "charter_runs_in_progress", "tenant") == {"acme": 0, "globex": 0}


def test_run_duration_histogram_is_the_runs_own_elapsed_time(demo: Demo) -> None:
    samples = scrape(demo.database, demo.clock)
    stored = demo.runtime.runs.list(limit=100)
    for outcome in {run.outcome for run in stored}:
        elapsed = [r.elapsed_seconds or 0.0 for r in stored if r.outcome == outcome]
        labels = {"charter": CHARTER, "outcome": outcome}
        buckets = values(samples, "charter_run_duration_seconds_bucket", "le", **labels)
        assert buckets == {
            **{repr(b): sum(1 for e in elapsed if e <= b) for b in RUN_SECONDS_BUCKETS},
            "+Inf": len(elapsed),
        }
        count = values(samples, "charter_run_duration_seconds_count", "outcome", **labels)
        assert count == {outcome: len(elapsed)}
        total = values(samples, "charter_run_duration_seconds_sum", "outcome", **labels)
        assert total[outcome] == pytest.approx(sum(elapsed))


def test_tool_duration_histogram_comes_from_the_stored_spans(demo: Demo) -> None:
    samples = scrape(demo.database, demo.clock)
    ran: dict[tuple[str, str], list[float]] = {}
    for span in demo.exporter.get_finished_spans():
        attributes = span.attributes or {}
        if span.name.startswith("execute_tool ") and attributes["charter.outcome"] in (
            "executed", "error", "timeout",
        ):  # fmt: skip
            assert span.end_time is not None
            assert span.start_time is not None
            key = (str(attributes["gen_ai.tool.name"]), str(attributes["charter.outcome"]))
            ran.setdefault(key, []).append((span.end_time - span.start_time) / 1e9)
    assert ("get_ticket", "error") in ran
    counts = values(samples, "charter_tool_duration_seconds_count", "tool", "outcome")
    assert counts == {key: len(durations) for key, durations in ran.items()}
    sums = values(samples, "charter_tool_duration_seconds_sum", "tool", "outcome")
    assert sums == pytest.approx({key: sum(d) for key, d in ran.items()})
    tool, outcome = "get_ticket", "executed"
    buckets = values(samples, "charter_tool_duration_seconds_bucket", "le", tool=tool,
                     outcome=outcome)  # fmt: skip
    durations = ran[(tool, outcome)]
    assert buckets == {
        **{repr(b): sum(1 for d in durations if d <= b) for b in TOOL_SECONDS_BUCKETS},
        "+Inf": len(durations),
    }


def test_pending_approvals_and_how_long_decisions_took(demo: Demo) -> None:
    samples = scrape(demo.database, demo.clock)
    assert values(samples, "charter_approvals_pending", "tool") == {"issue_refund": 1}
    # Requested at the fake clock's start; 120 s later one was rejected; 30 s after that.
    assert values(samples, "charter_approvals_oldest_pending_seconds", "tenant") == {"acme": 150.0}
    rejected = values(samples, "charter_approval_wait_seconds_bucket", "le", outcome="rejected")
    assert rejected == {
        **{repr(b): int(b >= 120) for b in APPROVAL_WAIT_BUCKETS},
        "+Inf": 1,
    }
    waited = values(samples, "charter_approval_wait_seconds_sum", "outcome")
    assert waited == pytest.approx({"rejected": 120.0})

    demo.clock.advance(86_400)  # past the request's expiry: it counts as expired
    samples = scrape(demo.database, demo.clock)
    assert values(samples, "charter_approvals_pending", "tool") == {"issue_refund": 0}
    assert values(samples, "charter_approvals_oldest_pending_seconds", "tenant") == {}
    waited = values(samples, "charter_approval_wait_seconds_sum", "outcome")
    assert waited == pytest.approx({"rejected": 120.0, "expired": 86_400.0})


def test_a_scrape_costs_the_same_few_queries_however_many_runs(demo: Demo) -> None:
    statements: list[str] = []

    def count(*args: Any) -> None:
        if args[2].lstrip().upper().startswith("SELECT"):  # not SQLite's BEGIN
            statements.append(args[2])

    collector = CharterCollector(demo.database, clock=demo.clock)
    event.listen(demo.database.engine, "before_cursor_execute", count)
    try:
        collector.families()
        before = len(statements)
        asyncio.run(run_demo(demo.runtime))
        statements.clear()
        collector.families()
    finally:
        event.remove(demo.database.engine, "before_cursor_execute", count)
    assert len(statements) == before == 8  # as docs/metrics.md says


def test_an_empty_database_yields_every_family_with_nothing_counted(db_url: str) -> None:
    database = Database(db_url)
    upgrade(database)
    try:
        families = list(text_string_to_metric_families(render_metrics(database)))
    finally:
        database.dispose()
    names = {f.name for f in families}
    assert names >= {"charter_runs", "charter_policy_decisions", "charter_approvals_pending",
                     "charter_run_duration_seconds", "charter_tool_duration_seconds"}  # fmt: skip
    counted = {s.name: s.value for f in families for s in f.samples if s.value}
    assert set(counted) <= {"charter_database_up", "charter_metrics_read_seconds"}
    assert counted["charter_database_up"] == 1


def test_a_scrape_of_an_unreadable_database_reports_it_down(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'charter.sqlite3'}")
    collector = CharterCollector(database)
    with database.engine.begin() as connection:
        connection.execute(text("DROP TABLE runs"))  # the database breaks under the server
    try:
        [family] = list(collector.collect())
        assert family.name == "charter_database_up"
        assert [s.value for s in family.samples] == [0]
        with pytest.raises(DatabaseUnavailable, match="cannot read metrics"):
            collector.families()
    finally:
        database.dispose()


def test_registering_the_collector_does_not_query(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'charter.sqlite3'}")
    statements: list[str] = []
    collector = CharterCollector(database)
    event.listen(database.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    CollectorRegistry(auto_describe=True).register(collector)
    database.dispose()
    assert statements == []


# -- the Grafana dashboard ----------------------------------------------------------------------


def _exprs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "query", "definition") and isinstance(value, str):
                yield value
            elif isinstance(value, dict) and key == "query" and "query" in value:
                yield str(value["query"])
            else:
                yield from _exprs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _exprs(item)


def _emitted_series(tmp_path: Path) -> set[str]:
    """The series names the collector emits, from its families' types."""
    database = Database(f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    try:
        families = CharterCollector(database).families()
    finally:
        database.dispose()
    suffixes = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}
    return {f.name + suffix for f in families for suffix in suffixes[f.type]}


def test_the_dashboard_queries_only_metrics_the_collector_emits(tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    emitted = _emitted_series(tmp_path)
    exprs = list(_exprs(dashboard))
    panels = [p for p in dashboard["panels"] if p.get("type") != "row"]
    assert len(panels) >= 7
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}"
            assert re.findall(r"\bcharter_[a-z0-9_]+", target["expr"]), target["expr"]
    used = {name for expr in exprs for name in re.findall(r"\bcharter_[a-z0-9_]+", expr)}
    assert used - emitted == set()
    # The panels the dashboard promises.
    promised = {
        "charter_runs_total",
        "charter_run_duration_seconds_bucket",
        "charter_tool_errors_total",
        "charter_cost_usd_total",
        "charter_policy_decisions_total",
        "charter_approvals_pending",
        "charter_approval_wait_seconds_bucket",
        "charter_kill_switch_refusals_total",
    }
    assert promised <= used
    assert len({p["id"] for p in panels}) == len(panels)
    [source] = [i for i in dashboard["__inputs"] if i["name"] == "DS_PROMETHEUS"]
    assert source["pluginId"] == "prometheus"
