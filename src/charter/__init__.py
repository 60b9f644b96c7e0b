"""Charter: the control plane for production AI agents.

An agent acts only through its charter: a versioned file naming its tools, their argument
schemas and effects, its budgets, policies and approval gates. Charter enforces it at the tool
layer and records every decision in a tamper-evident audit log.

The names below are served lazily (PEP 562, ``charter.core.lazy``): each is imported the first
time it is read. Imported eagerly, ``Runtime`` and ``AuditLog`` pulled DBOS, Alembic,
SQLAlchemy and OpenTelemetry into every ``import charter.<anything>``: 0.55 s of the 1.3 s
that ``charter --help`` took on a quiet 2-core machine, against a 0.5 s budget. Type
checkers read the imports under ``TYPE_CHECKING``; a test keeps them and the table equal.
"""

from typing import TYPE_CHECKING

from charter.core.lazy import export_lazily

if TYPE_CHECKING:
    from charter.contract.loader import Charter
    from charter.contract.tool import ToolContext, ToolSpec, tool
    from charter.core.decision import Decision, Stage, Verdict
    from charter.core.errors import (
        ApprovalRequired,
        BudgetExceeded,
        CharterError,
        CharterInvalid,
        GovernedOutcome,
        KillSignal,
        PermissionDenied,
        Problem,
        ToolFailed,
        ToolMisconfigured,
        ToolTimeout,
        UserError,
    )
    from charter.core.settings import Settings
    from charter.execution.agent import RunResult
    from charter.execution.call import ToolResult
    from charter.execution.model import Message, Model, ModelResponse, ToolCallRequest, Usage
    from charter.execution.run import Run
    from charter.identity.principal import Principal
    from charter.identity.secrets import Secret
    from charter.observability.audit import AuditLog
    from charter.runtime import Runtime

__all__ = [
    "ApprovalRequired",
    "AuditLog",
    "BudgetExceeded",
    "Charter",
    "CharterError",
    "CharterInvalid",
    "Decision",
    "GovernedOutcome",
    "KillSignal",
    "Message",
    "Model",
    "ModelResponse",
    "PermissionDenied",
    "Principal",
    "Problem",
    "Run",
    "RunResult",
    "Runtime",
    "Secret",
    "Settings",
    "Stage",
    "ToolCallRequest",
    "ToolContext",
    "ToolFailed",
    "ToolMisconfigured",
    "ToolResult",
    "ToolSpec",
    "ToolTimeout",
    "Usage",
    "UserError",
    "Verdict",
    "tool",
]

export_lazily(
    globals(),
    {
        "ApprovalRequired": "charter.core.errors",
        "AuditLog": "charter.observability.audit",
        "BudgetExceeded": "charter.core.errors",
        "Charter": "charter.contract.loader",
        "CharterError": "charter.core.errors",
        "CharterInvalid": "charter.core.errors",
        "Decision": "charter.core.decision",
        "GovernedOutcome": "charter.core.errors",
        "KillSignal": "charter.core.errors",
        "Message": "charter.execution.model",
        "Model": "charter.execution.model",
        "ModelResponse": "charter.execution.model",
        "PermissionDenied": "charter.core.errors",
        "Principal": "charter.identity.principal",
        "Problem": "charter.core.errors",
        "Run": "charter.execution.run",
        "RunResult": "charter.execution.agent",
        "Runtime": "charter.runtime",
        "Secret": "charter.identity.secrets",
        "Settings": "charter.core.settings",
        "Stage": "charter.core.decision",
        "ToolCallRequest": "charter.execution.model",
        "ToolContext": "charter.contract.tool",
        "ToolFailed": "charter.core.errors",
        "ToolMisconfigured": "charter.core.errors",
        "ToolResult": "charter.execution.call",
        "ToolSpec": "charter.contract.tool",
        "ToolTimeout": "charter.core.errors",
        "Usage": "charter.execution.model",
        "UserError": "charter.core.errors",
        "Verdict": "charter.core.decision",
        "tool": "charter.contract.tool",
    },
)

__version__ = "0.1.0"
