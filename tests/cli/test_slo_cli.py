"""``charter slo report`` and ``charter runs label`` over real support-desk demo runs.

The commands are mounted on a Typer app of the test's own, as the real CLI mounts them.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer
from charter_examples.support_desk.demo import CHARTER_PATH, DemoRow, run_demo
from charter_examples.support_desk.desk import SupportDesk
from charter_examples.support_desk.model import GullibleSupportModel
from typer.testing import CliRunner

from charter import Runtime, Settings
from charter.cli import slo
from charter.contract.loader import Charter
from charter.identity.principal import Principal
from charter.identity.secrets import EnvSecretProvider
from charter.storage import Database, upgrade

cli = typer.Typer()
cli.add_typer(slo.app, name="slo")
runs_app = typer.Typer()
runs_app.command("label")(slo.label)
cli.add_typer(runs_app, name="runs")

EVERY_SLO = """\
slos:
  - {name: task_success_rate, objective: ">= 0.99", window: 7d}
  - {name: policy_violations_per_1000_runs, objective: "<= 500"}
  - {name: escalation_accuracy, objective: ">= 0.9", window: 30d}
  - {name: p95_latency_seconds, objective: "<= 60", window: 24h}
  - {name: tool_error_rate, objective: "<= 0.05"}
  - {name: cost_per_run_usd, objective: "<= 0.60"}
"""


@dataclass(frozen=True)
class Desk:
    """The demo's runs in a database, and a copy of its charter whose slos: a test writes."""

    env: dict[str, str]
    rows: list[DemoRow]
    root: Path

    def charter(self, slos: str) -> Path:
        """The charter with everything from 'slos:' on (the last section) replaced."""
        path = self.root / "charter.yaml"
        text = path.read_text(encoding="utf-8")
        path.write_text(text[: text.index("slos:")] + slos, encoding="utf-8")
        return path

    def invoke(self, *args: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(cli, list(args), env=self.env)
        return result.exit_code, result.stdout, result.stderr

    def report(self, slos: str, *args: str) -> tuple[int, dict[str, Any], dict[str, Any]]:
        code, out, err = self.invoke("slo", "report", str(self.charter(slos)), "--json", *args)
        assert code in (0, 1), out + err
        document = json.loads(out)
        return code, {s["name"]: s for s in document["slos"]}, document

    def run_id(self, outcome: str) -> str:
        return next(r.result.run_id for r in self.rows if r.result.outcome == outcome)


@pytest.fixture
def desk(db_url: str, tmp_path: Path) -> Desk:
    database = Database(db_url)
    upgrade(database)  # Postgres is only upgraded on purpose
    database.dispose()
    settings = Settings(
        home=tmp_path / "home", secrets_dir=tmp_path / "secrets", database_url=db_url
    )
    secrets = [EnvSecretProvider({"CHARTER_SECRET_PAYMENTS_REFUND": "sk_test_x"})]
    with Runtime(settings, secret_providers=secrets) as runtime:
        rows = asyncio.run(run_demo(runtime))
    root = tmp_path / "support_desk"
    shutil.copytree(CHARTER_PATH.parent, root, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    env = {"CHARTER_HOME": str(tmp_path / "home"), "CHARTER_DATABASE_URL": db_url}
    return Desk(env, rows, root)


def test_right_after_the_demo_every_slo_is_met(desk: Desk) -> None:
    code, out, err = desk.invoke("slo", "report", str(desk.charter(EVERY_SLO)))
    assert code == 0, out + err
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    for name in (
        "task_success_rate",
        "policy_violations_per_1000_runs",
        "p95_latency_seconds",
        "tool_error_rate",
        "cost_per_run_usd",
    ):
        assert " met " in lines[name], lines[name]
    assert "no data" in lines["escalation_accuracy"]
    assert "2 runs left to the agent" in lines["task_success_rate"]
    assert "no SLO breached (6 evaluated)" in out

    code, slos, document = desk.report(EVERY_SLO)
    assert (code, document["ok"], document["breached"]) == (0, True, [])
    rows = desk.rows
    # Two tickets the agent finished; three handed to a human (two approval gates, one
    # escalation) and two injected attacks a charter rule refused: not the agent's to finish,
    # and a blocked attack is the policy working, not a violation.
    succeeded = sum(r.result.outcome == "succeeded" for r in rows)
    assert (succeeded, len(rows)) == (2, 7)
    assert sum(r.result.count("denied") > 0 for r in rows) == 2  # refused, yet no violation
    success = slos["task_success_rate"]
    assert (success["value"], success["runs"], success["samples"]) == (1.0, 7, 2)
    assert success["burn_rate"] == 0.0
    violations = slos["policy_violations_per_1000_runs"]
    assert (violations["value"], violations["samples"]) == (0.0, 7)
    assert slos["escalation_accuracy"]["status"] == "no_data"
    assert slos["p95_latency_seconds"]["samples"] == len(rows)
    assert 0 < slos["p95_latency_seconds"]["value"] < 60
    assert slos["tool_error_rate"]["samples"] > 0
    cost = sum(r.result.cost_usd for r in rows) / len(rows)
    assert float(slos["cost_per_run_usd"]["value"]) == pytest.approx(float(cost), abs=1e-6)


def test_a_genuine_failure_breaches_and_is_named(desk: Desk, tmp_path: Path) -> None:
    # The same refund without its credential: the run fails, at work that was the agent's.
    home = Path(desk.env["CHARTER_HOME"])
    settings = Settings(home=home, secrets_dir=tmp_path / "no-secrets",
                        database_url=desk.env["CHARTER_DATABASE_URL"])  # fmt: skip
    with Runtime(settings, secret_providers=[]) as runtime:
        failed = asyncio.run(runtime.run_agent(
            Charter.load(CHARTER_PATH), GullibleSupportModel(), "Please handle ticket T-1001.",
            principal=Principal("alice", "acme", roles=("support",)), environment="prod",
            resources=(SupportDesk.default(),),
        ))  # fmt: skip
    assert failed.outcome == "failed"

    code, out, err = desk.invoke("slo", "report", str(desk.charter(EVERY_SLO)))
    assert code == 1, out + err
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert "BREACHED" in lines["task_success_rate"]
    assert "1 of 6 breached: task_success_rate" in out
    code, slos, document = desk.report(EVERY_SLO)
    assert (code, document["breached"]) == (1, ["task_success_rate"])
    success = slos["task_success_rate"]
    assert (success["value"], success["runs"], success["samples"]) == (
        pytest.approx(2 / 3), 8, 3,
    )  # fmt: skip
    assert success["burn_rate"] == pytest.approx((1 - 2 / 3) / 0.01)


def test_all_met_exits_0_and_a_short_window_reports_the_same_runs(desk: Desk) -> None:
    lenient = EVERY_SLO.replace(">= 0.99", ">= 0.1")
    code, slos, document = desk.report(lenient)
    assert (code, document["ok"], document["breached"]) == (0, True, [])
    code, slos, document = desk.report(lenient, "--window", "30m")
    assert code == 0
    assert {s["window"] for s in slos.values()} == {"30m"}
    assert slos["task_success_rate"]["runs"] == len(desk.rows)


def test_labels_feed_escalation_accuracy(desk: Desk) -> None:
    escalated = desk.run_id("escalated")
    only_accuracy = 'slos:\n  - {name: escalation_accuracy, objective: ">= 0.9"}\n'
    code, out, err = desk.invoke(
        "runs",
        "label",
        escalated,
        "--escalation",
        "confirmed",
        "--as",
        "lead",
        "--note",
        "legal threat",
    )
    assert (code, out.strip()) == (0, f"run {escalated}: escalation confirmed by lead"), err
    code, slos, _ = desk.report(only_accuracy)
    assert (code, slos["escalation_accuracy"]["value"]) == (0, 1.0)
    code, out, _ = desk.invoke(
        "runs", "label", escalated, "--escalation", "overturned", "--as", "lead", "--json"
    )
    assert code == 0
    assert json.loads(out)["value"] == "overturned"
    code, slos, document = desk.report(only_accuracy)  # relabeled: the label is replaced
    assert (code, document["breached"]) == (1, ["escalation_accuracy"])
    assert slos["escalation_accuracy"]["value"] == 0.0
    assert slos["escalation_accuracy"]["samples"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run_nope", "--escalation", "confirmed", "--as", "lead"], "no run 'run_nope'"),
        (["{succeeded}", "--escalation", "confirmed", "--as", "lead"], "ended succeeded"),
        (["{escalated}", "--escalation", "right", "--as", "lead"], "confirmed, overturned"),
        (["{escalated}", "--escalation", "confirmed"], "say who labels the run"),
        (["{escalated}", "--as", "lead"], "--escalation confirmed|overturned"),
    ],
)
def test_labeling_refuses_bad_input_with_exit_2(desk: Desk, args: list[str], message: str) -> None:
    ids = {"succeeded": desk.run_id("succeeded"), "escalated": desk.run_id("escalated")}
    code, out, err = desk.invoke("runs", "label", *(a.format(**ids) for a in args))
    assert code == 2, out + err
    assert message in err
    code, out, _ = desk.invoke("runs", "label", *(a.format(**ids) for a in args), "--json")
    assert code == 2
    assert message in json.loads(out)["error"]


def test_bad_input_and_a_missing_database_exit_2(desk: Desk, tmp_path: Path) -> None:
    wrong_way = 'slos:\n  - {name: task_success_rate, objective: "<= 0.5"}\n'
    code, _, err = desk.invoke("slo", "report", str(desk.charter(wrong_way)))
    assert code == 2
    assert "points the wrong way" in err
    assert "charter validate" in err
    code, _, err = desk.invoke("slo", "report", str(desk.charter(EVERY_SLO)), "--window", "1 day")
    assert code == 2
    assert "--window: window '1 day' must look like 30m" in err
    nowhere = {"CHARTER_HOME": str(tmp_path / "nowhere")}
    result = CliRunner().invoke(cli, ["slo", "report", str(desk.charter(EVERY_SLO))], env=nowhere)
    assert result.exit_code == 2
    assert "no Charter database" in result.stderr
    unreachable = {"CHARTER_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    result = CliRunner().invoke(
        cli, ["slo", "report", str(desk.charter(EVERY_SLO)), "--json"], env=unreachable
    )
    assert result.exit_code == 2
    assert json.loads(result.stdout)["ok"] is False


def test_a_charter_without_slos_has_nothing_to_breach(desk: Desk) -> None:
    code, out, _ = desk.invoke("slo", "report", str(desk.charter("")))
    assert code == 0
    assert "declares no SLOs" in out
