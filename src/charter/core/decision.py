"""The value every enforcement stage returns: a verdict, why, and which rule said so."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Decision", "Stage", "Verdict"]


class Verdict(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    REQUIRE_APPROVAL = "require_approval"


class Stage(StrEnum):
    """The pipeline stage that made a decision, in pipeline order."""

    KILL_SWITCH = "kill_switch"
    ALLOWLIST = "allowlist"
    SCHEMA = "schema"
    BUDGET = "budget"
    POLICY = "policy"
    APPROVAL = "approval"
    EXECUTE = "execute"


@dataclass(frozen=True, slots=True)
class Decision:
    """A verdict with its reason and the id of the rule that made it.

    ``rule_id`` is stable and greppable: ``tools.issue_refund`` (the allow rule a tool
    declaration compiles to), ``require_approval_for[0]``, ``default-deny``, an ``@id`` from a
    Cedar file, ``budget.max_usd_per_run`` and so on.
    """

    verdict: Verdict
    reason: str
    rule_id: str
    stage: Stage

    @property
    def allowed(self) -> bool:
        return self.verdict is Verdict.ALLOW

    @classmethod
    def allow(cls, stage: Stage, reason: str, rule_id: str) -> Decision:
        return cls(Verdict.ALLOW, reason, rule_id, stage)

    @classmethod
    def deny(cls, stage: Stage, reason: str, rule_id: str) -> Decision:
        return cls(Verdict.DENY, reason, rule_id, stage)

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> Decision:
        """The inverse of ``as_dict``."""
        return cls(Verdict(data["verdict"]), data["reason"], data["rule_id"], Stage(data["stage"]))

    def as_dict(self) -> dict[str, str]:
        return {
            "verdict": self.verdict.value,
            "reason": self.reason,
            "rule_id": self.rule_id,
            "stage": self.stage.value,
        }
