"""Tools and a model for the durable kill tests, importable by a charter's ``toolkit``.

The durable engine runs in the test's process, so the tool and the test share these events.
"""

from __future__ import annotations

import asyncio
import threading

from charter.contract.tool import ToolContext, tool
from charter.testing import ScriptedModel, reply, tool_call

PAY_STARTED = threading.Event()
PAY_CALLS: list[str] = []
UNDONE: list[str] = []


def reset() -> None:
    PAY_STARTED.clear()
    PAY_CALLS.clear()
    UNDONE.clear()


@tool
async def pay(amount: int, *, ctx: ToolContext) -> str:
    """Pay through a provider that never answers: only a cancellation ends the call.

    Args:
        amount: how much.
    """
    PAY_CALLS.append(ctx.idempotency_key)
    PAY_STARTED.set()
    await asyncio.Event().wait()
    return "paid"  # pragma: no cover - unreachable by design


@tool
def note(text: str) -> str:
    """Write a note.

    Args:
        text: the note.
    """
    return f"noted {text}"


@tool
def unnote(text: str) -> str:
    """Take a note back.

    Args:
        text: the note.
    """
    UNDONE.append(text)
    return f"unnoted {text}"


def model() -> ScriptedModel:
    return ScriptedModel(
        [
            reply("noting", tool_call("note", text="refund promised")),
            reply("paying", tool_call("pay", amount=5)),
            reply("never reached: the run was killed"),
        ]
    )
