"""Public test doubles: a scripted model and a clock that moves only when told."""

from charter.testing.clock import FakeClock
from charter.testing.scripted import ScriptedModel, reply, tool_call

__all__ = ["FakeClock", "ScriptedModel", "reply", "tool_call"]
