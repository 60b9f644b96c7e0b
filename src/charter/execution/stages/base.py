"""The shape of a guard stage: look at a pending call, pass it (None) or decide."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from charter.core.decision import Decision, Stage

if TYPE_CHECKING:
    from charter.execution.call import PendingCall
    from charter.execution.run import Run

__all__ = ["GuardStage"]


class GuardStage(Protocol):
    """One step before execution. Returning a non-allow ``Decision`` stops the call."""

    stage: Stage

    def check(self, run: Run, call: PendingCall) -> Decision | None:
        """``None`` to pass the call on; a ``Decision`` to record (and stop unless allow)."""
        ...
