"""Policy what-if: how a candidate charter would have decided the calls agents really made.

``what_if`` takes the last N recorded runs of a charter in one environment (the ``runs``
table), reads the tool calls each run's agent proposed from the audit log, and decides every
one again under the candidate charter with the real pipeline's guard stages
(``Run.decide``: allowlist, arguments, budget, policy; no kill switch). Nothing executes: no
tool is called, no approval is filed, no event is published and nothing is written. The
report lists the calls whose verdict changes: newly denied, newly approval-required, newly
allowed.

What replays, and what does not:

- Only the agent's own proposals count (event ids ``<run>/call/<step>/<outcome>``). Charter's
  follow-ups are skipped: deferred effects sent (``/send/``) or discarded (``/discard/``)
  after the run, and compensations (``/compensate/``). A step recorded twice (a durable step
  that ended differently when re-run) counts once, as its last record; so does a call that
  waited for an approval and ran once it was granted (its old verdict is
  ``require_approval``).
- Each replayed run gets a fresh ledger, and calls are decided in the order they were made,
  so later calls see the budget used by earlier ones (tool-call slots and tool fees). The
  principal is the run's own (user, tenant, service principal, roles, from its records); the
  environment is the one asked about.
- Some calls cannot be judged without guessing, and are counted as not replayable, with the
  reason: arguments holding a redacted value (the real value is gone), arguments that were
  not recorded (they failed validation in the original run and were kept as text), calls a
  kill switch refused, and calls whose recorded decision rested on taint. Such a call still
  uses the budget the way it did in the original run, so the calls after it are judged
  against the right remainder.
- The assumptions replay makes are listed in every report (``assumptions``): most of all,
  the audit log does not record which values were tainted, so arguments replay as untainted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from charter.contract.cedar_text import policies_json
from charter.contract.loader import Charter
from charter.core.decision import Stage, Verdict
from charter.core.environment import check_environment
from charter.core.errors import DatabaseUnavailable, UserError
from charter.core.events import EventBus
from charter.execution.approvals import InMemoryGrants
from charter.execution.kill_switch import KillSwitches
from charter.execution.run import Run, RunServices
from charter.identity.principal import Principal
from charter.identity.secrets import REDACTED, ChainSecretProvider, Redactor
from charter.observability.audit_reader import call_phase, records_of_runs
from charter.observability.audit_record import is_fee_text
from charter.policy.budget import Reservation
from charter.policy.cedar_engine import CedarEngine
from charter.storage.database import Database
from charter.storage.migrate import ensure_schema
from charter.storage.tables import runs

__all__ = ["ASSUMPTIONS", "CallChange", "UnreplayableCall", "WhatIfReport", "what_if"]

MAX_LAST: Final = 10_000

ASSUMPTIONS: Final[tuple[str, ...]] = (
    "arguments are replayed as untainted: the audit log does not record which values came "
    "from untrusted content, so untrusted-content rules and Cedar rules reading taint do not "
    "fire on replay; calls whose recorded decision rested on taint are not replayed",
    "the model's token usage is not replayed: token budgets (max_total_tokens) and the "
    "model's cost are not re-judged; run totals seen by policies and the USD budget count "
    "tool calls and tool fees only",
    "the run's time limit (timeouts.overall_seconds) is not re-judged: replay takes no time",
    "kill switches are not consulted: the candidate's rules are judged, not today's switches",
    "a require_approval verdict is the answer: no approval is assumed granted",
    "the agent's proposals are the recorded ones: under the candidate it might have stopped "
    "earlier (a new denial or approval) or gone further (a run that stopped on a denial or an "
    "approval has no later calls to replay); every call the candidate allows is taken to "
    "have run, using its tool-call slot and fee",
)

_TAINT_KEYS: Final = frozenset({"untrusted_read", "tainted_any", "tainted"})
_TAINT_RULE_PREFIX: Final = "untrusted_content."
# Outcomes of a call that went on past the guards and was charged its fee, for records from
# before a record carried the fee it was charged (``fee_usd``).
_CHARGED: Final = frozenset({"executed", "deferred", "timeout", "error", "interrupted"})
# Stages at or after the budget reservation that let the call keep its tool-call slot.
_PAST_BUDGET: Final = frozenset({Stage.POLICY.value, Stage.APPROVAL.value, Stage.EXECUTE.value})
_OLD_VERDICT_BY_OUTCOME: Final = {
    "executed": "allow",
    "deferred": "allow",
    "timeout": "allow",
    "error": "allow",
    "interrupted": "allow",  # allowed, started, then stopped by a kill switch
    "denied": "deny",
    "budget_exceeded": "deny",
    "approval_required": "require_approval",
}


@dataclass(frozen=True, slots=True)
class CallChange:
    """One recorded call whose verdict the candidate changes."""

    run_id: str
    tool: str
    arguments: dict[str, Any]  # as recorded: canonical and redacted
    old_verdict: str
    old_rule: str | None
    new_verdict: str
    new_rule: str
    new_reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "tool": self.tool,
            "arguments": self.arguments,
            "old_verdict": self.old_verdict,
            "old_rule": self.old_rule,
            "new_verdict": self.new_verdict,
            "new_rule": self.new_rule,
            "new_reason": self.new_reason,
        }


@dataclass(frozen=True, slots=True)
class UnreplayableCall:
    """A recorded call the candidate cannot judge without guessing, and why."""

    run_id: str
    tool: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "tool": self.tool, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class WhatIfReport:
    """What a candidate charter would have decided differently on recorded runs."""

    charter_name: str
    candidate_sha256: str
    environment: str
    last: int
    runs_replayed: int
    calls_replayed: int
    unchanged: int
    newly_denied: tuple[CallChange, ...]
    newly_approval_required: tuple[CallChange, ...]
    newly_allowed: tuple[CallChange, ...]
    not_replayable: tuple[UnreplayableCall, ...]
    assumptions: tuple[str, ...] = ASSUMPTIONS
    notes: tuple[str, ...] = field(default=())

    @property
    def changed(self) -> int:
        return len(self.newly_denied) + len(self.newly_approval_required) + len(self.newly_allowed)

    @property
    def not_replayable_count(self) -> int:
        return len(self.not_replayable)

    def not_replayable_reasons(self) -> dict[str, int]:
        """How many calls were not replayed, by reason, most frequent first."""
        return dict(Counter(call.reason for call in self.not_replayable).most_common())

    def examples(self, limit: int = 5) -> dict[str, list[dict[str, Any]]]:
        """The first ``limit`` changes of each kind (and unreplayable calls), as plain data."""
        if limit < 0:
            raise UserError(f"limit {limit!r} must not be negative")
        return {
            "newly_denied": [c.as_dict() for c in self.newly_denied[:limit]],
            "newly_approval_required": [c.as_dict() for c in self.newly_approval_required[:limit]],
            "newly_allowed": [c.as_dict() for c in self.newly_allowed[:limit]],
            "not_replayable": [c.as_dict() for c in self.not_replayable[:limit]],
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "charter_name": self.charter_name,
            "candidate_sha256": self.candidate_sha256,
            "environment": self.environment,
            "last": self.last,
            "runs_replayed": self.runs_replayed,
            "calls_replayed": self.calls_replayed,
            "unchanged": self.unchanged,
            "changed": self.changed,
            "newly_denied": [c.as_dict() for c in self.newly_denied],
            "newly_approval_required": [c.as_dict() for c in self.newly_approval_required],
            "newly_allowed": [c.as_dict() for c in self.newly_allowed],
            "not_replayable": {
                "count": self.not_replayable_count,
                "reasons": self.not_replayable_reasons(),
                "calls": [c.as_dict() for c in self.not_replayable],
            },
            "assumptions": list(self.assumptions),
            "notes": list(self.notes),
        }


def what_if(
    candidate: Charter,
    database: Database,
    *,
    charter_name: str | None = None,
    environment: str,
    last: int,
) -> WhatIfReport:
    """Replay the tool calls of the last ``last`` runs of ``charter_name`` (by default the
    candidate's name) in ``environment`` under ``candidate``, executing nothing.

    Raises:
        UserError: ``last`` is not 1..10000, ``environment`` is not dev, staging or prod, or
            ``charter_name`` is empty.
        DatabaseUnavailable: the database cannot be read.
    """
    if isinstance(last, bool) or not isinstance(last, int) or not 1 <= last <= MAX_LAST:
        raise UserError(f"--last {last!r} must be a whole number from 1 to {MAX_LAST}")
    check_environment(environment)
    name = candidate.name if charter_name is None else charter_name
    if not name or not name.strip():
        raise UserError("give the name of the charter whose runs to replay")
    ensure_schema(database)
    recorded = _recent_runs(database, name, environment, last)
    notes: list[str] = []
    if not recorded:
        notes.append(f"no recorded runs of charter {name!r} in {environment}: nothing to replay")
    elif all(sha == candidate.content_sha256 for _, sha in recorded):
        notes.append(
            "the candidate is the version every replayed run ran under: any change comes "
            "from what replay cannot see (see assumptions)"
        )
    calls_by_run = _proposals(database, [run_id for run_id, _ in recorded])
    replay = _Replay(candidate, environment, name)
    for run_id, _ in recorded:
        replay.run(run_id, calls_by_run.get(run_id, []))
    return WhatIfReport(
        charter_name=name,
        candidate_sha256=candidate.content_sha256,
        environment=environment,
        last=last,
        runs_replayed=len(recorded),
        calls_replayed=replay.calls,
        unchanged=replay.unchanged,
        newly_denied=tuple(replay.changes[Verdict.DENY]),
        newly_approval_required=tuple(replay.changes[Verdict.REQUIRE_APPROVAL]),
        newly_allowed=tuple(replay.changes[Verdict.ALLOW]),
        not_replayable=tuple(replay.skipped),
        notes=tuple(notes),
    )


class _StillClock:
    """Time that does not pass: a replay is judged as if it took no time."""

    def __init__(self) -> None:
        self._now = datetime.now(UTC)

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return 0.0


class _Replay:
    """Decides recorded calls run by run under the candidate; collects what changed."""

    def __init__(self, candidate: Charter, environment: str, recorded_name: str) -> None:
        self.candidate = candidate
        self.environment = environment
        self.recorded_name = recorded_name
        self.engine = CedarEngine(candidate.cedar_text, candidate.rules, candidate.tools)
        redactor = Redactor()
        grants = InMemoryGrants()
        # Services that record nothing: no subscribers, no secrets, no switches, no grants.
        self.services = RunServices(
            bus=EventBus(),
            secrets=ChainSecretProvider((), redactor),
            redactor=redactor,
            kill_switches=KillSwitches(),
            grants=grants,
            inbox=grants,
            clock=_StillClock(),
        )
        spec = candidate.spec.model
        self.model_name = f"{spec.provider}:{spec.name}"
        self.taint_rules = _taint_rules(candidate)
        self.calls = 0
        self.unchanged = 0
        self.changes: dict[Verdict, list[CallChange]] = {v: [] for v in Verdict}
        self.skipped: list[UnreplayableCall] = []

    def run(self, run_id: str, records: Sequence[Mapping[str, Any]]) -> None:
        if not records:
            return
        first = records[0]
        service = str(first.get("service_principal") or "")
        if service == f"agent:{self.recorded_name}":
            service = ""  # the agent's default identity: the candidate's own, as in a real run
        principal = Principal(
            user=first["user"],
            tenant=first["tenant"],
            service_principal=service,
            roles=tuple(first.get("roles") or ()),
        )
        run = Run(
            charter=self.candidate,
            principal=principal,
            environment=self.environment,  # type: ignore[arg-type]  # checked by what_if
            services=self.services,
            engine=self.engine,
            model_name=self.model_name,
            run_id=run_id,
        )
        for record in records:
            self._call(run, record)

    def _call(self, run: Run, record: Mapping[str, Any]) -> None:
        tool = str(record.get("tool") or "")
        arguments = record.get("arguments")
        old = _old_verdict(record)
        old_rule = record.get("rule_id")
        if record["outcome"] == "killed":
            self._skip(run, record, "refused by a kill switch, which a charter does not decide")
            return
        if not isinstance(arguments, dict):
            self._skip(run, record, "its arguments were not recorded")
            return
        if _holds_redacted(arguments):
            self._skip(run, record, f"its arguments hold a redacted value ({REDACTED})")
            return
        if old_rule and (old_rule.startswith(_TAINT_RULE_PREFIX) or old_rule in self.taint_rules):
            self._skip(
                run,
                record,
                f"its recorded decision rested on tainted arguments (rule {old_rule}), "
                "which the audit log does not record",
            )
            return
        unvalidated = not record.get("arguments_sha256") and "_unvalidated" in arguments
        decision = run.decide(tool, arguments)
        if unvalidated and decision.stage is not Stage.ALLOWLIST:
            # Only the allowlist can judge a call whose arguments were kept as text.
            self._skip(
                run,
                record,
                "its arguments failed validation in the original run and were kept as text",
            )
            return
        self.calls += 1
        if decision.verdict.value == old:
            self.unchanged += 1
            return
        self.changes[decision.verdict].append(
            CallChange(
                run_id=run.id,
                tool=tool,
                arguments=arguments,
                old_verdict=old,
                old_rule=old_rule,
                new_verdict=decision.verdict.value,
                new_rule=decision.rule_id,
                new_reason=decision.reason,
            )
        )

    def _skip(self, run: Run, record: Mapping[str, Any], reason: str) -> None:
        self.skipped.append(UnreplayableCall(run.id, str(record.get("tool") or ""), reason))
        _charge_as_recorded(run, record)


def _charge_as_recorded(run: Run, record: Mapping[str, Any]) -> None:
    """Use the budget the way the original call did (its slot, and its fee if it ran), so
    the calls after one that cannot be replayed are judged against the right remainder."""
    if record.get("stage") not in _PAST_BUDGET:
        return  # refused before the budget stage (or by it): it used nothing
    decl = run.charter.spec.tools.get(str(record.get("tool") or ""))
    if decl is None:
        return  # the candidate would refuse it at the allowlist, before the budget
    recorded = _recorded_fee(record)
    reservation = run.ledger.reserve(
        tool_calls=1, usd=decl.fee_usd if recorded is None else recorded
    )
    if not isinstance(reservation, Reservation):
        return  # the candidate's budget is used up; it has nothing left to charge
    if recorded is not None:
        # What the original ledger charged (a call whose credential was missing: nothing).
        run.ledger.settle(reservation, tokens=0, usd=recorded)
    elif record["outcome"] in _CHARGED:  # recorded before fees were audited
        run.ledger.settle(reservation, tokens=0, usd=reservation.usd)
    else:
        run.ledger.release(reservation)


def _recorded_fee(record: Mapping[str, Any]) -> Decimal | None:
    """The fee the original ledger charged for this call, if its record says (``fee_usd``)."""
    fee = record.get("fee_usd")
    return Decimal(fee) if isinstance(fee, str) and is_fee_text(fee) else None


def _old_verdict(record: Mapping[str, Any]) -> str:
    verdict = record.get("verdict") or _OLD_VERDICT_BY_OUTCOME.get(record["outcome"], "deny")
    if record.get("approval_request_id") and verdict == Verdict.ALLOW.value:
        return Verdict.REQUIRE_APPROVAL.value  # it ran under an approval
    return str(verdict)


def _holds_redacted(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if REDACTED in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


def _taint_rules(charter: Charter) -> frozenset[str]:
    """The ids of the candidate's Cedar policies whose conditions read taint."""
    parsed = policies_json(charter.cedar_text)
    found: set[str] = set()
    for policy in parsed.get("staticPolicies", {}).values():
        rule = policy.get("annotations", {}).get("id")
        if rule and _reads_taint(policy.get("conditions", [])):
            found.add(str(rule))
    return frozenset(found)


def _reads_taint(node: Any) -> bool:
    """Whether a policy's JSON form reads a taint attribute of the context (or the whole
    context as a value, which might include one)."""
    for item in _walk(node):
        if item.get("Var") == "context":
            return True
        for op in (".", "has"):
            access = item.get(op)
            if (
                isinstance(access, dict)
                and access.get("left") == {"Var": "context"}
                and access.get("attr") in _TAINT_KEYS
            ):
                return True
    return False


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    """Every dict inside ``node``, except the bare ``{"Var": "context"}`` of an attribute
    access (that is reading one attribute, not using the whole context)."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            yield item
            for key, value in item.items():
                if key in (".", "has") and isinstance(value, dict):
                    stack.extend(v for k, v in value.items() if k != "left")
                    if value.get("left") != {"Var": "context"}:
                        stack.append(value.get("left"))
                else:
                    stack.append(value)


def _recent_runs(
    database: Database, charter_name: str, environment: str, last: int
) -> list[tuple[str, str]]:
    """(run id, charter version) of the newest ``last`` runs, oldest first."""
    statement = (
        select(runs.c.id, runs.c.charter_sha256)
        .where(runs.c.charter_name == charter_name, runs.c.environment == environment)
        .order_by(runs.c.started_at.desc(), runs.c.id.desc())
        .limit(last)
    )
    rows = _read(database, statement, "runs")
    return [(row.id, row.charter_sha256) for row in reversed(rows)]


def _proposals(database: Database, run_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """The calls each run's agent proposed, in the order they were made."""
    by_run = records_of_runs(database, run_ids, kind="tool_call")
    return {run_id: _agent_calls(records) for run_id, records in by_run.items() if records}


def _agent_calls(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Only the agent's proposals, one record per call.

    A step recorded twice (re-run after a crash, ending differently) keeps its last record;
    a call that waited for an approval and then ran under it is the run's later record.
    """
    steps: dict[str, dict[str, Any]] = {}
    for index, record in enumerate(records):
        key = _call_step(record)
        if key is not None:
            steps[key if key else f"#{index}"] = record  # re-recorded steps: the last wins
    calls = list(steps.values())
    ran_under = {
        r["approval_request_id"]
        for r in calls
        if r.get("approval_request_id") and r["outcome"] != "approval_required"
    }
    return [
        r
        for r in calls
        if not (r["outcome"] == "approval_required" and r.get("approval_request_id") in ran_under)
    ]


def _call_step(record: Mapping[str, Any]) -> str | None:
    """The step of an agent's proposal (``<run>/call/<step>/<outcome>``); "" for a proposal
    recorded without an event id; None for Charter's own follow-ups (send, discard,
    compensate)."""
    if call_phase(record) != "call":
        return None
    parts = (record.get("event_id") or "").split("/")
    return parts[2] if len(parts) >= 3 else ""


def _read(database: Database, statement: Any, what: str) -> list[Any]:
    try:
        with database.engine.connect() as connection:
            return list(connection.execute(statement))
    except SQLAlchemyError as exc:
        raise DatabaseUnavailable(
            f"cannot read {what} in {database.shown_url}: the database failed "
            f"({type(exc).__name__})"
        ) from None
