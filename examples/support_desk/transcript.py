"""What the scripted model has seen so far, rebuilt from the chat messages on every turn.

The model keeps no state between calls: everything it "knows" is parsed back out of the
messages, so a run resumed after a crash or an approval continues exactly where it stopped.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from charter.execution.model import Message

__all__ = ["Observation", "Transcript", "step_key"]

# Free-text arguments are left out of a call's identity: the model may word a note differently
# once it knows more, and that must not make it redo a call it already made.
_FREE_TEXT = frozenset({"body", "note"})


def step_key(tool: str, arguments: dict[str, Any]) -> str:
    """A call's identity: the tool and its non-free-text arguments, canonically encoded."""
    kept = {k: v for k, v in arguments.items() if k not in _FREE_TEXT}
    return tool + json.dumps(kept, sort_keys=True, default=str)


@dataclass(frozen=True, slots=True)
class Observation:
    """One answered tool call. ``ok`` is False for errors and refusals (non-JSON text)."""

    tool: str
    arguments: dict[str, Any]
    ok: bool
    data: Any

    @property
    def key(self) -> str:
        return step_key(self.tool, self.arguments)


@dataclass(frozen=True, slots=True)
class Transcript:
    request: str
    observations: tuple[Observation, ...]
    proposed: frozenset[str]
    turn: int

    @classmethod
    def parse(cls, messages: Sequence[Message]) -> Transcript:
        calls: dict[str, tuple[str, dict[str, Any]]] = {}
        requests: list[str] = []
        observations: list[Observation] = []
        turn = 0
        for message in messages:
            if message.role == "user":
                requests.append(message.content)
            elif message.role == "assistant":
                turn += 1
                for call in message.tool_calls:
                    calls[call.id] = (call.name, dict(call.arguments))
            elif message.role == "tool" and message.tool_call_id in calls:
                name, arguments = calls[message.tool_call_id]
                ok, data = _parse_result(message.content)
                observations.append(Observation(name, arguments, ok, data))
        return cls(
            request="\n".join(requests),
            observations=tuple(observations),
            proposed=frozenset(step_key(name, args) for name, args in calls.values()),
            turn=turn,
        )

    def result(self, tool: str, arguments: dict[str, Any]) -> Any:
        """The data of a successful call, or None if it was not made or did not succeed."""
        key = step_key(tool, arguments)
        for seen in self.observations:
            if seen.ok and seen.key == key:
                return seen.data
        return None

    @property
    def failed(self) -> frozenset[str]:
        return frozenset(o.key for o in self.observations if not o.ok)


def _parse_result(content: str) -> tuple[bool, Any]:
    # Successful results are JSON; refusals and errors are prose like "DENIED: ...".
    try:
        data = json.loads(content)
    except ValueError:
        return False, content
    if isinstance(data, dict) and "error" in data:
        return False, data
    return True, data
