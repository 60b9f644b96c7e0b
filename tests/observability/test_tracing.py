"""Spans follow the GenAI conventions and join the audit log on trace and span ids."""

from __future__ import annotations

import asyncio
from pathlib import Path

from charter_examples.support_desk.demo import CHARTER_PATH
from charter_examples.support_desk.desk import SupportDesk
from charter_examples.support_desk.model import GullibleSupportModel
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from charter import Principal, Runtime, Settings
from charter.contract.loader import Charter
from charter.core.decision import Decision, Stage
from charter.core.events import RunIdentity, RunStarted, ToolCallFinished
from charter.execution.agent import run_agent
from charter.identity.secrets import EnvSecretProvider
from charter.observability.tracing import PresetIdGenerator, SpanRecorder
from charter.testing import FakeClock
from tests.parking import ParkedSteps


def _run(tmp_path: Path, ticket: str) -> tuple[InMemorySpanExporter, Runtime, str]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(id_generator=PresetIdGenerator())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    runtime = Runtime(
        Settings(home=tmp_path, secrets_dir=tmp_path / "secrets"),
        clock=FakeClock(),
        tracer_provider=provider,
        secret_providers=[EnvSecretProvider({"CHARTER_SECRET_PAYMENTS_REFUND": "sk_x_123456"})],
    )
    charter = Charter.load(CHARTER_PATH)
    run = runtime.start_run(charter, Principal("alice", "acme", roles=("support",)),
                            environment="prod", resources=(SupportDesk.default(),),
                            model_name="scripted:gullible-support-agent")  # fmt: skip
    # Parked at its approval as a durable run would be, so the request is filed.
    price = runtime.price_for(charter)
    result = asyncio.run(run_agent(run, GullibleSupportModel(), f"Please handle ticket {ticket}.",
                                   price=price, steps=ParkedSteps()))  # fmt: skip
    runtime.flush_traces()
    return exporter, runtime, result.run_id


def test_run_tool_and_model_spans_form_one_tree(tmp_path: Path) -> None:
    exporter, runtime, run_id = _run(tmp_path, "T-1002")
    with runtime:
        spans = exporter.get_finished_spans()
        [root] = [s for s in spans if s.name == "invoke_agent support-triage"]
        assert root.attributes is not None
        assert root.attributes["gen_ai.operation.name"] == "invoke_agent"
        assert root.attributes["charter.run_id"] == run_id
        assert root.attributes["charter.tenant"] == "acme"
        assert root.attributes["charter.environment"] == "prod"
        assert root.attributes["charter.service_principal"] == "agent:support-triage"
        assert root.attributes["charter.outcome"] == "approval_required"
        children = [s for s in spans if s is not root]
        assert {s.name for s in children} >= {
            "execute_tool get_ticket",
            "execute_tool issue_refund",
            "chat gullible-support-agent",
        }
        for span in children:
            assert span.parent is not None
            assert span.parent.span_id == root.context.span_id
            assert span.context.trace_id == root.context.trace_id
        [refund] = [s for s in children if s.name == "execute_tool issue_refund"]
        assert refund.attributes is not None
        assert refund.attributes["gen_ai.tool.name"] == "issue_refund"
        assert refund.attributes["charter.policy.verdict"] == "require_approval"
        assert refund.attributes["charter.policy.rule_id"] == "require_approval_for[0]"
        assert str(refund.attributes["charter.approval_id"]).startswith("apr_")
        chat = next(s for s in children if s.name.startswith("chat "))
        assert chat.attributes is not None
        assert chat.attributes["gen_ai.provider.name"] == "scripted"
        assert int(str(chat.attributes["gen_ai.usage.input_tokens"])) > 0


def test_trace_and_span_ids_match_the_audit_records(tmp_path: Path) -> None:
    exporter, runtime, run_id = _run(tmp_path, "T-1001")
    with runtime:
        spans = {format(s.context.span_id, "016x"): s for s in exporter.get_finished_spans()}
        records = [r for r in runtime.audit.records("acme") if r.entry.run_id == run_id]
        tool_records = [r for r in records if r.entry.kind == "tool_call"]
        assert tool_records
        for record in tool_records:
            span = spans[record.entry.span_id]
            assert format(span.context.trace_id, "032x") == record.entry.trace_id
            assert span.name == f"execute_tool {record.entry.tool}"


def test_a_span_that_cannot_be_built_is_counted_and_later_spans_still_recorded() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(id_generator=PresetIdGenerator())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    recorder = SpanRecorder(provider)
    started = _started("run_1")
    recorder(started)
    recorder(_tool_call(started, span_id="not-hex"))  # cannot become a span id
    recorder(_tool_call(started, span_id="00000000000000ab"))
    assert recorder.errors == 1
    [span] = exporter.get_finished_spans()
    assert span.name == "execute_tool lookup"
    assert span.context.span_id == 0xAB


def _started(run_id: str) -> RunStarted:
    identity = RunIdentity(
        run_id=run_id,
        charter_name="c",
        charter_sha256="0" * 64,
        tenant="t",
        user="u",
        service_principal="agent:c",
        roles=(),
        environment="dev",
        model="m:n",
        prompt_sha256="0" * 64,
        trace_id="0" * 31 + "1",
    )
    return RunStarted(identity, FakeClock().now(), "0" * 64)


def _tool_call(started: RunStarted, *, span_id: str) -> ToolCallFinished:
    return ToolCallFinished(
        run=started.run,
        at=started.at,
        call_id="call_1",
        span_id=span_id,
        tool="lookup",
        arguments={},
        arguments_sha256="",
        outcome="executed",
        duration_ms=1.0,
        decision=Decision.allow(Stage.POLICY, "ok", "tools.lookup"),
    )
