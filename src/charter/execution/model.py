"""The model seam: a ``Model`` is anything that chats with tool calls and reports usage.

Provider adapters (OpenAI, Anthropic...) and test doubles (``charter.testing.ScriptedModel``)
implement the same protocol, so the agent loop and enforcement never know which one runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = ["Message", "Model", "ModelResponse", "ToolCallRequest", "Usage"]

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class ToolCallRequest:
    """A tool call the model proposes. Proposing is not executing: enforcement decides."""

    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message. Tool results come back as ``role="tool"`` with ``tool_call_id``."""

    role: Role
    content: str
    tool_calls: tuple[ToolCallRequest, ...] = field(default=())
    tool_call_id: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int
    output_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class ModelResponse:
    """The assistant's turn: text and/or tool calls, and what it cost in tokens."""

    message: Message
    usage: Usage


def message_to_dict(message: Message) -> dict[str, Any]:
    """A message as plain JSON data."""
    return {
        "role": message.role,
        "content": message.content,
        "tool_calls": [
            {"id": c.id, "name": c.name, "arguments": c.arguments} for c in message.tool_calls
        ],
        "tool_call_id": message.tool_call_id,
        "name": message.name,
    }


def response_to_dict(response: ModelResponse) -> dict[str, Any]:
    """A model turn as plain JSON data (what a durable step records)."""
    return {
        **message_to_dict(response.message),
        "input_tokens": response.usage.input_tokens,
        "output_tokens": response.usage.output_tokens,
    }


def response_from_dict(data: dict[str, Any]) -> ModelResponse:
    """The inverse of ``response_to_dict``."""
    calls = tuple(ToolCallRequest(c["id"], c["name"], c["arguments"]) for c in data["tool_calls"])
    message = Message(data["role"], data["content"], calls, data["tool_call_id"], data["name"])
    return ModelResponse(message, Usage(int(data["input_tokens"]), int(data["output_tokens"])))


@runtime_checkable
class Model(Protocol):
    """A chat model with tool calling.

    ``provider`` and ``name`` identify the model for pricing (genai-prices) and traces.
    """

    provider: str
    name: str

    async def chat(
        self,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]],
        *,
        max_output_tokens: int,
    ) -> ModelResponse:
        """One completion. ``tools`` are ``{"name", "description", "parameters"}`` dicts."""
        ...
