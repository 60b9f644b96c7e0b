"""OpenTelemetry spans from run events, following the GenAI semantic conventions.

One trace per run::

    invoke_agent {charter}          the run; span id derived from the run id
      chat {model}                  each model call
      execute_tool {tool}           each tool call, whatever the pipeline decided

Spans are built from events after the fact, with their real start and end times, and with
the trace and span ids Charter already wrote into the audit log, so a trace and its audit
records join on those ids. The run's trace id *and* its span id derive from the run id
(``run.py`` and ``run_span_id``), so a durable run recovered by another process, which never
sees ``RunStarted`` again, still parents its calls on the run's span in the run's trace, and
ends that span itself at ``RunFinished``.

Attributes: ``gen_ai.*`` as the conventions name them; Charter's under ``charter.*``
(``charter.policy.verdict`` is what the policy said, ``charter.enforced`` what was done).
Content (messages, tool arguments and results) is recorded only when asked for, and is
always the redacted form the events carry. docs/tracing.md lists every attribute.
"""

from __future__ import annotations

import contextvars
import json
import os
import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from opentelemetry.util.types import AttributeValue

from charter.core.canonical import sha256_hex
from charter.core.events import (
    Event,
    ModelCalled,
    RunFinished,
    RunIdentity,
    RunStarted,
    ToolCallFinished,
)

__all__ = ["CONTENT_LIMIT", "PresetIdGenerator", "SpanRecorder", "run_span_id"]

CONTENT_LIMIT = 256 * 1024
"""Characters kept of one content attribute; the rest is cut and the cut is said."""

_STATUS_LIMIT = 256

_NEXT_TRACE: contextvars.ContextVar[int | None] = contextvars.ContextVar("trace", default=None)
_NEXT_SPAN: contextvars.ContextVar[int | None] = contextvars.ContextVar("span", default=None)

Attributes = dict[str, AttributeValue]


class PresetIdGenerator(IdGenerator):
    """Uses the ids Charter chose (from a context variable), else random ones."""

    def generate_span_id(self) -> int:
        preset = _NEXT_SPAN.get()
        return preset if preset is not None else int.from_bytes(os.urandom(8), "big") or 1

    def generate_trace_id(self) -> int:
        preset = _NEXT_TRACE.get()
        return preset if preset is not None else int.from_bytes(os.urandom(16), "big") or 1


def run_span_id(run_id: str) -> str:
    """The span id of a run's ``invoke_agent`` span (16 hex digits), derived from its id.

    Derived like the trace id, so every process that records part of a durable run agrees
    on the parent of its calls without having seen the run start.
    """
    return sha256_hex(f"{run_id}/invoke_agent")[:16]


def _ns(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000_000)


class SpanRecorder:
    """Event subscriber that records spans on ``provider``, in the publishing thread.

    Building spans in a background thread was tried and measured: under the GIL it made the
    audit commit that follows wait for the span thread, doubling a tool call's latency. So
    spans are built here, and only *exporting* them is left to the provider's processors
    (``observability/export.py`` batches it off the call path).

    Args:
        provider: where spans go (its id generator must be a ``PresetIdGenerator``).
        content: also record prompts, model output and tool arguments and results (as the
            events carry them: redacted). Off, no content attribute is set at all.
    """

    def __init__(self, provider: TracerProvider, *, content: bool = False) -> None:
        self._tracer = provider.get_tracer("charter")
        self._content = content
        self._runs: dict[str, Span] = {}
        self._lock = threading.Lock()
        self.errors = 0

    def __call__(self, event: Event) -> None:
        try:
            self.record(event)
        except Exception:
            # Tracing must never stop a run; a span that could not be built is counted
            # (``errors``) rather than raised into the call that published the event.
            self.errors += 1

    def record(self, event: Event) -> None:
        """Turn one event into spans, in the caller's thread."""
        if isinstance(event, ToolCallFinished):
            self._tool_span(event)
        elif isinstance(event, ModelCalled):
            self._model_span(event)
        elif isinstance(event, RunStarted):
            self._start_run(event)
        elif isinstance(event, RunFinished):
            self._end_run(event)

    def _start_run(self, event: RunStarted) -> None:
        span = self._open_run(event.run, _ns(event.at))
        with self._lock:
            self._runs[event.run.run_id] = span

    def _open_run(self, run: RunIdentity, start: int) -> Span:
        provider, _, model = run.model.partition(":")
        trace_token = _NEXT_TRACE.set(int(run.trace_id, 16))
        span_token = _NEXT_SPAN.set(int(run_span_id(run.run_id), 16))
        try:
            return self._tracer.start_span(
                f"invoke_agent {run.charter_name}",
                context=Context(),  # a root, whatever span the publisher is inside
                kind=SpanKind.INTERNAL,
                start_time=start,
                attributes={
                    "gen_ai.operation.name": "invoke_agent",
                    "gen_ai.agent.name": run.charter_name,
                    "gen_ai.provider.name": provider,
                    "gen_ai.request.model": model,
                    **_identity(run),
                    "charter.user": run.user,
                    "charter.service_principal": run.service_principal,
                    "charter.environment": run.environment,
                },
            )
        finally:
            _NEXT_SPAN.reset(span_token)
            _NEXT_TRACE.reset(trace_token)

    def _child(
        self, run: RunIdentity, name: str, span_id: str, start: int, attributes: Attributes
    ) -> Span:
        with self._lock:
            parent: Span | None = self._runs.get(run.run_id)
        if parent is None:
            # The run started in another process (a recovered durable run): its span is not
            # here, but its ids are known, so the call still joins the run's trace under it.
            parent = NonRecordingSpan(
                SpanContext(
                    trace_id=int(run.trace_id, 16),
                    span_id=int(run_span_id(run.run_id), 16),
                    is_remote=False,
                    trace_flags=TraceFlags(TraceFlags.SAMPLED),
                )
            )
        token = _NEXT_SPAN.set(int(span_id, 16)) if span_id else None
        try:
            return self._tracer.start_span(
                name,
                context=trace.set_span_in_context(parent),
                kind=SpanKind.INTERNAL,
                start_time=start,
                attributes=attributes,
            )
        finally:
            if token is not None:
                _NEXT_SPAN.reset(token)

    def _tool_span(self, event: ToolCallFinished) -> None:
        end = _ns(event.at)
        decision = event.decision
        attributes: Attributes = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": event.tool,
            "gen_ai.tool.call.id": event.call_id,
            "gen_ai.tool.type": "function",
            **_identity(event.run),
            "charter.policy.verdict": decision.verdict.value,
            "charter.policy.rule_id": decision.rule_id,
            "charter.policy.stage": decision.stage.value,
            "charter.enforced": event.outcome,
            # How the call ended, named as the run span names how the run ended.
            "charter.outcome": event.outcome,
        }
        if event.approval_request_id:
            attributes["charter.approval_id"] = event.approval_request_id
        if self._content:
            attributes["gen_ai.tool.call.arguments"] = _json(event.arguments)
            # What the model was shown: the result, or why the call did not run.
            attributes["gen_ai.tool.call.result"] = _bounded(event.result or event.detail)
        span = self._child(
            event.run,
            f"execute_tool {event.tool}",
            event.span_id,
            end - int(event.duration_ms * 1_000_000),
            attributes,
        )
        if event.outcome in ("error", "timeout", "interrupted"):
            span.set_status(Status(StatusCode.ERROR, event.detail[:_STATUS_LIMIT]))
        span.end(end_time=end)

    def _model_span(self, event: ModelCalled) -> None:
        end = _ns(event.at)
        provider, _, model = event.model.partition(":")
        attributes: Attributes = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": model,
            "gen_ai.usage.input_tokens": event.input_tokens,
            "gen_ai.usage.output_tokens": event.output_tokens,
            **_identity(event.run),
            "charter.cost_usd": event.cost_usd,
        }
        if self._content:
            attributes["gen_ai.input.messages"] = _json(
                [_genai_message(m) for m in event.input_messages]
            )
            if event.output_message is not None:
                attributes["gen_ai.output.messages"] = _json(
                    [_genai_message(event.output_message, output=True)]
                )
        span = self._child(
            event.run,
            f"chat {model}",
            event.span_id,
            end - int(event.duration_ms * 1_000_000),
            attributes,
        )
        if event.error:
            span.set_status(Status(StatusCode.ERROR, event.error[:_STATUS_LIMIT]))
        span.end(end_time=end)

    def _end_run(self, event: RunFinished) -> None:
        with self._lock:
            span = self._runs.pop(event.run.run_id, None)
        end = _ns(event.at)
        if span is None:
            # Started in another process (a recovered durable run), or before this recorder
            # existed: the span that process opened was never exported, so open it here.
            # The run's own clock excludes approval waits, so this start can be later than
            # the run's first call; it is the best this process knows.
            elapsed = event.totals.get("elapsed_seconds")
            start = end - int(float(elapsed) * 1_000_000_000) if elapsed is not None else end
            span = self._open_run(event.run, start)
        totals = event.totals
        span.set_attribute("charter.outcome", event.outcome)
        if event.decision is not None:
            span.set_attribute("charter.policy.verdict", event.decision.verdict.value)
            span.set_attribute("charter.policy.rule_id", event.decision.rule_id)
        for key, name in _RUN_TOTALS.items():
            if totals.get(key) is not None:
                span.set_attribute(name, _total(totals[key]))
        if event.outcome == "failed":
            span.set_status(Status(StatusCode.ERROR, event.reason[:_STATUS_LIMIT]))
        span.end(end_time=end)


# What a run's totals become on its span (money stays exact decimal text, as everywhere).
_RUN_TOTALS = {
    "cost_usd": "charter.cost_usd",
    "total_tokens": "charter.total_tokens",
    "tool_calls": "charter.tool_calls",
    "model_calls": "charter.model_calls",
}


def _total(value: Any) -> AttributeValue:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else str(value)


def _identity(run: RunIdentity) -> Attributes:
    """What every span of a run carries, so any one of them can be filtered on its own."""
    return {
        "charter.run_id": run.run_id,
        "charter.tenant": run.tenant,
        "charter.release": run.charter_sha256,
    }


def _genai_message(message: Mapping[str, Any], *, output: bool = False) -> dict[str, Any]:
    """A ``ModelCalled`` message in the conventions' shape: a role and typed parts."""
    parts: list[dict[str, Any]] = []
    if message.get("role") == "tool":
        parts.append({
            "type": "tool_call_response",
            "id": message.get("tool_call_id"),
            "response": message.get("content", ""),
        })  # fmt: skip
    else:
        if message.get("content"):
            parts.append({"type": "text", "content": message["content"]})
        for call in message.get("tool_calls") or ():
            parts.append({"type": "tool_call", "id": call.get("id"), "name": call.get("name"),
                          "arguments": call.get("arguments")})  # fmt: skip
    shaped: dict[str, Any] = {"role": message.get("role", ""), "parts": parts}
    if output:
        shaped["finish_reason"] = "tool_call" if message.get("tool_calls") else "stop"
    return shaped


def _json(value: Any) -> str:
    return _bounded(json.dumps(value, ensure_ascii=False, default=str, sort_keys=True))


def _bounded(text: str) -> str:
    if len(text) <= CONTENT_LIMIT:
        return text
    return text[:CONTENT_LIMIT] + f"... [truncated {len(text) - CONTENT_LIMIT} chars]"
