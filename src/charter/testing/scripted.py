"""``ScriptedModel``: a model that plays back a script, for tests and examples."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from charter.execution.model import Message, ModelResponse, ToolCallRequest, Usage

__all__ = ["ScriptedModel", "reply", "tool_call"]

Step = ModelResponse | Callable[[Sequence[Message]], ModelResponse]


def tool_call(name: str, call_id: str | None = None, /, **arguments: Any) -> ToolCallRequest:
    """A proposed tool call for a script."""
    return ToolCallRequest(call_id or f"call_{name}", name, arguments)


def reply(text: str = "", *calls: ToolCallRequest, usage: Usage | None = None) -> ModelResponse:
    """An assistant turn for a script; usage defaults to an estimate from the text."""
    message = Message("assistant", text, tuple(calls))
    if usage is None:
        size = len(text) + sum(len(json.dumps(c.arguments, default=str)) for c in calls)
        usage = Usage(input_tokens=0, output_tokens=size // 4 + 1)
    return ModelResponse(message, usage)


class ScriptedModel:
    """Returns the scripted steps in order; a step may be a function of the messages so far.

    Input tokens are estimated from the conversation (4 characters a token) unless a step
    gives its own usage. Running past the end of the script is an error, loudly.
    """

    def __init__(
        self,
        steps: Sequence[Step],
        *,
        provider: str = "openai",
        name: str = "gpt-4o-mini",
    ) -> None:
        self.provider = provider
        self.name = name
        self._steps = list(steps)
        self.calls: list[tuple[Message, ...]] = []

    async def chat(
        self,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]],
        *,
        max_output_tokens: int,
    ) -> ModelResponse:
        index = len(self.calls)
        self.calls.append(tuple(messages))
        if index >= len(self._steps):
            raise RuntimeError(
                f"ScriptedModel has {len(self._steps)} steps; call {index + 1} was not scripted"
            )
        step = self._steps[index]
        response = step(messages) if callable(step) else step
        if response.usage.input_tokens == 0:
            chars = sum(len(m.content) for m in messages)
            usage = Usage(chars // 4 + 1, response.usage.output_tokens)
            response = ModelResponse(response.message, usage)
        return response
