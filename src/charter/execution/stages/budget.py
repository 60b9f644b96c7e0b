"""Stage 4: reserve a tool-call slot and the tool's declared fee before anything runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from charter.core.decision import Decision, Stage
from charter.policy.budget import Reservation

if TYPE_CHECKING:
    from charter.execution.call import PendingCall
    from charter.execution.run import Run


class BudgetStage:
    stage = Stage.BUDGET

    def check(self, run: Run, call: PendingCall) -> Decision | None:
        assert call.decl is not None
        result = run.ledger.reserve(tool_calls=1, usd=call.decl.fee_usd)
        if isinstance(result, Reservation):
            call.reservation = result
            return None
        return result
