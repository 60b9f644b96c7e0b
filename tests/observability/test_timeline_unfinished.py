"""The header of a run that has not ended agrees with its timeline.

A run's totals are written to the ``runs`` table once, when it ends, from its own ledger.
Until then (a durable run parked for approval, a run in flight) the row says 0 of everything,
so the inspector counts what the timeline itself shows: model calls and tokens from the
stored spans, tool calls from the audit log, tool fees as the audit log records what the
ledger charged for each call (``tests/observability/test_timeline_fees.py``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import typer
from charter_examples.support_desk.demo import CHARTER_PATH
from charter_examples.support_desk.desk import SupportDesk
from charter_examples.support_desk.model import GullibleSupportModel
from typer.testing import CliRunner

from charter.cli import runs
from charter.contract.loader import Charter
from charter.core.settings import Settings
from charter.execution.agent import run_agent
from charter.identity.principal import Principal
from charter.identity.secrets import EnvSecretProvider
from charter.observability.timeline import ModelCallStep, Timeline, TimelineReader, ToolCallStep
from charter.runtime import Runtime
from charter.storage import Database
from charter.testing.clock import FakeClock
from tests.parking import Parked, StopAtApproval

SECRETS = {"CHARTER_SECRET_PAYMENTS_REFUND": "sk_test_unfinished"}


@pytest.fixture
def parked(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A T-1002 run parked at its $350 refund, with Charter's span store (the default)."""
    home = tmp_path / "home"
    settings = Settings(home=home, secrets_dir=home / "secrets")
    with Runtime(settings, secret_providers=[EnvSecretProvider(SECRETS)]) as runtime:
        charter = Charter.load(CHARTER_PATH)
        run = runtime.start_run(charter, Principal("alice", "acme", roles=("support",)),
                                environment="prod", resources=(SupportDesk.default(),),
                                model_name="scripted:gullible-support-agent")  # fmt: skip
        price = runtime.price_for(charter)
        with pytest.raises(Parked):
            asyncio.run(run_agent(run, GullibleSupportModel(), "Please handle ticket T-1002.",
                                  price=price, steps=StopAtApproval()))  # fmt: skip
        assert runtime.flush_traces()
        yield home, run.id


def timeline(home: Path, run_id: str, charter: Charter | None = None) -> Timeline:
    database = Database(f"sqlite:///{home / 'charter.sqlite3'}")
    try:
        found = TimelineReader(database, FakeClock()).find(run_id, charter=charter)
    finally:
        database.dispose()
    assert found is not None
    return found


def test_a_parked_run_counts_what_its_timeline_shows(parked: tuple[Path, str]) -> None:
    home, run_id = parked
    t = timeline(home, run_id)
    assert t.outcome == "running"
    models = [s for s in t.steps if isinstance(s, ModelCallStep)]
    calls = [s for s in t.steps if isinstance(s, ToolCallStep)]
    assert len(models) == 4
    assert [c.tool for c in calls] == ["get_ticket", "lookup_customer", "read_inbox",
                                       "issue_refund"]  # fmt: skip
    usage = t.usage
    assert usage is not None
    assert usage.final is False
    assert usage.model_calls == 4
    assert usage.total_tokens == sum(m.input_tokens + m.output_tokens for m in models) > 0
    assert usage.tool_calls == 4  # every call that reached the budget stage, as the ledger
    assert (usage.denied_calls, usage.tool_errors) == (0, 0)
    assert usage.model_cost_usd == sum(m.cost_usd or 0 for m in models) > 0
    # As audited: the reads are free and the refund waits for approval, so nothing yet.
    assert usage.tool_fees_usd == 0
    assert usage.cost_usd == usage.model_cost_usd
    assert usage.elapsed_seconds is None


def test_with_the_charter_its_tool_fees_and_cost_so_far_are_known(
    parked: tuple[Path, str],
) -> None:
    home, run_id = parked
    usage = timeline(home, run_id, Charter.load(CHARTER_PATH)).usage
    assert usage is not None
    assert usage.tool_fees_usd == 0  # the refund waits for approval: no fee yet
    assert usage.model_cost_usd is not None
    assert usage.cost_usd == usage.model_cost_usd


def test_runs_show_of_a_parked_run_agrees_with_its_timeline(parked: tuple[Path, str]) -> None:
    home, run_id = parked
    cli = typer.Typer()
    cli.add_typer(runs.app, name="runs")
    env = {"CHARTER_HOME": str(home)}
    result = CliRunner().invoke(cli, ["runs", "show", run_id], env=env)
    assert result.exit_code == 3, result.stdout + result.stderr  # not ended
    text = " ".join(result.stdout.split())
    assert "used so far: 4 model calls, " in text
    assert "0 model calls" not in text
    assert ", 4 tool calls (0 denied, 0 failed)" in text
    assert "model call" in text  # and the timeline lists them

    result = CliRunner().invoke(cli, ["runs", "show", run_id, "--json"], env=env)
    data = json.loads(result.stdout)
    assert data["usage"]["final"] is False
    assert data["usage"]["model_calls"] == 4
    assert data["usage"]["tool_calls"] == 4
    assert data["usage"]["tool_fees_usd"] == "0"
    assert data["usage"]["cost_usd"] == data["usage"]["model_cost_usd"] != "0"


def test_an_ended_run_keeps_the_ledgers_totals(tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = Settings(home=home, secrets_dir=home / "secrets")
    with Runtime(settings, secret_providers=[EnvSecretProvider(SECRETS)]) as runtime:
        result = asyncio.run(runtime.run_agent(
            Charter.load(CHARTER_PATH), GullibleSupportModel(), "Please handle ticket T-1001.",
            principal=Principal("alice", "acme", roles=("support",)), environment="prod",
            resources=(SupportDesk.default(),),
        ))  # fmt: skip
        assert runtime.flush_traces()
    usage = timeline(home, result.run_id).usage
    assert usage is not None
    assert usage.final is True
    assert (usage.model_calls, usage.total_tokens, usage.cost_usd) == (
        result.model_calls, result.total_tokens, result.cost_usd,
    )  # fmt: skip
    assert usage.tool_fees_usd == Decimal("0.01")  # the refund's fee, which the ledger knows


def test_runs_list_does_not_show_a_running_runs_zeros_as_its_usage(
    parked: tuple[Path, str],
) -> None:
    home, run_id = parked
    cli = typer.Typer()
    cli.add_typer(runs.app, name="runs")
    result = CliRunner().invoke(cli, ["runs", "list"], env={"CHARTER_HOME": str(home)})
    assert result.exit_code == 0, result.stdout + result.stderr
    [line] = [line for line in result.stdout.splitlines() if line.startswith(run_id)]
    assert line.split()[-5:] == ["running", "-", "-", "-", "-"]
