"""The CLI end to end: demo, run, audit verify/tail, on a temporary CHARTER_HOME."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from charter_examples.support_desk.demo import CHARTER_PATH
from typer.testing import CliRunner

from charter.cli.app import app
from tests.cli.test_run_cli import assert_could_not_wait

SECRET = "sk_test_cli_0f9e8d7c6b5a"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"CHARTER_HOME": str(tmp_path / "home"), "CHARTER_SECRET_PAYMENTS_REFUND": SECRET}


def invoke(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_help_lists_every_command() -> None:
    code, out, _ = invoke({}, "--help")
    assert code == 0
    for command in ("validate", "run", "demo", "audit"):
        assert command in out


def test_demo_governs_every_ticket_and_the_chain_verifies(env: dict[str, str]) -> None:
    code, out, err = invoke(env, "demo")
    assert code == 0, out + err
    assert "require_approval_for[0]" in out  # the $350 refund waits for a human
    assert "attacker@evil.test" in out  # the injected exfiltration attempt was made...
    assert "constraints.send_email.to.domain_in" in out  # ...and refused at the tool layer
    assert "untrusted_content.issue_refund" in out
    assert "deny[0]" in out
    assert "intact" in out


def test_demo_json_reports_each_run_and_the_audit(env: dict[str, str]) -> None:
    code, out, _ = invoke(env, "demo", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["ok"] is True
    assert report["audit"]["ok"] is True
    outcomes = {run["ticket"]: run["outcome"] for run in report["runs"]}
    assert outcomes == {run["ticket"]: run["expected_outcome"] for run in report["runs"]}
    assert set(outcomes.values()) == {"succeeded", "approval_required", "denied", "escalated"}
    exfiltration = next(r for r in report["runs"] if r["ticket"] == "T-1003")
    [denied] = [c for c in exfiltration["tool_calls"] if c["outcome"] == "denied"]
    assert denied["arguments"]["to"] == "attacker@evil.test"
    assert denied["decision"]["verdict"] == "deny"


def test_the_credential_never_reaches_audit_output_or_model(env: dict[str, str]) -> None:
    code, out, err = invoke(env, "demo", "--json")
    assert code == 0
    assert SECRET not in out + err
    audit = Path(env["CHARTER_HOME"]) / "charter.sqlite3"
    for suffix in ("", "-wal"):
        path = Path(f"{audit}{suffix}")
        if path.exists():
            assert SECRET.encode() not in path.read_bytes()
    code, out, _ = invoke(env, "audit", "tail", "-n", "200", "--json")
    assert code == 0
    assert SECRET not in out


def test_run_succeeds_on_a_small_refund(env: dict[str, str]) -> None:
    code, out, err = invoke(
        env,
        "run",
        str(CHARTER_PATH),
        "--input",
        "Please handle ticket T-1001.",
        "--user",
        "alice",
        "--tenant",
        "acme",
        "--role",
        "support",
        "--json",
    )
    assert code == 0, out + err
    result = json.loads(out)
    assert result["outcome"] == "succeeded"
    assert [c["tool"] for c in result["tool_calls"] if c["tool"] == "issue_refund"]
    # The confirmation e-mail is deferred when decided, then sent once the run succeeded.
    emails = [c["outcome"] for c in result["tool_calls"] if c["tool"] == "send_email"]
    assert emails == ["deferred", "executed"]
    assert all(c["outcome"] in ("executed", "deferred") for c in result["tool_calls"])


def test_run_exits_1_when_the_run_waits_for_approval(env: dict[str, str]) -> None:
    code, out, _ = invoke(
        env,
        "run",
        str(CHARTER_PATH),
        "-i",
        "Please handle ticket T-1002.",
        "--user",
        "alice",
        "--tenant",
        "acme",
        "--role",
        "support",
        "--json",
    )
    assert code == 1
    # In process, the run cannot wait for the decision: nothing is filed, and the output
    # says how to run it so it can wait (tests/cli/test_run_cli.py).
    assert_could_not_wait(json.loads(out))


def test_run_in_prod_without_the_support_role_is_denied_by_the_raw_cedar_rule(
    env: dict[str, str],
) -> None:
    code, out, _ = invoke(
        env,
        "run",
        str(CHARTER_PATH),
        "-i",
        "Please handle ticket T-1001.",
        "--user",
        "mallory",
        "--tenant",
        "acme",
        "--environment",
        "prod",
        "--json",
    )
    assert code == 1
    result = json.loads(out)
    assert result["outcome"] == "denied"
    assert result["decision"]["rule_id"] == "prod-refunds-need-support-role"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--environment", "qa"], "must be one of dev, staging, prod"),
        (["--user", "bad user!"], "not a valid identifier"),
        (["--input", "caf\udce9"], "not valid UTF-8"),
    ],
)
def test_run_refuses_bad_input_with_exit_2(
    env: dict[str, str], args: list[str], message: str
) -> None:
    base = {"--input": "Please handle ticket T-1001.", "--user": "alice", "--tenant": "acme"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    flat = [item for pair in base.items() for item in pair]
    code, _, err = invoke(env, "run", str(CHARTER_PATH), *flat)
    assert code == 2
    assert message in err


def test_run_with_an_invalid_charter_exits_2_and_points_to_validate(
    env: dict[str, str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("charter: x\n", encoding="utf-8")
    code, _, err = invoke(env, "run", str(bad), "-i", "hi", "--user", "a", "--tenant", "t")
    assert code == 2
    assert "charter validate" in err


def test_audit_verify_without_a_log_exits_2(env: dict[str, str]) -> None:
    code, _, err = invoke(env, "audit", "verify")
    assert code == 2
    assert "no Charter database" in err


def test_audit_verify_names_the_first_tampered_record(env: dict[str, str]) -> None:
    assert invoke(env, "demo")[0] == 0
    code, out, _ = invoke(env, "audit", "verify", "--json")
    assert code == 0
    assert json.loads(out)["ok"] is True
    db = sqlite3.connect(Path(env["CHARTER_HOME"]) / "charter.sqlite3")
    with db:
        db.execute("DROP TRIGGER audit_records_no_update")  # an attacker with file access
        db.execute(
            "UPDATE audit_records SET verdict = 'allow' WHERE tenant = 'acme' AND position = ("
            "SELECT MIN(position) FROM audit_records WHERE verdict = 'deny')"
        )
        (position,) = db.execute(
            "SELECT MIN(position) FROM audit_records WHERE tenant = 'acme' "
            "AND rule_id = 'constraints.send_email.to.domain_in'"
        ).fetchone()
    db.close()
    code, out, _ = invoke(env, "audit", "verify", "--json")
    assert code == 1
    report = json.loads(out)
    assert report["ok"] is False
    assert report["first_break"]["tenant"] == "acme"
    assert report["first_break"]["position"] == position
    code, _, err = invoke(env, "audit", "verify")
    assert code == 1
    assert "BROKEN" in err


def test_audit_tail_shows_the_latest_records(env: dict[str, str]) -> None:
    assert invoke(env, "demo")[0] == 0
    code, out, _ = invoke(env, "audit", "tail", "-n", "5", "--json")
    assert code == 0
    records = json.loads(out)
    assert len(records) == 5
    assert records[-1]["kind"] == "run_finished"
    assert [r["position"] for r in records] == sorted(r["position"] for r in records)
    code, out, _ = invoke(env, "audit", "tail", "-n", "3")
    assert code == 0
    assert "run_finished" in out
    code, _, _ = invoke(env, "audit", "tail", "-n", "0")
    assert code == 2
