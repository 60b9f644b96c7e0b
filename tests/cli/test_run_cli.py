"""``charter run`` tells the truth about how a run ended, where the user looks.

A tool that could not run for a configuration reason fails the run, and the cause is on the
one-line result, on stderr and in ``--json``. A run that stops at an approval it cannot wait
for files nothing and says how to run it so that it can wait.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from charter_examples.support_desk.demo import CHARTER_PATH
from rich.console import Console
from typer.testing import CliRunner

from charter.cli import render
from charter.cli.app import app

SECRET = "sk_test_cli_run_5e4d3c2b1a"


@pytest.fixture
def home(tmp_path: Path) -> dict[str, str | None]:
    """An environment with a fresh CHARTER_HOME and no payments credential (None unsets it)."""
    return {"CHARTER_HOME": str(tmp_path / "home"), "CHARTER_SECRET_PAYMENTS_REFUND": None}


def run_ticket(env: dict[str, str | None], ticket: str, *extra: str) -> tuple[int, str, str]:
    args = ["run", str(CHARTER_PATH), "-i", f"Please handle ticket {ticket}.", "--user", "alice",
            "--tenant", "acme", "--role", "support", *extra]  # fmt: skip
    result = CliRunner().invoke(app, args, env=env)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("value", [None, "", "  \n"], ids=["unset", "empty", "blank"])
def test_a_missing_credential_fails_the_run_and_says_why(
    home: dict[str, str | None], value: str | None
) -> None:
    code, out, err = run_ticket({**home, "CHARTER_SECRET_PAYMENTS_REFUND": value}, "T-1001")

    assert code == 1, out + err
    first = out.splitlines()[0]
    assert ": failed: issue_refund could not run: SecretNotFound: credential " in first
    assert "succeeded" not in out
    assert "error: issue_refund could not run: SecretNotFound" in err
    assert "CHARTER_SECRET_PAYMENTS_REFUND" in err


def test_a_missing_credential_is_in_the_json(home: dict[str, str | None]) -> None:
    code, out, _ = run_ticket(home, "T-1001", "--json")

    assert code == 1
    result = json.loads(out)
    assert result["outcome"] == "failed"
    assert result["decision"]["rule_id"] == "execute.configuration"
    assert "CHARTER_SECRET_PAYMENTS_REFUND" in result["reason"]
    [refund] = [c for c in result["tool_calls"] if c["tool"] == "issue_refund"]
    assert (refund["outcome"], refund["failure"]) == ("error", "configuration")
    assert refund["detail"].startswith("SecretNotFound: credential 'payments-refund'")
    # The confirmation was never sent: a failed run sends nothing.
    emails = [c["outcome"] for c in result["tool_calls"] if c["tool"] == "send_email"]
    assert "executed" not in emails


def test_with_the_credential_the_same_run_succeeds_with_nothing_on_stderr(
    home: dict[str, str | None],
) -> None:
    code, out, err = run_ticket({**home, "CHARTER_SECRET_PAYMENTS_REFUND": SECRET}, "T-1001")
    assert code == 0, out + err
    assert ": succeeded: " in out.splitlines()[0]
    assert "error:" not in err
    assert "warning:" not in err
    assert SECRET not in out + err


def test_a_run_that_cannot_wait_files_nothing_and_says_how_to_wait(
    home: dict[str, str | None],
) -> None:
    env = {**home, "CHARTER_SECRET_PAYMENTS_REFUND": SECRET}
    code, out, err = run_ticket(env, "T-1002")

    assert code == 1, out + err
    assert ": approval_required: refunds over $200 need a human" in out.splitlines()[0]
    assert "no approval request was filed" in err
    assert "--durable" in err
    assert "--detach" in err
    # Nothing orphaned in the inbox: an approver has nothing to decide that nobody waits on.
    listed = CliRunner().invoke(app, ["approvals", "list", "--json"], env=env)
    assert listed.exit_code == 0, listed.stdout + listed.stderr
    assert json.loads(listed.stdout)["requests"] == []


def assert_could_not_wait(result: dict[str, Any]) -> None:
    """The JSON of a run in process stopped at the example's approval gate: it could not wait
    for the decision, so it filed nothing, and it says how to run it so it can wait."""
    assert result["outcome"] == "approval_required"
    assert result["approval"] is None
    assert result["decision"]["rule_id"] == "require_approval_for[0]"
    assert "--durable" in result["hint"]


def test_a_run_that_cannot_wait_says_so_in_the_json(home: dict[str, str | None]) -> None:
    env = {**home, "CHARTER_SECRET_PAYMENTS_REFUND": SECRET}
    code, out, _ = run_ticket(env, "T-1002", "--json")

    assert code == 1
    result = json.loads(out)
    assert_could_not_wait(result)
    [held] = [c for c in result["tool_calls"] if c["outcome"] == "approval_required"]
    assert held["tool"] == "issue_refund"
    assert "no request was filed" in held["detail"]


def test_a_run_that_succeeds_or_is_denied_has_no_hint(home: dict[str, str | None]) -> None:
    env = {**home, "CHARTER_SECRET_PAYMENTS_REFUND": SECRET}
    for ticket in ("T-1001", "T-1006"):
        _, out, _ = run_ticket(env, ticket, "--json")
        assert "hint" not in json.loads(out)


@pytest.mark.parametrize("width", [80, 120])
def test_the_runs_calls_are_never_cut_at_the_width(
    home: dict[str, str | None], width: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, out, _ = run_ticket({**home, "CHARTER_SECRET_PAYMENTS_REFUND": SECRET}, "T-1003", "--json")
    result = json.loads(out)
    shown = io.StringIO()
    monkeypatch.setattr(render, "console", Console(file=shown, width=width, color_system=None))
    render.print_run(result)
    lines = shown.getvalue().splitlines()
    assert "…" not in shown.getvalue()
    for index, call in enumerate(result["tool_calls"], 1):
        rule = call["decision"]["rule_id"]
        [line] = [line for line in lines if line.startswith(f"{index}  {call['tool']} ")]
        assert line.split() == [str(index), call["tool"], call["outcome"], rule]
    # The refusal's reason is under its call, whole (wrapped, not cut).
    text = " ".join(shown.getvalue().split())
    assert "send_email.to must be one address at example.com" in text
    assert all(len(line) <= width for line in lines[1:])  # the run's line is one line


def test_runs_show_of_a_run_that_could_not_wait_says_nothing_was_filed(
    home: dict[str, str | None],
) -> None:
    env = {**home, "CHARTER_SECRET_PAYMENTS_REFUND": SECRET}
    _, out, _ = run_ticket(env, "T-1002", "--json")
    run_id = json.loads(out)["run_id"]
    shown = CliRunner().invoke(app, ["runs", "show", run_id], env=env)
    assert shown.exit_code == 1, shown.stdout + shown.stderr
    text = " ".join(shown.stdout.split())
    assert "issue_refund" in text
    assert "no approval request was filed: the run could not wait for a decision" in text
