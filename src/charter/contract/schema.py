"""The charter file's schema: what an agent may do, spend and must ask for.

Pydantic models with ``extra="forbid"`` everywhere, so a misspelt key is an error rather than
a silently ignored safety rule. Semantic checks that need the whole file (a policy naming an
undeclared tool, a condition on a missing argument) live in ``contract.loader``.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

__all__ = [
    "ApprovalRule",
    "ArgumentConstraint",
    "Budgets",
    "CharterSpec",
    "DenyRule",
    "EvalGate",
    "Evals",
    "ModelSpec",
    "Policies",
    "SinkSpec",
    "SloSpec",
    "Timeouts",
    "ToolDecl",
    "UntrustedContent",
]

Effect = Literal["read", "write", "irreversible"]
SloName = Literal[
    "task_success_rate",
    "policy_violations_per_1000_runs",
    "escalation_accuracy",
    "p95_latency_seconds",
    "tool_error_rate",
    "cost_per_run_usd",
]

_NAME = r"^[a-z][a-z0-9-]{0,62}$"
_TOOL = r"^[a-z][a-z0-9_]{0,63}$"
_IMPORT_PATH = r"^[A-Za-z_][\w.]*(:[A-Za-z_][\w.]*)?$"
_OBJECTIVE = re.compile(r"^\s*(>=|<=|>|<)\s*(-?\d+(?:\.\d+)?)\s*$")
_WINDOW = re.compile(r"^(\d+)([mhdw])$")

ToolName = Annotated[str, Field(pattern=_TOOL)]
NonNegativeMoney = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=6)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSpec(_Strict):
    """Which model drives the agent.

    ``provider: scripted`` means a deterministic Python model built by ``factory``
    (``module:attribute``); ``priced_as`` names the real model whose prices it is charged at.
    """

    provider: Literal["openai", "anthropic", "scripted"]
    name: str = Field(min_length=1, max_length=128)
    factory: Annotated[str, Field(pattern=_IMPORT_PATH)] | None = None
    priced_as: str | None = Field(default=None, pattern=r"^[a-z0-9-]+:[\w.:-]+$")
    max_output_tokens: int = Field(default=1024, ge=1, le=200_000)

    @model_validator(mode="after")
    def _factory_for_scripted(self) -> ModelSpec:
        if self.provider == "scripted" and not self.factory:
            raise ValueError("a scripted model needs factory: 'module:attribute'")
        return self


class ArgumentConstraint(_Strict):
    """Limits on one argument's value, checked by policy before the tool runs."""

    domain_in: list[Annotated[str, Field(pattern=r"^[a-z0-9.-]+\.[a-z]{2,}$")]] | None = Field(
        default=None, min_length=1
    )
    # Strict: `in: [true]` must not become `in: [1]` for an integer argument.
    in_: list[StrictStr | StrictInt] | None = Field(default=None, alias="in", min_length=1)
    max: Decimal | None = None
    min: Decimal | None = None
    pattern: str | None = None
    max_length: int | None = Field(default=None, ge=1)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(
                    f"pattern {value!r} is not a valid regular expression: {exc}"
                ) from None
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> ArgumentConstraint:
        if all(
            v is None
            for v in (self.domain_in, self.in_, self.max, self.min, self.pattern, self.max_length)
        ):
            raise ValueError(
                "a constraint needs at least one of domain_in, in, max, min, pattern, max_length"
            )
        if self.max is not None and self.min is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


class ToolDecl(_Strict):
    """A tool the agent may call. Declaring it is the allow rule; everything else is denied."""

    effect: Effect
    output: Literal["trusted", "untrusted"] = "trusted"
    credential: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    timeout_seconds: float | None = Field(default=None, gt=0, le=3600)
    fee_usd: NonNegativeMoney = Decimal(0)
    defer: Literal["until_run_succeeds"] | None = None
    compensate: ToolName | None = None
    roles: list[str] | None = Field(default=None, min_length=1)
    constraints: dict[str, ArgumentConstraint] = Field(default_factory=dict)
    description: str | None = None


class Timeouts(_Strict):
    overall_seconds: float | None = Field(default=None, gt=0, le=86_400)
    per_tool_seconds: float | None = Field(default=None, gt=0, le=3600)


class Budgets(_Strict):
    """Hard limits per run. ``None`` means no limit; exceeding any fails closed."""

    max_total_tokens: int | None = Field(default=None, ge=1)
    max_tool_calls: int | None = Field(default=None, ge=1)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    max_usd_per_run: NonNegativeMoney | None = None
    on_exceed: Literal["escalate", "fail"] = "fail"


class ApprovalRule(_Strict):
    """A call needs a human's approval when ``when`` holds (or always, with ``any: true``)."""

    action: ToolName
    when: str | None = Field(default=None, min_length=1, max_length=2000)
    any: bool = False
    reason: str | None = None

    @model_validator(mode="after")
    def _when_or_any(self) -> ApprovalRule:
        if (self.when is None) == (not self.any):
            raise ValueError("give exactly one of when: '<condition>' or any: true")
        return self


class DenyRule(ApprovalRule):
    """A call is refused when ``when`` holds (or always, with ``any: true``)."""


class SinkSpec(_Strict):
    tool: ToolName
    args: list[str] | None = Field(default=None, min_length=1)


class UntrustedContent(_Strict):
    """What happens when arguments of a sink carry values that came from untrusted content."""

    sinks: list[ToolName | SinkSpec] = Field(min_length=1)
    on_tainted_args: Literal["deny", "require_approval"] = "require_approval"


class Policies(_Strict):
    require_approval_for: list[ApprovalRule] = Field(default_factory=list)
    deny: list[DenyRule] = Field(default_factory=list)
    untrusted_content: UntrustedContent | None = None
    cedar: str | None = None
    on_deny: Literal["stop", "continue"] = "stop"
    max_argument_bytes: int = Field(default=16_384, ge=64, le=10_000_000)


class SloSpec(_Strict):
    name: SloName
    objective: str
    window: str = "7d"

    @field_validator("objective")
    @classmethod
    def _objective(cls, value: str) -> str:
        if not _OBJECTIVE.match(value):
            raise ValueError(f"objective {value!r} must look like '>= 0.95' or '<= 1'")
        return value

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        if not _WINDOW.match(value):
            raise ValueError(f"window {value!r} must look like 30m, 24h, 7d or 2w")
        return value


class Concurrency(_Strict):
    """How many runs of this charter may execute at once, across every worker."""

    max_runs: int | None = Field(default=None, ge=1, le=100_000)
    max_runs_per_tenant: int | None = Field(default=None, ge=1, le=100_000)

    @model_validator(mode="after")
    def _per_tenant_within_total(self) -> Concurrency:
        if (
            self.max_runs is not None
            and self.max_runs_per_tenant is not None
            and self.max_runs_per_tenant > self.max_runs
        ):
            raise ValueError(
                f"max_runs_per_tenant ({self.max_runs_per_tenant}) cannot exceed "
                f"max_runs ({self.max_runs})"
            )
        return self


class EvalGate(_Strict):
    min_pass_rate: float = Field(ge=0, le=1)


class Evals(_Strict):
    golden: str | None = None
    redteam: str | None = None
    gate: EvalGate | None = None


class CharterSpec(_Strict):
    """The whole charter file."""

    charter: Annotated[str, Field(pattern=_NAME)]
    description: str = ""
    model: ModelSpec
    prompt: str
    toolkit: list[Annotated[str, Field(pattern=_IMPORT_PATH)]] = Field(default_factory=list)
    tools: dict[ToolName, ToolDecl] = Field(min_length=1)
    budgets: Budgets = Field(default_factory=Budgets)
    policies: Policies = Field(default_factory=Policies)
    slos: list[SloSpec] = Field(default_factory=list)
    evals: Evals | None = None
    concurrency: Concurrency = Field(default_factory=Concurrency)

    def tool_timeout(self, name: str) -> float | None:
        """The effective time limit for one call of ``name``: the tool's, else the budget's."""
        decl = self.tools[name]
        per_tool = self.budgets.timeouts.per_tool_seconds
        if decl.timeout_seconds is None:
            return per_tool
        return min(decl.timeout_seconds, per_tool) if per_tool else decl.timeout_seconds

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
