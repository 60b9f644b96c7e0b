"""A runner that parks at approvals, as a durable run does, without DBOS.

For tests of what a run parked for approval leaves behind (a pending request in the inbox,
its decision later, the wait, the inspector's view). An in-process run files nothing, as it
cannot wait (``InProcessSteps.can_wait``); a durable run files its request and waits.
``ParkedSteps`` files the request like the durable runner and then stops where it would
wait, so the test can decide the request afterwards, as an approver would.
``StopAtApproval`` files it and then the process goes away (``Parked``): the run never ends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from charter.execution.steps import ApprovalOutcome, Work

if TYPE_CHECKING:
    from charter.execution.approvals import ApprovalRequest
    from charter.execution.run import Run

__all__ = ["Parked", "ParkedSteps", "StopAtApproval"]


class ParkedSteps:
    """Runs each unit here; files approval requests and returns undecided."""

    can_wait = True

    async def step(self, run: Run, name: str, work: Work) -> dict[str, Any]:
        return await work()

    async def await_approval(self, run: Run, request: ApprovalRequest) -> ApprovalOutcome | None:
        return None


class Parked(Exception):
    """The process stops while its run waits for a decision (as a durable worker may)."""


class StopAtApproval:
    """Files the approval request, then the process goes away: the run never ends here."""

    can_wait = True

    async def step(self, run: Run, name: str, work: Work) -> dict[str, Any]:
        return await work()

    async def await_approval(self, run: Run, request: ApprovalRequest) -> ApprovalOutcome | None:
        raise Parked(request.id)
