"""The governance commands' edges: help, bad input, and the autonomy report from the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from charter.cli.app import app

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "support_desk"
runner = CliRunner()


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHARTER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CHARTER_DATABASE_URL", raising=False)


def test_autonomy_report_keeps_a_tool_without_evidence() -> None:
    # A reading command: it opens an existing database read-only and never creates one.
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    result = runner.invoke(app, ["autonomy", "report", str(EXAMPLE / "charter.yaml"), "--json"])
    assert result.exit_code == 0, result.stdout
    (tool,) = json.loads(result.stdout)["tools"]
    assert (tool["tool"], tool["proposal"]) == ("issue_refund", "keep")


@pytest.mark.parametrize(
    "args",
    [
        ["autonomy", "report", str(EXAMPLE / "charter.yaml"), "--since", "soon"],
        ["autonomy", "report", "nowhere/charter.yaml"],
        ["release", "show", "support-triage@v1"],
        ["promote", "nope@v1", "--to", "prod", "--as", "bob"],
        ["rollout", "status", "support-triage", "--env", "prod"],
        ["rollout", "set", "support-triage", "v1", "--env", "dev", "--as", "a", "--reason", "r"],
        ["whatif", str(EXAMPLE / "charter.yaml"), "--against", "qa"],
        ["run", "support-triage", "-i", "hi", "--user", "u", "--tenant", "t"],
    ],
)
def test_bad_input_is_a_clear_error_with_exit_2(args: list[str]) -> None:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 2, result.stdout
    assert json.loads(result.stdout)["error"]


def test_every_governance_command_teaches_in_help() -> None:
    for command in (
        ["release", "create"],
        ["promote"],
        ["rollout", "set"],
        ["rollback"],
        ["changelog"],
        ["whatif"],
        ["autonomy", "report"],
    ):
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0
        assert "Usage" in result.stdout
