"""``@tool``: turn a typed Python function into a tool with a JSON schema.

The argument schema comes from the type hints, the descriptions from the Google-style
docstring. One parameter may be annotated ``ToolContext``: it is filled in by Charter
(run id, idempotency key, credential, resources) and never appears in the schema, so
nothing the model writes can reach it.

Arguments arrive as JSON, so they are validated as JSON (``ToolSpec.parse_arguments``):
strictly (``"5"`` is not an int), and a type JSON carries as text or as an array gets the
text or array its schema shows the model (a datetime as ISO 8601, a UUID, an enum's value,
a tuple, a set). Pydantic models and dataclasses are objects. A type whose value could not
be recorded faithfully is refused when the tool is defined: bytes (a model writes text),
secrets (the audit log would keep a mask), ``Json[...]`` (text inside text) and iterators
(read once, by whoever reads first). The audit log, the approval hash and the policies see
the canonical JSON of the validated values (``core.canonical.to_json_form``); for any type
but plain JSON data each call checks that this JSON reads back as the same values.
"""

from __future__ import annotations

import collections.abc
import contextlib
import dataclasses
import inspect
import re
import types
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
    # Every parameter is plain JSON data (str, int, float, bool, Decimal, None, Any, and
    # lists, str-keyed dicts, unions and literals of those): its validated values are the
    # JSON the model sent, so a call need not check that its record reads back the same.
    plain_arguments: bool = True

    def parse_arguments(self, json_text: str) -> pydantic.BaseModel:
        """Validate arguments given as JSON text, the way a model sends them.

        Strict, nested models included, with JSON's own forms for other types (see the
        module docstring); amounts (``Decimal``) also accept numeric strings.

        Raises:
            pydantic.ValidationError: the arguments do not match the schema.
        """
        return self.arguments_model.model_validate_json(json_text, strict=True)

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
        lazy = _lazy_part(annotation, set())
        if lazy is not None:
            raise ToolDefinitionError(
                f"{where}: parameter {param.name!r} is an iterator ({lazy!r}), which is "
                "read once, by whoever reads it first: Charter records and checks the "
                "arguments before the tool runs. Take a list instead"
            )
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
    for prop_name, prop in schema.get("properties", {}).items():
        problem = _unrecordable(prop, schema.get("$defs", {}), set())
        if problem is not None:
            raise ToolDefinitionError(f"{where}: parameter {prop_name!r} {problem}")
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
        plain_arguments=all(_plain(annotation) for annotation, _ in fields.values()),
    )


_PLAIN_LEAVES: frozenset[Any] = frozenset(
    {str, int, float, bool, Decimal, type(None), Any, object, list, dict}
)
_LAZY: frozenset[Any] = frozenset(
    {
        collections.abc.Iterable,
        collections.abc.Iterator,
        collections.abc.Generator,
        collections.abc.AsyncIterable,
        collections.abc.AsyncIterator,
        collections.abc.AsyncGenerator,
    }
)


def _plain(annotation: Any) -> bool:
    """Whether values of this type are plain JSON data once validated (see ``ToolSpec``)."""
    if _one_of(annotation, _PLAIN_LEAVES):
        return True
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return all(type(a) in (str, int, bool, type(None)) for a in args)
    if origin in (typing.Union, types.UnionType, list):
        return all(_plain(a) for a in args)
    if origin is dict:
        return args[0] is str and _plain(args[1])
    return False  # anything else (Annotated too: its validators may change the value)


def _one_of(annotation: Any, kinds: frozenset[Any]) -> bool:
    try:
        return annotation in kinds
    except TypeError:  # an unhashable type argument (Callable[[int], int]) is none of them
        return False


def _lazy_part(annotation: Any, seen: set[int]) -> Any:
    """The iterator type inside ``annotation`` (in its type arguments, or the fields of a
    model or dataclass it names), or None."""
    if id(annotation) in seen:
        return None
    seen.add(id(annotation))
    if _one_of(annotation, _LAZY) or _one_of(typing.get_origin(annotation), _LAZY):
        return annotation
    inner: list[Any] = list(typing.get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        inner += [f.annotation for f in annotation.model_fields.values()]
    elif isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        with contextlib.suppress(Exception):  # pydantic reports hints it cannot read
            inner += list(typing.get_type_hints(annotation).values())
    for part in inner:
        found = _lazy_part(part, seen)
        if found is not None:
            return found
    return None


def _unrecordable(node: Any, defs: Mapping[str, Any], seen: set[str]) -> str | None:
    """Why a value matching this JSON schema could not be recorded, or None (see the module
    docstring). Follows ``$ref`` into ``defs``, so types inside models count too."""
    if isinstance(node, list):
        for item in node:
            problem = _unrecordable(item, defs, seen)
            if problem is not None:
                return problem
        return None
    if not isinstance(node, dict):
        return None
    if node.get("format") in ("binary", "base64", "base64url"):
        return (
            "holds bytes, which a model cannot write: JSON carries text. Take a str "
            "(and decode it in the tool if it is base64)"
        )
    if node.get("writeOnly") or node.get("format") == "password":
        return (
            "holds a secret (SecretStr, SecretBytes), which the audit log could only keep "
            "masked, so no record would say what the call was given. A credential the "
            "tool needs is ToolContext.credential; take anything else as a str"
        )
    if "contentMediaType" in node or "contentSchema" in node:
        return (
            "holds JSON text (Json[...]), data inside a string, which the audit log "
            "would record as the parsed data. Take the data itself (a model or a dict)"
        )
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        name = ref.removeprefix("#/$defs/")
        if name not in seen:
            seen.add(name)
            problem = _unrecordable(defs.get(name), defs, seen)
            if problem is not None:
                return problem
    for key, value in node.items():
        if key != "$ref" and isinstance(value, dict | list):
            problem = _unrecordable(value, defs, seen)
            if problem is not None:
                return problem
    return None


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
