"""The run timeline, built from real support-desk runs on SQLite and Postgres.

The helpers here (``demo_runs``, ``decide``, ``add_span``) are shared with the cost,
retention and inspector CLI tests.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from charter_examples.support_desk.demo import CHARTER_PATH, run_demo
from charter_examples.support_desk.desk import SupportDesk
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy import delete, insert

from charter.contract.loader import Charter
from charter.core.clock import Clock
from charter.core.errors import UserError
from charter.core.events import EventBus
from charter.core.settings import Settings
from charter.execution.approval_store import ApprovalStore
from charter.execution.approvals import InMemoryGrants
from charter.identity.principal import Principal
from charter.identity.roles import RoleGrants
from charter.identity.secrets import EnvSecretProvider
from charter.observability.audit import AuditLog
from charter.observability.audit_recorder import AuditRecorder
from charter.observability.timeline import (
    ModelCallStep,
    RunEdgeStep,
    Timeline,
    TimelineReader,
    ToolCallStep,
)
from charter.observability.tracing import PresetIdGenerator
from charter.runtime import Runtime
from charter.storage import Database, upgrade
from charter.storage.tables import runs, spans
from charter.testing.clock import FakeClock
from tests.parking import ParkedSteps

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class TickingClock(FakeClock):
    """Every reading is a millisecond after the last, so each record has a time of its own."""

    def now(self) -> datetime:
        self.advance(0.001)
        return super().now()


def demo_runs(
    db_url: str,
    home: Path,
    *,
    clock: Clock | None = None,
    approvals: InMemoryGrants | None = None,
    parked: bool = True,
) -> dict[str, str]:
    """Run the seven demo tickets; their run ids by ticket. No spans are stored (a tracer
    without exporters), so each test decides which spans exist. ``parked``: the runs that
    need an approval file their request and stop where a durable run would wait (else they
    run in process, which cannot wait and files nothing)."""
    database = Database(db_url)
    upgrade(database)  # a Postgres database is upgraded on purpose, as in production
    database.dispose()
    settings = Settings(home=home, secrets_dir=home / "secrets", database_url=db_url)
    with Runtime(
        settings,
        clock=clock,
        tracer_provider=TracerProvider(id_generator=PresetIdGenerator()),
        secret_providers=[EnvSecretProvider({"CHARTER_SECRET_PAYMENTS_REFUND": "sk_test_x"})],
        approvals=approvals,
    ) as runtime:
        rows = asyncio.run(run_demo(runtime, steps=ParkedSteps() if parked else None))
    assert all(row.as_expected for row in rows)
    return {row.ticket.ticket_id: row.result.run_id for row in rows}


def decide(database: Database, clock: Clock, request_id: str, verdict: str, by: str) -> None:
    """Decide an approval as ``charter approvals`` does: audited, by an approver."""
    audit = AuditLog(database)
    bus = EventBus()
    bus.subscribe(AuditRecorder(audit))
    roles = RoleGrants(database, clock)
    roles.grant("acme", by, "approver", by="admin")
    try:
        ApprovalStore(database, clock, bus, roles).decide(
            request_id,
            verdict,  # type: ignore[arg-type]
            by=by,
            reason="checked the invoice",
        )
    finally:
        audit.close()


def add_span(database: Database, *, span_id: str, trace_id: str, run_id: str | None, name: str,
             start: datetime, duration_ms: float, attributes: dict[str, object],
             status: str = "UNSET", message: str = "") -> None:  # fmt: skip
    """Store one span as the span store exporter would."""
    start_ns = int(start.timestamp() * 1_000_000_000)
    with database.engine.begin() as connection:
        connection.execute(
            insert(spans).values(
                span_id=span_id, trace_id=trace_id, parent_span_id=None, run_id=run_id,
                name=name, start_ns=start_ns, end_ns=start_ns + int(duration_ms * 1_000_000),
                status=status, status_message=message, attributes=json.dumps(attributes),
            )
        )  # fmt: skip


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    yield database
    database.dispose()


@pytest.fixture
def ids(db_url: str, tmp_path: Path) -> dict[str, str]:
    return demo_runs(db_url, tmp_path / "home", clock=TickingClock(T0))


def build(database: Database, run_id: str, clock: Clock | None = None) -> Timeline:
    timeline = TimelineReader(database, clock or FakeClock(T0 + timedelta(hours=1))).find(run_id)
    assert timeline is not None
    return timeline


def tool_steps(timeline: Timeline) -> list[ToolCallStep]:
    return [s for s in timeline.steps if isinstance(s, ToolCallStep)]


def test_a_denied_exfiltration_is_explained_by_its_rule_reason_and_arguments(
    database: Database, ids: dict[str, str]
) -> None:
    timeline = build(database, ids["T-1003"])
    assert (timeline.outcome, timeline.rule_id) == ("denied", "constraints.send_email.to.domain_in")
    assert (timeline.charter, timeline.tenant, timeline.user) == ("support-triage", "acme", "bob")
    assert timeline.ended
    [denied] = [s for s in tool_steps(timeline) if s.outcome == "denied"]
    assert denied.tool == "send_email"
    assert denied.arguments is not None
    assert denied.arguments["to"] == "attacker@evil.test"
    assert (denied.verdict, denied.stage) == ("deny", "policy")
    assert denied.rule_id == "constraints.send_email.to.domain_in"
    assert "must be one address at example.com" in denied.reason
    # What the run had done is taken back: its ticket update is compensated.
    [undo] = [s for s in tool_steps(timeline) if s.phase == "compensate"]
    assert (undo.tool, undo.rule_id, undo.outcome) == (
        "reopen_ticket", "tools.update_ticket.compensate", "executed",
    )  # fmt: skip
    assert timeline.steps.index(undo) > timeline.steps.index(denied)
    first, last = timeline.steps[0], timeline.steps[-1]
    assert isinstance(first, RunEdgeStep)
    assert first.kind == "run_started"
    assert isinstance(last, RunEdgeStep)
    assert (last.kind, last.outcome) == ("run_finished", "denied")
    times = [step.at for step in timeline.steps]
    assert times == sorted(times)


def test_a_deny_rule_names_its_index_and_reason(database: Database, ids: dict[str, str]) -> None:
    timeline = build(database, ids["T-1006"])
    [denied] = [s for s in tool_steps(timeline) if s.outcome == "denied"]
    assert denied.rule_id == "deny[0]"
    assert denied.reason == "the support agent never deletes records"
    assert timeline.usage is not None
    assert timeline.usage.denied_calls == 1


def test_an_approval_blocked_call_shows_its_request_and_then_its_decision(
    database: Database, ids: dict[str, str]
) -> None:
    timeline = build(database, ids["T-1002"])
    assert (timeline.outcome, timeline.rule_id) == ("approval_required", "require_approval_for[0]")
    [blocked] = [s for s in tool_steps(timeline) if s.outcome == "approval_required"]
    assert blocked.rule_id == "require_approval_for[0]"
    assert blocked.reason == "refunds over $200 need a human"
    approval = blocked.approval
    assert approval is not None
    assert approval.id.startswith("apr_")
    assert approval.status == "pending"
    assert approval.requested_at is not None
    assert approval.decided_at is None
    # Pending: it has waited until "now" (the reader's clock), one hour after T0.
    expected = T0 + timedelta(hours=1) - approval.requested_at
    assert approval.wait_seconds == expected.total_seconds()
    assert [a.id for a in timeline.pending_approvals] == [approval.id]

    decided_at = approval.requested_at + timedelta(minutes=42)
    decide(database, FakeClock(decided_at), approval.id, "approve", "lead")
    later = build(database, ids["T-1002"])
    [blocked] = [s for s in tool_steps(later) if s.outcome == "approval_required"]
    assert blocked.approval is not None
    assert (blocked.approval.status, blocked.approval.decided_by) == ("approved", "lead")
    assert blocked.approval.decided_at == decided_at
    assert blocked.approval.decision_reason == "checked the invoice"
    assert blocked.approval.wait_seconds == 42 * 60
    assert later.pending_approvals == []


def test_untrusted_content_holds_the_redirected_refund(
    database: Database, ids: dict[str, str]
) -> None:
    timeline = build(database, ids["T-1005"])
    [blocked] = [s for s in tool_steps(timeline) if s.outcome == "approval_required"]
    assert blocked.rule_id == "untrusted_content.issue_refund"
    assert blocked.arguments is not None
    assert blocked.arguments["account"] == "ACCT-EVIL-9"


def test_deferred_effects_show_when_queued_and_when_sent(
    database: Database, ids: dict[str, str]
) -> None:
    timeline = build(database, ids["T-1001"])
    emails = [s for s in tool_steps(timeline) if s.tool == "send_email"]
    assert [(s.phase, s.outcome) for s in emails] == [("call", "deferred"), ("send", "executed")]
    assert emails[1].reason.startswith("sent after the run succeeded")


def test_a_deferred_effect_of_a_run_that_did_not_succeed_is_discarded(
    db_url: str, database: Database, tmp_path: Path
) -> None:
    upgrade(database)
    home = tmp_path / "home"
    settings = Settings(home=home, secrets_dir=home / "secrets", database_url=db_url)
    with Runtime(settings, tracer_provider=TracerProvider(id_generator=PresetIdGenerator()),
                 secret_providers=[]) as runtime:  # fmt: skip
        run = runtime.start_run(
            Charter.load(CHARTER_PATH),
            Principal(user="alice", tenant="acme", roles=("support",)),
            resources=(SupportDesk.default(),),
        )
        email = {"to": "dana@example.com", "template": "refund_confirmation",
                 "ticket_id": "T-1001", "body": "Hi Dana"}  # fmt: skip

        async def queue_then_fail() -> None:
            assert (await run.call_tool("send_email", email)).outcome == "deferred"
            assert (await run.settle_effects(succeeded=False)).failure is None

        asyncio.run(queue_then_fail())
    timeline = build(database, run.id)
    assert [(s.phase, s.outcome) for s in tool_steps(timeline)] == [
        ("call", "deferred"), ("discard", "discarded"),
    ]  # fmt: skip
    assert tool_steps(timeline)[1].reason == "discarded: the run did not succeed"
    # Only tool calls were recorded (no agent loop): the run is known from its audit records.
    assert (timeline.user, timeline.tenant, timeline.outcome) == ("alice", "acme", "running")
    assert timeline.usage is None


def test_spans_add_model_calls_and_durations(database: Database, ids: dict[str, str]) -> None:
    run_id = ids["T-1004"]
    plain = build(database, run_id)
    calls = tool_steps(plain)
    assert all(s.duration_ms is None for s in calls)
    assert not any(isinstance(s, ModelCallStep) for s in plain.steps)
    assert any("no spans" in note for note in plain.notes)

    first = calls[0]
    # A model call that ended just before the first tool call did, and that call's span.
    model_end = first.at - timedelta(microseconds=300)
    add_span(database, span_id="a" * 16, trace_id=plain.trace_id, run_id=None,
             name="chat gullible-support-agent", start=model_end - timedelta(milliseconds=250),
             duration_ms=250, attributes={
                 "gen_ai.operation.name": "chat", "gen_ai.request.model": "gullible-support-agent",
                 "gen_ai.usage.input_tokens": 480, "gen_ai.usage.output_tokens": 12,
                 "charter.cost_usd": "0.0000792"})  # fmt: skip
    add_span(database, span_id=first.span_id, trace_id=plain.trace_id, run_id=run_id,
             name=f"execute_tool {first.tool}", start=first.at - timedelta(milliseconds=5),
             duration_ms=5, attributes={"gen_ai.operation.name": "execute_tool"})  # fmt: skip
    # Another run's span in the table changes nothing here.
    add_span(
        database,
        span_id="b" * 16,
        trace_id="c" * 32,
        run_id="run_other",
        name="chat x",
        start=first.at,
        duration_ms=1,
        attributes={"gen_ai.operation.name": "chat"},
    )

    timeline = build(database, run_id)
    assert not any("no spans" in note for note in timeline.notes)
    [model] = [s for s in timeline.steps if isinstance(s, ModelCallStep)]
    assert (model.model, model.input_tokens, model.output_tokens) == (
        "gullible-support-agent", 480, 12,
    )  # fmt: skip
    assert model.cost_usd == Decimal("0.0000792")
    assert model.duration_ms == pytest.approx(250)
    with_span = next(s for s in tool_steps(timeline) if s.span_id == first.span_id)
    assert with_span.duration_ms == pytest.approx(5)
    assert timeline.steps.index(model) == timeline.steps.index(with_span) - 1
    assert all(s.duration_ms is None for s in tool_steps(timeline) if s is not with_span)


def test_a_run_whose_row_was_pruned_is_explained_from_the_audit_log(
    database: Database, ids: dict[str, str]
) -> None:
    before = build(database, ids["T-1003"])
    with database.engine.begin() as connection:
        connection.execute(delete(runs))
    after = build(database, ids["T-1003"])
    assert after.usage is None
    assert any("row is gone" in note for note in after.notes)
    for field in ("charter", "charter_sha256", "tenant", "user", "trace_id", "outcome", "reason",
                  "rule_id", "started_at", "finished_at"):  # fmt: skip
        assert getattr(after, field) == getattr(before, field), field
    assert after.steps == before.steps


def test_budget_limits_come_only_from_the_version_the_run_ran_under(
    database: Database, ids: dict[str, str], tmp_path: Path
) -> None:
    charter = Charter.load(CHARTER_PATH)
    reader = TimelineReader(database, FakeClock(T0))
    timeline = reader.find(ids["T-1001"], charter=charter)
    assert timeline is not None
    assert timeline.limits is not None
    budgets = charter.spec.budgets
    assert timeline.limits.max_total_tokens == budgets.max_total_tokens
    assert timeline.limits.max_tool_calls == budgets.max_tool_calls
    assert timeline.limits.max_usd_per_run == budgets.max_usd_per_run
    assert build(database, ids["T-1001"]).limits is None

    copy = Path(shutil.copytree(CHARTER_PATH.parent, tmp_path / "desk")) / CHARTER_PATH.name
    text = copy.read_text(encoding="utf-8")
    assert "max_tool_calls: 8\n" in text
    copy.write_text(text.replace("max_tool_calls: 8\n", "max_tool_calls: 9\n"), encoding="utf-8")
    other = Charter.load(copy)
    assert other.content_sha256 != charter.content_sha256
    with pytest.raises(UserError, match="is not the version run"):
        reader.find(ids["T-1001"], charter=other)


def test_an_unknown_run_has_no_timeline(database: Database, ids: dict[str, str]) -> None:
    assert TimelineReader(database, FakeClock(T0)).find("run_nope") is None


def test_approvals_kept_in_memory_are_shown_from_the_audit_log(
    db_url: str, database: Database, tmp_path: Path
) -> None:
    ids = demo_runs(db_url, tmp_path / "home", clock=TickingClock(T0), approvals=InMemoryGrants())
    timeline = build(database, ids["T-1002"])
    [blocked] = [s for s in tool_steps(timeline) if s.outcome == "approval_required"]
    assert blocked.approval is not None
    assert blocked.approval.id.startswith("apr_")
    assert blocked.approval.status == "unknown"  # the inbox never saw it
    assert blocked.approval.rule_id == "require_approval_for[0]"


def test_the_json_form_has_every_step(database: Database, ids: dict[str, str]) -> None:
    data = build(database, ids["T-1002"]).as_dict()
    json.dumps(data)  # JSON-ready as it is
    assert data["outcome"] == "approval_required"
    kinds = [step["kind"] for step in data["steps"]]
    assert kinds[0] == "run_started"
    assert kinds[-1] == "run_finished"
    [blocked] = [
        s for s in data["steps"] if s["kind"] == "tool_call" and s["outcome"] == "approval_required"
    ]
    assert blocked["approval"]["status"] == "pending"
    assert blocked["rule_id"] == "require_approval_for[0]"
    assert data["usage"]["tool_calls"] == 4
