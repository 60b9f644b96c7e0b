"""A refund tool and a model asking for the same refund three times in one turn, importable
by a charter's ``toolkit`` (the durable engine runs in the test's process)."""

from __future__ import annotations

from charter.contract.tool import ToolContext, tool
from charter.testing import ScriptedModel, reply, tool_call

PAID: list[str] = []  # the idempotency key of every refund that ran


@tool
def refund(ticket: str, amount_usd: int, *, ctx: ToolContext) -> str:
    """Refund a ticket.

    Args:
        ticket: the ticket.
        amount_usd: how much.
    """
    PAID.append(ctx.idempotency_key)
    return f"refunded {amount_usd} on {ticket}"


def model() -> ScriptedModel:
    same = {"ticket": "T-1001", "amount_usd": 350}
    return ScriptedModel(
        [
            reply(
                "refunding",
                tool_call("refund", "c1", **same),
                tool_call("refund", "c2", **same),
                tool_call("refund", "c3", **same),
            ),
            reply("done"),
        ]
    )
