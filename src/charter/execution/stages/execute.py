"""Stage 7: run the tool with its credential, its idempotency key and its time limit.

Async tools are awaited under ``asyncio.timeout``. Sync tools run inline when no time limit
applies, else in a worker thread so the limit is real; Python cannot stop a thread, so a timed
out sync tool may still finish in the background: its result is discarded, the call recorded
as a timeout, and its idempotency key lets the external system ignore a late duplicate.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from charter.contract.tool import ToolContext
from charter.core.canonical import to_jsonable
from charter.core.errors import UserError
from charter.core.events import ToolCallOutcome

if TYPE_CHECKING:
    from charter.execution.call import FailureKind, PendingCall
    from charter.execution.run import Run

__all__ = ["Execution", "execute"]

_MAX_MODEL_TEXT = 65_536
_THREADS = concurrent.futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="charter-tool")


@dataclass(frozen=True, slots=True)
class Execution:
    outcome: ToolCallOutcome
    value: Any
    text: str  # redacted; what the model sees and the audit keeps
    started: bool = True  # False when the tool was never called (nothing to charge)
    failure: FailureKind | None = None  # why it did not execute (see execution/call.py)


async def execute(
    run: Run, call: PendingCall, idempotency_key: str, *, within_run_time: bool = True
) -> Execution:
    """Run the tool. ``within_run_time=False`` for settling effects after the run's own time
    is up: a compensation must still get its per-tool time, not the run's remainder."""
    assert call.spec is not None
    assert call.decl is not None
    try:
        credential = (
            run.services.secrets.resolve(call.decl.credential) if call.decl.credential else None
        )
    except UserError as exc:  # SecretNotFound, an unsafe secret file: recorded, not raised
        text = run.redact_text(f"{type(exc).__name__}: {exc}")
        return Execution("error", None, text, started=False, failure="configuration")
    context = ToolContext(
        run_id=run.id,
        call_id=call.call_id,
        idempotency_key=idempotency_key,
        tool=call.tool,
        principal=run.principal,
        environment=run.environment,
        credential=credential,
        resources=run.resources,
    )
    timeout = _time_limit(run, call, within_run_time)
    try:
        # asyncio.timeout, not wait_for: it cancels the same way without wrapping the call in
        # a new task, which cost ~8 µs of every async tool call.
        if call.spec.is_async:
            async with asyncio.timeout(timeout):
                value = await call.spec.call(call.arguments, context)
        elif timeout is None:
            value = call.spec.call(call.arguments, context)
        else:
            loop = asyncio.get_running_loop()
            future = loop.run_in_executor(_THREADS, call.spec.call, call.arguments, context)
            async with asyncio.timeout(timeout):
                value = await future
    except TimeoutError:
        return Execution(
            "timeout",
            None,
            f"the tool did not finish within {timeout:g}s; idempotency key {idempotency_key}",
            failure="tool",
        )
    except UserError as exc:  # Charter's misconfiguration family (a resource not given...)
        text = _clean(run.redact_text(f"{type(exc).__name__}: {exc}"))
        return Execution("error", None, text, failure="configuration")
    except Exception as exc:
        text = _clean(run.redact_text(f"{type(exc).__name__}: {exc}"))
        return Execution("error", None, text, failure="tool")
    return Execution("executed", value, _render(run, value))


def _time_limit(run: Run, call: PendingCall, within_run_time: bool) -> float | None:
    per_tool = run.charter.spec.tool_timeout(call.tool)
    left = run.ledger.seconds_left() if within_run_time else None
    limits = [t for t in (per_tool, left) if t is not None]
    return min(limits) if limits else None


def _render(run: Run, value: Any) -> str:
    try:
        text = json.dumps(to_jsonable(run.redact(value)), ensure_ascii=False, default=str)
    except (TypeError, ValueError, RecursionError):
        try:
            text = repr(value)
        except Exception:  # too deep or too many digits to print: say so, keep the call
            text = f"<{type(value).__name__} result that cannot be shown>"
    # Again on the final text: default=str and repr render objects the redactor cannot see
    # inside (dataclasses, bytes, sets), and their text may carry a credential.
    return _clean(run.redact_text(text))


def _clean(text: str) -> str:
    """Bounded, valid UTF-8 (lone surrogates escaped) so the audit log can store it."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) > _MAX_MODEL_TEXT:
        text = text[:_MAX_MODEL_TEXT] + f"... [truncated {len(text) - _MAX_MODEL_TEXT} chars]"
    return text
