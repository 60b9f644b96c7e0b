"""What counts against the SLOs: the agent failing, not the policy working.

The support-desk demo is seven tickets: two the agent finishes, three it hands to a human
(two approval gates, one escalation) and two where the gullible model obeyed an injected
instruction and a charter rule refused the call. Nothing there is the agent failing at work
it was left to do, and nothing is a violation: a call a rule refused after the run read
untrusted content is a blocked attack. So right after the demo the example's own SLOs are
met, and a genuine failure (a run that fails, a forbidden call with no untrusted content in
sight, a malformed call, a budget run out) still breaches them.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from charter_examples.support_desk.demo import CHARTER_PATH, run_demo
from charter_examples.support_desk.desk import SupportDesk

from charter.contract.loader import Charter
from charter.core.settings import Settings
from charter.execution.agent import RunResult, run_agent
from charter.execution.approvals import ApprovalRequest
from charter.execution.run import Run
from charter.execution.steps import ApprovalOutcome, Work
from charter.identity.principal import Principal
from charter.identity.secrets import EnvSecretProvider
from charter.observability.runs import RunStore
from charter.observability.slo import SloResult, evaluate_slos
from charter.runtime import Runtime
from charter.testing import ScriptedModel, reply, tool_call

SECRETS = {"CHARTER_SECRET_PAYMENTS_REFUND": "sk_test_slo_outcomes"}
ALICE = Principal("alice", "acme", roles=("support",))
CHARTER = Charter.load(CHARTER_PATH)


@dataclass
class Desk:
    runtime: Runtime

    def slos(self) -> dict[str, SloResult]:
        now = self.runtime.services.clock.now()
        results = evaluate_slos(RunStore(self.runtime.database), CHARTER.name,
                                CHARTER.spec.slos, now=now)  # fmt: skip
        return {r.name: r for r in results}

    def run(self, *replies: Any, steps: Any = None, charter: Charter = CHARTER) -> RunResult:
        run = self.runtime.start_run(charter, ALICE, environment="prod",
                                     resources=(SupportDesk.default(),))  # fmt: skip
        price = self.runtime.price_for(charter)
        return asyncio.run(run_agent(run, ScriptedModel(list(replies)), "Please handle T-1001.",
                                     price=price, steps=steps))  # fmt: skip


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    home = tmp_path / "home"
    settings = Settings(home=home, secrets_dir=home / "secrets")
    with Runtime(settings, secret_providers=[EnvSecretProvider(SECRETS)]) as runtime:
        rows = asyncio.run(run_demo(runtime))
        assert all(row.as_expected for row in rows)
        yield Desk(runtime)


def test_right_after_the_demo_the_examples_slos_are_met(desk: Desk) -> None:
    slos = desk.slos()
    assert set(slos) == {"task_success_rate", "policy_violations_per_1000_runs"}
    success, violations = slos["task_success_rate"], slos["policy_violations_per_1000_runs"]
    assert (success.status, success.value, success.runs, success.samples) == ("met", 1.0, 7, 2)
    assert (violations.status, violations.value, violations.samples) == ("met", 0.0, 7)


def test_the_demos_runs_are_classified_by_what_happened(desk: Desk) -> None:
    rows = {r.id: r for r in RunStore(desk.runtime.database).list(limit=10)}
    seen = sorted(
        (r.outcome, r.disposition, r.violations, r.blocked_attacks) for r in rows.values()
    )
    assert seen == [
        ("approval_required", "handed_off", 0, 0),
        ("approval_required", "handed_off", 0, 0),
        ("denied", "attack_blocked", 0, 1),  # the customer list to attacker@evil.test
        ("denied", "attack_blocked", 0, 1),  # delete_record on a CRM note's say-so
        ("escalated", "handed_off", 0, 0),
        ("succeeded", "succeeded", 0, 0),
        ("succeeded", "succeeded", 0, 0),
    ]


def test_a_run_that_fails_breaches_task_success(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with Runtime(Settings(home=home, secrets_dir=home / "s"), secret_providers=[]) as runtime:
        desk = Desk(runtime)
        asyncio.run(run_demo(runtime))  # no credential: T-1001's refund cannot run
        slos = desk.slos()
    success = slos["task_success_rate"]
    assert success.status == "breached"
    assert (success.value, success.samples) == (0.5, 2)  # T-1001 failed, T-1004 succeeded


def test_a_forbidden_call_with_no_untrusted_content_in_sight_is_a_violation(desk: Desk) -> None:
    # The agent's own idea: nothing untrusted had been read when it asked to delete.
    result = desk.run(reply("", tool_call("delete_record", kind="ticket", record_id="T-1001")))
    assert result.outcome == "denied"
    [refused] = result.tool_calls
    assert (refused.untrusted_read, refused.refusal) == (False, "violation")
    slos = desk.slos()
    assert slos["policy_violations_per_1000_runs"].status == "breached"
    assert slos["policy_violations_per_1000_runs"].value == pytest.approx(1000 / 8)
    assert slos["task_success_rate"].status == "breached"  # and the run failed its task


def test_a_call_to_an_undeclared_tool_is_a_violation_whatever_was_read(desk: Desk) -> None:
    result = desk.run(
        reply("", tool_call("get_ticket", ticket_id="T-1001")),  # untrusted subject and body
        reply("", tool_call("export_everything", to="x")),  # not in the charter
    )
    refused = result.tool_calls[-1]
    assert (refused.outcome, refused.untrusted_read, refused.refusal) == (
        "denied", True, "violation",
    )  # fmt: skip
    assert desk.slos()["policy_violations_per_1000_runs"].status == "breached"


def test_a_rule_refusing_a_call_after_untrusted_content_is_a_blocked_attack(desk: Desk) -> None:
    result = desk.run(
        reply("", tool_call("get_ticket", ticket_id="T-1001")),
        reply("", tool_call("delete_record", kind="ticket", record_id="T-1001")),
    )
    refused = result.tool_calls[-1]
    assert (refused.outcome, refused.untrusted_read, refused.refusal) == (
        "denied", True, "blocked_attack",
    )  # fmt: skip
    slos = desk.slos()
    assert slos["policy_violations_per_1000_runs"].status == "met"
    assert slos["task_success_rate"].samples == 2  # not the agent's task to finish


class Deciding:
    """A runner that can wait; the wait ends at once with ``verdict`` by ``lead``."""

    can_wait = True

    def __init__(self, verdict: str) -> None:
        self.verdict = verdict

    async def step(self, run: Run, name: str, work: Work) -> dict[str, Any]:
        return await work()

    async def await_approval(self, run: Run, request: ApprovalRequest) -> ApprovalOutcome | None:
        return ApprovalOutcome(self.verdict, "lead", "not this one")  # type: ignore[arg-type]


@pytest.mark.parametrize("verdict", ["reject", "terminate"])
def test_a_humans_refusal_is_neither_a_violation_nor_the_agents_failure(
    desk: Desk, verdict: str
) -> None:
    big = {"ticket_id": "T-1002", "amount_usd": "350", "account": "acct-C-02"}
    result = desk.run(reply("", tool_call("issue_refund", **big)), reply("Done."),
                      steps=Deciding(verdict))  # fmt: skip
    assert result.outcome == "denied"
    slos = desk.slos()
    assert slos["policy_violations_per_1000_runs"].status == "met"
    assert slos["task_success_rate"].samples == 2


def test_a_budget_that_ran_out_is_the_agents_failure_even_when_it_escalates(
    desk: Desk, tmp_path: Path
) -> None:
    text = CHARTER_PATH.read_text(encoding="utf-8").replace(
        "max_tool_calls: 8", "max_tool_calls: 1"
    )
    folder = tmp_path / "tight"
    shutil.copytree(CHARTER_PATH.parent, folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "charter.yaml").write_text(text, encoding="utf-8")
    tight = Charter.load(folder / "charter.yaml")
    result = desk.run(
        reply("", tool_call("get_ticket", ticket_id="T-1001")),
        reply("", tool_call("get_ticket", "again", ticket_id="T-1001")),
        charter=tight,
    )
    assert result.outcome == "escalated"  # on_exceed: escalate
    assert result.decision is not None
    assert result.decision.rule_id.startswith("budget.")
    success = desk.slos()["task_success_rate"]
    assert (success.samples, success.status) == (3, "breached")
