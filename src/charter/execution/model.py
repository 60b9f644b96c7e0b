"""The model seam: a ``Model`` is anything that chats with tool calls and reports usage.

Provider adapters (OpenAI, Anthropic...) and test doubles (``charter.testing.ScriptedModel``)
implement the same protocol, so the agent loop and enforcement never know which one runs.

What a model returns is input from outside, like a tool's result: a provider, a proxy in
between, a cassette file or a database row holding a durable step may be wrong or hostile.
``checked_response`` is where a reply enters a run: usage must be whole numbers of tokens from 0
to ``MAX_USAGE_TOKENS`` (a negative count would refill the budget and make cost negative), and
the message an assistant turn of the declared types with uniquely named calls whose arguments
are JSON objects. Anything else is ``ModelResponseInvalid``, which ends the run ``failed``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from charter.core.decision import Decision, Stage
from charter.core.errors import ModelResponseInvalid

__all__ = [
    "MAX_USAGE_TOKENS",
    "Message",
    "Model",
    "ModelResponse",
    "ToolCallRequest",
    "Usage",
    "checked_response",
]

Role = Literal["system", "user", "assistant", "tool"]

# The most tokens one reply may report, input and output each. Ten times the largest context
# window offered today (10M tokens): no honest reply comes near it, while a provider bug or a
# hostile endpoint reporting 10**12 tokens would otherwise pass for a (very costly) call.
MAX_USAGE_TOKENS = 100_000_000
_MAX_CALL_ID = 256  # characters; providers use ids like "call_..." or "toolu_..." of ~30
_MAX_SHOWN = 80  # characters of a refused value quoted in the run's reason


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


def response_from_dict(data: Any, model: str = "a recorded model") -> ModelResponse:
    """The inverse of ``response_to_dict``, checked like a live reply (``checked_response``):
    the data comes back from a durable step's record or a cassette file.

    Raises:
        ModelResponseInvalid: ``data`` is not a model turn as ``response_to_dict`` writes it.
    """
    try:
        calls = tuple(
            ToolCallRequest(c["id"], c["name"], c["arguments"]) for c in data["tool_calls"]
        )
        message = Message(data["role"], data["content"], calls, data["tool_call_id"], data["name"])
        usage = Usage(data["input_tokens"], data["output_tokens"])
    except (KeyError, TypeError, IndexError) as exc:
        raise _invalid(
            "model.response",
            f"{model} left a reply that cannot be read back ({type(exc).__name__}: "
            f"{str(exc)[:_MAX_SHOWN]}); it was written by another version or altered",
        ) from None
    return checked_response(ModelResponse(message, usage), model)


def checked_response(response: object, model: str) -> ModelResponse:
    """``response`` if it is a well-formed model turn, with its calls as a tuple.

    ``model`` names the model in the reason (``provider:name``). The calls of one turn need
    distinct ids: an id is how the model tells their results apart.

    Raises:
        ModelResponseInvalid: with a deny ``Decision`` (rule ``model.usage`` or
            ``model.response``) naming the model and the refused value.
    """
    # Exact types: a subclass could turn a field into a property that raises or changes.
    if type(response) is not ModelResponse:
        raise _invalid("model.response", f"{model} returned {_kind(response)}, not a ModelResponse")
    usage = response.usage
    if type(usage) is not Usage:
        raise _invalid("model.usage", f"{model} reported usage {_kind(usage)}, not a Usage")
    for part in ("input_tokens", "output_tokens"):
        count = getattr(usage, part)
        if type(count) is not int or not 0 <= count <= MAX_USAGE_TOKENS:
            raise _invalid(
                "model.usage",
                f"{model} reported usage {part}={_shown(count)}: a count of tokens is a whole "
                f"number from 0 to {MAX_USAGE_TOKENS:,}; check the provider or its adapter",
            )
    message = response.message
    if type(message) is not Message:
        raise _invalid("model.response", f"{model} returned a message {_kind(message)}")
    if message.role != "assistant":
        raise _invalid(
            "model.response", f"{model} returned a message of role {_shown(message.role)}, "
            "not 'assistant'"
        )  # fmt: skip
    for part in ("content", "tool_call_id", "name"):
        value = getattr(message, part)
        if type(value) is not str and not (value is None and part != "content"):
            raise _invalid(
                "model.response", f"{model} returned message {part} {_shown(value)}, not text"
            )
    calls = message.tool_calls
    if not isinstance(calls, tuple | list):
        raise _invalid("model.response", f"{model} returned tool calls {_kind(calls)}")
    seen: set[str] = set()
    for call in calls:
        _check_call(call, model, seen)
    if type(calls) is tuple:
        return response
    checked = Message(message.role, message.content, tuple(calls), message.tool_call_id,
                      message.name)  # fmt: skip
    return ModelResponse(checked, usage)


def _check_call(call: object, model: str, seen: set[str]) -> None:
    if type(call) is not ToolCallRequest:
        raise _invalid("model.response", f"{model} proposed a tool call {_kind(call)}")
    if type(call.name) is not str:
        raise _invalid("model.response", f"{model} named a tool {_shown(call.name)}")
    if type(call.id) is not str or not 0 < len(call.id) <= _MAX_CALL_ID:
        raise _invalid(
            "model.response", f"{model} gave the call of {_shown(call.name)} the id "
            f"{_shown(call.id)}; an id is text of 1 to {_MAX_CALL_ID} characters"
        )  # fmt: skip
    if call.id in seen:
        raise _invalid(
            "model.response", f"{model} used the tool-call id {_shown(call.id)} twice; "
            "each call needs its own"
        )  # fmt: skip
    seen.add(call.id)
    arguments = call.arguments
    if type(arguments) is not dict:
        raise _invalid(
            "model.response",
            f"{model} gave {_shown(call.name)} arguments {_kind(arguments)}, not an object",
        )
    if not all(type(key) is str for key in arguments):
        raise _invalid(
            "model.response", f"{model} gave {_shown(call.name)} arguments whose keys are not "
            "all text"
        )  # fmt: skip
    try:
        # What a model can send is JSON; a durable step records the reply as JSON too.
        json.dumps(arguments)
    except (TypeError, ValueError, RecursionError) as exc:
        raise _invalid(
            "model.response",
            f"{model} gave {_shown(call.name)} arguments that are not JSON data "
            f"({type(exc).__name__})",
        ) from None


def _invalid(rule: str, reason: str) -> ModelResponseInvalid:
    return ModelResponseInvalid(Decision.deny(Stage.EXECUTE, reason, rule))


def _kind(value: object) -> str:
    """A value's type, for a reason: never its repr, which a hostile object controls."""
    return "None" if value is None else f"of type {type(value).__name__}"


def _shown(value: object) -> str:
    """A refused value as a reason may quote it: plain values by repr (bounded), others by
    their type only (a hostile ``__repr__`` could raise, hang or lie)."""
    if type(value) is str:
        return repr(value[:_MAX_SHOWN]) + ("..." if len(value) > _MAX_SHOWN else "")
    if type(value) is int and abs(value) >= 10**30:
        # repr of an int over ~4300 digits raises (CPython's limit); its size is what matters.
        return f"{'-' if value < 0 else ''}<an integer of {value.bit_length()} bits>"
    if value is None or type(value) in (bool, int, float):
        return repr(value)
    return f"<{type(value).__name__}>"


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
