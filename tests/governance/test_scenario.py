"""The governance story end to end, as docs/governance.md tells it, through the real CLI.

v1 is released, evaluated and promoted to prod by someone other than its author; v2 changes
the prompt and loosens the refund rule; what-if shows the refunds that would no longer need
approval; v2's eval passes; a second person promotes it; a 25% rollout starts; the
candidate fails often (injected); the rollout guard rolls all traffic back; the changelog
tells the story and the audit log holds every action.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from charter_examples.support_desk.model import GullibleSupportModel
from ruamel.yaml import YAML
from typer.testing import CliRunner

from charter import Principal, Runtime, Settings
from charter.cli.app import app
from charter.execution.model import Message, ModelResponse

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "support_desk"
runner = CliRunner()


class _BrokenModel:
    """The injected fault: the candidate's model fails every call."""

    provider = "scripted"
    name = "broken"

    async def chat(
        self,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]],
        *,
        max_output_tokens: int,
    ) -> ModelResponse:
        raise RuntimeError("injected failure: the provider returned 500")


@pytest.fixture(autouse=True)
def _env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHARTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CHARTER_SECRET_PAYMENTS_REFUND", "sk_test_governance")
    monkeypatch.delenv("CHARTER_DATABASE_URL", raising=False)


def cli(*args: str, code: int = 0) -> dict[str, Any] | list[Any]:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == code, result.stdout + str(result.exception)
    parsed: dict[str, Any] | list[Any] = json.loads(result.stdout)
    return parsed


def _copy_example(target: Path) -> Path:
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    return target


def _make_v2(root: Path) -> Path:
    """v2: a changed prompt and refunds up to $500 without approval (was $200); its golden
    suite is updated to the new rule, as the change's author would."""
    v2 = _copy_example(root / "v2")
    prompt = v2 / "prompts" / "support.md"
    prompt.write_text(prompt.read_text(encoding="utf-8") + "\nKeep answers short.\n", "utf-8")
    charter = v2 / "charter.yaml"
    text = charter.read_text(encoding="utf-8")
    assert '"amount_usd > 200"' in text
    charter.write_text(text.replace('"amount_usd > 200"', '"amount_usd > 500"'), "utf-8")
    yaml = YAML(typ="rt")
    golden_path = v2 / "evals" / "golden.yaml"
    golden = yaml.load(golden_path.read_text(encoding="utf-8"))
    golden["tasks"] = [
        t for t in golden["tasks"] if "over-threshold" not in t["tags"] and t["id"] != "demo-t-1002"
    ]
    with golden_path.open("w", encoding="utf-8") as handle:
        yaml.dump(golden, handle)
    return v2


def _evaluate(charter_dir: Path, out: Path) -> Path:
    data = cli(
        "eval", "--charter", str(charter_dir / "charter.yaml"), "--gate", "0.95", "--out", str(out)
    )
    assert isinstance(data, dict)
    assert data["gate"]["passed"] is True, data["gate"]
    return out / "report.json"


def _serve_traffic(users: int, fail_release: str) -> dict[str, int]:
    """Runs of many users through prod's deployment; the given release's model fails."""
    served: dict[str, int] = {}
    with Runtime(Settings.from_env()) as runtime:
        for n in range(users):
            principal = Principal(user=f"user{n}", tenant="acme", roles=("support",))
            charter, release = runtime.governance.serve(
                "support-triage", "prod", "acme", principal.user
            )
            served[release.label] = served.get(release.label, 0) + 1
            model = _BrokenModel() if release.id == fail_release else GullibleSupportModel()
            asyncio.run(
                runtime.run_agent(
                    charter,
                    model,
                    "Please handle ticket T-1004.",
                    principal=principal,
                    environment="prod",
                    resources=runtime.toolkit_resources(charter),
                )
            )
    return served


def test_the_governance_story(tmp_path: Path) -> None:
    v1 = _copy_example(tmp_path / "v1")
    first = cli("release", "create", str(v1), "--as", "alice", "-m", "support triage, first")
    assert isinstance(first, dict)
    assert first["label"] == "support-triage@v1"
    again = cli("release", "create", str(v1), "--as", "alice", "-m", "same content")
    assert isinstance(again, dict)
    assert (again["created"], again["id"]) == (False, first["id"])

    # Refused, each with its reason, and nothing changes.
    refused = cli("promote", "support-triage@v1", "--to", "prod", "--as", "bob", code=1)
    assert isinstance(refused, dict)
    assert "passing eval report" in refused["error"]
    report_v1 = _evaluate(v1, tmp_path / "eval-v1")
    refused = cli(
        "promote",
        "support-triage@v1",
        "--to",
        "prod",
        "--as",
        "alice",
        "--report",
        str(report_v1),
        code=1,
    )
    assert isinstance(refused, dict)
    assert "separation of duties" in refused["error"]
    cli("promote", "support-triage@v9", "--to", "prod", "--as", "bob", code=2)
    log = cli("changelog")
    assert isinstance(log, list)
    assert [e["action"] for e in log] == ["release_created"]
    promoted = cli(
        "promote",
        "support-triage@v1",
        "--to",
        "prod",
        "--as",
        "bob",
        "--report",
        str(report_v1),
        "--reason",
        "evaluated",
    )
    assert isinstance(promoted, dict)
    assert promoted["serving"] is True
    # Nothing earlier to go back to.
    cli("rollback", "support-triage", "--env", "prod", "--as", "bob", "--reason", "x", code=2)

    # Production traffic on v1: the $350 refund of T-1002 waits for approval.
    run = cli(
        "run",
        "support-triage",
        "--environment",
        "prod",
        "-i",
        "Please handle ticket T-1002.",
        "--user",
        "dana",
        "--tenant",
        "acme",
        "--role",
        "support",
        code=1,
    )
    assert isinstance(run, dict)
    assert run["outcome"] == "approval_required"
    assert run["release"]["label"] == "support-triage@v1"

    v2 = _make_v2(tmp_path)
    second = cli("release", "create", str(v2), "--as", "alice", "-m", "refunds up to $500 alone")
    assert isinstance(second, dict)
    assert second["label"] == "support-triage@v2"
    diff = runner.invoke(app, ["release", "diff", "support-triage@v1", "support-triage@v2"])
    assert diff.exit_code == 0, diff.stdout
    assert "amount_usd > 500" in diff.stdout
    assert "Keep answers short." in diff.stdout

    whatif = cli("whatif", str(v2 / "charter.yaml"), "--against", "prod", "--last", "20", code=1)
    assert isinstance(whatif, dict)
    newly_allowed = whatif["newly_allowed"]
    assert [c["tool"] for c in newly_allowed] == ["issue_refund"]
    assert newly_allowed[0]["arguments"]["amount_usd"] in ("350", 350, "350.00")

    report_v2 = _evaluate(v2, tmp_path / "eval-v2")
    cli(
        "promote",
        "support-triage@v2",
        "--to",
        "prod",
        "--as",
        "bob",
        "--report",
        str(report_v1),
        code=1,
    )  # the report is for v1, not this release
    cli(
        "promote",
        "support-triage@v2",
        "--to",
        "prod",
        "--as",
        "carol",
        "--report",
        str(report_v2),
        "--reason",
        "what-if reviewed",
    )

    bad = cli(
        "rollout",
        "set",
        "support-triage",
        "v2=30",
        "v1=60",
        "--env",
        "prod",
        "--as",
        "carol",
        "--reason",
        "oops",
        code=2,
    )
    assert isinstance(bad, dict)
    assert "sum to 100" in bad["error"]
    split = cli(
        "rollout",
        "set",
        "support-triage",
        "v2=25",
        "v1=75",
        "--env",
        "prod",
        "--as",
        "carol",
        "--reason",
        "canary at 25%",
    )
    assert isinstance(split, dict)
    assert split["weights"] == {first["id"]: 75, second["id"]: 25}

    served = _serve_traffic(160, fail_release=second["id"])
    assert served["support-triage@v2"] >= 20  # enough for the guard to judge
    assert served["support-triage@v1"] >= 20
    tick = cli("rollout", "tick", "support-triage", "--env", "prod", code=1)
    assert isinstance(tick, dict)
    assert tick["action"] == "rolled_back"
    assert "failure rate 100.0%" in tick["why"]
    assert tick["deployment"]["weights"] == {first["id"]: 100}
    assert _serve_traffic(10, fail_release="")["support-triage@v1"] == 10

    story = cli("changelog", "--charter", "support-triage")
    assert isinstance(story, list)
    assert [e["action"] for e in story] == [
        "release_created",
        "promoted",
        "release_created",
        "promoted",
        "traffic_set",
        "auto_rollback",
    ]
    rollback_entry = story[-1]
    assert rollback_entry["actor"] == "rollout-guard"
    assert "failure rate" in rollback_entry["reason"]
    audit = runner.invoke(app, ["audit", "verify", "--json"])
    assert audit.exit_code == 0, audit.stdout
