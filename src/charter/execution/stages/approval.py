"""Stage 6: a call that needs approval proceeds only with a grant for its exact arguments."""

from __future__ import annotations

from typing import TYPE_CHECKING

from charter.core.decision import Decision, Stage, Verdict

if TYPE_CHECKING:
    from charter.execution.call import PendingCall
    from charter.execution.run import Run


class ApprovalStage:
    stage = Stage.APPROVAL

    def check(self, run: Run, call: PendingCall, policy: Decision) -> Decision:
        """Turn a require-approval verdict into allow (granted) or leave it standing."""
        if policy.verdict is not Verdict.REQUIRE_APPROVAL:
            return policy
        grant = run.services.grants.granted(
            run.id, call.tool, call.arguments_sha256, use_key=call.idempotency_key
        )
        if grant is None:
            return policy
        call.approval_id = grant
        return Decision(
            Verdict.ALLOW, f"approved ({grant}): {policy.reason}", policy.rule_id, self.stage
        )
