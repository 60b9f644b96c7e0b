"""Stage 2: only tools the charter declares, and that a toolkit implements, can be called."""

from __future__ import annotations

from typing import TYPE_CHECKING

from charter.core.decision import Decision, Stage

if TYPE_CHECKING:
    from charter.execution.call import PendingCall
    from charter.execution.run import Run


class AllowlistStage:
    stage = Stage.ALLOWLIST

    def check(self, run: Run, call: PendingCall) -> Decision | None:
        decl = run.charter.spec.tools.get(call.tool)
        spec = run.charter.tools.get(call.tool)
        if decl is None or spec is None:
            return Decision.deny(
                self.stage,
                f"tool {call.tool!r} is not in the charter's allowlist",
                "allowlist",
            )
        call.decl = decl
        call.spec = spec
        return None
