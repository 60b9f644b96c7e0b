"""Only a run that can wait for a decision files an approval request.

An in-process agent loop (``InProcessSteps``) stops at the first call that needs approval and
nothing ever resumes it: a request it filed would sit ``pending`` in the inbox forever, and
approving it would change nothing. So it files nothing; the run still ends
``approval_required`` and the audit log records the call and the rule. A runner that can wait
(durable execution) files exactly one request per call, as host code calling ``call_tool``
does by default (it may retry once the request is approved).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from charter_examples.support_desk.desk import SupportDesk

from charter.core.errors import ApprovalRequired
from charter.execution.agent import RunResult, run_agent
from charter.execution.approvals import ApprovalRequest, InMemoryGrants
from charter.execution.run import Run
from charter.execution.steps import ApprovalOutcome, InProcessSteps, Steps, Work
from charter.identity.principal import Principal
from charter.runtime import Runtime
from charter.testing import ScriptedModel, reply, tool_call
from tests.execution.harness import call, example_charter, make_runtime, tool_records

ALICE = Principal("alice", "acme", roles=("support",))
BIG = {"ticket_id": "T-1002", "amount_usd": "350", "account": "acct-C-02"}


class WaitingSteps:
    """A runner that can wait, standing in for the durable one: here the wait ends at once
    with ``decision`` (None: still undecided when the test looks)."""

    can_wait = True

    def __init__(self, decision: ApprovalOutcome | None = None) -> None:
        self.decision = decision
        self.waited_on: list[ApprovalRequest] = []

    async def step(self, run: Run, name: str, work: Work) -> dict[str, Any]:
        return await work()

    async def await_approval(self, run: Run, request: ApprovalRequest) -> ApprovalOutcome | None:
        self.waited_on.append(request)
        return self.decision


def drive(runtime: Runtime, steps: Steps | None = None) -> RunResult:
    model = ScriptedModel([reply("", tool_call("issue_refund", **BIG)), reply("unreachable")])
    run = runtime.start_run(example_charter(), ALICE, resources=(SupportDesk.default(),))
    price = runtime.price_for(example_charter())
    return asyncio.run(run_agent(run, model, "Please handle ticket T-1002.", price=price,
                                 steps=steps))  # fmt: skip


def inbox(runtime: Runtime) -> InMemoryGrants:
    grants = runtime.services.inbox
    assert isinstance(grants, InMemoryGrants)
    return grants


def test_an_in_process_run_files_nothing_but_ends_approval_required(tmp_path: Path) -> None:
    with make_runtime(tmp_path) as runtime:
        result = drive(runtime)
        [record] = tool_records(runtime, result.run_id)

        assert result.outcome == "approval_required"
        assert result.decision is not None
        assert result.decision.rule_id == "require_approval_for[0]"
        assert result.approval is None  # nothing an approver could act on
        assert inbox(runtime).requests == {}
        # The audit log still records the call, its verdict and its rule.
        assert (record.entry.outcome, record.entry.verdict, record.entry.rule_id) == (
            "approval_required", "require_approval", "require_approval_for[0]",
        )  # fmt: skip
        assert record.entry.approval_request_id is None
        [refund] = result.tool_calls
        assert "no request was filed" in refund.model_text


def test_the_durable_store_gets_no_orphan_request_from_an_in_process_run(
    tmp_path: Path,
) -> None:
    from charter.core.settings import Settings
    from charter.identity.secrets import EnvSecretProvider

    settings = Settings(home=tmp_path / "home", secrets_dir=tmp_path / "secrets")
    secrets = [EnvSecretProvider({"CHARTER_SECRET_PAYMENTS_REFUND": "sk_test_wait"})]
    with Runtime(settings, secret_providers=secrets) as runtime:
        result = drive(runtime)
        assert result.outcome == "approval_required"
        assert runtime.approvals.list(status="pending") == []


def test_a_run_that_can_wait_files_one_request_and_waits_on_it(tmp_path: Path) -> None:
    steps = WaitingSteps()
    with make_runtime(tmp_path) as runtime:
        result = drive(runtime, steps)
        requests = list(inbox(runtime).requests.values())

    assert result.outcome == "approval_required"  # still undecided when the wait returned
    assert result.approval is not None
    assert requests == [result.approval]
    assert steps.waited_on == [result.approval]


def test_an_approved_wait_runs_the_call(tmp_path: Path) -> None:
    class Granting(WaitingSteps):
        async def await_approval(
            self, run: Run, request: ApprovalRequest
        ) -> ApprovalOutcome | None:
            grants = run.services.grants
            assert isinstance(grants, InMemoryGrants)
            grants.grant(request, "apr-ok")
            return ApprovalOutcome("approve", "lead", "ok")

    with make_runtime(tmp_path) as runtime:
        result = drive(runtime, Granting())
    assert result.outcome == "succeeded"
    assert [c.outcome for c in result.tool_calls] == ["approval_required", "executed"]


@pytest.mark.parametrize("steps", [InProcessSteps()], ids=["in-process"])
def test_the_in_process_runner_says_it_cannot_wait(steps: InProcessSteps) -> None:
    assert steps.can_wait is False


def test_host_code_calling_tools_itself_files_requests_by_default(tmp_path: Path) -> None:
    with make_runtime(tmp_path) as runtime:
        run = runtime.start_run(example_charter(), ALICE, resources=(SupportDesk.default(),))
        assert run.can_wait is True
        result = call(run, "issue_refund", BIG)
        assert result.approval is not None
        assert list(inbox(runtime).requests) == [result.approval.id]


def test_host_code_that_cannot_wait_gets_approval_required_without_a_request(
    tmp_path: Path,
) -> None:
    with make_runtime(tmp_path) as runtime:
        run = runtime.start_run(example_charter(), ALICE, resources=(SupportDesk.default(),))
        run.can_wait = False
        with pytest.raises(ApprovalRequired) as raised:
            asyncio.run(run.invoke("issue_refund", BIG))
        assert inbox(runtime).requests == {}
    assert raised.value.request_id == ""
    assert "refunds over $200 need a human" in str(raised.value)
    assert "no request was filed" in str(raised.value)
