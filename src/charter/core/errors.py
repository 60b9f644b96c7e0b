"""The one error hierarchy of Charter.

Every error Charter raises on purpose is one of these. Each carries a stable ``code``
(safe to match on in scripts and dashboards) and typed evidence as attributes.

```
CharterError                     (Exception)
├── UserError                    misconfiguration: the operator must change something
│   ├── CharterInvalid           a charter file has problems (each with file:line)
│   │   └── SuiteInvalid         an eval suite file has problems (each with file:line)
│   ├── ToolDefinitionError      a @tool function cannot be described as a tool
│   ├── PatternInvalid           a regular expression cannot run in linear time, or is bad
│   ├── SecretNotFound           a credential the charter names cannot be resolved
│   ├── ResourceMissing          a tool asked for a resource the run was not given
│   ├── ModelConfigError         the charter's model cannot be built
│   ├── AuditUnavailable         the audit log cannot be opened or written
│   ├── DatabaseUnavailable      Charter's database cannot be reached or is out of date
│   │   └── DatabaseReadOnly     it is open read-only and this needs to write (or upgrade)
│   ├── ReportInvalid            an eval report or baseline cannot be used
│   └── CassetteMissing          a replayed model request has no recorded response
├── GovernedOutcome              enforcement said no; the run records it as an outcome
│   ├── PermissionDenied         policy, allowlist or schema refused a tool call
│   ├── BudgetExceeded           a budget (tokens, calls, time, USD) would be overspent
│   ├── ToolTimeout              a tool ran past its time limit
│   ├── ToolFailed               the tool itself raised
│   │   └── ToolMisconfigured    ... or could not run for a reason the operator must fix
│   │                            (a credential or resource missing); also a UserError
│   └── ModelResponseInvalid     a model's reply breaks the Model protocol (usage, shape)
└── ApprovalRequired             control-flow signal: a human must approve first

KillSignal                       (BaseException) the kill switch; tool code's
                                 ``except Exception`` cannot swallow it
```
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from charter.core.decision import Decision


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an input file, located precisely enough to fix.

    Rendered as ``file:line: what is wrong; how to fix it``.
    """

    file: str
    line: int
    message: str
    hint: str = ""

    def __str__(self) -> str:
        text = f"{self.file}:{self.line}: {self.message}"
        return f"{text}; {self.hint}" if self.hint else text


class CharterError(Exception):
    """Base of every error Charter raises on purpose."""

    code: str = "charter_error"


class UserError(CharterError):
    """Misconfiguration: the message says what to change."""

    code = "user_error"


class CharterInvalid(UserError):
    """A charter (or a file it references) has one or more problems."""

    code = "charter_invalid"

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        count = len(self.problems)
        listing = "\n".join(str(p) for p in self.problems)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} found:\n{listing}")


class ToolDefinitionError(UserError):
    """A function given to ``@tool`` cannot be described as a tool."""

    code = "tool_definition"


class PatternInvalid(UserError, ValueError):
    """A regular expression written in a charter or suite cannot be used (see
    ``core.patterns``). Also a ``ValueError``, so a pydantic validator can raise it."""

    code = "pattern_invalid"

    def __init__(self, pattern: str, reason: str) -> None:
        """``reason`` completes the sentence "pattern <pattern> ...": what is wrong, and
        what to do."""
        self.pattern = pattern
        self.reason = reason
        super().__init__(f"pattern {pattern!r} {reason}")


class SecretNotFound(UserError):
    """A credential named by the charter could not be resolved by any provider."""

    code = "secret_not_found"

    def __init__(self, name: str, looked_in: Sequence[str]) -> None:
        self.name = name
        self.looked_in = tuple(looked_in)
        super().__init__(
            f"credential {name!r} was not found (looked in: {', '.join(looked_in) or 'nothing'}); "
            f"provide it, e.g. as environment variable {env_var_for_secret(name)!r}"
        )


class ResourceMissing(UserError, LookupError):
    """A tool asked its ``ToolContext`` for a resource the host did not give the run.

    Also a ``LookupError``, which is what ``ToolContext.resource`` raised before it was typed.
    """

    code = "resource_missing"


class ModelConfigError(UserError):
    """The charter's model section cannot be turned into a working model."""

    code = "model_config"


class AuditUnavailable(UserError):
    """The audit log cannot be opened or appended to; Charter refuses to act unaudited."""

    code = "audit_unavailable"


class DatabaseUnavailable(UserError):
    """Charter's database cannot be reached, or its schema is older than this code."""

    code = "database_unavailable"


class DatabaseReadOnly(DatabaseUnavailable):
    """Charter's database is open read-only and what was asked needs to write to it."""

    code = "database_read_only"


class SuiteInvalid(CharterInvalid):
    """An eval suite file (or the fixture or check it names) has one or more problems."""

    code = "suite_invalid"


class ReportInvalid(UserError):
    """An eval report given as input (a baseline, a side of a comparison) cannot be used."""

    code = "report_invalid"


class CassetteMissing(UserError):
    """Replay found no recorded response for a model request: re-record, or fix the task."""

    code = "cassette_missing"


class GovernedOutcome(CharterError):
    """Enforcement refused or stopped something. Carries the deciding ``Decision``.

    ``detail`` is what the model was told (for a failed tool: its redacted error text).
    """

    code = "governed"

    def __init__(self, decision: Decision, detail: str = "") -> None:
        self.decision = decision
        self.detail = detail
        super().__init__(detail or f"{decision.reason} [rule {decision.rule_id}]")


class PermissionDenied(GovernedOutcome):
    """A tool call was denied by the allowlist, the argument schema or a policy."""

    code = "permission_denied"


class BudgetExceeded(GovernedOutcome):
    """A tool or model call would overspend a budget of the run."""

    code = "budget_exceeded"


class ToolTimeout(GovernedOutcome):
    """A tool ran longer than its timeout; its result is discarded."""

    code = "tool_timeout"


class ToolFailed(GovernedOutcome):
    """The tool raised. The original exception is chained as ``__cause__``."""

    code = "tool_failed"


class ToolMisconfigured(ToolFailed, UserError):
    """A governed call could not run for a reason only the operator can fix: a credential
    that cannot be resolved, a resource the run was not given (``ToolResult.failure ==
    "configuration"``). No model can work around it. A ``ToolFailed``, so code handling
    failed calls still catches it, and a ``UserError``, so code that tells misconfiguration
    apart (to stop and say what to fix) does too."""

    code = "tool_misconfigured"


class ModelResponseInvalid(GovernedOutcome):
    """A model's reply is not what the ``Model`` protocol promises (usage that is not a count
    of tokens, a message or tool call of the wrong shape); the run ends ``failed``."""

    code = "model_response_invalid"


class ApprovalRequired(CharterError):
    """Signal: the call may proceed only after a human approves these exact arguments."""

    code = "approval_required"

    def __init__(self, decision: Decision, request_id: str, arguments_sha256: str) -> None:
        self.decision = decision
        self.request_id = request_id
        self.arguments_sha256 = arguments_sha256
        filed = (
            f"request {request_id}, arguments sha256 {arguments_sha256[:12]}"
            if request_id  # "": the run cannot wait for a decision, so nothing was filed
            else "no request was filed: this run cannot wait for a decision"
        )
        super().__init__(f"approval required: {decision.reason} [rule {decision.rule_id}, {filed}]")


class KillSignal(BaseException):
    """The kill switch fired for this run's scope. Derives from BaseException on purpose."""

    code = "killed"

    def __init__(self, scope: str, reason: str) -> None:
        self.scope = scope
        self.reason = reason
        super().__init__(f"kill switch active for {scope}: {reason}")


def first_line(exc: BaseException | None) -> str:
    """The first line of an error's message, for a message of ours that quotes it.

    A database error's own message is the driver's (``exc.orig`` under SQLAlchemy's
    wrapper, whose text adds the statement); an error without a message gives its type's name.
    """
    message = str(getattr(exc, "orig", None) or exc).strip()
    return message.splitlines()[0] if message else type(exc).__name__


def env_var_for_secret(name: str) -> str:
    """The environment variable the env provider reads for credential ``name``."""
    cleaned = "".join(ch if ch.isalnum() else "_" for ch in name.upper())
    return f"CHARTER_SECRET_{cleaned}"
