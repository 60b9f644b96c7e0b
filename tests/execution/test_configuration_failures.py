"""A tool that cannot run for a reason the operator must fix fails the run, at once.

A missing or unsafe credential, or a resource the host never gave the run, is nothing the
model can work around: the call's result says so in a typed way (``failure="configuration"``)
and the agent loop stops the run ``failed`` with the cause as its reason, instead of letting
the model carry on to a final answer that would read as success.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from charter_examples.support_desk.desk import SupportDesk

from charter.contract.tool import ToolContext, tool
from charter.execution.agent import RunResult
from charter.execution.call import ToolResult
from charter.execution.run import Run
from charter.identity.principal import Principal
from charter.runtime import Runtime
from charter.testing import ScriptedModel, reply, tool_call
from tests.execution.harness import call, example_charter, make_runtime, write_charter

ALICE = Principal("alice", "acme", roles=("support",))
REFUND = {"ticket_id": "T-1001", "amount_usd": "45", "account": "acct-C-01"}
EMAIL = {"to": "dana@example.com", "template": "refund_confirmation", "ticket_id": "T-1001"}


def drive(runtime: Runtime, model: ScriptedModel, *, resources: tuple[object, ...]) -> RunResult:
    return asyncio.run(
        runtime.run_agent(
            example_charter(), model, "Please handle ticket T-1001.", principal=ALICE,
            resources=resources,
        )
    )  # fmt: skip


def test_a_missing_credential_fails_the_run_with_the_cause_and_stops_the_model(
    tmp_path: Path,
) -> None:
    desk = SupportDesk.default()
    model = ScriptedModel(
        [
            reply("", tool_call("send_email", **EMAIL)),  # deferred until the run succeeds
            reply("", tool_call("issue_refund", **REFUND)),
            reply("Refund issued, customer told."),  # never asked: the run stopped
        ]
    )
    with make_runtime(tmp_path, secrets={}) as runtime:
        result = drive(runtime, model, resources=(desk,))
        finished = [r.entry for r in runtime.audit.records() if r.entry.kind == "run_finished"]

    assert result.outcome == "failed"
    reason = result.reason
    assert reason.startswith("issue_refund could not run: SecretNotFound: credential ")
    assert "'payments-refund'" in reason
    assert "CHARTER_SECRET_PAYMENTS_REFUND" in reason  # says what to do next
    assert result.decision.rule_id == "execute.configuration"
    assert len(model.calls) == 2  # the model was not asked again after the failure
    refund = [c for c in result.tool_calls if c.tool == "issue_refund"]
    assert [(c.outcome, c.failure) for c in refund] == [("error", "configuration")]
    # A failed run sends nothing: the deferred e-mail is discarded, no money moved.
    emails = [c.outcome for c in result.tool_calls if c.tool == "send_email"]
    assert emails == ["deferred", "discarded"]
    assert desk.outbox == []
    assert desk.refunds == []
    assert [(e.outcome, e.rule_id) for e in finished] == [("failed", "execute.configuration")]
    assert finished[0].reason == reason


def test_a_resource_the_run_was_not_given_fails_the_run(tmp_path: Path) -> None:
    model = ScriptedModel(
        [reply("", tool_call("get_ticket", ticket_id="T-1001")), reply("All done.")]
    )
    with make_runtime(tmp_path) as runtime:
        result = drive(runtime, model, resources=())  # no SupportDesk

    assert result.outcome == "failed"
    assert result.reason.startswith(
        "get_ticket could not run: ResourceMissing: no resource of type SupportDesk"
    )
    assert result.tool_calls[0].failure == "configuration"
    assert len(model.calls) == 1


def test_a_tools_own_error_is_the_models_to_handle(tmp_path: Path) -> None:
    model = ScriptedModel(
        [
            reply("", tool_call("get_ticket", ticket_id="T-9999")),  # the desk raises KeyError
            reply("That ticket does not exist."),
        ]
    )
    with make_runtime(tmp_path) as runtime:
        result = drive(runtime, model, resources=(SupportDesk.default(),))

    assert result.outcome == "succeeded"
    [failed] = result.tool_calls
    assert (failed.outcome, failed.failure) == ("error", "tool")


def test_a_tool_that_raises_a_lookup_error_of_its_own_is_not_a_configuration_problem(
    tmp_path: Path,
) -> None:
    @tool
    def find(key: str, *, ctx: ToolContext) -> str:
        """Look something up.

        Args:
            key: what to look up.
        """
        raise LookupError(f"nothing under {key}")

    charter = write_charter(tmp_path, "tools:\n  find: {effect: read}\n", tools=[find])
    with make_runtime(tmp_path) as runtime:
        run = runtime.start_run(charter, ALICE)
        result = call(run, "find", {"key": "k"})
    assert (result.outcome, result.failure) == ("error", "tool")


def test_executed_and_refused_calls_carry_no_failure(tmp_path: Path) -> None:
    with make_runtime(tmp_path) as runtime:
        run: Run = runtime.start_run(example_charter(), ALICE, resources=(SupportDesk.default(),))
        done = call(run, "get_ticket", {"ticket_id": "T-1001"})
        refused = call(run, "delete_record", {"kind": "ticket", "record_id": "T-1001"})
    assert (done.outcome, done.failure) == ("executed", None)
    assert (refused.outcome, refused.failure) == ("denied", None)


def test_the_failure_survives_a_durable_round_trip(tmp_path: Path) -> None:
    with make_runtime(tmp_path, secrets={}) as runtime:
        run = runtime.start_run(example_charter(), ALICE, resources=(SupportDesk.default(),))
        result = call(run, "issue_refund", REFUND)
        restored = ToolResult.from_dict(result.as_dict())
        run.restore(run.snapshot())
    assert restored.failure == "configuration"
    assert run.results[-1].failure == "configuration"
    # A record written before the field existed reads as a failure of unknown kind: a tool's.
    old = result.as_dict()
    del old["failure"]
    assert ToolResult.from_dict(old).failure == "tool"


def test_a_deferred_effect_that_cannot_run_at_settle_time_fails_the_run(tmp_path: Path) -> None:
    sent: list[str] = []

    @tool
    def notify(to: str, *, ctx: ToolContext) -> str:
        """Send a notification.

        Args:
            to: who to notify.
        """
        sent.append(to)
        return "sent"

    body = (
        "tools:\n"
        "  notify: {effect: irreversible, defer: until_run_succeeds, credential: notifier}\n"
    )
    charter = write_charter(tmp_path, body, tools=[notify])
    model = ScriptedModel([reply("", tool_call("notify", to="ops")), reply("Done.")])
    with make_runtime(tmp_path, secrets={}) as runtime:
        result = asyncio.run(runtime.run_agent(charter, model, "notify ops", principal=ALICE))
    assert result.outcome == "failed"
    assert "deferred notify" in result.reason
    assert "SecretNotFound" in result.reason
    assert result.decision is not None
    assert result.decision.rule_id == "effects.send"
    assert sent == []
