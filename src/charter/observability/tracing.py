"""OpenTelemetry spans from run events, following the GenAI semantic conventions.

``invoke_agent {charter}`` per run, ``chat {model}`` per model call and ``execute_tool {tool}``
per tool call, with Charter's own attributes under ``charter.*``. Spans are built from events
after the fact with their real start and end times, and with the trace and span ids Charter
already wrote into the audit log, so a trace and its audit records join on those ids.
"""

from __future__ import annotations

import contextvars
import os
import threading
from datetime import datetime

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from charter.core.events import Event, ModelCalled, RunFinished, RunStarted, ToolCallFinished

__all__ = ["PresetIdGenerator", "SpanRecorder"]

_NEXT_TRACE: contextvars.ContextVar[int | None] = contextvars.ContextVar("trace", default=None)
_NEXT_SPAN: contextvars.ContextVar[int | None] = contextvars.ContextVar("span", default=None)


class PresetIdGenerator(IdGenerator):
    """Uses the ids Charter chose (from a context variable), else random ones."""

    def generate_span_id(self) -> int:
        preset = _NEXT_SPAN.get()
        return preset if preset is not None else int.from_bytes(os.urandom(8), "big") or 1

    def generate_trace_id(self) -> int:
        preset = _NEXT_TRACE.get()
        return preset if preset is not None else int.from_bytes(os.urandom(16), "big") or 1


def _ns(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000_000)


class SpanRecorder:
    """Event subscriber that records spans on ``provider``, in the publishing thread.

    Building spans in a background thread was tried and measured: under the GIL it made the
    audit commit that follows wait for the span thread, doubling a tool call's latency.
    """

    def __init__(self, provider: TracerProvider) -> None:
        self._tracer = provider.get_tracer("charter")
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
        run = event.run
        trace_token = _NEXT_TRACE.set(int(run.trace_id, 16))
        try:
            span = self._tracer.start_span(
                f"invoke_agent {run.charter_name}",
                kind=SpanKind.INTERNAL,
                start_time=_ns(event.at),
                attributes={
                    "gen_ai.operation.name": "invoke_agent",
                    "gen_ai.agent.name": run.charter_name,
                    "gen_ai.request.model": run.model,
                    "charter.run_id": run.run_id,
                    "charter.tenant": run.tenant,
                    "charter.user": run.user,
                    "charter.service_principal": run.service_principal,
                    "charter.environment": run.environment,
                    "charter.charter_sha256": run.charter_sha256,
                },
            )
        finally:
            _NEXT_TRACE.reset(trace_token)
        with self._lock:
            self._runs[run.run_id] = span

    def _child(
        self,
        run_id: str,
        name: str,
        span_id: str,
        start: int,
        attributes: dict[str, str | int | float | bool],
    ) -> Span:
        with self._lock:
            parent = self._runs.get(run_id)
        context = trace.set_span_in_context(parent) if parent is not None else None
        token = _NEXT_SPAN.set(int(span_id, 16)) if span_id else None
        try:
            return self._tracer.start_span(
                name,
                context=context,
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
        attributes: dict[str, str | int | float | bool] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": event.tool,
            "gen_ai.tool.call.id": event.call_id,
            "charter.run_id": event.run.run_id,
            "charter.tenant": event.run.tenant,
            "charter.policy.verdict": decision.verdict.value,
            "charter.policy.rule_id": decision.rule_id,
            "charter.policy.stage": decision.stage.value,
            "charter.outcome": event.outcome,
        }
        if event.approval_request_id:
            attributes["charter.approval_id"] = event.approval_request_id
        span = self._child(
            event.run.run_id,
            f"execute_tool {event.tool}",
            event.span_id,
            end - int(event.duration_ms * 1_000_000),
            attributes,
        )
        if event.outcome in ("error", "timeout"):
            span.set_status(Status(StatusCode.ERROR, event.detail[:256]))
        span.end(end_time=end)

    def _model_span(self, event: ModelCalled) -> None:
        end = _ns(event.at)
        provider, _, model = event.model.partition(":")
        span = self._child(
            event.run.run_id,
            f"chat {model}",
            event.span_id,
            end - int(event.duration_ms * 1_000_000),
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": provider,
                "gen_ai.request.model": model,
                "gen_ai.usage.input_tokens": event.input_tokens,
                "gen_ai.usage.output_tokens": event.output_tokens,
                "charter.cost_usd": event.cost_usd,
            },
        )
        span.end(end_time=end)

    def _end_run(self, event: RunFinished) -> None:
        with self._lock:
            span = self._runs.pop(event.run.run_id, None)
        if span is None:
            return
        span.set_attribute("charter.outcome", event.outcome)
        if event.decision is not None:
            span.set_attribute("charter.policy.rule_id", event.decision.rule_id)
        if event.outcome == "failed":
            span.set_status(Status(StatusCode.ERROR, event.reason[:256]))
        span.end(end_time=_ns(event.at))
