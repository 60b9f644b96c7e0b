"""The agent loop's units as DBOS steps; approvals as DBOS durable waits.

Each unit runs inside one registered DBOS step, which records its output together with the
run's ``snapshot``; the workflow ``restore``s the run from it. When DBOS recovers a workflow
after a crash, completed steps return their records without running, so the run is rebuilt
exactly and nothing is done twice; the step that was running when the process died runs
again (at least once), under the same idempotency keys.
"""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING, Any

from dbos import DBOS

from charter.execution.steps import ApprovalOutcome, Work

if TYPE_CHECKING:
    from charter.execution.approvals import ApprovalRequest
    from charter.execution.run import Run

__all__ = ["KILL_VERDICT", "DbosSteps", "approval_topic"]

KILL_VERDICT = "kill"
"""The message verdict that wakes a parked run because its scope was killed."""

_WORK: contextvars.ContextVar[Work] = contextvars.ContextVar("charter_step_work")
_RUN: contextvars.ContextVar[Run] = contextvars.ContextVar("charter_step_run")
_VERDICTS = frozenset({"approve", "reject", "terminate", "escalate", "expire", KILL_VERDICT})


def approval_topic(request_id: str) -> str:
    """The DBOS message topic a run waits on for the decision about ``request_id``."""
    return f"approval:{request_id}"


@DBOS.step()
async def charter_step(name: str) -> dict[str, Any]:
    """One unit of the agent loop; ``name`` says which, for the workflow's step list."""
    out = await _WORK.get()()
    return {"out": out, "snapshot": _RUN.get().snapshot()}


class DbosSteps:
    """``Steps`` for a run executing as a DBOS workflow.

    Args:
        approval_timeout_seconds: how long a run waits for a decision before the request
            counts as expired (rejected).
    """

    can_wait = True  # a DBOS.recv outlives this process: approval requests are filed

    def __init__(self, approval_timeout_seconds: float) -> None:
        self._timeout = approval_timeout_seconds

    async def step(self, run: Run, name: str, work: Work) -> dict[str, Any]:
        work_token = _WORK.set(work)
        run_token = _RUN.set(run)
        try:
            record = await charter_step(name)
        finally:
            _WORK.reset(work_token)
            _RUN.reset(run_token)
        run.restore(record["snapshot"])
        out: dict[str, Any] = record["out"]
        return out

    async def await_approval(self, run: Run, request: ApprovalRequest) -> ApprovalOutcome | None:
        # The run's clock stops while a human decides: waiting is not the agent working.
        paused = run.snapshot()
        message = await DBOS.recv_async(approval_topic(request.id), timeout_seconds=self._timeout)
        run.restore(paused)
        if not isinstance(message, dict) or message.get("verdict") not in _VERDICTS:
            return ApprovalOutcome("expire", "system", "no decision before the request expired")
        return ApprovalOutcome(
            message["verdict"],
            str(message.get("by", "")),
            str(message.get("reason", "")),
            str(message.get("scope", "")),
        )
