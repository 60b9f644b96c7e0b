"""Rendering the run inspector for people: timelines and plain tables (``--json`` aside).

A run's timeline is a tree: the run's header (who, which charter version, how it ended and
why, what it used against its budgets), then one branch per step in time order, with each
approval request under the call that filed it. Every refusal shows its verdict, rule id and
reason on its own line, so a denied or blocked call is explained right where it happened.
Text from the run (arguments, reasons) is never read as markup: ``[rule]`` stays as typed.
Tool calls carry the run's step (``send_email #3``): a deferred call and its send or
discard, and a write and its compensation, share it, and each says what became of the other.

Lists (``runs list``, ``cost``) are plain columns, one line per row, never wrapped or cropped
to the terminal: an operator greps them, and a run id cut to ``run_01a2…`` is useless.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from rich.text import Text
from rich.tree import Tree

from charter.cli.output import console
from charter.cli.render import OUTCOME_STYLE
from charter.core.money import format_usd
from charter.observability.timeline import (
    ApprovalView,
    ModelCallStep,
    RunEdgeStep,
    Step,
    Timeline,
    ToolCallStep,
    Usage,
)
from charter.observability.timeline_model import settles

__all__ = ["format_duration", "print_columns", "print_timeline"]

# Characters of a call's arguments, and of any one value in them; --json has them all.
_ARGUMENTS_SHOWN: Final = 400
_VALUE_SHOWN: Final = 60
_DONE: Final = frozenset({"executed", "deferred"})
_PHASE_LABEL: Final = {
    "call": "tool",
    "send": "send (deferred)",
    "discard": "discard (deferred)",
    "compensate": "compensate",
}
_NOT_FILED: Final = (
    "no approval request was filed: the run could not wait for a decision (a durable run, "
    "charter run --durable or --detach, files one and waits)"
)
_APPROVAL_STYLE: Final = {"pending": "yellow", "approved": "green", "executed": "green"}
_FATE: Final = {"send": "sent as", "discard": "discarded as", "compensate": "taken back as"}
_QUEUED: Final = "queued: runs only once the whole run has succeeded"
_UNSETTLED: Final = "queued; no send or discard of it is recorded"
_UNPAIRED: Final = (
    "not paired with a call: its record names no step of this run (recorded before steps "
    "named effects)"
)


def print_timeline(timeline: Timeline) -> None:
    """The run's header and its steps as a tree, on stdout."""
    tree = Tree(_title(timeline))
    for line in _header_lines(timeline):
        tree.add(line)
    steps = tree.add(Text("timeline", style="bold"))
    pairs = _Pairs(timeline)
    for step in timeline.steps:
        _add_step(steps, step, pairs)
    if not timeline.steps:
        steps.add(Text("(no steps recorded)", style="dim"))
    for note in timeline.notes:
        tree.add(Text(f"note: {note}", style="dim"))
    console.print(tree)


def print_columns(
    header: Sequence[str], rows: Sequence[Sequence[str | Text]], *, right: Collection[int] = ()
) -> None:
    """Aligned columns, one line per row (the columns numbered in ``right`` aligned right).

    Cells are plain text or ``Text`` (kept styled, never read as markup).
    """
    table = [[Text(h, style="bold") for h in header]]
    table += [[c if isinstance(c, Text) else Text(c) for c in row] for row in rows]
    widths = [max(len(row[i].plain) for row in table) for i in range(len(header))]
    for row in table:
        line = Text()
        for i, cell in enumerate(row):
            pad = " " * (widths[i] - len(cell.plain))
            line.append_text(Text(pad) + cell if i in right else cell + Text(pad))
            if i < len(row) - 1:
                line.append("  ")
        line.rstrip()
        console.print(line, soft_wrap=True)


def format_duration(seconds: float) -> str:
    """``850 ms``, ``12.3 s``, ``4m 05s``, ``2h 03m``: short, and exact enough for a wait."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms" if seconds >= 0.001 else f"{seconds * 1000:.2f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def _title(t: Timeline) -> Text:
    return Text.assemble(
        ("run ", "bold"),
        (t.run_id, "bold"),
        f": {t.charter} @ {t.charter_sha256[:12]}, tenant {t.tenant}, user {t.user}, "
        f"{t.environment or '?'}",
    )


def _header_lines(t: Timeline) -> list[Text]:
    outcome = Text.assemble("outcome: ", (t.outcome, OUTCOME_STYLE.get(t.outcome, "yellow")))
    if t.reason:
        outcome.append(f": {t.reason}")
    if t.rule_id:
        outcome.append(f" [rule {t.rule_id}]")
    for approval in t.pending_approvals:
        outcome.append(f" (approval {approval.id} pending)", style="yellow")
    lines = [outcome]
    when = f"started {_when(t.started_at)}"
    if t.finished_at is not None:
        when += f", ended {_when(t.finished_at)}"
    if t.usage is not None and t.usage.elapsed_seconds is not None:
        limit = t.limits.overall_seconds if t.limits else None
        allowed = f", of {format_duration(limit)} allowed" if limit else ""
        when += f" ({format_duration(t.usage.elapsed_seconds)} of its own time{allowed})"
    lines.append(Text(f"{when}; model {t.model or '?'}; trace {t.trace_id or '-'}"))
    if t.usage is not None:
        u, limits = t.usage, t.limits
        tokens = _of(_known(u.total_tokens), limits and limits.max_total_tokens)
        calls = _of(_known(u.tool_calls), limits and limits.max_tool_calls)
        cost = _of(_usd(u.cost_usd) or "?", _usd(limits.max_usd_per_run) if limits else None)
        # A run that has not ended has no totals yet: they are counted from the timeline
        # below (model calls from stored spans; fees as audited), so far.
        used = "used" if u.final else "used so far"
        lines.append(
            Text(
                f"{used}: {_known(u.model_calls)} model calls, {tokens} tokens, {calls} tool "
                f"calls ({_known(u.denied_calls)} denied, {_known(u.tool_errors)} failed), "
                f"cost {cost} (model "
                f"{_usd(u.model_cost_usd) or '?'} + tool fees {_usd(u.tool_fees_usd) or '?'})"
                + _why_unknown(u, compared=limits is not None)
            )
        )
    return lines


def _known(value: int | None) -> str:
    return "?" if value is None else str(value)


def _why_unknown(u: Usage, *, compared: bool) -> str:
    """What the ``?`` figures need, and how to compare with the budgets."""
    notes = []
    if u.unreadable:
        notes.append(f"unreadable in the database (no amount): {', '.join(u.unreadable)}")
    if u.model_calls is None and "model_calls" not in u.unreadable:
        notes.append("model calls: no spans are stored for this run")
    if u.tool_fees_usd is None and not u.final and "tool_fees_usd" not in u.unreadable:
        notes.append("tool fees: a call was recorded before fees were audited")
    if not compared:
        notes.append("budgets: pass --charter FILE to compare")
    return "".join(f"; {note}" for note in notes)


def _of(used: str, limit: object) -> str:
    return used if limit is None else f"{used} of {limit}"


def _usd(value: Decimal | None) -> str | None:
    return None if value is None else format_usd(value)


class _Pairs:
    """Which call each send, discard and compensation settles, by the run's step (the same
    rule as ``Timeline.settlements``, indexed once for the whole tree)."""

    def __init__(self, timeline: Timeline) -> None:
        self.start = timeline.started_at
        self.ended = timeline.ended
        tools = [s for s in timeline.steps if isinstance(s, ToolCallStep) and s.step is not None]
        self._calls: dict[int | None, list[ToolCallStep]] = {}
        self._effects: dict[int | None, list[ToolCallStep]] = {}
        for s in tools:
            (self._calls if s.phase == "call" else self._effects).setdefault(s.step, []).append(s)

    def settlements(self, call: ToolCallStep) -> list[ToolCallStep]:
        return [e for e in self._effects.get(call.step, ()) if settles(e, call)]

    def settled_call(self, effect: ToolCallStep) -> ToolCallStep | None:
        calls = [c for c in self._calls.get(effect.step, ()) if settles(effect, c)]
        return calls[-1] if calls else None

    def offset(self, at: datetime) -> str:
        return _offset(at, self.start)


def _add_step(parent: Tree, step: Step, pairs: _Pairs) -> None:
    at = Text(f"{pairs.offset(step.at):>9}  ", style="dim")
    if isinstance(step, RunEdgeStep):
        label = at + Text(step.kind.replace("_", " "), style="bold")
        if step.kind == "run_finished":
            label.append(": ")
            label.append(step.outcome, style=OUTCOME_STYLE.get(step.outcome, "yellow"))
            if step.reason:
                label.append(f": {step.reason}")
            if step.rule_id:
                label.append(f" [rule {step.rule_id}]")
        parent.add(label)
    elif isinstance(step, ModelCallStep):
        cost = "cost unknown" if step.cost_usd is None else format_usd(step.cost_usd)
        label = at + Text.assemble(
            ("model ", "cyan"),
            f"{step.model}: {step.input_tokens} in / {step.output_tokens} out tokens, {cost}, "
            f"{format_duration(step.duration_ms / 1000)}",
        )
        if step.error:
            label.append(f" ({step.status}: {step.error})", style="red")
        parent.add(label)
    else:
        _add_tool_call(parent, at, step, pairs)


def _add_tool_call(parent: Tree, at: Text, step: ToolCallStep, pairs: _Pairs) -> None:
    style = "green" if step.outcome in _DONE else OUTCOME_STYLE.get(step.outcome, "red")
    label = at + Text.assemble(
        (_PHASE_LABEL[step.phase], "magenta" if step.phase != "call" else "cyan"),
        " ",
        (step.tool, "bold"),
        f" #{step.step}" if step.step is not None else "",
        " ",
        _arguments(step.arguments),
        " -> ",
        (step.outcome, style),
    )
    if step.duration_ms is not None:
        label.append(f" ({format_duration(step.duration_ms / 1000)})", style="dim")
    node = parent.add(label)
    stage = f" at {step.stage}" if step.stage else ""
    node.add(Text(f"{step.verdict or '-'}{stage} [rule {step.rule_id or '-'}]: {step.reason}"))
    if (
        step.detail
        and step.outcome not in _DONE
        and not step.detail.startswith(("DENIED:", "APPROVAL REQUIRED:"))
    ):
        # Errors and timeouts: what went wrong (refusals already say it in the reason).
        node.add(Text(step.detail, style="red"))
    elif step.detail and step.outcome == "executed":
        node.add(Text(step.detail, style="yellow"))  # e.g. a kill it outran: it still ran
    _add_pairing(node, step, pairs)
    if step.approval is not None:
        _add_approval(node, step.approval)
    elif step.outcome == "approval_required" and step.phase == "call":
        # An in-process run cannot wait for a decision, so its call filed nothing.
        node.add(Text(_NOT_FILED, style="yellow"))


def _add_pairing(node: Tree, step: ToolCallStep, pairs: _Pairs) -> None:
    """What became of a deferred call or a write, or which call an effect settles."""
    if step.phase != "call":
        call = pairs.settled_call(step)
        if call is None:
            node.add(Text(_UNPAIRED, style="dim"))
            return
        what = "takes back" if step.phase == "compensate" else "of the deferred call"
        node.add(Text(f"{what} {call.tool} #{call.step} at {pairs.offset(call.at)}", style="dim"))
        return
    settled = pairs.settlements(step)
    for effect in settled:
        line = Text(f"{_FATE[effect.phase]} #{effect.step} at {pairs.offset(effect.at)}")
        if effect.phase != "discard":  # a discard's outcome is always discarded
            style = "green" if effect.outcome in _DONE else OUTCOME_STYLE.get(effect.outcome, "red")
            line += Text(" -> ") + Text(effect.outcome, style=style)
        node.add(line)
    if step.outcome == "deferred" and not settled:
        node.add(Text(_UNSETTLED if pairs.ended else _QUEUED, style="dim"))


def _add_approval(parent: Tree, a: ApprovalView) -> None:
    label = Text.assemble(
        "approval ", (a.id, "bold"), ": ", (a.status, _APPROVAL_STYLE.get(a.status, "red"))
    )
    if a.requested_at is not None:
        label.append(f", requested {_when(a.requested_at)}")
    node = parent.add(label)
    if a.decided_at is not None:
        decided = f"decided by {a.decided_by or '?'} at {_when(a.decided_at)}"
        if a.decision_reason:
            decided += f": {a.decision_reason}"
        node.add(Text(decided))
    elif a.status == "pending" and a.expires_at is not None:
        node.add(Text(f"no decision yet; expires {_when(a.expires_at)}", style="yellow"))
    elif a.status == "expired":
        node.add(Text("expired without a decision (counts as rejected)", style="red"))
    if a.wait_seconds is not None:
        waited = format_duration(a.wait_seconds)
        pending = a.status == "pending"
        node.add(Text(f"waiting {waited} so far" if pending else f"waited {waited}", style="dim"))


def _arguments(arguments: Any) -> str:
    if arguments is None:
        return "(arguments not recorded)"
    # Long values are clipped one by one, so every argument (the short "to" after a long
    # "body", say) stays in sight.
    text = json.dumps(_clipped(arguments), ensure_ascii=False, sort_keys=True, default=str)
    if len(text) <= _ARGUMENTS_SHOWN:
        return text
    return f"{text[:_ARGUMENTS_SHOWN]}... ({len(text) - _ARGUMENTS_SHOWN} more characters)"


def _clipped(value: Any) -> Any:
    if isinstance(value, str) and len(value) > _VALUE_SHOWN:
        return f"{value[:_VALUE_SHOWN]}... ({len(value) - _VALUE_SHOWN} more)"
    if isinstance(value, dict):
        return {key: _clipped(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_clipped(item) for item in value]
    return value


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else "?"


def _offset(at: datetime, start: datetime | None) -> str:
    if start is None:
        return at.strftime("%H:%M:%S")
    seconds = (at - start) / timedelta(seconds=1)
    if seconds < 60:
        return f"+{max(seconds, 0):.3f}s"
    return f"+{format_duration(seconds).replace(' ', '')}"
