"""Stage 1, the kill switch: a killed scope refuses every call, audited, and cannot be caught
by ``except Exception`` anywhere (tool code, host loops, the agent loop)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest
from charter_examples.support_desk.desk import SupportDesk

from charter.contract.tool import ToolContext, tool
from charter.core.errors import KillSignal
from charter.execution.kill_switch import KillSwitches
from charter.execution.model import Message
from charter.identity.principal import Principal
from charter.runtime import Runtime
from charter.testing import ScriptedModel, reply, tool_call
from tests.execution.harness import (
    call,
    example_charter,
    start_example_run,
    tool_records,
    write_charter,
)

CLOSE_T1001 = {"ticket_id": "T-1001", "status": "closed"}


def test_killed_charter_raises_kill_signal_and_audits_the_refusal(runtime: Runtime) -> None:
    run = start_example_run(runtime)
    desk = run.resources[0]
    assert isinstance(desk, SupportDesk)
    runtime.kill_switches.kill("charter:support-triage", "incident")

    with pytest.raises(KillSignal) as raised:
        call(run, "update_ticket", CLOSE_T1001)

    assert raised.value.scope == "charter:support-triage"
    assert raised.value.reason == "incident"
    assert desk.tickets["T-1001"].status == "open"  # the tool never ran
    [record] = tool_records(runtime)
    assert record.entry.outcome == "killed"
    assert record.entry.rule_id == "kill-switch:charter:support-triage"
    assert record.entry.stage == "kill_switch"
    assert record.entry.verdict == "deny"
    assert "incident" in record.entry.reason
    assert run.ledger.totals().tool_calls == 0  # refused before the budget stage


def test_kill_signal_is_a_base_exception_that_host_code_cannot_swallow(runtime: Runtime) -> None:
    assert issubclass(KillSignal, BaseException)
    assert not issubclass(KillSignal, Exception)
    run = start_example_run(runtime)
    runtime.kill_switches.kill("charter:support-triage", "incident")
    swallowed: list[Exception] = []

    async def host_loop() -> None:
        for _ in range(3):
            try:
                await run.call_tool("get_ticket", {"ticket_id": "T-1001"})
            except Exception as exc:  # what careless host code does
                swallowed.append(exc)

    with pytest.raises(KillSignal):
        asyncio.run(host_loop())
    assert swallowed == []
    assert len(tool_records(runtime)) == 1  # the loop stopped at the first refusal


class _Operator:
    """Pulls the kill switch while a tool is running and delivers the signal into it."""

    def __init__(self, switches: KillSwitches) -> None:
        self.switches = switches

    def pull(self) -> None:
        self.switches.kill("all", "operator stop")
        raise KillSignal("all", "operator stop")


def test_kill_delivered_inside_a_tool_passes_its_except_exception_and_is_audited(
    runtime: Runtime, tmp_path: Path
) -> None:
    @tool
    def long_job(*, ctx: ToolContext) -> str:
        """A tool that catches every Exception, as sloppy tool code does."""
        try:
            ctx.resource(_Operator).pull()
        except Exception:
            return "swallowed"
        return "finished"

    charter = write_charter(
        tmp_path, "tools:\n  long_job: {effect: write, fee_usd: 0.02}\n", tools=[long_job]
    )
    run = runtime.start_run(
        charter, Principal("alice", "acme"), resources=(_Operator(runtime.kill_switches),)
    )

    with pytest.raises(KillSignal):
        call(run, "long_job", {})

    [record] = tool_records(runtime)
    # It had started: a kill that stops a running call interrupts it (refused is "killed");
    # the policy's allow stays its decision, the detail names the kill.
    assert (record.entry.outcome, record.entry.verdict) == ("interrupted", "allow")
    assert "kill switch (all)" in record.entry.detail
    assert "operator stop" in record.entry.detail
    assert run.ledger.totals().cost_usd == Decimal("0.02")  # it had started
    with pytest.raises(KillSignal):  # and the switch holds for the next call
        call(run, "long_job", {})


def test_scope_all_kills_every_charter_and_tenant(runtime: Runtime) -> None:
    runtime.kill_switches.kill("all", "maintenance")
    for tenant in ("acme", "globex"):
        with pytest.raises(KillSignal) as raised:
            call(start_example_run(runtime, tenant=tenant), "get_ticket", {"ticket_id": "T-1001"})
        assert raised.value.scope == "all"
    assert {r.entry.rule_id for r in tool_records(runtime)} == {"kill-switch:all"}


def test_tenant_scope_kills_only_that_tenant(runtime: Runtime) -> None:
    runtime.kill_switches.kill("tenant:acme", "acme asked us to stop")
    with pytest.raises(KillSignal) as raised:
        call(start_example_run(runtime, tenant="acme"), "get_ticket", {"ticket_id": "T-1001"})
    assert raised.value.scope == "tenant:acme"

    other = call(start_example_run(runtime, tenant="globex"), "get_ticket", {"ticket_id": "T-1001"})
    assert other.outcome == "executed"
    killed, executed = tool_records(runtime)
    assert (killed.entry.tenant, killed.entry.rule_id) == ("acme", "kill-switch:tenant:acme")
    assert (executed.entry.tenant, executed.entry.outcome) == ("globex", "executed")


def test_other_charter_scope_does_not_stop_this_charter(runtime: Runtime) -> None:
    runtime.kill_switches.kill("charter:another-agent", "unrelated")
    assert call(start_example_run(runtime), "get_ticket", {"ticket_id": "T-1001"}).executed


def test_revive_lets_calls_through_again(runtime: Runtime) -> None:
    run = start_example_run(runtime)
    runtime.kill_switches.kill("charter:support-triage", "incident")
    with pytest.raises(KillSignal):
        call(run, "get_ticket", {"ticket_id": "T-1001"})

    assert runtime.kill_switches.revive("charter:support-triage") is True
    assert runtime.kill_switches.revive("charter:support-triage") is False  # already alive
    assert call(run, "get_ticket", {"ticket_id": "T-1001"}).executed
    assert [r.entry.outcome for r in tool_records(runtime)] == ["killed", "executed"]


@pytest.mark.parametrize(
    "scope",
    ["", "ALL", "everything", "charter", "charter:", "tenant:", "user:alice", ":acme", "all:x"],
)
def test_bad_scope_strings_are_rejected_with_the_accepted_forms(scope: str) -> None:
    switches = KillSwitches()
    with pytest.raises(ValueError, match="must be 'all', 'charter:<name>' or 'tenant:<id>'"):
        switches.kill(scope, "reason")
    with pytest.raises(ValueError, match="must be 'all'"):
        switches.revive(scope)
    assert switches.active_for("support-triage", "acme") is None


@pytest.mark.parametrize("reason", ["", "   ", "\n"])
def test_a_kill_needs_a_reason(reason: str) -> None:
    switches = KillSwitches()
    with pytest.raises(ValueError, match="needs a reason"):
        switches.kill("all", reason)
    assert switches.active_for("support-triage", "acme") is None


def test_run_agent_ends_killed_when_killed_before_the_first_model_call(runtime: Runtime) -> None:
    runtime.kill_switches.kill("charter:support-triage", "incident")
    model = ScriptedModel([reply("never asked")])

    result = asyncio.run(
        runtime.run_agent(
            example_charter(),
            model,
            "Please handle ticket T-1001.",
            principal=Principal("alice", "acme", roles=("support",)),
            resources=(SupportDesk.default(),),
        )
    )

    assert result.outcome == "killed"
    assert result.decision is not None
    assert result.decision.rule_id == "kill-switch:charter:support-triage"
    assert model.calls == []  # no model call after the kill
    finished = [r for r in runtime.audit.records() if r.entry.kind == "run_finished"]
    assert [(r.entry.outcome, r.entry.rule_id) for r in finished] == [
        ("killed", "kill-switch:charter:support-triage")
    ]


def test_run_agent_ends_killed_when_the_switch_is_pulled_mid_run(runtime: Runtime) -> None:
    desk = SupportDesk.default()

    def pull_then_close(_messages: object) -> object:
        runtime.kill_switches.kill("tenant:acme", "runaway agent")
        return reply("closing it", tool_call("update_ticket", **CLOSE_T1001))

    model = ScriptedModel(
        [reply("reading", tool_call("get_ticket", ticket_id="T-1001")), pull_then_close]  # type: ignore[list-item]
    )
    result = asyncio.run(
        runtime.run_agent(
            example_charter(),
            model,
            "Please handle ticket T-1001.",
            principal=Principal("alice", "acme", roles=("support",)),
            resources=(desk,),
        )
    )

    assert result.outcome == "killed"
    assert result.decision is not None
    assert result.decision.rule_id == "kill-switch:tenant:acme"
    assert desk.tickets["T-1001"].status == "open"
    assert [(r.entry.tool, r.entry.outcome) for r in tool_records(runtime)] == [
        ("get_ticket", "executed"),
        ("update_ticket", "killed"),
    ]


def test_agent_loop_except_exception_around_the_model_cannot_swallow_a_kill(
    runtime: Runtime,
) -> None:
    class KilledModel:
        provider = "openai"
        name = "gpt-4o-mini"

        async def chat(self, *_args: object, **_kwargs: object) -> object:
            raise KillSignal("charter:support-triage", "adapter saw the kill first")

    result = asyncio.run(
        runtime.run_agent(
            example_charter(),
            KilledModel(),  # type: ignore[arg-type]
            "Please handle ticket T-1001.",
            principal=Principal("alice", "acme"),
            resources=(SupportDesk.default(),),
        )
    )

    assert result.outcome == "killed"  # not "failed": the loop's except Exception missed it
    assert result.decision is not None
    assert result.decision.rule_id == "kill-switch:charter:support-triage"
    assert isinstance(result.messages[0], Message)
