"""Policy what-if: recorded demo runs replayed under candidate charters, executing nothing."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from charter_examples.support_desk.demo import CHARTER_PATH, DemoRow, run_demo
from charter_examples.support_desk.desk import SupportDesk
from charter_examples.support_desk.model import GullibleSupportModel
from sqlalchemy import func, select

from charter.contract.loader import Charter
from charter.contract.tool import ToolContext, tool
from charter.core.errors import UserError
from charter.core.events import RunStarted
from charter.core.settings import Settings
from charter.execution import run as run_module
from charter.execution.agent import run_agent
from charter.execution.approvals import ApprovalRequest, InMemoryGrants
from charter.execution.run import Run
from charter.execution.steps import ApprovalOutcome, InProcessSteps
from charter.governance.whatif import ASSUMPTIONS, WhatIfReport, what_if
from charter.identity.principal import Principal
from charter.identity.secrets import REDACTED, EnvSecretProvider
from charter.runtime import Runtime
from charter.storage.tables import approval_requests, audit_records, runs
from charter.testing import ScriptedModel, reply, tool_call

EXAMPLE = CHARTER_PATH.parent
SECRET = "sk_live_whatif_4Tq8Wm2Zx7Rb"


@dataclass
class Recorded:
    runtime: Runtime
    rows: list[DemoRow]

    def ticket_of(self, run_id: str) -> str:
        return str(next(r.ticket.ticket_id for r in self.rows if r.result.run_id == run_id))

    def counts(self) -> tuple[int, ...]:
        with self.runtime.database.engine.connect() as connection:
            return tuple(
                connection.execute(select(func.count()).select_from(table)).scalar_one()
                for table in (audit_records, runs, approval_requests)
            )


def _runtime(home: Path) -> Runtime:
    settings = Settings(home=home, secrets_dir=home / "s", database_url=f"sqlite:///{home / 'db'}")
    return Runtime(
        settings,
        secret_providers=(EnvSecretProvider({"CHARTER_SECRET_PAYMENTS_REFUND": SECRET}),),
    )


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    """The seven demo tickets, run for real in prod and recorded (read-only afterwards)."""
    runtime = _runtime(tmp_path_factory.mktemp("recorded"))
    rows = asyncio.run(run_demo(runtime))
    assert all(row.as_expected for row in rows)
    with runtime:
        yield Recorded(runtime, rows)


@pytest.fixture
def candidate(tmp_path: Path) -> Callable[[Callable[[str], str]], Charter]:
    """A copy of the example charter, its charter.yaml edited by the given function."""

    def make(edit: Callable[[str], str]) -> Charter:
        folder = tmp_path / "candidate"
        folder.mkdir()
        shutil.copy(EXAMPLE / "charter.yaml", folder / "charter.yaml")
        for sub in ("prompts", "policies", "evals"):
            shutil.copytree(EXAMPLE / sub, folder / sub)
        path = folder / "charter.yaml"
        text = path.read_text(encoding="utf-8")
        edited = edit(text)
        path.write_text(edited, encoding="utf-8")
        return Charter.load(path)

    return make


def replace_once(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert text.count(old) == 1, old
        return text.replace(old, new)

    return edit


def replay(recorded: Recorded, charter: Charter, **kwargs: Any) -> WhatIfReport:
    options: dict[str, Any] = {"environment": "prod", "last": 50, **kwargs}
    return what_if(charter, recorded.runtime.database, **options)


def test_an_identical_candidate_changes_nothing(
    recorded: Recorded, candidate: Callable[[Callable[[str], str]], Charter]
) -> None:
    charter = candidate(lambda text: text)

    report = replay(recorded, charter)

    assert charter.content_sha256 == Charter.load(CHARTER_PATH).content_sha256
    assert report.runs_replayed == 7
    assert report.calls_replayed == 31
    assert report.changed == 0
    assert report.unchanged == report.calls_replayed
    assert "the candidate is the version every replayed run ran under" in report.notes[0]
    # T-1005's refund waited for approval because its account came from an email: a fact
    # about taint, which the audit log does not keep. It is counted, not guessed at.
    [skipped] = report.not_replayable
    assert (recorded.ticket_of(skipped.run_id), skipped.tool) == ("T-1005", "issue_refund")
    assert "untrusted_content.issue_refund" in skipped.reason
    assert report.not_replayable_reasons() == {skipped.reason: 1}


def test_only_the_agents_proposals_are_replayed(recorded: Recorded) -> None:
    # Sends of deferred emails and compensations are in the log but are Charter's own.
    with recorded.runtime.database.engine.connect() as connection:
        tool_calls = connection.execute(
            select(func.count()).where(audit_records.c.kind == "tool_call")
        ).scalar_one()
    report = replay(recorded, Charter.load(CHARTER_PATH))

    followups = 1 + 2  # T-1001's email sent after the run, T-1003 and T-1006 compensated
    assert report.calls_replayed + report.not_replayable_count == tool_calls - followups
    # The runs' own results list the follow-ups too.
    assert (
        report.calls_replayed + report.not_replayable_count
        == sum(len(row.result.tool_calls) for row in recorded.rows) - followups
    )


def test_a_loosened_refund_threshold_allows_the_350_refund(
    recorded: Recorded, candidate: Callable[[Callable[[str], str]], Charter]
) -> None:
    charter = candidate(replace_once('when: "amount_usd > 200"', 'when: "amount_usd > 500"'))

    report = replay(recorded, charter)

    assert report.newly_denied == report.newly_approval_required == ()
    [change] = report.newly_allowed
    assert recorded.ticket_of(change.run_id) == "T-1002"
    assert change.tool == "issue_refund"
    assert change.arguments["amount_usd"] == "350"
    assert (change.old_verdict, change.old_rule) == ("require_approval", "require_approval_for[0]")
    assert (change.new_verdict, change.new_rule) == ("allow", "tools.issue_refund")
    assert report.notes == ()
    assert report.examples(limit=5)["newly_allowed"] == [change.as_dict()]


def test_a_new_deny_rule_denies_the_executed_updates(
    recorded: Recorded, candidate: Callable[[Callable[[str], str]], Charter]
) -> None:
    rule = '\n    - {action: update_ticket, any: true, reason: "tickets are read-only this week"}'
    anchor = 'reason: "the support agent never deletes records"}'
    charter = candidate(replace_once(anchor, anchor + rule))

    report = replay(recorded, charter)

    assert report.newly_allowed == report.newly_approval_required == ()
    tickets = sorted(recorded.ticket_of(c.run_id) for c in report.newly_denied)
    assert tickets == ["T-1001", "T-1003", "T-1004", "T-1006"]
    for change in report.newly_denied:
        assert change.tool == "update_ticket"
        assert (change.old_verdict, change.old_rule) == ("allow", "tools.update_ticket")
        assert (change.new_verdict, change.new_rule) == ("deny", "deny[1]")
        assert change.new_reason == "tickets are read-only this week"
    assert report.unchanged == report.calls_replayed - 4


def test_a_lower_tool_call_budget_denies_the_later_calls_of_long_runs(
    recorded: Recorded, candidate: Callable[[Callable[[str], str]], Charter]
) -> None:
    charter = candidate(replace_once("max_tool_calls: 8", "max_tool_calls: 4"))

    report = replay(recorded, charter)

    changed = sorted((recorded.ticket_of(c.run_id), c.tool) for c in report.newly_denied)
    # T-1001 made six calls, T-1003 six (its sixth was denied anyway), T-1006 five (its
    # fifth was denied anyway); every other run made four or fewer.
    assert changed == [
        ("T-1001", "send_email"),
        ("T-1001", "update_ticket"),
        ("T-1003", "list_customers"),
    ]
    assert {c.new_rule for c in report.newly_denied} == {"budget.max_tool_calls"}
    assert report.newly_allowed == report.newly_approval_required == ()


def test_a_usd_budget_below_the_refund_fee_denies_refunds(
    recorded: Recorded, candidate: Callable[[Callable[[str], str]], Charter]
) -> None:
    # The $0.01 refund fee against a budget of $0.005: the budget stage comes before the
    # policy, so the $350 refund that needed approval is now refused outright too.
    charter = candidate(replace_once("max_usd_per_run: 0.60", "max_usd_per_run: 0.005"))

    report = replay(recorded, charter)

    changed = sorted(
        (recorded.ticket_of(c.run_id), c.tool, c.old_verdict) for c in report.newly_denied
    )
    assert changed == [
        ("T-1001", "issue_refund", "allow"),
        ("T-1002", "issue_refund", "require_approval"),
    ]
    assert {c.new_rule for c in report.newly_denied} == {"budget.max_usd_per_run"}


def test_what_if_executes_and_writes_nothing(
    recorded: Recorded,
    candidate: Callable[[Callable[[str], str]], Charter],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("what-if must not execute a tool")

    monkeypatch.setattr(run_module, "execute", never)
    desks = [row.desk.snapshot() for row in recorded.rows]
    before = recorded.counts()
    charter = candidate(replace_once('when: "amount_usd > 200"', 'when: "amount_usd > 20"'))

    report = replay(recorded, charter)

    assert report.newly_approval_required  # T-1001's $45 refund now needs a human
    assert recorded.counts() == before
    assert [row.desk.snapshot() for row in recorded.rows] == desks


def test_the_report_is_plain_data_and_says_what_it_assumed(recorded: Recorded) -> None:
    report = replay(recorded, Charter.load(CHARTER_PATH), last=3)

    data = json.loads(json.dumps(report.as_dict()))
    assert data["runs_replayed"] == 3  # the newest three: T-1005, T-1006, T-1007
    assert data["environment"] == "prod"
    assert data["not_replayable"]["count"] == 1
    assert data["assumptions"] == list(ASSUMPTIONS)
    assert any("untainted" in a for a in report.assumptions)
    assert any("token" in a for a in report.assumptions)
    assert set(report.examples()) == {
        "newly_denied",
        "newly_approval_required",
        "newly_allowed",
        "not_replayable",
    }
    assert report.examples(limit=0)["not_replayable"] == []


def test_no_runs_is_a_report_with_a_note(recorded: Recorded) -> None:
    charter = Charter.load(CHARTER_PATH)

    for report in (
        replay(recorded, charter, environment="staging"),
        replay(recorded, charter, charter_name="someone-else"),
    ):
        assert (report.runs_replayed, report.calls_replayed, report.changed) == (0, 0, 0)
        assert report.not_replayable == ()
        assert "no recorded runs" in report.notes[0]


@pytest.mark.parametrize("last", [0, -1, 10_001, True, "5", 2.0])
def test_last_must_be_1_to_10000(recorded: Recorded, last: Any) -> None:
    with pytest.raises(UserError, match="1 to 10000"):
        replay(recorded, Charter.load(CHARTER_PATH), last=last)


def test_an_unknown_environment_lists_the_known_ones(recorded: Recorded) -> None:
    with pytest.raises(UserError, match="dev, staging, prod"):
        replay(recorded, Charter.load(CHARTER_PATH), environment="production")


def test_redacted_and_unrecorded_arguments_are_not_replayed(
    tmp_path: Path, candidate: Callable[[Callable[[str], str]], Charter]
) -> None:
    # A run that quotes the refund credential in a note (redacted in the log), then calls a
    # tool with a wrong argument type and a tool nobody declared (both kept only as text).
    original = candidate(replace_once("  deny:\n", "  on_deny: continue\n  deny:\n"))
    model = ScriptedModel(
        [
            reply("", tool_call("update_ticket", "c1", ticket_id="T-1001", note=SECRET)),
            reply("", tool_call("get_ticket", "c2", ticket_id=5)),
            reply("", tool_call("frobnicate", "c3", x=1)),
            reply("", tool_call("get_ticket", "c4", ticket_id="T-1001")),
            reply("done"),
        ]
    )
    with _runtime(tmp_path / "home") as runtime:
        result = asyncio.run(
            runtime.run_agent(
                original,
                model,
                "Handle T-1001",
                principal=Principal("alice", "acme", roles=("support",)),
                environment="dev",
                resources=(SupportDesk.default(),),
            )
        )
        assert result.outcome == "succeeded", result
        assert [c.outcome for c in result.tool_calls] == ["executed", "denied", "denied",
                                                          "executed"]  # fmt: skip

        report = what_if(original, runtime.database, environment="dev", last=1)

    reasons = [(c.tool, c.reason) for c in report.not_replayable]
    assert reasons == [
        ("update_ticket", f"its arguments hold a redacted value ({REDACTED})"),
        ("get_ticket", "its arguments failed validation in the original run and were kept as text"),
    ]
    # The undeclared tool is judged: the candidate's allowlist refuses it whatever its arguments.
    assert report.calls_replayed == 2
    assert report.changed == 0


class _Approving(InProcessSteps):
    """Steps whose every approval request is granted at once (as a durable run's would be)."""

    can_wait = True  # it waits (briefly): the request is filed, as a durable run files it

    def __init__(self, grants: InMemoryGrants) -> None:
        self.grants = grants

    async def await_approval(self, run: Run, request: ApprovalRequest) -> ApprovalOutcome:
        self.grants.grant(request, request.id)
        return ApprovalOutcome("approve", "carol", "ok")


def test_a_call_run_under_an_approval_counts_once_as_approval_required(
    tmp_path: Path, candidate: Callable[[Callable[[str], str]], Charter]
) -> None:
    shipped = Charter.load(CHARTER_PATH)
    grants = InMemoryGrants()
    settings = Settings(home=tmp_path, secrets_dir=tmp_path / "s")
    secrets = (EnvSecretProvider({"CHARTER_SECRET_PAYMENTS_REFUND": SECRET}),)
    with Runtime(settings, secret_providers=secrets, approvals=grants) as runtime:
        run = runtime.start_run(
            shipped,
            Principal("alice", "acme", roles=("support",)),
            environment="prod",
            resources=(SupportDesk.default(),),
        )
        result = asyncio.run(
            run_agent(
                run,
                GullibleSupportModel(),
                "Please handle ticket T-1002.",
                price=runtime.price_for(shipped),
                steps=_Approving(grants),
            )
        )
        assert result.outcome == "succeeded", result
        refunds = [c.outcome for c in result.tool_calls if c.tool == "issue_refund"]
        assert refunds == ["approval_required", "executed"]

        same = what_if(shipped, runtime.database, environment="prod", last=1)
        loosened = candidate(replace_once('when: "amount_usd > 200"', 'when: "amount_usd > 500"'))
        report = what_if(loosened, runtime.database, environment="prod", last=1)

    assert (same.changed, same.not_replayable) == (0, ())
    assert same.calls_replayed == 6  # the refund once, though recorded twice
    [change] = report.newly_allowed
    assert (change.tool, change.old_verdict, change.new_verdict) == (
        "issue_refund",
        "require_approval",
        "allow",
    )
    assert report.calls_replayed == 6


@tool
def pay(memo: str, *, ctx: ToolContext) -> str:
    """Pay.

    Args:
        memo: what for.
    """
    return "paid"


FEES_CHARTER = """
charter: fees
model: {provider: openai, name: gpt-4o-mini}
prompt: prompt.md
tools:
  pay: {effect: irreversible, credential: gone, fee_usd: 1}
budgets: {max_usd_per_run: 1.5}
policies: {on_deny: continue}
"""


def test_a_call_that_could_not_start_is_charged_nothing_when_it_cannot_be_replayed(
    tmp_path: Path,
) -> None:
    # Host code drives the run (an agent loop would stop at the first configuration failure).
    # The first call quotes a credential (redacted in the log, so it cannot be replayed) and
    # could not start (its own credential is missing): the original ledger charged it
    # nothing, which its audit record says (fee_usd "0"). Charging it the $1 fee anyway
    # would leave the next call's $1 over the $1.50 budget: a change the candidate did not
    # make.
    (tmp_path / "prompt.md").write_text("You pay.", encoding="utf-8")
    (tmp_path / "charter.yaml").write_text(FEES_CHARTER, encoding="utf-8")
    charter = Charter.load(tmp_path / "charter.yaml", tools=[pay])
    with _runtime(tmp_path / "home") as runtime:
        runtime.services.secrets.resolve("payments-refund")  # the redactor knows SECRET
        run = runtime.start_run(charter, Principal("alice", "acme"), environment="dev")
        now = runtime.services.clock.now()
        run.services.bus.publish(RunStarted(run.identity, now, "0" * 64, f"{run.id}/started"))
        first = asyncio.run(run.call_tool("pay", {"memo": SECRET}))
        second = asyncio.run(run.call_tool("pay", {"memo": "rent"}))
        assert (first.outcome, first.failure, first.fee_usd) == ("error", "configuration", 0)
        assert second.outcome == "error"
        report = what_if(charter, runtime.database, environment="dev", last=1)

    assert [c.tool for c in report.not_replayable] == ["pay"]
    assert report.calls_replayed == 1
    assert report.changed == 0
