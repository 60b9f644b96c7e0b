"""Earned autonomy: the evidence that a tool no longer needs (or needs again) human approval.

A tool behind a ``policies.require_approval_for`` rule earns running without it when humans
have approved its calls consistently: ``autonomy_report`` counts the decisions taken on its
approval requests (and reads an eval report of the same charter, when given) and proposes,
per tool, one of:

``to_autonomous``
    the tool has approval rules, an ``autonomy:`` rule, at least ``min_decisions`` decisions
    at a rejection rate of at most ``max_rejection_rate``, and (with an eval report) a golden
    pass rate of at least ``min_eval_pass_rate`` with every security task passed.
``to_approval``
    the tool has an ``autonomy:`` rule and no approval rule, and the evidence is bad: its
    rejection rate (from decisions recorded while it still needed approval) is above the
    maximum, or the eval report's golden pass rate is below the minimum or a security task
    failed.
``keep``
    anything else, with the reasons (``12 decisions, needs 50``).

Nothing changes by itself: ``proposed_charter_text`` gives the charter file with the moves
made (approval rules removed, or an ``any: true`` rule added), for a human to review, write
to a new directory and release (``charter release create``). The live file is never edited.

Counting: ``approved`` includes approvals already used (``executed``); a decision is an
approval or a rejection. Expired, terminated (withdrawn), escalated and pending requests are
not decisions. Charter binds an approval to the exact arguments of the call (by their
SHA-256), so an approver can only grant or refuse a call, never change it: every approval is
"granted unchanged" and ``modified`` is always 0.
"""

from __future__ import annotations

import copy
import io
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from sqlalchemy import case, func, select
from sqlalchemy.exc import SQLAlchemyError

from charter.contract.loader import Charter, derive_charter
from charter.contract.schema import AutonomyRule, CharterSpec
from charter.contract.yaml_schema import plain
from charter.contract.yaml_source import clip, load_yaml
from charter.core.clock import Clock, SystemClock, as_utc
from charter.core.errors import CharterInvalid, DatabaseUnavailable, Problem, UserError
from charter.storage.database import Database
from charter.storage.migrate import ensure_schema
from charter.storage.tables import approval_requests

__all__ = [
    "MODIFIED_NOTE",
    "ApprovalEvidence",
    "AutonomyReport",
    "EvalEvidence",
    "Proposal",
    "ToolAutonomy",
    "autonomy_report",
    "proposed_charter_text",
]

Proposal = Literal["to_autonomous", "to_approval", "keep"]

MODIFIED_NOTE: Final = (
    "Charter binds an approval to the exact arguments of the call (by their SHA-256): an "
    "approver can grant or refuse a call but never change it, so every approval counts as "
    "granted unchanged and 'modified' is always 0"
)

_T = approval_requests.c
_APPROVED: Final = frozenset({"approved", "executed"})  # executed: approved, then used
_COUNTED: Final = ("rejected", "expired", "terminated", "escalated", "pending")


@dataclass(frozen=True, slots=True)
class ApprovalEvidence:
    """What humans decided on one tool's approval requests, in the report's window.

    Attributes:
        approved: requests approved (granted unchanged), used or not yet.
        rejected: requests rejected.
        expired: requests nobody decided in time (not decisions).
        terminated: requests withdrawn with their run (not decisions).
        escalated: requests handed on to someone else (not decisions).
        pending: requests still waiting.
        by_rule: requests per rule id that asked for approval.
        modified: approvals that changed the call; always 0 (see ``MODIFIED_NOTE``).
    """

    approved: int = 0
    rejected: int = 0
    expired: int = 0
    terminated: int = 0
    escalated: int = 0
    pending: int = 0
    by_rule: Mapping[str, int] = field(default_factory=dict)
    modified: int = 0

    @property
    def decisions(self) -> int:
        """Approvals plus rejections: the human judgements the rates are taken over."""
        return self.approved + self.rejected

    @property
    def rejection_rate(self) -> float | None:
        """Rejections over decisions, or None without any decision."""
        return self.rejected / self.decisions if self.decisions else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "approved": self.approved,
            "modified": self.modified,
            "rejected": self.rejected,
            "decisions": self.decisions,
            "rejection_rate": self.rejection_rate,
            "expired": self.expired,
            "terminated": self.terminated,
            "escalated": self.escalated,
            "pending": self.pending,
            "by_rule": dict(sorted(self.by_rule.items())),
        }


@dataclass(frozen=True, slots=True)
class EvalEvidence:
    """What an eval report of this very charter says.

    Attributes:
        report_id: the report's id (``evr_...``).
        golden_pass_rate: passed runs over runs of the golden tasks, or None if none ran.
        security_tasks: how many security tasks ran.
        security_failed: keys of the security tasks that did not pass in every epoch.
    """

    report_id: str
    golden_pass_rate: float | None
    security_tasks: int
    security_failed: tuple[str, ...]

    @property
    def all_security_passed(self) -> bool:
        """At least one security task ran and every one passed in every epoch."""
        return self.security_tasks > 0 and not self.security_failed

    def as_dict(self) -> dict[str, Any]:
        return {
            "report_id": self.report_id,
            "golden_pass_rate": self.golden_pass_rate,
            "security_tasks": self.security_tasks,
            "security_failed": list(self.security_failed),
            "all_security_passed": self.all_security_passed,
        }


@dataclass(frozen=True, slots=True)
class ToolAutonomy:
    """One tool's evidence and what the report proposes for it.

    Attributes:
        tool: the tool.
        rule: its ``autonomy:`` rule, or None (then it can only be kept as it is).
        approval_rules: indexes of the ``policies.require_approval_for`` rules naming it.
        evidence: the decisions taken on its approval requests.
        proposal: ``to_autonomous``, ``to_approval`` or ``keep``.
        reasons: why, in words (``12 decisions, needs 50``).
        notes: approval that the proposal does not touch (tainted arguments, raw Cedar).
    """

    tool: str
    rule: AutonomyRule | None
    approval_rules: tuple[int, ...]
    evidence: ApprovalEvidence
    proposal: Proposal
    reasons: tuple[str, ...]
    notes: tuple[str, ...] = ()

    @property
    def needs_approval(self) -> bool:
        """Whether a ``require_approval_for`` rule names the tool now."""
        return bool(self.approval_rules)

    def as_dict(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "rule": self.rule.model_dump(mode="json") if self.rule else None,
            "needs_approval": self.needs_approval,
            "approval_rules": [f"require_approval_for[{i}]" for i in self.approval_rules],
            "evidence": self.evidence.as_dict(),
            "proposal": self.proposal,
            "reasons": list(self.reasons),
            "notes": list(self.notes),
        }


@dataclass(frozen=True, slots=True)
class AutonomyReport:
    """The evidence for every tool with an autonomy or approval rule, and the proposals.

    Attributes:
        charter: the charter's name (approval requests are counted by name, across releases).
        charter_sha256: the content hash of the charter the report was made for.
        since: the start of the window (None: every request ever filed).
        generated_at: when the report was made (UTC).
        tools: per tool, in the charter's order of tools.
        eval: the eval report's evidence, or None (none given, or ignored: see ``notes``).
        notes: what the reader must know (always ``MODIFIED_NOTE``; an ignored eval report).
    """

    charter: str
    charter_sha256: str
    since: datetime | None
    generated_at: datetime
    tools: tuple[ToolAutonomy, ...]
    eval: EvalEvidence | None
    notes: tuple[str, ...]

    @property
    def moves(self) -> tuple[ToolAutonomy, ...]:
        """The tools proposed ``to_autonomous`` or ``to_approval``."""
        return tuple(t for t in self.tools if t.proposal != "keep")

    def as_dict(self) -> dict[str, Any]:
        return {
            "charter": self.charter,
            "charter_sha256": self.charter_sha256,
            "since": self.since.isoformat() if self.since else None,
            "generated_at": self.generated_at.isoformat(),
            "tools": [t.as_dict() for t in self.tools],
            "eval": self.eval.as_dict() if self.eval else None,
            "moves": [t.tool for t in self.moves],
            "notes": list(self.notes),
        }


def autonomy_report(
    charter: Charter,
    database: Database,
    *,
    since: datetime | None = None,
    eval_report: Mapping[str, Any] | None = None,
    clock: Clock | None = None,
) -> AutonomyReport:
    """Evidence and a proposal for every tool with an autonomy rule or an approval rule.

    Args:
        charter: the charter as loaded (its name selects the approval requests).
        database: Charter's database, holding ``approval_requests``.
        since: count only requests filed at or after this time (timezone-aware).
        eval_report: a ``charter eval`` report (``read_report``); used only when it was made
            for this charter's content with enforcement on, else ignored with a note.
        clock: what "now" is (a pending request past its expiry counts as expired).

    Raises:
        UserError: ``since`` has no time zone.
        DatabaseUnavailable: the database cannot be read or is out of date.
    """
    now = as_utc((clock or SystemClock()).now())
    start = as_utc(since) if since is not None else None
    spec = charter.spec
    rules = {rule.tool: rule for rule in spec.autonomy}
    approval_rules: dict[str, list[int]] = {}
    for index, approval in enumerate(spec.policies.require_approval_for):
        approval_rules.setdefault(approval.action, []).append(index)
    names = [t for t in spec.tools if t in rules or t in approval_rules]
    evidence = _approval_evidence(database, charter.name, names, start, now)
    notes = [MODIFIED_NOTE]
    eval_evidence = None
    if eval_report is None:
        notes.append(
            "no eval report given: proposals rest on approvals alone (the new release's "
            "eval gate still applies)"
        )
    else:
        eval_evidence, note = _eval_evidence(charter, eval_report)
        if note:
            notes.append(note)
    raw_approval = sorted(
        meta.rule_id
        for meta in charter.rules.values()
        if meta.effect == "require_approval"
        and not meta.rule_id.startswith(("require_approval_for[", "untrusted_content."))
    )
    if raw_approval:
        notes.append(
            f"raw Cedar rules that require approval ({', '.join(raw_approval)}) are never "
            "changed by a proposal; check whether they name a tool proposed to move"
        )
    tools = tuple(
        _judge(
            charter,
            name,
            rules.get(name),
            tuple(approval_rules.get(name, ())),
            evidence.get(name, ApprovalEvidence()),
            eval_evidence,
        )
        for name in names
    )
    return AutonomyReport(
        charter=charter.name,
        charter_sha256=charter.content_sha256,
        since=start,
        generated_at=now,
        tools=tools,
        eval=eval_evidence,
        notes=tuple(notes),
    )


def proposed_charter_text(charter: Charter, report: AutonomyReport) -> str | None:
    """The charter file's text with the report's moves made, or None when nothing moves.

    Tools proposed ``to_autonomous`` lose their ``policies.require_approval_for`` rules;
    tools proposed ``to_approval`` get ``{action: <tool>, any: true, reason: ...}``. Every
    other line (comments, order, layout) stays as it is, and a comment at the top says which
    tools moved and why. Write it to a new charter directory (beside copies of the files it
    references) and release that; the charter at ``charter.path`` is not touched.

    Raises:
        UserError: the report was made for other content, the charter has no file, or the
            file changed since the charter was loaded.
        CharterInvalid: the file cannot be read, or the edited charter does not load (not
            expected: the edit only removes or adds approval rules).
    """
    moves = report.moves
    if not moves:
        return None
    if report.charter_sha256 != charter.content_sha256:
        raise UserError(
            f"the autonomy report was made for charter content {report.charter_sha256[:12]}, "
            f"not {charter.content_sha256[:12]}; make the report for this charter"
        )
    if charter.path is None:
        raise UserError("the charter was not loaded from a file; load it with Charter.load")
    loaded = load_yaml(charter.path)
    if isinstance(loaded, Problem):
        raise CharterInvalid([loaded])
    text = loaded.text  # what was parsed: a second read could see another file, or block
    data = plain(loaded.data)
    if not isinstance(data, dict) or _spec_dump(data) != charter.spec.dump():
        raise UserError(
            f"{charter.path} changed since the charter was loaded; load it again and make a "
            "new report"
        )
    remove = {t.tool for t in moves if t.proposal == "to_autonomous"}
    add = {t.tool: _added_reason(t) for t in moves if t.proposal == "to_approval"}
    expected = _edited(data, remove, add)
    edited = _without_rules(text, loaded.data, remove) if remove else text
    if add:
        edited = _via_ruamel(edited, lambda doc: _add_rules(doc, add))
    if _data_of(edited) != expected:
        raise RuntimeError("editing the charter changed more than its approval rules")  # a bug
    derive_charter(charter, expected, label=f"{charter.path} (proposed)")  # must load
    return _header(charter, report) + edited


# --- evidence ---------------------------------------------------------------------------------


def _approval_evidence(
    database: Database,
    charter_name: str,
    tools: Sequence[str],
    since: datetime | None,
    now: datetime,
) -> dict[str, ApprovalEvidence]:
    if not tools:
        return {}
    # A pending request past its expiry reads as expired, as ApprovalStore reports it.
    overdue = func.sum(case((_T.expires_at <= now, 1), else_=0)).label("overdue")
    statement = (
        select(_T.tool, _T.rule_id, _T.status, func.count().label("requests"), overdue)
        .where(_T.charter_name == charter_name, _T.tool.in_(list(tools)))
        .group_by(_T.tool, _T.rule_id, _T.status)
    )
    if since is not None:
        statement = statement.where(_T.requested_at >= since)
    try:
        ensure_schema(database)
        with database.engine.connect() as connection:
            rows = list(connection.execute(statement))
    except SQLAlchemyError as exc:
        raise DatabaseUnavailable(
            f"cannot read approval requests in {database.shown_url}: {type(exc).__name__}; "
            "check CHARTER_DATABASE_URL and that the server is running"
        ) from None
    counts: dict[str, dict[str, int]] = {}
    by_rule: dict[str, dict[str, int]] = {}
    for row in rows:
        count = int(row.requests)
        split = {"approved" if row.status in _APPROVED else row.status: count}
        if row.status == "pending":
            expired = int(row.overdue or 0)
            split = {"pending": count - expired, "expired": expired}
        tally = counts.setdefault(row.tool, {})
        for key, number in split.items():
            tally[key] = tally.get(key, 0) + number
        rules = by_rule.setdefault(row.tool, {})
        rules[row.rule_id] = rules.get(row.rule_id, 0) + count
    return {
        tool: ApprovalEvidence(
            approved=tally.get("approved", 0),
            by_rule=by_rule[tool],
            **{name: tally.get(name, 0) for name in _COUNTED},
        )
        for tool, tally in counts.items()
    }


def _eval_evidence(
    charter: Charter, report: Mapping[str, Any]
) -> tuple[EvalEvidence | None, str | None]:
    report_id = clip(str(report.get("id", "(no id)")))
    about = report.get("charter")
    sha = about.get("sha256") if isinstance(about, Mapping) else None
    if sha != charter.content_sha256:
        return None, (
            f"eval report {report_id} was made for charter content {str(sha)[:12]}, not this "
            f"charter's {charter.content_sha256[:12]}: it is ignored; run 'charter eval' on "
            "this charter and pass that report"
        )
    if report.get("enforcement") is not True:
        return None, (
            f"eval report {report_id} ran without enforcement: it is ignored; run "
            "'charter eval' with enforcement on"
        )
    summary = report.get("summary")
    golden = summary.get("golden") if isinstance(summary, Mapping) else None
    rate = golden.get("pass_rate") if isinstance(golden, Mapping) else None
    tasks = report.get("tasks")
    security = [
        task
        for task in (tasks if isinstance(tasks, list) else [])
        if isinstance(task, Mapping) and task.get("kind") == "security"
    ]
    failed = tuple(sorted(str(t.get("key")) for t in security if t.get("pass_all") is not True))
    golden_rate = (
        float(rate) if isinstance(rate, int | float) and not isinstance(rate, bool) else None
    )
    return (
        EvalEvidence(report_id, golden_rate, len(security), failed),
        None,
    )


# --- proposals --------------------------------------------------------------------------------


def _judge(
    charter: Charter,
    tool: str,
    rule: AutonomyRule | None,
    approval_rules: tuple[int, ...],
    evidence: ApprovalEvidence,
    eval_evidence: EvalEvidence | None,
) -> ToolAutonomy:
    notes = _untouched_approval(charter, tool)
    decisions, rate = evidence.decisions, evidence.rejection_rate

    def result(proposal: Proposal, reasons: Sequence[str]) -> ToolAutonomy:
        return ToolAutonomy(
            tool, rule, approval_rules, evidence, proposal, tuple(reasons), tuple(notes)
        )

    if rule is None:
        return result("keep", [f"no autonomy rule: add one for {tool} under autonomy:"])
    rejections = (
        f"rejection rate {_rate(rate)} ({evidence.rejected} of {decisions} decisions)"
        if rate is not None
        else "no rejection rate (no decisions)"
    )
    too_many_rejections = rate is not None and rate > rule.max_rejection_rate
    if approval_rules:
        blockers = []
        if decisions < rule.min_decisions:
            blockers.append(f"{decisions} decisions, needs {rule.min_decisions}")
        if too_many_rejections:
            blockers.append(f"{rejections} is above {_rate(rule.max_rejection_rate)}")
        blockers.extend(_eval_blockers(rule, eval_evidence))
        if blockers:
            return result("keep", blockers)
        reasons = [
            f"{decisions} decisions (needs {rule.min_decisions}), {rejections}, at most "
            f"{_rate(rule.max_rejection_rate)}"
        ]
        if eval_evidence is not None:
            reasons.append(
                f"eval golden pass rate {_rate(eval_evidence.golden_pass_rate)} (needs "
                f"{_rate(rule.min_eval_pass_rate)}), all {eval_evidence.security_tasks} "
                "security tasks passed"
            )
        return result("to_autonomous", reasons)
    bad = []
    if too_many_rejections:
        bad.append(
            f"{rejections}, recorded while it needed approval, is above "
            f"{_rate(rule.max_rejection_rate)}"
        )
    bad.extend(_eval_failures(rule, eval_evidence))
    if bad:
        return result("to_approval", bad)
    kept = f"runs without approval; {rejections}, at most {_rate(rule.max_rejection_rate)}"
    return result("keep", [kept])


def _eval_failures(rule: AutonomyRule, evidence: EvalEvidence | None) -> list[str]:
    """What in the eval evidence says the tool should need approval (again)."""
    if evidence is None:
        return []
    failures = []
    rate = evidence.golden_pass_rate
    if rate is not None and rate < rule.min_eval_pass_rate:
        failures.append(
            f"eval golden pass rate {_rate(rate)} is below {_rate(rule.min_eval_pass_rate)}"
        )
    if evidence.security_failed:
        failures.append(
            f"{len(evidence.security_failed)} of {evidence.security_tasks} security tasks did "
            f"not pass in every epoch ({', '.join(evidence.security_failed[:5])})"
        )
    return failures


def _eval_blockers(rule: AutonomyRule, evidence: EvalEvidence | None) -> list[str]:
    """What in the eval evidence stops a move to autonomy: a failure, or evidence missing."""
    if evidence is None:
        return []
    blockers = _eval_failures(rule, evidence)
    if evidence.golden_pass_rate is None:
        blockers.append("the eval report ran no golden tasks")
    if evidence.security_tasks == 0:
        blockers.append("the eval report ran no security tasks")
    return blockers


def _untouched_approval(charter: Charter, tool: str) -> list[str]:
    content = charter.spec.policies.untrusted_content
    if content is None or content.on_tainted_args != "require_approval":
        return []
    sinks = {s if isinstance(s, str) else s.tool for s in content.sinks}
    if tool not in sinks:
        return []
    return [
        "calls whose arguments carry untrusted content still need approval "
        f"(untrusted_content.{tool}); no proposal changes that"
    ]


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.6g}"


def _added_reason(tool: ToolAutonomy) -> str:
    return clip(f"approval restored by the autonomy report: {'; '.join(tool.reasons)}")


# --- the edited charter -----------------------------------------------------------------------


def _edited(data: Mapping[str, Any], remove: set[str], add: Mapping[str, str]) -> dict[str, Any]:
    """The plain data the edited file must parse to."""
    edited = copy.deepcopy(dict(data))
    policies = edited.get("policies") or {}
    kept = [r for r in policies.get("require_approval_for", []) if r.get("action") not in remove]
    kept.extend({"action": tool, "any": True, "reason": reason} for tool, reason in add.items())
    if kept:
        policies["require_approval_for"] = kept
    else:
        policies.pop("require_approval_for", None)
    if policies:
        edited["policies"] = policies
    else:
        edited.pop("policies", None)
    return edited


def _spec_dump(data: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return CharterSpec.model_validate(data).dump()
    except ValidationError:
        return None


def _without_rules(text: str, doc: CommentedMap, tools: set[str]) -> str:
    """``text`` without the approval rules naming ``tools``: their lines cut where the file
    is in block style (every other byte kept), else edited and written back by ruamel."""
    cut = _cut_rules(text, doc, tools)
    if cut is not None and _data_of(cut) == _edited(plain(doc), tools, {}):
        return cut
    return _via_ruamel(text, lambda data: _remove_rules(data, tools))


def _cut_rules(text: str, doc: CommentedMap, tools: set[str]) -> str | None:
    """Remove the rules by cutting their lines, or None where the layout is not block style."""
    policies = doc.get("policies")
    if not isinstance(policies, CommentedMap) or policies.fa.flow_style():
        return None
    rules = policies.get("require_approval_for")
    if not isinstance(rules, CommentedSeq) or rules.fa.flow_style():
        return None
    lines = text.splitlines(keepends=True)
    doomed = [i for i, r in enumerate(rules) if isinstance(r, Mapping) and r.get("action") in tools]
    spans: list[tuple[int, int]] = []
    if len(doomed) == len(rules):
        if len(policies) == 1:
            spans.append(_span(lines, *doc.lc.key("policies")))
        else:
            spans.append(_span(lines, *policies.lc.key("require_approval_for")))
    else:
        for index in doomed:
            line, column = rules.lc.item(index)
            dash = lines[line].rfind("-", 0, column)
            if dash < 0:
                return None
            spans.append(_span(lines, line, dash))
    for first, end in sorted(spans, reverse=True):
        del lines[first:end]
    return "".join(lines)


def _span(lines: Sequence[str], line: int, column: int) -> tuple[int, int]:
    """The lines of the block starting at ``line``, whose own lines are indented past
    ``column``, with the comment lines just above it at ``column``; trailing comments and
    blank lines are left (they usually introduce what follows)."""
    end = line + 1
    last = line + 1
    while end < len(lines):
        stripped = lines[end].strip()
        if stripped and not stripped.startswith("#"):
            indent = _indent(lines[end])
            if indent < column or (indent == column and not _continues(lines[line], stripped)):
                break
            last = end + 1
        end += 1
    first = line
    while (
        first > 0
        and lines[first - 1].strip().startswith("#")
        and _indent(lines[first - 1]) == column
    ):
        first -= 1
    return first, last


def _continues(start: str, stripped: str) -> bool:
    # A key's block sequence may sit at the key's own column ("key:" then "- item").
    return not start.lstrip().startswith("-") and stripped.startswith("- ")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _remove_rules(data: CommentedMap, tools: set[str]) -> None:
    policies = data.get("policies")
    if not isinstance(policies, CommentedMap):
        return
    rules = policies.get("require_approval_for")
    if not isinstance(rules, CommentedSeq):
        return
    for index in reversed(range(len(rules))):
        if isinstance(rules[index], Mapping) and rules[index].get("action") in tools:
            del rules[index]
    if not rules:
        del policies["require_approval_for"]
    if not policies:
        del data["policies"]


def _add_rules(data: CommentedMap, add: Mapping[str, str]) -> None:
    policies = data.get("policies")
    if not isinstance(policies, CommentedMap):
        policies = CommentedMap()
        data["policies"] = policies
    rules = policies.get("require_approval_for")
    if not isinstance(rules, CommentedSeq):
        rules = CommentedSeq()
        policies.insert(0, "require_approval_for", rules)
    for tool, reason in add.items():
        rule = CommentedMap([("action", tool), ("any", True), ("reason", reason)])
        rule.fa.set_flow_style()
        rules.append(rule)


def _via_ruamel(text: str, edit: Callable[[CommentedMap], None]) -> str:
    """``text`` loaded round-trip, edited and written back in the file's own indentation."""
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap a line
    mapping, sequence, offset = _indentation(text)
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    data = yaml.load(text)
    edit(data)
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


_KEY_LINE = re.compile(r"^[^#\-\s][^#]*:\s*(#.*)?$")


def _indentation(text: str) -> tuple[int, int, int]:
    """The file's mapping indent, and its block sequences' indent and dash offset."""
    mapping: int | None = None
    offset: int | None = None
    sequence: int | None = None
    previous: tuple[int, str] | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        indent = _indent(line)
        if previous is not None and _KEY_LINE.match(previous[1]):
            if stripped.startswith("- ") and offset is None and indent >= previous[0]:
                offset = indent - previous[0]
                sequence = offset + 1 + _indent(stripped[1:])
            elif not stripped.startswith("-") and mapping is None and indent > previous[0]:
                mapping = indent - previous[0]
        previous = (indent, stripped)
    mapping = mapping or 2
    if offset is None or sequence is None:
        offset, sequence = mapping, mapping + 2
    return mapping, max(sequence, offset + 2), offset


def _data_of(text: str) -> Any:
    return plain(YAML(typ="rt").load(text))


def _header(charter: Charter, report: AutonomyReport) -> str:
    window = f"since {report.since.isoformat()}" if report.since else "over all recorded time"
    lines = [
        f"# Proposed by 'charter autonomy report' on {report.generated_at.date().isoformat()} "
        f"from {charter.name} (content {charter.content_sha256[:12]}), decisions {window}:"
    ]
    for tool in report.moves:
        what = (
            "runs without approval" if tool.proposal == "to_autonomous" else "needs approval again"
        )
        lines.append(f"#   {tool.tool} {what}: {'; '.join(tool.reasons)}")
    # Task keys from the eval report are quoted here: no line break may end the comment.
    return "".join("".join(c if c.isprintable() else " " for c in line) + "\n" for line in lines)
