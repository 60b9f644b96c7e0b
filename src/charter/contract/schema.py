"""The charter file's schema: what an agent may do, spend and must ask for.

Pydantic models with ``extra="forbid"`` everywhere, so a misspelt key is an error rather than
a silently ignored safety rule. Semantic checks that need the whole file (a policy naming an
undeclared tool, a condition on a missing argument) live in ``contract.loader``.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Final, Literal, cast

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictInt,
    StrictStr,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from charter.core.patterns import compile_pattern

__all__ = [
    "SLO_KINDS",
    "ApprovalRule",
    "ArgumentConstraint",
    "Budgets",
    "CharterSpec",
    "Comparator",
    "DenyRule",
    "EvalGate",
    "Evals",
    "ModelSpec",
    "Policies",
    "SinkSpec",
    "SloKind",
    "SloName",
    "SloSpec",
    "Timeouts",
    "ToolDecl",
    "UntrustedContent",
    "UntrustedFields",
    "parse_objective",
    "parse_window",
]


def _valid_window(value: str) -> str:
    parse_window(value)  # defined below; called only when a value is validated
    return value


# A time window such as 30m, 24h, 7d or 2w (``parse_window``).
WindowText = Annotated[str, AfterValidator(_valid_window)]

Effect = Literal["read", "write", "irreversible"]
Comparator = Literal[">=", ">", "<=", "<"]
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
# A key of a tool's output, not a path: `notes`, `customerNotes`, `free-text` (no dots).
FieldName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_-]{0,127}$")]
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
        # Matched against values a model wrote: it must run in linear time (RE2), which is
        # checked here, at load, as a problem at the pattern's line. PatternInvalid is a
        # ValueError, which pydantic reports with its message.
        if value is not None:
            compile_pattern(value, full=True)
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


class UntrustedFields(_Strict):
    """A tool output that is trusted except under these keys, at any depth.

    For records that mix system-of-record fields (ids, accounts, amounts) with free text
    anyone can write (a ticket's body, a CRM note); see ``policy.taint.split_by_fields``.
    Keys match case-insensitively, so a listed field is not missed for its spelling.
    """

    untrusted_fields: list[FieldName] = Field(min_length=1, max_length=256)

    @field_validator("untrusted_fields")
    @classmethod
    def _no_duplicates(cls, value: list[str]) -> list[str]:
        seen: set[str] = set()
        for name in value:
            if name.casefold() in seen:
                raise ValueError(
                    f"field {name!r} is listed twice (keys match ignoring case); list it once"
                )
            seen.add(name.casefold())
        return value


def _output_form(value: Any) -> str | None:
    """Which form of ``output`` a value is, so a mapping is only checked as field-level."""
    if isinstance(value, str):
        return "whole"
    if isinstance(value, dict | UntrustedFields):
        return "fields"
    return None


ToolOutput = Annotated[
    Annotated[Literal["trusted", "untrusted"], Tag("whole")]
    | Annotated[UntrustedFields, Tag("fields")],
    Discriminator(
        _output_form,
        custom_error_type="output_form",
        custom_error_message="write trusted, untrusted or {untrusted_fields: [field, ...]}",
    ),
]


class ToolDecl(_Strict):
    """A tool the agent may call. Declaring it is the allow rule; everything else is denied."""

    effect: Effect
    output: ToolOutput = "trusted"
    credential: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    timeout_seconds: float | None = Field(default=None, gt=0, le=3600)
    fee_usd: NonNegativeMoney = Decimal(0)
    defer: Literal["until_run_succeeds"] | None = None
    compensate: ToolName | None = None
    roles: list[str] | None = Field(default=None, min_length=1)
    constraints: dict[str, ArgumentConstraint] = Field(default_factory=dict)
    description: str | None = None

    @property
    def untrusted_fields(self) -> frozenset[str] | None:
        """The casefolded keys of a field-level ``output``; None for ``trusted``/``untrusted``."""
        if isinstance(self.output, UntrustedFields):
            return frozenset(name.casefold() for name in self.output.untrusted_fields)
        return None

    @property
    def output_untrusted(self) -> bool:
        """Whether the output as a whole counts as untrusted when it cannot be split by field.

        True for ``untrusted`` and for a field-level declaration (fail closed: an output that
        is not JSON-like data has no fields to trust).
        """
        return self.output != "trusted"


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
    """One service-level objective: a measure of the charter's runs, a bound, a time window.

    The objective is checked for sense when the charter loads, per measure (``SLO_KINDS``): a
    measure where higher is better takes ``>=`` or ``>``, one where lower is better ``<=`` or
    ``<``, and the bound must be a value the measure can take, so an objective that could
    never be met, or never be missed for the reason its author meant, is a load error rather
    than a report that is always green or always red. ``observability.slo`` evaluates it.
    """

    name: SloName
    objective: str
    window: WindowText = "7d"

    @field_validator("objective")
    @classmethod
    def _objective(cls, value: str, info: ValidationInfo) -> str:
        comparator, bound = parse_objective(value)
        name = info.data.get("name")  # absent when the name itself was invalid
        if name is not None:
            _check_objective_sense(name, value, comparator, bound)
        return value

    @property
    def comparator(self) -> Comparator:
        """``>=``, ``>``, ``<=`` or ``<``: how the measured value must relate to ``target``."""
        return parse_objective(self.objective)[0]

    @property
    def target(self) -> Decimal:
        """The bound of the objective, exactly as written (``0.95`` in ``>= 0.95``)."""
        return parse_objective(self.objective)[1]

    @property
    def higher_is_better(self) -> bool:
        """True for ``>=``/``>`` objectives (validation ties this to the measure)."""
        return self.comparator in (">=", ">")

    @property
    def window_seconds(self) -> int:
        """The window's length in seconds (``7d`` -> 604800)."""
        return parse_window(self.window)


@dataclass(frozen=True, slots=True)
class SloKind:
    """What an SLO measure is, so an objective on it can be checked for sense.

    Attributes:
        higher_is_better: the direction objectives must take (``>=`` when true, else ``<=``).
        what: the measure's domain, in words, for error messages.
        maximum: the largest value the measure can take (``None``: unbounded); the minimum is
            always 0.
        example: a sensible objective, shown in error messages.
    """

    higher_is_better: bool
    what: str
    maximum: Decimal | None
    example: str


_RATE = "a rate between 0 and 1"
SLO_KINDS: Final[dict[str, SloKind]] = {
    "task_success_rate": SloKind(True, _RATE, Decimal(1), ">= 0.95"),
    "escalation_accuracy": SloKind(True, _RATE, Decimal(1), ">= 0.9"),
    "policy_violations_per_1000_runs": SloKind(
        False, "a number of runs per 1000 runs (0 to 1000)", Decimal(1000), "<= 1"
    ),
    "p95_latency_seconds": SloKind(False, "a duration in seconds (0 or more)", None, "<= 30"),
    "tool_error_rate": SloKind(False, _RATE, Decimal(1), "<= 0.05"),
    "cost_per_run_usd": SloKind(False, "an amount in USD (0 or more)", None, "<= 0.25"),
}
"""Every ``SloName``'s kind (a test keeps the two in step)."""

_WINDOW_UNITS: Final[dict[str, int]] = {"m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_MAX_WINDOW_SECONDS = 520 * 604_800  # ten years


def parse_objective(text: str) -> tuple[Comparator, Decimal]:
    """``">= 0.95"`` -> ``(">=", Decimal("0.95"))``; the one parser of objectives.

    Raises:
        ValueError: ``text`` is not a comparison with a number.
    """
    match = _OBJECTIVE.match(text)
    if not match:
        raise ValueError(f"objective {text!r} must look like '>= 0.95' or '<= 1'")
    comparator = cast(Comparator, match.group(1))
    return comparator, Decimal(match.group(2))


def parse_window(text: str) -> int:
    """``"7d"`` -> 604800: a window's length in seconds; the one parser of windows.

    Raises:
        ValueError: ``text`` is not a positive number of minutes, hours, days or weeks, or is
            longer than ten years.
    """
    match = _WINDOW.match(text)
    if not match:
        raise ValueError(f"window {text!r} must look like 30m, 24h, 7d or 2w")
    number, unit = match.groups()
    # Length first: int() of a hostile thousand-digit string is slow or refused.
    seconds = int(number) * _WINDOW_UNITS[unit] if len(number) <= 7 else _MAX_WINDOW_SECONDS + 1
    if seconds == 0:
        raise ValueError(f"window {text!r} is empty; give a length such as 7d")
    if seconds > _MAX_WINDOW_SECONDS:
        raise ValueError(f"window {text!r} is longer than ten years; give at most 520w")
    return seconds


def _check_objective_sense(name: str, text: str, comparator: Comparator, bound: Decimal) -> None:
    kind = SLO_KINDS[name]
    better = "higher" if kind.higher_is_better else "lower"
    what = f"{name} is {kind.what} where {better} is better; write it as '{kind.example}'"
    if (comparator in (">=", ">")) != kind.higher_is_better:
        raise ValueError(f"objective {text!r} points the wrong way: {what}")
    if bound < 0 or (kind.maximum is not None and bound > kind.maximum):
        raise ValueError(f"objective {text!r} is out of range: {what}")
    # The two bounds no value can pass: above the maximum, or below 0.
    if (comparator == ">" and bound == kind.maximum) or (comparator == "<" and bound == 0):
        raise ValueError(f"objective {text!r} can never be met: {what}")


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


class RolloutGuards(_Strict):
    """When a rollout's candidate is worse than the stable release, traffic goes back.

    Each bound compares the candidate with the stable release over ``window``; ``None``
    switches that guard off. Nothing is judged until each side has ``min_runs`` runs.
    """

    window: WindowText = "15m"
    min_runs: int = Field(default=20, ge=1, le=1_000_000)
    max_failure_rate_increase: float | None = Field(default=0.05, ge=0, le=1)
    max_violation_rate_increase: float | None = Field(default=0.05, ge=0, le=1)
    max_p95_latency_ratio: float | None = Field(default=1.5, ge=1, le=100)

    @property
    def window_seconds(self) -> int:
        return parse_window(self.window)


class RolloutSpec(_Strict):
    """How a new release reaches all traffic: percentages in order, then 100."""

    plan: list[int] = Field(default_factory=lambda: [5, 25, 50, 100], min_length=1)
    # Advance to the next stage on a schedule (``charter rollout tick``), if guards hold.
    advance_every: WindowText | None = None
    guards: RolloutGuards = Field(default_factory=RolloutGuards)

    @field_validator("plan")
    @classmethod
    def _plan(cls, value: list[int]) -> list[int]:
        if any(not 1 <= step <= 100 for step in value):
            raise ValueError(f"plan {value} must hold percentages from 1 to 100")
        if any(a >= b for a, b in itertools.pairwise(value)):
            raise ValueError(f"plan {value} must rise step by step")
        if value[-1] != 100:
            raise ValueError(f"plan {value} must end at 100")
        return value


class AutonomyRule(_Strict):
    """When a tool that needs approval has earned running without it (or lost that).

    ``charter autonomy report`` proposes dropping the tool's approval rules once at least
    ``min_decisions`` human decisions were taken on it and at most ``max_rejection_rate`` of
    them were rejections, and proposes adding one back when rejections exceed it.
    """

    tool: ToolName
    min_decisions: int = Field(default=50, ge=1, le=1_000_000)
    max_rejection_rate: float = Field(default=0.02, ge=0, le=1)
    min_eval_pass_rate: float = Field(default=1.0, ge=0, le=1)


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
    rollout: RolloutSpec = Field(default_factory=RolloutSpec)
    autonomy: list[AutonomyRule] = Field(default_factory=list)

    def tool_timeout(self, name: str) -> float | None:
        """The effective time limit for one call of ``name``: the tool's, else the budget's."""
        decl = self.tools[name]
        per_tool = self.budgets.timeouts.per_tool_seconds
        if decl.timeout_seconds is None:
            return per_tool
        return min(decl.timeout_seconds, per_tool) if per_tool else decl.timeout_seconds

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
