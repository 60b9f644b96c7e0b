"""Span tree, attributes, content opt-in, secrets, recovered runs, the span store and export
configuration (observability/tracing.py, span_store.py, export.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from charter_examples.support_desk.demo import CHARTER_PATH, run_demo
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from charter import Principal, Runtime, Settings, ToolContext, UserError, tool
from charter.contract.loader import Charter
from charter.core.canonical import sha256_hex
from charter.core.decision import Decision, Stage
from charter.core.events import (
    ModelCalled,
    RunFinished,
    RunIdentity,
    RunStarted,
    ToolCallFinished,
)
from charter.execution.agent import RunResult
from charter.identity.secrets import REDACTED, EnvSecretProvider
from charter.observability.export import (
    CountingExporter,
    ExportStats,
    build_trace_export,
    parse_otlp_endpoint,
    parse_otlp_headers,
)
from charter.observability.span_store import SpanStore, SpanStoreExporter
from charter.observability.tracing import PresetIdGenerator, SpanRecorder, run_span_id
from charter.storage import Database
from charter.testing import ScriptedModel, reply, tool_call
from tests.execution.harness import write_charter
from tests.parking import ParkedSteps

SECRET = "sk_live_trace_9Hq2Wd7Zp4Lx"  # distinctive: every exported byte is searched for it
CONTENT_KEYS = {
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
}


def _runtime(tmp_path: Path, *, content: bool = False) -> tuple[Runtime, InMemorySpanExporter]:
    """Charter's own provider (span store), with an in-memory exporter added beside it."""
    settings = Settings(home=tmp_path / "home", secrets_dir=tmp_path / "s", trace_content=content)
    runtime = Runtime(
        settings,
        secret_providers=[EnvSecretProvider({"CHARTER_SECRET_PAYMENTS_REFUND": SECRET})],
    )
    memory = InMemorySpanExporter()
    runtime.tracer_provider.add_span_processor(SimpleSpanProcessor(memory))
    return runtime, memory


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[Runtime, list[Any], tuple[ReadableSpan, ...]]]:
    runtime, memory = _runtime(tmp_path)
    with runtime:
        # Parked at approvals as durable runs are, so their requests are filed.
        rows = asyncio.run(run_demo(runtime, steps=ParkedSteps()))
        assert runtime.flush_traces()
        yield runtime, rows, tuple(memory.get_finished_spans())


def _attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def test_each_run_is_one_tree_with_gen_ai_and_charter_attributes(
    demo: tuple[Runtime, list[Any], tuple[ReadableSpan, ...]],
) -> None:
    _, rows, spans = demo
    release = Charter.load(CHARTER_PATH).content_sha256
    for row in rows:
        result = row.result
        mine = [s for s in spans if _attrs(s).get("charter.run_id") == result.run_id]
        [root] = [s for s in mine if s.name == "invoke_agent support-triage"]
        assert format(root.context.span_id, "016x") == run_span_id(result.run_id)
        assert format(root.context.trace_id, "032x") == result.trace_id
        assert root.parent is None
        attrs = _attrs(root)
        assert attrs["gen_ai.operation.name"] == "invoke_agent"
        assert attrs["gen_ai.agent.name"] == "support-triage"
        assert attrs["charter.release"] == release
        assert attrs["charter.tenant"] == row.ticket.tenant
        assert attrs["charter.outcome"] == result.outcome
        assert attrs["charter.cost_usd"] == str(result.cost_usd)
        children = [s for s in mine if s is not root]
        assert len(children) == result.model_calls + len(result.tool_calls)
        for child in children:
            assert child.parent is not None
            assert child.parent.span_id == root.context.span_id
            assert child.context.trace_id == root.context.trace_id
            assert _attrs(child)["charter.release"] == release
        for chat in (s for s in children if s.name.startswith("chat ")):
            attrs = _attrs(chat)
            assert chat.name == "chat gullible-support-agent"
            assert attrs["gen_ai.operation.name"] == "chat"
            assert attrs["gen_ai.provider.name"] == "scripted"
            assert attrs["gen_ai.request.model"] == "gullible-support-agent"
            assert int(attrs["gen_ai.usage.input_tokens"]) > 0
            assert int(attrs["gen_ai.usage.output_tokens"]) > 0
            assert "charter.cost_usd" in attrs
        # A deferred call and its sending later share a call id: key by id and outcome.
        tools = {
            (_attrs(s)["gen_ai.tool.call.id"], _attrs(s)["charter.enforced"]): _attrs(s)
            for s in children
            if s.name.startswith("execute_tool ")
        }
        assert len(tools) == len(result.tool_calls)
        for call in result.tool_calls:
            attrs = tools[call.call_id, call.outcome]
            assert attrs["gen_ai.operation.name"] == "execute_tool"
            assert attrs["gen_ai.tool.name"] == call.tool
            assert attrs["charter.policy.verdict"] == call.decision.verdict.value
            assert attrs["charter.policy.rule_id"] == call.decision.rule_id
        for span in mine:
            assert not CONTENT_KEYS & set(_attrs(span)), "content is off by default"


def test_verdict_and_enforced_action_differ_where_they_should(
    demo: tuple[Runtime, list[Any], tuple[ReadableSpan, ...]],
) -> None:
    _, _, spans = demo
    tools = [_attrs(s) for s in spans if s.name.startswith("execute_tool ")]
    pairs = {(a["charter.policy.verdict"], a["charter.enforced"]) for a in tools}
    assert ("allow", "executed") in pairs
    assert ("deny", "denied") in pairs
    assert ("require_approval", "approval_required") in pairs
    assert ("allow", "deferred") in pairs  # decided now, sent once the run succeeds
    held = [a for a in tools if a["charter.enforced"] == "approval_required"]
    assert held
    assert all(str(a["charter.approval_id"]).startswith("apr_") for a in held)
    exfiltration = [a for a in tools if a["charter.policy.rule_id"].startswith("constraints.")]
    assert exfiltration
    assert exfiltration[0]["charter.enforced"] == "denied"


def test_trace_and_span_ids_are_the_audit_records_ids(
    demo: tuple[Runtime, list[Any], tuple[ReadableSpan, ...]],
) -> None:
    runtime, rows, spans = demo
    by_id = {format(s.context.span_id, "016x"): s for s in spans}
    for row in rows:
        records = [r for r in runtime.audit.records(row.ticket.tenant)
                   if r.entry.run_id == row.result.run_id]  # fmt: skip
        assert {r.entry.trace_id for r in records} == {row.result.trace_id}
        for record in (r for r in records if r.entry.kind == "tool_call"):
            span = by_id[record.entry.span_id]
            assert format(span.context.trace_id, "032x") == record.entry.trace_id


def test_the_runtime_stores_every_span_in_its_database(
    demo: tuple[Runtime, list[Any], tuple[ReadableSpan, ...]],
) -> None:
    runtime, rows, spans = demo
    store = SpanStore(runtime.database)
    for row in rows:
        stored = store.spans_of_run(row.result.run_id)
        memory = [s for s in spans if _attrs(s).get("charter.run_id") == row.result.run_id]
        assert {s.span_id for s in stored} == {format(s.context.span_id, "016x") for s in memory}
        assert stored[0].name == "invoke_agent support-triage"
        assert stored[0].span_id == run_span_id(row.result.run_id)
        assert [s.start_ns for s in stored] == sorted(s.start_ns for s in stored)
        for span in stored[1:]:
            assert span.parent_span_id == stored[0].span_id
            assert span.trace_id == row.result.trace_id
    stats = runtime.trace_export_stats()
    assert stats["span_store"]["exported"] == len(spans)
    assert stats["span_store"]["failed"] == 0
    assert "otlp" not in stats


# --- content opt-in and secrets ----------------------------------------------------------


@tool
def reveal(*, ctx: ToolContext) -> dict[str, str]:
    """Returns its own credential: the worst a tool can do."""
    assert ctx.credential is not None
    return {"key": ctx.credential.reveal(), "status": "ok"}


@tool
def note(text: str, *, ctx: ToolContext) -> str:
    """Keeps a note.

    Args:
        text: the note.
    """
    return f"noted: {text}"


@tool
def failing(*, ctx: ToolContext) -> str:
    """Fails, quoting its credential."""
    assert ctx.credential is not None
    raise RuntimeError(f"upstream refused key {ctx.credential.reveal()}")


def leaky_run(runtime: Runtime, tmp_path: Path) -> RunResult:
    """A run whose tools put the credential in a result, an argument and an error."""
    charter = write_charter(
        tmp_path,
        """\
        tools:
          reveal: {effect: read, credential: payments-refund}
          note: {effect: write}
          failing: {effect: write, credential: payments-refund}
        """,
        tools=[reveal, note, failing],
    )
    model = ScriptedModel([
        reply("", tool_call("reveal")),
        reply("", tool_call("note", text=f"the key is {SECRET}")),
        reply("", tool_call("failing")),
        reply(f"All done; the key was {SECRET}."),
    ])  # fmt: skip
    result = asyncio.run(
        runtime.run_agent(charter, model, "Check the key.", principal=Principal("alice", "acme"))
    )
    assert result.outcome == "succeeded"
    return result


def _leaky_run(tmp_path: Path, *, content: bool) -> tuple[Runtime, tuple[ReadableSpan, ...], str]:
    runtime, memory = _runtime(tmp_path, content=content)
    result = leaky_run(runtime, tmp_path)
    assert runtime.flush_traces()
    return runtime, tuple(memory.get_finished_spans()), result.run_id


def _everything(span: ReadableSpan) -> str:
    """Every byte of a span an exporter sends, as text."""
    return span.to_json()


def test_content_is_recorded_only_when_asked_and_then_redacted(tmp_path: Path) -> None:
    runtime, spans, run_id = _leaky_run(tmp_path, content=True)
    with runtime:
        chats = [s for s in spans if s.name.startswith("chat ")]
        assert len(chats) == 4
        first = json.loads(str(_attrs(chats[0])["gen_ai.input.messages"]))
        assert [m["role"] for m in first] == ["system", "user"]
        assert first[1]["parts"] == [{"type": "text", "content": "Check the key."}]
        last = json.loads(str(_attrs(chats[-1])["gen_ai.input.messages"]))
        responses = [p for m in last for p in m["parts"] if p["type"] == "tool_call_response"]
        assert len(responses) == 3
        assert REDACTED in responses[0]["response"]  # the tool's result, as the model saw it
        output = json.loads(str(_attrs(chats[0])["gen_ai.output.messages"]))
        assert output == [
            {
                "role": "assistant",
                "finish_reason": "tool_call",
                "parts": [
                    {"type": "tool_call", "id": "call_reveal", "name": "reveal", "arguments": {}}
                ],
            }
        ]
        final = json.loads(str(_attrs(chats[-1])["gen_ai.output.messages"]))
        assert final[0]["finish_reason"] == "stop"
        assert final[0]["parts"][0]["content"] == f"All done; the key was {REDACTED}."
        tools = {str(_attrs(s)["gen_ai.tool.name"]): _attrs(s) for s in spans
                 if s.name.startswith("execute_tool ")}  # fmt: skip
        assert json.loads(str(tools["note"]["gen_ai.tool.call.arguments"])) == {
            "text": f"the key is {REDACTED}"
        }
        assert tools["note"]["gen_ai.tool.call.result"] == f'"noted: the key is {REDACTED}"'
        assert REDACTED in str(tools["reveal"]["gen_ai.tool.call.result"])
        assert "upstream refused key" in str(tools["failing"]["gen_ai.tool.call.result"])
        # The secret is nowhere: not in memory, not in the span store.
        for span in spans:
            assert SECRET not in _everything(span)
        runtime.flush_traces()
        stored = SpanStore(runtime.database).spans_of_run(run_id)
        assert len(stored) == len(spans)
        assert SECRET not in json.dumps([s.as_dict() for s in stored])
        assert any(CONTENT_KEYS & set(s.attributes) for s in stored)


def test_content_off_records_no_content_attribute_at_all(tmp_path: Path) -> None:
    runtime, spans, _ = _leaky_run(tmp_path, content=False)
    with runtime:
        assert len(spans) == 1 + 4 + 3
        for span in spans:
            assert not CONTENT_KEYS & set(_attrs(span)), span.name
            assert SECRET not in _everything(span)
        [failed] = [s for s in spans if s.name == "execute_tool failing"]
        assert failed.status.description is not None
        assert REDACTED in failed.status.description  # the error says why, redacted


# --- a durable run recovered by another process --------------------------------------------


def _identity(run_id: str) -> RunIdentity:
    return RunIdentity(
        run_id=run_id,
        charter_name="c",
        charter_sha256="ab" * 32,
        tenant="t",
        user="u",
        service_principal="agent:c",
        roles=(),
        environment="dev",
        model="openai:gpt-4o-mini",
        prompt_sha256="0" * 64,
        trace_id=sha256_hex(run_id)[:32],  # as Run derives it
    )


def _events(run: RunIdentity, start: datetime) -> dict[str, Any]:
    allow = Decision.allow(Stage.POLICY, "ok", "tools.lookup")

    def tool_call(step: int) -> ToolCallFinished:
        return ToolCallFinished(
            run=run, at=start + timedelta(seconds=step), call_id=f"call_{step}",
            span_id=sha256_hex(f"{run.run_id}/{step}")[:16], tool="lookup", arguments={},
            arguments_sha256="", decision=allow, outcome="executed", duration_ms=10.0,
        )  # fmt: skip

    return {
        "started": RunStarted(run, start, "0" * 64),
        "model": ModelCalled(
            run,
            start + timedelta(seconds=0.5),
            sha256_hex(f"{run.run_id}/model")[:16],
            "openai:gpt-4o-mini",
            10,
            5,
            "0.0001",
            100.0,
        ),
        "first": tool_call(1),
        "second": tool_call(2),
        "finished": RunFinished(
            run,
            start + timedelta(seconds=3),
            "succeeded",
            "done",
            totals={"elapsed_seconds": 2.5, "cost_usd": "0.0001"},
        ),
    }


def _recorder() -> tuple[SpanRecorder, InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(id_generator=PresetIdGenerator())
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return SpanRecorder(provider), memory


def test_a_recovered_run_keeps_its_trace_and_parent_without_seeing_run_started() -> None:
    run = _identity("run_recovered")
    start = datetime(2025, 6, 1, 12, tzinfo=UTC)
    events = _events(run, start)
    recorder, memory = _recorder()  # a fresh process: RunStarted was published elsewhere
    for name in ("model", "first", "second", "finished"):
        recorder(events[name])
    assert recorder.errors == 0
    spans = {s.name: s for s in memory.get_finished_spans()}
    root = spans["invoke_agent c"]
    assert format(root.context.trace_id, "032x") == run.trace_id
    assert format(root.context.span_id, "016x") == run_span_id(run.run_id)
    assert root.parent is None
    end = int(events["finished"].at.timestamp() * 1e9)
    assert root.start_time == end - 2_500_000_000  # RunFinished.at minus elapsed_seconds
    assert root.end_time == end
    assert _attrs(root)["charter.outcome"] == "succeeded"
    assert _attrs(root)["charter.release"] == "ab" * 32
    children = [s for s in memory.get_finished_spans() if s is not root]
    assert len(children) == 3
    for child in children:
        assert format(child.context.trace_id, "032x") == run.trace_id
        assert child.parent is not None
        assert format(child.parent.span_id, "016x") == run_span_id(run.run_id)


def test_a_run_split_across_two_processes_is_still_one_tree() -> None:
    run = _identity("run_split")
    events = _events(run, datetime(2025, 6, 1, 12, tzinfo=UTC))
    first_process, first_memory = _recorder()
    first_process(events["started"])
    first_process(events["first"])  # ...then this process dies with the run unfinished
    second_process, second_memory = _recorder()
    second_process(events["second"])
    second_process(events["finished"])
    spans = [*first_memory.get_finished_spans(), *second_memory.get_finished_spans()]
    [root] = [s for s in spans if s.name == "invoke_agent c"]  # only the one that ended
    for child in (s for s in spans if s is not root):
        assert child.parent is not None
        assert child.parent.span_id == root.context.span_id
        assert child.context.trace_id == root.context.trace_id


def test_in_process_the_run_span_keeps_its_real_start() -> None:
    run = _identity("run_here")
    events = _events(run, datetime(2025, 6, 1, 12, tzinfo=UTC))
    recorder, memory = _recorder()
    for name in ("started", "model", "finished"):
        recorder(events[name])
    [root] = [s for s in memory.get_finished_spans() if s.name == "invoke_agent c"]
    assert root.start_time == int(events["started"].at.timestamp() * 1e9)
    assert format(root.context.span_id, "016x") == run_span_id(run.run_id)


# --- the span store, on SQLite and Postgres --------------------------------------------------


def _spans_of(run_ids: Sequence[str], start: datetime) -> list[ReadableSpan]:
    recorder, memory = _recorder()
    for run_id in run_ids:
        events = _events(_identity(run_id), start)
        for name in ("started", "model", "first", "finished"):
            recorder(events[name])
    return list(memory.get_finished_spans())


def test_the_store_keeps_a_runs_spans_in_start_order(database: Database) -> None:
    spans = _spans_of(["run_a", "run_b"], datetime(2025, 6, 1, 12, tzinfo=UTC))
    exporter = SpanStoreExporter(database)
    assert exporter.export(list(reversed(spans))) is SpanExportResult.SUCCESS
    stored = SpanStore(database).spans_of_run("run_a")
    assert [s.name for s in stored] == ["invoke_agent c", "chat gpt-4o-mini", "execute_tool lookup"]
    root, chat, tool_span = stored
    assert root.parent_span_id is None
    assert root.trace_id == sha256_hex("run_a")[:32]
    assert chat.parent_span_id == tool_span.parent_span_id == root.span_id
    assert chat.attributes["gen_ai.usage.input_tokens"] == 10
    assert chat.attributes["charter.run_id"] == "run_a"
    assert root.status == "UNSET"
    assert tool_span.duration_ms == pytest.approx(10.0)
    assert {s.run_id for s in SpanStore(database).spans_of_run("run_b")} == {"run_b"}


def test_a_span_exported_again_replaces_the_stored_one(database: Database) -> None:
    spans = _spans_of(["run_a"], datetime(2025, 6, 1, 12, tzinfo=UTC))
    exporter = SpanStoreExporter(database)
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    # The same run span again, ending differently (a re-run RunFinished step): it replaces.
    recorder, memory = _recorder()
    run = _identity("run_a")
    events = _events(run, datetime(2025, 6, 1, 12, tzinfo=UTC))
    recorder(RunFinished(run, events["finished"].at, "failed", "boom", totals={}))
    [again] = memory.get_finished_spans()
    assert exporter.export([again, again]) is SpanExportResult.SUCCESS  # twice in one batch
    stored = SpanStore(database).spans_of_run("run_a")
    assert len(stored) == 3
    [root] = [s for s in stored if s.parent_span_id is None]
    assert root.status == "ERROR"
    assert root.status_message == "boom"
    assert root.attributes["charter.outcome"] == "failed"


def test_a_store_that_cannot_write_fails_the_export_and_is_counted(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'no-schema.sqlite3'}")  # no spans table
    stats = ExportStats("span_store")
    provider = TracerProvider(id_generator=PresetIdGenerator())
    exporter = SpanStoreExporter(database)
    counted = CountingExporter(exporter, stats, lambda: exporter.last_error)
    provider.add_span_processor(SimpleSpanProcessor(counted))
    recorder = SpanRecorder(provider)
    run = _identity("run_a")
    recorder(_events(run, datetime(2025, 6, 1, tzinfo=UTC))["first"])
    assert stats.as_dict() == {
        "exported": 0,
        "failed": 1,
        "last_error": "cannot store spans: the database failed (OperationalError)",
    }
    assert recorder.errors == 0  # the run never noticed
    database.dispose()


# --- export configuration ------------------------------------------------------------------


@pytest.mark.parametrize(
    "endpoint",
    ["127.0.0.1:4318", "ftp://collector/v1/traces", "http://", "not a url", "http://host:99999/"],
)
def test_a_bad_otlp_endpoint_is_a_user_error_at_runtime_start(
    tmp_path: Path, endpoint: str
) -> None:
    settings = Settings(home=tmp_path, secrets_dir=tmp_path / "s", otlp_endpoint=endpoint)
    with pytest.raises(UserError, match="CHARTER_OTLP_ENDPOINT"):
        Runtime(settings)


def test_an_endpoint_with_credentials_is_refused_without_repeating_them(tmp_path: Path) -> None:
    for endpoint in ("https://user:hunter22@collector/v1/traces",
                     "https://collector/v1/traces?api_key=hunter22"):  # fmt: skip
        with pytest.raises(UserError, match="CHARTER_OTLP_HEADERS") as caught:
            parse_otlp_endpoint(endpoint)
        assert "hunter22" not in str(caught.value)


def test_a_bare_endpoint_gets_the_traces_path() -> None:
    assert parse_otlp_endpoint("http://127.0.0.1:6006") == "http://127.0.0.1:6006/v1/traces"
    assert parse_otlp_endpoint("https://otel.example/") == "https://otel.example/v1/traces"
    assert parse_otlp_endpoint("https://x.example/api/public/otel/v1/traces") == (
        "https://x.example/api/public/otel/v1/traces"
    )


def test_headers_are_key_value_pairs_and_a_bad_one_never_shows_its_value() -> None:
    assert parse_otlp_headers("Authorization=Basic%20abc==, x-api-key = k1 ,") == {
        "Authorization": "Basic abc==",
        "x-api-key": "k1",
    }
    with pytest.raises(UserError, match="entry 2") as caught:
        parse_otlp_headers("a=b,sk-secret-value-123")
    assert "sk-secret-value-123" not in str(caught.value)


def test_the_resource_names_the_service_and_the_phoenix_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    database = Database(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    export = build_trace_export(Settings(home=tmp_path, secrets_dir=tmp_path), database)
    try:
        attributes = export.provider.resource.attributes
        assert attributes["service.name"] == "charter"
        assert attributes["openinference.project.name"] == "charter"
        assert export.otlp is None
    finally:
        export.shutdown()
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "openinference.project.name=support-prod")
    export = build_trace_export(Settings(home=tmp_path, secrets_dir=tmp_path), database)
    try:
        assert export.provider.resource.attributes["openinference.project.name"] == "support-prod"
    finally:
        export.shutdown()
        database.dispose()


class _Raising(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        raise RuntimeError("boom")


def test_an_exporter_that_raises_is_counted_not_raised() -> None:
    stats = ExportStats("otlp")
    counted = CountingExporter(_Raising(), stats, lambda: None)
    assert counted.export(_spans_of(["run_a"], datetime(2025, 6, 1, tzinfo=UTC))) is (
        SpanExportResult.FAILURE
    )
    assert stats.as_dict() == {
        "exported": 0,
        "failed": 3,
        "last_error": "the exporter raised RuntimeError",
    }


def test_a_run_started_inside_another_span_is_still_its_own_trace() -> None:
    run = _identity("run_nested")
    events = _events(run, datetime(2025, 6, 1, 12, tzinfo=UTC))
    recorder, memory = _recorder()
    outer = TracerProvider().get_tracer("host-app")
    with outer.start_as_current_span("POST /tickets"):  # e.g. the web request running the run
        recorder(events["started"])
        recorder(events["finished"])
    [root] = memory.get_finished_spans()
    assert root.parent is None
    assert format(root.context.trace_id, "032x") == run.trace_id
