"""No half-done side effects: deferred effects wait for success; writes can be taken back.

A tool declared ``defer: until_run_succeeds`` (an e-mail, a payment notice) is decided by the
pipeline like any other call, then queued here instead of run. When the run succeeds the
queue is sent in order, each effect once, under the idempotency key it was given when it was
decided. When the run ends any other way (failed, denied, escalated, killed, over budget) the
queue is discarded and every executed ``write`` whose tool names a ``compensate:`` tool is
compensated, newest first, with the arguments of the original call that the compensation
accepts. A run waiting for approval keeps both: it has not ended.

If sending a deferred effect fails, the rest are discarded, the writes are compensated and
the run fails: the seed's rule is that nothing is sent "best effort". If a kill stops a send
(refuses it, or interrupts it while it runs), the same happens and the run ends killed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from charter.core.decision import Decision
from charter.execution.kill_switch import ActiveKill

__all__ = ["CompensableWrite", "DeferredEffect", "RunEffects", "Settlement"]


@dataclass(frozen=True, slots=True)
class DeferredEffect:
    """A decided call waiting for the run to succeed.

    ``step`` is the run's step that decided it: sending or discarding it is recorded under
    that step, never under ``call_id``, which the model wrote and may reuse.
    """

    step: int
    call_id: str
    tool: str
    arguments: dict[str, Any]  # validated values, as the tool receives them
    canonical_arguments: dict[str, Any]
    arguments_sha256: str
    idempotency_key: str
    decision: Decision


@dataclass(frozen=True, slots=True)
class CompensableWrite:
    """An executed write and the tool that takes it back (``step``: the run's step that
    wrote it, which names its compensation's record; see ``DeferredEffect``)."""

    step: int
    call_id: str
    tool: str
    compensation: str
    arguments: dict[str, Any]  # canonical arguments of the original call
    idempotency_key: str


@dataclass(frozen=True, slots=True)
class Settlement:
    """What settling a run's effects came to (see ``Run.settle_effects``).

    ``failure`` says why the run must not end ``succeeded`` (a send failed, or a kill stopped
    it), None when nothing stopped a send. ``kill`` is the kill that stopped one: the run
    then ends ``killed``, not ``failed``.
    """

    failure: str | None = None
    kill: ActiveKill | None = None


@dataclass(slots=True)
class RunEffects:
    """The run's outbox and its compensable writes, in the order they happened."""

    deferred: list[DeferredEffect] = field(default_factory=list)
    writes: list[CompensableWrite] = field(default_factory=list)
    settled: bool = False

    def snapshot(self) -> dict[str, Any]:
        """The outbox and compensable writes as plain data (for durable runs)."""
        return {
            "settled": self.settled,
            "deferred": [
                {
                    "step": d.step,
                    "call_id": d.call_id,
                    "tool": d.tool,
                    "canonical_arguments": d.canonical_arguments,
                    "arguments_sha256": d.arguments_sha256,
                    "idempotency_key": d.idempotency_key,
                    "decision": d.decision.as_dict(),
                }
                for d in self.deferred
            ],
            "writes": [
                {
                    "step": w.step,
                    "call_id": w.call_id,
                    "tool": w.tool,
                    "compensation": w.compensation,
                    "arguments": w.arguments,
                    "idempotency_key": w.idempotency_key,
                }
                for w in self.writes
            ],
        }

    def restore(
        self, snapshot: dict[str, Any], validate: Callable[[str, dict[str, Any]], Any]
    ) -> None:
        """Become exactly what ``snapshot`` was taken of.

        ``validate(tool, canonical_arguments)`` turns stored JSON back into the values the
        tool is called with (e.g. amounts back into ``Decimal``).
        """
        self.settled = bool(snapshot["settled"])
        self.deferred = [
            DeferredEffect(
                step=_step(d),
                call_id=d["call_id"],
                tool=d["tool"],
                arguments=validate(d["tool"], d["canonical_arguments"]),
                canonical_arguments=d["canonical_arguments"],
                arguments_sha256=d["arguments_sha256"],
                idempotency_key=d["idempotency_key"],
                decision=Decision.from_dict(d["decision"]),
            )
            for d in snapshot["deferred"]
        ]
        self.writes = [CompensableWrite(**{**w, "step": _step(w)}) for w in snapshot["writes"]]

    def take(self) -> tuple[list[DeferredEffect], list[CompensableWrite]]:
        """Hand over everything to settle, once; a second call gets nothing."""
        if self.settled:
            return [], []
        self.settled = True
        deferred, writes = self.deferred, self.writes
        self.deferred, self.writes = [], []
        return deferred, writes


def _step(stored: dict[str, Any]) -> int:
    """The step of a stored effect. One recorded before effects kept their step (a durable
    run from an older version) has it at the end of its idempotency key, ``run_id:step``."""
    if "step" in stored:
        return int(stored["step"])
    return int(str(stored["idempotency_key"]).rsplit(":", 1)[1])
