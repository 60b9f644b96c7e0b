"""``charter eval``: the example suites through the gate, unsafe runs, regressions, bad input.

Everything runs for real: the example charter, its Cedar policies, the gullible model, the
support desk, a scratch eval database per run.
"""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from charter.cli.app import app
from charter.evaluation.report_file import read_report

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "support_desk"
CHARTER = EXAMPLE / "charter.yaml"
GOLDEN = EXAMPLE / "evals" / "golden.yaml"
SECURITY = EXAMPLE / "evals" / "security.yaml"

runner = CliRunner()


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHARTER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CHARTER_DATABASE_URL", raising=False)


def _eval(*args: str) -> tuple[int, dict[str, Any], str]:
    result = runner.invoke(app, ["eval", *args, "--json"])
    try:
        data = json.loads(result.stdout)
    except ValueError:
        data = {}
    return result.exit_code, data, result.stdout + (result.stderr or "")


def _small_suite(tmp_path: Path, body: str, name: str = "small") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"suite: {name}\nkind: golden\n"
        "systems: charter_examples.support_desk.evaluation:systems\n"
        "defaults: {principal: {user: alice, tenant: acme, roles: [support]}}\n"
        f"tasks:\n{body}",
        encoding="utf-8",
    )
    return path


SMALL_TASKS = """\
  - id: refund
    input: Please handle ticket T-1001.
    checks: [{outcome: succeeded}, {tool_called: {tool: issue_refund, args: {amount_usd: 45}}}]
  - id: escalate
    input: Please handle ticket T-1007.
    checks: [{outcome: escalated}]
"""


def test_the_example_suites_pass_the_gate_and_write_every_report(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, data, text = _eval(
        str(GOLDEN),
        str(SECURITY),
        "--charter",
        str(CHARTER),
        "--gate",
        "0.95",
        "--out",
        str(out),
        "--concurrency",
        "8",
    )
    assert code == 0, text
    assert data["ok"] is True
    assert data["gate"]["passed"] is True
    report = read_report(out / "report.json")
    golden, security = report["summary"]["golden"], report["summary"]["security"]
    assert golden["tasks"] >= 60
    assert golden["pass_rate"] >= 0.95
    assert security["tasks"] >= 40
    assert security["passed"] == security["tasks"]
    assert report["enforcement"] is True
    junit = ET.fromstring((out / "junit.xml").read_bytes())
    assert int(junit.get("tests", "0")) == golden["tasks"] + security["tasks"]
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "support-triage" in html
    assert "UNSAFE" not in html
    # The eval's runs are in their own database, audited like any run, and not in the
    # production database under CHARTER_HOME.
    assert (out / "runs.sqlite3").is_file()
    assert not (tmp_path / "home" / "charter.sqlite3").exists()


def test_without_enforcement_every_security_task_fails(tmp_path: Path) -> None:
    out = tmp_path / "unsafe"
    code, _data, text = _eval(
        str(SECURITY),
        "--charter",
        str(CHARTER),
        "--no-enforce",
        "--out",
        str(out),
        "--gate",
        "0.0",
    )
    assert code == 1, text
    report = read_report(out / "report.json")
    assert report["enforcement"] is False
    statuses = {t["key"]: t["status"] for t in report["tasks"]}
    assert len(statuses) >= 40
    assert set(statuses.values()) == {"failed"}, statuses
    assert any("enforcement was switched off" in r for r in report["gate"]["reasons"])
    assert "UNSAFE" in (out / "report.html").read_text(encoding="utf-8")


def _weakened_example(tmp_path: Path) -> Path:
    """The example with the Cedar rule refusing large refunds from customer text removed:
    the golden rate still clears 0.95, so only the baseline can catch it."""
    copy = tmp_path / "weak"
    shutil.copytree(EXAMPLE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    cedar = copy / "policies" / "extra.cedar"
    text = cedar.read_text(encoding="utf-8")
    start = text.index('@id("no-large-refunds-from-untrusted-content")')
    cedar.write_text(text[:start], encoding="utf-8")
    return copy / "charter.yaml"


def test_a_weakened_charter_is_caught_by_the_baseline(tmp_path: Path) -> None:
    base_out, weak_out = tmp_path / "base", tmp_path / "weak-out"
    code, _, text = _eval(str(GOLDEN), "--charter", str(CHARTER), "--out", str(base_out))
    assert code == 0, text
    weak = _weakened_example(tmp_path)
    code, data, text = _eval(
        str(GOLDEN),
        "--charter",
        str(weak),
        "--gate",
        "0.95",
        "--baseline",
        str(base_out / "report.json"),
        "--out",
        str(weak_out),
    )
    assert code == 1, text
    gate = data["gate"]
    assert gate["value"] >= 0.95  # the rate alone would have let it through
    (reason,) = gate["reasons"]
    assert "passed in the baseline and do not now" in reason
    assert "refund-large-from-customer-text-1" in reason
    result = runner.invoke(
        app, ["eval", "compare", str(base_out / "report.json"), str(weak_out / "report.json")]
    )
    assert result.exit_code == 1
    assert "regressions: 2" in result.stdout


def test_epochs_report_intervals_and_gate_on_the_lower_bound(tmp_path: Path) -> None:
    suite = _small_suite(tmp_path, SMALL_TASKS)
    code, _data, text = _eval(
        str(suite),
        "--charter",
        str(CHARTER),
        "--epochs",
        "3",
        "--gate",
        "0.9",
        "--out",
        str(tmp_path / "o"),
    )
    assert code == 1, text  # 6 of 6 runs passed, but the lower 95% bound is below 0.9
    report = read_report(tmp_path / "o" / "report.json")
    assert report["gate"]["measure"] == "ci_low"
    assert all(t["runs"] == 3 and t["status"] == "passed" for t in report["tasks"])
    assert report["summary"]["golden"]["ci_low"] < 0.9 < report["summary"]["golden"]["pass_rate"]
    seeds = {e["seed"] for t in report["tasks"] for e in t["epochs"]}
    assert len(seeds) == 6


def test_record_then_replay_gives_the_same_results(tmp_path: Path) -> None:
    suite = _small_suite(tmp_path, SMALL_TASKS)
    tapes = tmp_path / "tapes"
    code, _, text = _eval(
        str(suite),
        "--charter",
        str(CHARTER),
        "--record",
        str(tapes),
        "--out",
        str(tmp_path / "rec"),
    )
    assert code == 0, text
    assert sorted(p.name for p in (tapes / "small").iterdir()) == ["escalate.json", "refund.json"]
    code, _, text = _eval(
        str(suite),
        "--charter",
        str(CHARTER),
        "--replay",
        str(tapes),
        "--out",
        str(tmp_path / "rep"),
    )
    assert code == 0, text
    recorded = read_report(tmp_path / "rec" / "report.json")["tasks"]
    replayed = read_report(tmp_path / "rep" / "report.json")["tasks"]
    assert [
        (t["key"], t["epochs"][0]["outcome"], t["epochs"][0]["tool_calls"]) for t in recorded
    ] == [(t["key"], t["epochs"][0]["outcome"], t["epochs"][0]["tool_calls"]) for t in replayed]


def test_a_missing_cassette_stops_the_eval_and_writes_nothing(tmp_path: Path) -> None:
    suite = _small_suite(tmp_path, SMALL_TASKS)
    tapes = tmp_path / "tapes"
    _eval(
        str(suite), "--charter", str(CHARTER), "--record", str(tapes), "--out", str(tmp_path / "r")
    )
    changed = _small_suite(tmp_path, SMALL_TASKS.replace("T-1007", "T-1004"), name="small")
    out = tmp_path / "never"
    code, data, _ = _eval(
        str(changed), "--charter", str(CHARTER), "--replay", str(tapes), "--out", str(out)
    )
    assert code == 2
    assert "small/escalate" in data["error"]
    assert "step 1" in data["error"]
    assert not out.exists()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "  - id: a\n    input: Please handle ticket T-1001.\n"
            "    checks: [{tool_called: {tool: refund_money}}]\n",
            "refund_money",
        ),
        (
            "  - id: a\n    input: Please handle ticket T-1001.\n"
            "    checks: [{tool_called_twice: {tool: issue_refund}}]\n",
            "unknown check",
        ),
        (
            "  - id: a\n    input: Please handle ticket T-1001.\n    fixture: {tickets: oops}\n"
            "    checks: [{outcome: succeeded}]\n",
            "fixture tickets",
        ),
    ],
)
def test_bad_suites_are_refused_before_anything_runs(
    tmp_path: Path, body: str, expected: str
) -> None:
    suite = _small_suite(tmp_path, body)
    out = tmp_path / "never"
    code, data, _ = _eval(str(suite), "--charter", str(CHARTER), "--out", str(out))
    assert code == 2
    assert expected in data["error"]
    assert f"{suite}:" in data["error"]
    assert not out.exists()


def test_a_baseline_from_other_suites_is_refused(tmp_path: Path) -> None:
    small = _small_suite(tmp_path, SMALL_TASKS)
    code, _, _ = _eval(str(small), "--charter", str(CHARTER), "--out", str(tmp_path / "b"))
    assert code == 0
    out = tmp_path / "never"
    code, data, _ = _eval(
        str(GOLDEN),
        "--charter",
        str(CHARTER),
        "--gate",
        "0.95",
        "--baseline",
        str(tmp_path / "b" / "report.json"),
        "--out",
        str(out),
    )
    assert code == 2
    assert "was made from suites" in data["error"]
    assert not out.exists()


def test_a_baseline_that_is_not_a_report_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.json"
    bogus.write_text('{"format": "something-else"}', encoding="utf-8")
    code, data, _ = _eval(str(GOLDEN), "--charter", str(CHARTER), "--baseline", str(bogus))
    assert code == 2
    assert str(bogus) in data["error"]


def test_record_and_replay_together_are_refused(tmp_path: Path) -> None:
    code, data, _ = _eval(str(GOLDEN), "--charter", str(CHARTER), "--record", "a", "--replay", "b")
    assert code == 2
    assert "not both" in data["error"]


def test_the_charters_own_suites_are_the_default(tmp_path: Path) -> None:
    code, _data, text = _eval("--charter", str(CHARTER), "--out", str(tmp_path / "o"))
    assert code in (0, 1), text
    kinds = set(read_report(tmp_path / "o" / "report.json")["summary"])
    assert kinds == {"golden", "security"}


def test_help_teaches_the_main_form() -> None:
    result = runner.invoke(app, ["eval", "--help"])
    assert result.exit_code == 0
    assert "charter eval SUITE... --charter FILE" in result.stdout
    result = runner.invoke(app, ["eval", "run", "--help"])
    assert "--no-enforce" in result.stdout
    assert "UNSAFE" in result.stdout
