"""Stage 5: ask Cedar, with the full request: who, where, what, how much so far, and taint."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from charter.core.decision import Decision, Stage
from charter.policy.request import build_context

if TYPE_CHECKING:
    from charter.execution.call import PendingCall
    from charter.execution.run import Run


class PolicyStage:
    stage = Stage.POLICY

    def check(self, run: Run, call: PendingCall) -> Decision | None:
        charter = run.charter
        assert call.spec is not None
        arguments: Mapping[str, Any] = call.arguments
        if not call.spec.plain_arguments:
            # Policies read what the model sent: a datetime or a UUID as its text, a set as a
            # sorted list. Amounts stay Decimal, which Cedar gets as a decimal.
            arguments = {
                name: value if isinstance(value, Decimal) else call.canonical_arguments[name]
                for name, value in call.arguments.items()
            }
        context = build_context(
            keys=run.engine.context_keys(call.tool),
            arguments=arguments,
            visible=charter.tool_args.get(call.tool, {}),
            derived=charter.derived.get(call.tool, ()),
            principal=run.principal_context,
            environment=run.environment,
            totals=run.ledger.totals,
            # Every argument, not only those Cedar can see, in the form that is hashed,
            # approved and audited: plain JSON data, amounts as their exact text.
            taint=lambda: run.provenance.report(call.canonical_arguments),
        )
        return run.engine.decide(call.tool, run.principal.user, context)
