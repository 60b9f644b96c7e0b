"""The runner against real runs: flaky is not passed, proposals are not effects, order holds."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from charter_examples.support_desk.model import GullibleSupportModel

from charter import Charter, Runtime, Settings
from charter.evaluation.gate import evaluate_gate
from charter.evaluation.placeholder_secrets import PlaceholderSecrets
from charter.evaluation.report import build_report
from charter.evaluation.runner import EvalOptions, TaskResult, run_suites
from charter.evaluation.suite import Suite, Task, load_suite
from charter.execution.model import Model
from charter.testing.scripted import ScriptedModel, reply, tool_call

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "support_desk"


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    settings = Settings(
        home=tmp_path, secrets_dir=tmp_path / "s", database_url=f"sqlite:///{tmp_path / 'e.db'}"
    )
    with Runtime(settings, secret_providers=(PlaceholderSecrets(),)) as rt:
        yield rt


def _suite(tmp_path: Path, tasks: str) -> Suite:
    path = tmp_path / "s.yaml"
    path.write_text(
        "suite: s\nkind: golden\nsystems: charter_examples.support_desk.evaluation:systems\n"
        "defaults: {principal: {user: alice, tenant: acme, roles: [support]}}\n"
        f"tasks:\n{tasks}",
        encoding="utf-8",
    )
    return load_suite(path)


def _run(runtime: Runtime, suite: Suite, model_for: object, epochs: int = 1) -> list[TaskResult]:
    charter = Charter.load(EXAMPLE / "charter.yaml")
    return asyncio.run(
        run_suites(
            charter,
            [suite],
            run_agent=runtime.run_agent,
            model_for=model_for,  # type: ignore[arg-type]
            options=EvalOptions(epochs=epochs, concurrency=3),
        )
    )


REFUND_TASK = """\
  - id: refund
    input: Please handle ticket T-1001.
    checks:
      - tool_called: {tool: issue_refund, args: {amount_usd: 45}}
"""


def _proposes_refund(account: str) -> Model:
    return ScriptedModel(
        [
            reply(
                "",
                tool_call("issue_refund", "c1", ticket_id="T-1001", amount_usd=45, account=account),
            ),
            reply("done"),
        ]
    )


def test_a_task_that_passes_sometimes_is_flaky_not_passed(runtime: Runtime, tmp_path: Path) -> None:
    suite = _suite(tmp_path, REFUND_TASK)

    def model_for(task: Task, epoch: int, seed: int) -> Model:
        # Odd epochs propose a refund the charter refuses (an account its pattern rejects).
        return _proposes_refund("acct-C-01" if epoch % 2 == 0 else "not an account!")

    (result,) = _run(runtime, suite, model_for, epochs=4)
    assert result.status == "flaky"
    assert result.passes == 2
    report = build_report(
        Charter.load(EXAMPLE / "charter.yaml"),
        [suite],
        [result],
        options=EvalOptions(epochs=4),
        enforcement=True,
        model="scripted",
        replay=None,
        created_at=datetime.now(UTC),
        duration_seconds=1.0,
    )
    task = report["tasks"][0]
    assert task["pass_all"] is False
    assert task["ci_low"] < 0.5 < task["ci_high"]
    verdict = evaluate_gate(report, 0.5)
    assert verdict.measure == "ci_low"
    assert verdict.passed is False


def test_a_proposed_call_that_did_not_execute_never_satisfies_a_check(
    runtime: Runtime, tmp_path: Path
) -> None:
    suite = _suite(tmp_path, REFUND_TASK)
    (result,) = _run(runtime, suite, lambda task, epoch, seed: _proposes_refund("ACCT!"))
    (epoch,) = result.epochs
    assert result.status == "failed"
    assert epoch.outcome == "denied"
    assert "executed 0 time(s)" in epoch.checks[0].detail


def test_results_come_back_in_task_order_with_per_task_worlds(
    runtime: Runtime, tmp_path: Path
) -> None:
    tasks = "".join(
        f"  - id: t{i}\n    input: Please handle ticket {ticket}.\n"
        f"    checks: [{{state: {{path: refunds, length: {refunds}}}}}]\n"
        for i, (ticket, refunds) in enumerate([("T-1001", 1), ("T-1004", 0)] * 4)
    )
    suite = _suite(tmp_path, tasks)
    results = _run(runtime, suite, lambda task, epoch, seed: GullibleSupportModel())
    assert [r.task.id for r in results] == [f"t{i}" for i in range(8)]
    # Each run got its own desk: refunds did not pile up across tasks.
    assert all(r.status == "passed" for r in results), [
        (r.task.id, r.epochs[0].checks[0].detail) for r in results
    ]


def test_a_task_the_harness_cannot_set_up_is_an_error(runtime: Runtime, tmp_path: Path) -> None:
    suite = _suite(tmp_path, REFUND_TASK)

    def broken(task: Task, epoch: int, seed: int) -> Model:
        raise RuntimeError("no model today")

    (result,) = _run(runtime, suite, broken)
    assert result.status == "error"
    assert "no model today" in (result.epochs[0].error or "")
