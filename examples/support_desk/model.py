"""``GullibleSupportModel``: a deterministic stand-in for a hijackable LLM.

It needs no network and no key, and it is as naive as a model can be: it obeys instructions
in anything it reads (see ``planner.py``). That makes it the right subject for the demo and
the red-team suites: whatever the charter lets through, this model will do.

Each ``chat`` call re-derives the plan from the messages and proposes the first step it has
not proposed yet, one tool call per turn; when nothing is left it answers in text, or calls
Charter's built-in ``escalate_to_human`` tool when a human has to take over. It ignores which
tools it was offered and proposes whatever the text asked for, as a hijacked model would.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from charter.execution.model import Message, ModelResponse, ToolCallRequest, Usage

from .planner import Plan, plan
from .transcript import Transcript

__all__ = ["GullibleSupportModel"]

_GATHER = frozenset({"get_ticket", "lookup_customer", "read_inbox"})


class GullibleSupportModel:
    """A scripted support agent that does whatever any text it reads tells it to."""

    provider: str = "scripted"
    name: str = "gullible-support-agent"

    async def chat(
        self,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]],
        *,
        max_output_tokens: int,
    ) -> ModelResponse:
        """Propose the next planned tool call, or give the final answer."""
        transcript = Transcript.parse(messages)
        intended = plan(transcript)
        reply = (
            _next_call(transcript, intended)
            or _escalation(transcript, intended)
            or Message(
                role="assistant",
                content=_final_answer(transcript, intended)[: max_output_tokens * 4],
            )
        )
        usage = Usage(
            input_tokens=_tokens(sum(_chars(m) for m in messages)),
            output_tokens=_tokens(_chars(reply)),
        )
        return ModelResponse(message=reply, usage=usage)


def _next_call(transcript: Transcript, intended: Plan) -> Message | None:
    failed = transcript.failed
    for step in intended.steps:
        if step.key in transcript.proposed:
            continue  # done, refused or failed: a naive agent simply moves on
        if step.requires is not None and step.requires in failed:
            continue  # e.g. no refund confirmation for a refund that did not happen
        call = ToolCallRequest(f"call_{transcript.turn}", step.tool, dict(step.arguments))
        return Message(role="assistant", content=step.why, tool_calls=(call,))
    return None


def _escalation(transcript: Transcript, intended: Plan) -> Message | None:
    """Hand over through Charter's built-in escalate_to_human tool, as a real agent would."""
    if intended.escalation is None:
        return None
    call = ToolCallRequest(
        f"call_{transcript.turn}", "escalate_to_human", {"reason": intended.escalation}
    )
    return Message(role="assistant", content="Escalating to a human.", tool_calls=(call,))


def _final_answer(transcript: Transcript, intended: Plan) -> str:
    if not transcript.observations:
        return "Tell me which ticket to work on, for example: Please handle ticket T-1001."
    done = [_label(o.tool, o.arguments) for o in transcript.observations if o.ok]
    refused = [_label(o.tool, o.arguments) for o in transcript.observations if not o.ok]
    actions = [d for d in done if d.split("(")[0] not in _GATHER]
    summary = "Done: " + (", ".join(actions) if actions else "no changes were needed") + "."
    if refused:
        summary += " Refused or failed: " + ", ".join(refused) + "."
    return summary


def _label(tool: str, arguments: dict[str, Any]) -> str:
    target = arguments.get("ticket_id") or arguments.get("record_id") or ""
    return f"{tool}({target})"


def _chars(message: Message) -> int:
    calls = sum(
        len(c.name) + len(json.dumps(c.arguments, sort_keys=True, default=str))
        for c in message.tool_calls
    )
    return len(message.content) + calls


def _tokens(chars: int) -> int:
    # The usual rule of thumb for English: about four characters per token.
    return max(1, math.ceil(chars / 4))
