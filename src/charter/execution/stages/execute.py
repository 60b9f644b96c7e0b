"""Stage 7: run the tool with its credential, its idempotency key and its time limit.

Async tools are awaited under ``asyncio.timeout``. Sync tools run inline when no time limit
applies, else in a worker thread so the limit is real; Python cannot stop a thread, so a timed
out sync tool may still finish in the background: its result is discarded, the call recorded
as a timeout, and its idempotency key lets the external system ignore a late duplicate.

While the tool runs, the call is registered with the process's kill watch (``kill_watch.py``):
a kill pulled meanwhile cancels an async tool's task and sets every tool's
``ctx.cancellation``. A call the kill stopped (the kill's cancellation, or the tool's own
``ctx.raise_if_cancelled()``) ends ``interrupted``; a tool that ignored the signal and
finished ends ``executed``, with the kill noted, because its work was done.

A cancellation that is not the kill's (the host cancelling the task running the whole run)
also ends the call ``interrupted``, its detail saying the run's host cancelled it, and sets
``ctx.cancellation`` (scope ``host``) so a sync tool still running in its worker thread can
stop too; the caller records and charges the call, as it had started, and then re-raises
the ``CancelledError`` (``Execution.cancelled``): the host's cancellation is never swallowed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from charter.contract.tool import ToolContext
from charter.core.cancellation import Cancellation
from charter.core.canonical import to_jsonable
from charter.core.errors import KillSignal, UserError
from charter.core.events import ToolCallOutcome
from charter.execution.kill_switch import ActiveKill
from charter.execution.kill_watch import KILL_WATCH

if TYPE_CHECKING:
    from charter.execution.call import FailureKind, PendingCall
    from charter.execution.run import Run

__all__ = ["HOST_SCOPE", "Execution", "execute"]

_MAX_MODEL_TEXT = 65_536
_THREADS = concurrent.futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="charter-tool")


@dataclass(frozen=True, slots=True)
class Execution:
    outcome: ToolCallOutcome
    value: Any
    text: str  # redacted; what the model sees and the audit keeps
    started: bool = True  # False when the tool was never called (nothing to charge)
    failure: FailureKind | None = None  # why it did not execute (see execution/call.py)
    kill: ActiveKill | None = None  # the kill that interrupted the call (outcome interrupted)
    note: str = ""  # redacted; an executed call's remark for the audit (a kill it outran)
    # The host's cancellation of the run, to re-raise once the call is recorded and charged.
    cancelled: asyncio.CancelledError | None = None


async def execute(
    run: Run,
    call: PendingCall,
    idempotency_key: str,
    *,
    within_run_time: bool = True,
    interruptible: bool = True,
) -> Execution:
    """Run the tool. ``within_run_time=False`` for settling effects after the run's own time
    is up: a compensation must still get its per-tool time, not the run's remainder.
    ``interruptible=False`` for compensations: undoing a write is what a kill wants, so a
    kill in force must not stop it."""
    assert call.spec is not None
    assert call.decl is not None
    try:
        credential = (
            run.services.secrets.resolve(call.decl.credential) if call.decl.credential else None
        )
    except UserError as exc:  # SecretNotFound, an unsafe secret file: recorded, not raised
        text = run.redact_text(f"{type(exc).__name__}: {exc}")
        return Execution("error", None, text, started=False, failure="configuration")
    cancellation = Cancellation()
    context = ToolContext(
        run_id=run.id,
        call_id=call.call_id,
        idempotency_key=idempotency_key,
        tool=call.tool,
        principal=run.principal,
        environment=run.environment,
        credential=credential,
        resources=run.resources,
        cancellation=cancellation,
    )
    timeout = _time_limit(run, call, within_run_time)
    # Only an async tool's task is cancelled: a sync one keeps running in its thread whatever
    # happens to the await, so it is told, and what it then does is its outcome.
    flight = (
        KILL_WATCH.enter(
            run.services.kill_switches,
            run.charter.name,
            run.principal.tenant,
            cancellation,
            asyncio.current_task() if call.spec.is_async else None,
        )
        if interruptible
        else None
    )
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
    except asyncio.CancelledError as cancelled:
        if flight is None or not flight.stopped_by_kill():
            # Not the kill's: the host is stopping the whole run. The tool had started, so
            # the call is recorded and charged before the cancellation goes on up.
            return _cancelled_by_host(run, call, cancellation, idempotency_key, cancelled)
        kill = ActiveKill(cancellation.scope or "unknown", cancellation.reason)
        return _interrupted(run, call, kill, idempotency_key)
    except KillSignal as signal:
        # The tool stopped itself (ctx.raise_if_cancelled()), or a kill was delivered into it.
        return _interrupted(run, call, ActiveKill(signal.scope, signal.reason), idempotency_key)
    except TimeoutError:
        text = f"the tool did not finish within {timeout:g}s; idempotency key {idempotency_key}"
        text = _clean(run.redact_text(text + _kill_noted(cancellation)))
        return Execution("timeout", None, text, failure="tool")
    except UserError as exc:  # Charter's misconfiguration family (a resource not given...)
        text = _clean(run.redact_text(f"{type(exc).__name__}: {exc}{_kill_noted(cancellation)}"))
        return Execution("error", None, text, failure="configuration")
    except Exception as exc:
        text = _clean(run.redact_text(f"{type(exc).__name__}: {exc}{_kill_noted(cancellation)}"))
        return Execution("error", None, text, failure="tool")
    finally:
        if flight is not None:
            KILL_WATCH.leave(flight)
    note = ""
    if cancellation.cancelled:
        # Told to stop, it finished its work anyway: the truth is that it executed.
        note = _clean(
            run.redact_text(
                f"the kill switch ({cancellation.scope}) was pulled while {call.tool} ran "
                f"({cancellation.reason}); the tool did not stop and finished its work"
            )
        )
    return Execution("executed", value, _render(run, value), note=note)


def _interrupted(run: Run, call: PendingCall, kill: ActiveKill, key: str) -> Execution:
    text = (
        f"INTERRUPTED: the kill switch ({kill.scope}) stopped {call.tool} while it ran: "
        f"{kill.reason}. It may have done part of its work; idempotency key {key}"
    )
    return Execution("interrupted", None, _clean(run.redact_text(text)), kill=kill)


HOST_SCOPE = "host"
"""The ``ToolContext.cancellation`` scope of a call whose run its host cancelled."""


def _cancelled_by_host(
    run: Run,
    call: PendingCall,
    cancellation: Cancellation,
    key: str,
    cancelled: asyncio.CancelledError,
) -> Execution:
    assert call.spec is not None
    kill = _kill_noted(cancellation)  # before telling the tool, which sets the signal
    cancellation.cancel(HOST_SCOPE, "the run was cancelled by its host")
    text = (
        f"INTERRUPTED: the run was cancelled by its host while {call.tool} ran{kill}. It may "
        f"have done part of its work; idempotency key {key}"
    )
    if not call.spec.is_async:
        # Python cannot stop a thread: the tool is told (ctx.cancellation) and may go on.
        text += "; it was told to stop but may still finish in its worker thread"
    return Execution("interrupted", None, _clean(run.redact_text(text)), cancelled=cancelled)


def _kill_noted(cancellation: Cancellation) -> str:
    """For the record of a call that failed anyway: a kill landed while it ran."""
    if not cancellation.cancelled:
        return ""
    return f" (the kill switch ({cancellation.scope}) was pulled while it ran)"


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
