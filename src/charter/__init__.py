"""Charter: the control plane for production AI agents.

An agent acts only through its charter: a versioned file naming its tools, their argument
schemas and effects, its budgets, policies and approval gates. Charter enforces it at the tool
layer and records every decision in a tamper-evident audit log.
"""

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

__version__ = "0.1.0"
