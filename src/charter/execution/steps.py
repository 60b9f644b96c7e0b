"""How the agent loop runs its units of work: in this process, or as durable steps.

The loop (``execution/agent.py``) never mutates the world except inside ``Steps.step``: the
run's start and end records, each model turn, each tool call, and settling the run's effects.
Each unit returns plain JSON data, so a durable runner can record it and, after a crash,
replay the loop from the records without doing anything twice. ``InProcessSteps`` simply
runs each unit; a durable runner (DBOS) records the output with the run's ``snapshot`` and
``restore``s the run from it, and can wait, durably, for a human's approval decision.

Whether a runner can wait decides whether a call that needs approval files a request in the
inbox (``Steps.can_wait``, copied to ``Run.can_wait`` by the agent loop): a request that no
run waits on would stay pending forever, and approving it would change nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from charter.execution.approvals import ApprovalRequest
    from charter.execution.run import Run

__all__ = ["ApprovalOutcome", "InProcessSteps", "Steps"]

Work = Callable[[], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class ApprovalOutcome:
    """What a human decided about a request the run was waiting on.

    ``kill`` is not a decision but a wake-up: the kill switch fired on ``scope`` while the
    run waited, and it must stop now.
    """

    verdict: Literal["approve", "reject", "terminate", "escalate", "expire", "kill"]
    by: str
    reason: str
    scope: str = ""


class Steps(Protocol):
    @property
    def can_wait(self) -> bool:
        """Whether ``await_approval`` can wait for a human (then requests are filed)."""
        ...

    async def step(self, run: Run, name: str, work: Work) -> dict[str, Any]:
        """Run ``work`` once (or return what it returned before) and give back its output."""
        ...

    async def await_approval(self, run: Run, request: ApprovalRequest) -> ApprovalOutcome | None:
        """Wait for a decision on ``request``; None when this runner cannot wait."""
        ...


class InProcessSteps:
    """Runs each unit directly. A call that needs approval stops the run here: nothing
    resumes it, so it files no request (``can_wait`` is False); run it durably to wait."""

    can_wait = False

    async def step(self, run: Run, name: str, work: Work) -> dict[str, Any]:
        return await work()

    async def await_approval(self, run: Run, request: ApprovalRequest) -> ApprovalOutcome | None:
        return None
