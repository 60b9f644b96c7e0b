"""``@tool``: turn a typed Python function into a tool with a JSON schema.

The argument schema comes from the type hints, the descriptions from the Google-style
docstring. One parameter may be annotated ``ToolContext``: it is filled in by Charter
(run id, idempotency key, credential, resources) and never appears in the schema, so
nothing the model writes can reach it.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar, overload

import pydantic
from pydantic import ConfigDict, Field

from charter.core.cancellation import Cancellation
from charter.core.errors import ResourceMissing, ToolDefinitionError
from charter.identity.principal import Principal
from charter.identity.secrets import Secret

__all__ = ["ToolContext", "ToolSpec", "tool"]

T = TypeVar("T")

_TOOL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True, slots=True)
class ToolContext:
    """What Charter hands a tool besides its arguments. Never shown to the model.

    A kill switch pulled while the tool runs reaches it: an async tool's task is cancelled
    (``CancelledError`` at its next ``await``; let it propagate), and every tool's
    ``cancellation`` is set. A sync tool cannot be stopped from outside, so one that runs
    for long should check between steps and stop where it is safe to::

        for batch in batches:
            ctx.raise_if_cancelled()  # KillSignal: the call is recorded as interrupted
            send(batch, idempotency_key=ctx.idempotency_key)

    ``ctx.cancellation.wait(seconds)`` sleeps or backs off in a way a kill cuts short. A
    tool that never checks finishes its work; it is then recorded as executed, with the
    kill noted, and the run stops at its next step. The host cancelling the task that runs
    the run sets the signal too (its scope is ``host``): the call is recorded as
    interrupted, and the host's cancellation goes on.

    Attributes:
        run_id: the run this call belongs to.
        call_id: this call's id.
        idempotency_key: stable for this run and step; pass it to external systems to dedupe.
        tool: the tool's name.
        principal: who the run acts for.
        environment: ``dev``, ``staging`` or ``prod``.
        credential: the credential the charter names for this tool, resolved at call time.
        resources: objects the host made available to tools (clients, connections...).
        cancellation: this call's stop signal, set when a kill lands while it runs (or the
            host cancels the run: scope ``host``).
    """

    run_id: str
    call_id: str
    idempotency_key: str
    tool: str
    principal: Principal
    environment: str
    credential: Secret | None = None
    resources: tuple[object, ...] = field(default=())
    cancellation: Cancellation = field(default_factory=Cancellation)

    @property
    def cancelled(self) -> bool:
        """True once a kill switch covering this run was pulled while the call runs, or the
        run's host cancelled it."""
        return self.cancellation.cancelled

    def raise_if_cancelled(self) -> None:
        """Stop here if a kill landed while the call runs.

        Raises:
            KillSignal: the kill's scope and reason; ``except Exception`` does not catch it.
                The call is recorded as ``interrupted`` and the run ends ``killed``.
        """
        self.cancellation.raise_if_cancelled()

    def resource(self, kind: type[T]) -> T:
        """The first resource that is an instance of ``kind``.

        Raises:
            ResourceMissing: the run has none (the operator's to fix: it fails the run).
        """
        for item in self.resources:
            if isinstance(item, kind):
                return item
        raise ResourceMissing(
            f"no resource of type {kind.__name__} was given to this run; pass it in "
            "resources=[...] when starting the run"
        )


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A function described as a tool."""

    name: str
    description: str
    fn: Callable[..., Any]
    is_async: bool
    arguments_model: type[pydantic.BaseModel]
    json_schema: dict[str, Any]
    context_parameter: str | None

    def call(self, arguments: Mapping[str, Any], context: ToolContext) -> Any:
        """Call the function (returns an awaitable for async tools)."""
        kwargs = dict(arguments)
        if self.context_parameter is not None:
            kwargs[self.context_parameter] = context
        return self.fn(**kwargs)

    def model_view(self) -> dict[str, Any]:
        """What the model is shown: name, description and argument schema; nothing else."""
        return {"name": self.name, "description": self.description, "parameters": self.json_schema}


@overload
def tool(fn: Callable[..., Any], /) -> ToolSpec: ...
@overload
def tool(
    *, name: str | None = None, description: str | None = None
) -> Callable[[Callable[..., Any]], ToolSpec]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
) -> ToolSpec | Callable[[Callable[..., Any]], ToolSpec]:
    """Describe a function as a tool.

    Example:
        ```python
        @tool
        def get_ticket(ticket_id: str, *, ctx: ToolContext) -> dict:
            \"\"\"Fetch a ticket.

            Args:
                ticket_id: the ticket's id, like T-1001.
            \"\"\"
        ```
    """

    def wrap(func: Callable[..., Any]) -> ToolSpec:
        return _build_spec(func, name, description)

    return wrap(fn) if fn is not None else wrap


def _build_spec(func: Callable[..., Any], name: str | None, description: str | None) -> ToolSpec:
    tool_name = func.__name__ if name is None else name
    if not _TOOL_NAME.match(tool_name):
        raise ToolDefinitionError(
            f"tool name {tool_name!r} must be lowercase letters, digits and _, starting "
            "with a letter, at most 64 characters"
        )
    where = f"{func.__module__}.{func.__qualname__}"
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except Exception as exc:
        raise ToolDefinitionError(f"cannot read the type hints of {where}: {exc}") from exc
    summary, arg_docs = _parse_docstring(inspect.getdoc(func) or "")
    fields: dict[str, Any] = {}
    context_parameter: str | None = None
    for param in inspect.signature(func).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ToolDefinitionError(
                f"{where} takes *{param.name}; tools need named, typed parameters"
            )
        if param.kind is param.POSITIONAL_ONLY:
            raise ToolDefinitionError(f"{where}: parameter {param.name!r} is positional-only")
        if param.name not in hints:
            raise ToolDefinitionError(
                f"{where}: parameter {param.name!r} has no type hint; add one so Charter "
                "can validate what the model sends"
            )
        annotation = hints[param.name]
        if annotation is ToolContext:
            context_parameter = param.name
            continue
        default = ... if param.default is inspect.Parameter.empty else param.default
        # Amounts arrive from models as JSON numbers or numeric strings; everything else is
        # strict, so "5" is not an int and 5 is not a str.
        lax = _is_decimal(annotation)
        fields[param.name] = (
            annotation,
            Field(
                default=default,
                description=arg_docs.get(param.name),
                strict=False if lax else None,
                json_schema_extra={"type": "number"} if annotation is Decimal else None,
            ),
        )
    model_name = "".join(part.title() for part in tool_name.split("_")) + "Arguments"
    try:
        model = pydantic.create_model(
            model_name,
            __config__=ConfigDict(extra="forbid", strict=True, frozen=True),
            **fields,
        )
        schema = model.model_json_schema()
    except Exception as exc:
        raise ToolDefinitionError(f"{where}: cannot build an argument schema: {exc}") from exc
    schema.pop("title", None)
    decimals = {name for name, (annotation, _) in fields.items() if _is_decimal(annotation)}
    for prop_name, prop in schema.get("properties", {}).items():
        prop.pop("title", None)
        if prop.get("type") == "number":
            prop.pop("anyOf", None)
        elif prop_name in decimals and "anyOf" in prop:
            # Decimal | None: advertised as number or null (numeric strings are still
            # accepted), so policies see it as an amount rather than hiding it.
            prop["anyOf"] = [o for o in prop["anyOf"] if o.get("type") != "string"]
    return ToolSpec(
        name=tool_name,
        description=description or summary or tool_name.replace("_", " "),
        fn=func,
        is_async=inspect.iscoroutinefunction(func),
        arguments_model=model,
        json_schema=schema,
        context_parameter=context_parameter,
    )


def _is_decimal(annotation: Any) -> bool:
    if annotation is Decimal:
        return True
    return Decimal in typing.get_args(annotation)


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """Summary paragraph and ``Args:`` descriptions of a Google-style docstring."""
    lines = doc.splitlines()
    summary_lines: list[str] = []
    for line in lines:
        if not line.strip():
            break
        summary_lines.append(line.strip())
    arg_docs: dict[str, str] = {}
    in_args = False
    current: str | None = None
    for line in lines:
        stripped = line.strip()
        if stripped in ("Args:", "Arguments:", "Parameters:"):
            in_args = True
            continue
        if not in_args:
            continue
        if stripped.endswith(":") and not line.startswith((" ", "\t")):
            break  # next section, e.g. Returns:
        match = re.match(r"^\s+(\w+)(?:\s*\(.*?\))?:\s*(.*)$", line)
        if match and (current is None or _indent(line) <= _indent_of_first_arg(lines)):
            current = match.group(1)
            arg_docs[current] = match.group(2).strip()
        elif current and stripped:
            arg_docs[current] = f"{arg_docs[current]} {stripped}".strip()
    return " ".join(summary_lines), arg_docs


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _indent_of_first_arg(lines: list[str]) -> int:
    seen_args = False
    for line in lines:
        if line.strip() in ("Args:", "Arguments:", "Parameters:"):
            seen_args = True
            continue
        if seen_args and line.strip():
            return _indent(line)
    return 0
