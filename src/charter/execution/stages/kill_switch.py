"""Stage 1: a killed charter, tenant or deployment refuses every call."""

from __future__ import annotations

from typing import TYPE_CHECKING

from charter.core.decision import Decision, Stage

if TYPE_CHECKING:
    from charter.execution.call import PendingCall
    from charter.execution.run import Run


class KillSwitchStage:
    stage = Stage.KILL_SWITCH

    def check(self, run: Run, call: PendingCall) -> Decision | None:
        kill = run.services.kill_switches.active_for(run.charter.name, run.principal.tenant)
        if kill is None:
            return None
        return Decision.deny(
            self.stage,
            f"kill switch active ({kill.scope}): {kill.reason}",
            f"kill-switch:{kill.scope}",
        )
