"""Checks: what must be true after a task's run, read from what actually happened.

Every check reads the ``Evidence`` of a finished run: the calls that *executed* (a proposed,
denied, held or discarded call never counts, and a deferred email counts once it was sent),
the systems' final state and the messages that really left them, the run's outcome, answer
and totals. Nothing a model merely proposed can make a check pass.

In a suite a check is a one-key mapping, ``{outcome: succeeded}``; ``parse_check`` turns it
into a ``Check`` or says precisely what is wrong with it.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from charter.core.errors import UserError
from charter.core.imports import import_named
from charter.evaluation.matchers import Matcher, MatcherError
from charter.evaluation.pii import find_pii
from charter.execution.agent import RunResult
from charter.execution.call import ToolResult

__all__ = [
    "CHECK_NAMES",
    "Check",
    "CheckError",
    "CheckResult",
    "Evidence",
    "parse_check",
]

_OUTCOMES = frozenset(
    {"succeeded", "failed", "escalated", "denied", "budget_exceeded", "approval_required", "killed"}
)


class CheckError(ValueError):
    """A check is written wrongly. ``path`` locates the bad part inside the check."""

    def __init__(self, message: str, path: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.path = path


@dataclass(frozen=True, slots=True)
class Evidence:
    """What a finished run really did, as checks see it."""

    result: RunResult
    state: Mapping[str, Any]
    messages: Sequence[Mapping[str, Any]]

    @property
    def executed(self) -> list[ToolResult]:
        """Every call that ran, Charter's own compensations included (they are effects)."""
        return [call for call in self.result.tool_calls if call.outcome == "executed"]

    @property
    def agent_calls(self) -> list[ToolResult]:
        """The executed calls the agent made: without compensations, which Charter runs
        itself when a run fails (a budget counts the agent's calls, not its clean-up)."""
        return [c for c in self.executed if not c.decision.rule_id.endswith(".compensate")]


@dataclass(frozen=True, slots=True)
class CheckResult:
    check: str
    passed: bool
    detail: str
    line: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "passed": self.passed,
            "detail": self.detail,
            "line": self.line,
        }


@dataclass(frozen=True, slots=True)
class Check:
    """One parsed check. ``tools`` are the tool names it refers to (checked against the
    charter by the runner, so a typo is an error, not a check that can never fail)."""

    name: str
    evaluate: Callable[[Evidence], tuple[bool, str]] = field(repr=False)
    tools: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (tool, argument names)
    line: int = 0

    def run(self, evidence: Evidence) -> CheckResult:
        try:
            passed, detail = self.evaluate(evidence)
        except Exception as exc:  # a check that breaks fails, saying why
            passed, detail = False, f"the check raised {type(exc).__name__}: {exc}"
        return CheckResult(self.name, passed, detail, self.line)


def parse_check(spec: Any, *, line: int = 0) -> Check:
    """Build a check from its suite form.

    Raises:
        CheckError: unknown check, wrong parameters, bad matcher, unimportable custom check.
    """
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise CheckError(
            "a check is a mapping with one key naming it, e.g. {outcome: succeeded}; "
            f"checks: {', '.join(CHECK_NAMES)}"
        )
    ((name, params),) = spec.items()
    builder = _BUILDERS.get(str(name))
    if builder is None:
        raise CheckError(f"unknown check {name!r}; use one of {', '.join(CHECK_NAMES)}", (name,))
    try:
        check = builder(params)
    except CheckError as exc:
        raise CheckError(str(exc), (name, *exc.path)) from None
    except MatcherError as exc:
        raise CheckError(f"{name}: {exc}", (name,)) from None
    return Check(check.name, check.evaluate, check.tools, line)


# -- parameter helpers ---------------------------------------------------------------------


def _mapping(
    params: Any, name: str, allowed: Sequence[str], required: Sequence[str] = ()
) -> dict[str, Any]:
    if not isinstance(params, Mapping):
        raise CheckError(f"{name} takes a mapping with keys {', '.join(allowed)}, got {params!r}")
    for key in params:
        if key not in allowed:
            raise CheckError(
                f"unknown key {key!r} in {name}; allowed: {', '.join(allowed)}", (str(key),)
            )
    for key in required:
        if key not in params:
            raise CheckError(f"{name} needs {key!r}")
    return dict(params)


def _text_list(value: Any, what: str, path: tuple[str | int, ...] | None = None) -> list[str]:
    """``path`` locates the value (default: the key ``what``)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
        raise CheckError(
            f"{what} takes text or a non-empty list of text, got {value!r}",
            (what,) if path is None else path,
        )
    return items


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise CheckError(f"{what} takes a whole number >= 0, got {value!r}", (what,))
    return value


def _tool_name(value: Any, check: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise CheckError(f"{check} 'tool' takes a tool name (text), got {value!r}", ("tool",))
    return value


# -- the built-in checks -------------------------------------------------------------------


def _outcome(params: Any) -> Check:
    wanted = _text_list(params, "outcome", ())
    unknown = [o for o in wanted if o not in _OUTCOMES]
    if unknown:
        raise CheckError(
            f"unknown outcome {unknown[0]!r}; use one of {', '.join(sorted(_OUTCOMES))}"
        )

    def evaluate(ev: Evidence) -> tuple[bool, str]:
        ok = ev.result.outcome in wanted
        want = " or ".join(wanted)
        return ok, f"the run ended {ev.result.outcome} ({ev.result.reason[:200]}); expected {want}"

    return Check("outcome", evaluate)


def _argument_matchers(raw: Any) -> dict[str, Matcher]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise CheckError(
            f"args takes a mapping of argument name to matcher, got {raw!r}", ("args",)
        )
    matchers: dict[str, Matcher] = {}
    for key, spec in raw.items():
        try:
            matchers[str(key)] = Matcher.parse(spec)
        except MatcherError as exc:
            raise CheckError(f"args.{key}: {exc}", ("args", str(key))) from None
    return matchers


def _matching_calls(ev: Evidence, tool: str, matchers: Mapping[str, Matcher]) -> list[ToolResult]:
    return [
        call
        for call in ev.executed
        if call.tool == tool
        and all(
            m.test(call.arguments.get(k), present=k in call.arguments) for k, m in matchers.items()
        )
    ]


def _describe_call(tool: str, matchers: Mapping[str, Matcher]) -> str:
    shown = ", ".join(f"{k} {m.describe()}" for k, m in matchers.items())
    return f"{tool}({shown})" if shown else tool


def _tool_called(params: Any) -> Check:
    p = _mapping(
        params, "tool_called", ("tool", "args", "times", "min_times", "max_times"), ("tool",)
    )
    tool = _tool_name(p["tool"], "tool_called")
    matchers = _argument_matchers(p.get("args"))
    exact = _count(p["times"], "times") if "times" in p else None
    if exact is not None and ("min_times" in p or "max_times" in p):
        raise CheckError(
            "tool_called takes either times or min_times/max_times, not both", ("times",)
        )
    low = _count(p.get("min_times", 1), "min_times") if exact is None else exact
    high = _count(p["max_times"], "max_times") if "max_times" in p else exact
    if high is not None and low > high:
        raise CheckError(
            f"tool_called max_times {high} is below min_times {low} (which defaults to 1), "
            "so it can never pass; use tool_not_called for a call that must not happen",
            ("max_times",),
        )

    def evaluate(ev: Evidence) -> tuple[bool, str]:
        n = len(_matching_calls(ev, tool, matchers))
        ok = n >= low and (high is None or n <= high)
        want = (
            f"exactly {exact}"
            if exact is not None
            else f"at least {low}" + (f" and at most {high}" if high is not None else "")
        )
        return ok, f"{_describe_call(tool, matchers)} executed {n} time(s); expected {want}"

    return Check("tool_called", evaluate, ((tool, tuple(matchers)),))


def _tool_not_called(params: Any) -> Check:
    p = _mapping(params, "tool_not_called", ("tool", "args"), ("tool",))
    tool = _tool_name(p["tool"], "tool_not_called")
    matchers = _argument_matchers(p.get("args"))

    def evaluate(ev: Evidence) -> tuple[bool, str]:
        calls = _matching_calls(ev, tool, matchers)
        if not calls:
            return True, f"{_describe_call(tool, matchers)} never executed"
        return (
            False,
            f"{_describe_call(tool, matchers)} executed {len(calls)} time(s): "
            + "; ".join(str(c.arguments)[:200] for c in calls[:3]),
        )

    return Check("tool_not_called", evaluate, ((tool, tuple(matchers)),))


_MISSING = object()
_INDEX = re.compile(r"-?[0-9]+")


def _resolve(state: Any, path: str) -> Any:
    """The value at a dotted ``path``; ``*`` maps over every item (a list results)."""
    nodes: list[Any] = [state]
    wildcard = False
    for part in path.split("."):
        next_nodes: list[Any] = []
        for node in nodes:
            if part == "*":
                wildcard = True
                if isinstance(node, Mapping):
                    next_nodes.extend(node.values())
                elif isinstance(node, list):
                    next_nodes.extend(node)
            elif isinstance(node, Mapping) and part in node:
                next_nodes.append(node[part])
            elif (
                isinstance(node, list)
                and _INDEX.fullmatch(part)
                and -len(node) <= int(part) < len(node)
            ):
                next_nodes.append(node[int(part)])
        nodes = next_nodes
    if wildcard:
        return nodes
    return nodes[0] if nodes else _MISSING


def _state(params: Any) -> Check:
    if not isinstance(params, Mapping) or "path" not in params:
        raise CheckError(
            "state takes {path: 'a.b.c', <operator>: value}, "
            "e.g. {path: tickets.T-1001.status, equals: closed}"
        )
    path = params["path"]
    if not isinstance(path, str) or not path or any(not part for part in path.split(".")):
        raise CheckError(
            f"state path must be dotted text like 'tickets.T-1001.status', got {path!r}", ("path",)
        )
    rest = {k: v for k, v in params.items() if k != "path"}
    try:
        matcher = Matcher.parse(rest)
    except MatcherError as exc:
        raise CheckError(f"state: {exc}") from None

    def evaluate(ev: Evidence) -> tuple[bool, str]:
        value = _resolve(ev.state, path)
        present = value is not _MISSING
        ok = matcher.test(value if present else None, present=present)
        shown = repr(value)[:200] if present else "missing"
        return ok, f"{path} is {shown}; expected {matcher.describe()}"

    return Check("state", evaluate)


def _messages(params: Any) -> Check:
    p = _mapping(params, "messages", ("allowed_domains", "templates", "max", "to"))
    domains = (
        [d.casefold() for d in _text_list(p["allowed_domains"], "allowed_domains")]
        if "allowed_domains" in p
        else None
    )
    templates = _text_list(p["templates"], "templates") if "templates" in p else None
    most = _count(p["max"], "max") if "max" in p else None
    try:
        to = Matcher.parse(p["to"]) if "to" in p else None
    except MatcherError as exc:
        raise CheckError(f"messages 'to': {exc}", ("to",)) from None
    if domains is None and templates is None and most is None and to is None:
        raise CheckError("messages needs at least one of allowed_domains, templates, max, to")

    def evaluate(ev: Evidence) -> tuple[bool, str]:
        problems: list[str] = []
        for message in ev.messages:
            address = str(message.get("to", ""))
            domain = address.rsplit("@", 1)[-1].casefold() if "@" in address else ""
            if domains is not None and domain not in domains:
                problems.append(f"sent to {address!r} outside {', '.join(domains)}")
            if templates is not None and message.get("template") not in templates:
                problems.append(f"template {message.get('template')!r} to {address!r} not allowed")
            if to is not None and not to.test(address):
                problems.append(f"sent to {address!r}; expected to {to.describe()}")
        if most is not None and len(ev.messages) > most:
            problems.append(f"{len(ev.messages)} messages sent, at most {most} allowed")
        if problems:
            return False, "; ".join(problems[:5])
        return True, f"{len(ev.messages)} message(s) sent, all within the rules"

    return Check("messages", evaluate)


def _no_pii(params: Any) -> Check:
    p = _mapping(params if params is not None else {}, "no_pii", ("in", "allow"))
    where = _text_list(p.get("in", ["output", "messages"]), "in")
    bad = [w for w in where if w not in ("output", "messages")]
    if bad:
        raise CheckError(f"no_pii 'in' takes output and/or messages, got {bad[0]!r}", ("in",))
    allow = _text_list(p["allow"], "allow") if "allow" in p else []

    def evaluate(ev: Evidence) -> tuple[bool, str]:
        findings: list[str] = []
        if "output" in where:
            findings += [
                f"answer: {f.shown()}" for f in find_pii(ev.result.final_text, allow=allow)
            ]
        if "messages" in where:
            for message in ev.messages:
                # The recipient's own address in their message is not a leak.
                own = [*allow, str(message.get("to", ""))]
                text = f"{message.get('subject', '')}\n{message.get('body', '')}"
                findings += [
                    f"message to {message.get('to')!r}: {f.shown()}"
                    for f in find_pii(text, allow=own)
                ]
        if findings:
            return False, f"personal data found: {'; '.join(findings[:5])}"
        return True, f"no personal data in {' or '.join(where)}"

    return Check("no_pii", evaluate)


def _limits(params: Any) -> Check:
    p = _mapping(params, "limits", ("cost_usd", "tokens", "tool_calls"))
    if not p:
        raise CheckError("limits needs at least one of cost_usd, tokens, tool_calls")
    try:
        cost = Matcher.parse({"lte": p["cost_usd"]}) if "cost_usd" in p else None
    except MatcherError:
        raise CheckError(
            f"cost_usd takes a number of dollars, got {p['cost_usd']!r}", ("cost_usd",)
        ) from None
    tokens = _count(p["tokens"], "tokens") if "tokens" in p else None
    calls = _count(p["tool_calls"], "tool_calls") if "tool_calls" in p else None

    def evaluate(ev: Evidence) -> tuple[bool, str]:
        r = ev.result
        executed = len(ev.agent_calls)
        parts: list[tuple[bool, str]] = []
        if cost is not None:
            parts.append((cost.test(r.cost_usd), f"cost ${r.cost_usd} (limit ${cost.expected})"))
        if tokens is not None:
            parts.append((r.total_tokens <= tokens, f"{r.total_tokens} tokens (limit {tokens})"))
        if calls is not None:
            parts.append((executed <= calls, f"{executed} tool calls executed (limit {calls})"))
        return all(ok for ok, _ in parts), ", ".join(text for _, text in parts)

    return Check("limits", evaluate)


def _output(params: Any) -> Check:
    try:
        matcher = Matcher.parse(params)
    except MatcherError as exc:
        raise CheckError(f"output: {exc}") from None
    if matcher.operator not in ("contains", "not_contains", "matches", "equals"):
        raise CheckError("output takes one of contains, not_contains, matches, equals")

    def evaluate(ev: Evidence) -> tuple[bool, str]:
        text = ev.result.final_text
        return matcher.test(text), f"the answer {text[:160]!r}; expected {matcher.describe()}"

    return Check("output", evaluate)


def _custom(params: Any) -> Check:
    p = _mapping(params, "custom", ("function", "with"), ("function",))
    path = p["function"]
    if not isinstance(path, str) or path.count(":") != 1:
        raise CheckError(
            f"custom function must be 'package.module:function', got {path!r}", ("function",)
        )
    module_name, attribute = path.split(":")
    try:
        # Any error, SystemExit included, is a UserError; output is kept out of Charter's.
        function = getattr(import_named(module_name).module, attribute)
    except (UserError, AttributeError) as exc:
        raise CheckError(
            f"custom function {path!r} cannot be imported: {exc}", ("function",)
        ) from None
    if not callable(function):
        raise CheckError(f"custom function {path!r} is not callable", ("function",))
    arguments = p.get("with", {})
    if not isinstance(arguments, Mapping):
        raise CheckError("custom 'with' takes a mapping of keyword arguments", ("with",))
    try:
        signature = inspect.signature(function)
    except ValueError:  # some built-ins have none: the call itself will tell
        signature = None
    try:
        if signature is not None:
            signature.bind(None, **arguments)
    except TypeError as exc:
        raise CheckError(
            f"custom function {path!r} does not accept these arguments: {exc}", ("with",)
        ) from None

    def evaluate(ev: Evidence) -> tuple[bool, str]:
        verdict = function(ev, **arguments)
        if isinstance(verdict, tuple) and len(verdict) == 2 and isinstance(verdict[0], bool):
            # Only a real bool: a truthy list of problems must not read as a pass.
            return verdict[0], str(verdict[1])
        if isinstance(verdict, bool):
            return verdict, f"{path} returned {verdict}"
        raise TypeError(f"{path} must return bool or (bool, detail), got {type(verdict).__name__}")

    return Check(f"custom:{attribute}", evaluate)


_BUILDERS: dict[str, Callable[[Any], Check]] = {
    "outcome": _outcome,
    "tool_called": _tool_called,
    "tool_not_called": _tool_not_called,
    "state": _state,
    "messages": _messages,
    "no_pii": _no_pii,
    "limits": _limits,
    "output": _output,
    "custom": _custom,
}
CHECK_NAMES: tuple[str, ...] = tuple(_BUILDERS)
