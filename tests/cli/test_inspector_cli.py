"""``charter runs list|show``, ``charter cost`` and ``charter prune``, on SQLite and Postgres."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from charter_examples.support_desk.demo import CHARTER_PATH
from typer.testing import CliRunner

from charter.cli import cost, prune, runs
from charter.core.events import EventBus
from charter.execution.approval_store import ApprovalRecord, ApprovalStore
from charter.identity.roles import RoleGrants
from charter.observability.audit import AuditLog
from charter.storage import Database
from charter.testing.clock import FakeClock
from tests.observability.test_cost import add_run
from tests.observability.test_timeline import decide, demo_runs

# The lead wires these into the real app; here they are registered the same way.
app = typer.Typer()
app.add_typer(runs.app, name="runs")
app.command()(cost.cost)
app.command()(prune.prune)

UNREACHABLE = "postgresql://x:s3cret@127.0.0.1:1/none"


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    yield database
    database.dispose()


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> dict[str, str]:
    # Wide enough that no table cell or tree line is wrapped in the middle of what we look for.
    return {"CHARTER_HOME": str(tmp_path / "home"), "CHARTER_DATABASE_URL": db_url,
            "COLUMNS": "400"}  # fmt: skip


@pytest.fixture
def ids(db_url: str, tmp_path: Path) -> dict[str, str]:
    return demo_runs(db_url, tmp_path / "home")  # on the real clock: --since 2h finds them


def invoke(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def approval_of(database: Database, run_id: str) -> ApprovalRecord:
    clock = FakeClock()
    store = ApprovalStore(database, clock, EventBus(), RoleGrants(database, clock))
    [record] = [r for r in store.list(limit=100) if r.run_id == run_id]
    return record


def test_runs_list_shows_newest_first_and_filters(env: dict[str, str], ids: dict[str, str]) -> None:
    code, out, err = invoke(env, "runs", "list")
    assert code == 0, out + err
    for run_id in ids.values():
        assert run_id in out
    assert "support-triage" in out
    assert "approval_required" in out

    code, out, _ = invoke(env, "runs", "list", "--json")
    listed = json.loads(out)["runs"]
    assert [r["run_id"] for r in listed] == list(reversed(ids.values()))  # newest first
    assert {r["outcome"] for r in listed} == {"succeeded", "approval_required", "denied",
                                              "escalated"}  # fmt: skip

    def listed_ids(*args: str) -> list[str]:
        code, out, err = invoke(env, "runs", "list", "--json", *args)
        assert code == 0, out + err
        return [r["run_id"] for r in json.loads(out)["runs"]]

    assert listed_ids("--outcome", "denied") == [ids["T-1006"], ids["T-1003"]]
    assert listed_ids("--user", "bob", "--outcome", "succeeded") == [ids["T-1004"]]
    assert len(listed_ids("--since", "2h", "--charter", "support-triage", "--tenant", "acme")) == 7
    assert listed_ids("--until", "2h") == []
    assert listed_ids("--since", datetime.now(UTC).replace(tzinfo=None).isoformat()) == []
    assert len(listed_ids("-n", "2")) == 2
    code, out, _ = invoke(env, "runs", "list", "--tenant", "globex")
    assert (code, out.strip()) == (0, "no runs match")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--since", "yesterday"), "--since 'yesterday' is neither a time nor an age"),
        (("--until", "2026-13-01"), "--until '2026-13-01' is neither a time nor an age"),
        (("--since", "0d"), "--since '0d' is not an age"),
        (("--outcome", "lost"), "--outcome 'lost' is not one of succeeded"),
    ],
)
def test_runs_list_refuses_bad_input(
    env: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    code, _, err = invoke(env, "runs", "list", *args)
    assert code == 2
    assert message in err
    code, out, _ = invoke(env, "runs", "list", *args, "--json")
    assert code == 2
    assert message in json.loads(out)["error"]


@pytest.mark.parametrize(
    ("ticket", "rule", "reason", "shown"),
    [
        ("T-1003", "constraints.send_email.to.domain_in",
         "send_email.to must be one address at example.com", "attacker@evil.test"),
        ("T-1006", "deny[0]", "the support agent never deletes records", "delete_record"),
    ],
)  # fmt: skip
def test_runs_show_explains_a_denied_call(
    env: dict[str, str], ids: dict[str, str], ticket: str, rule: str, reason: str, shown: str
) -> None:
    code, out, err = invoke(env, "runs", "show", ids[ticket])
    assert code == 1, out + err  # ended, not succeeded
    assert f"run {ids[ticket]}" in out
    assert f"deny at policy [rule {rule}]: {reason}" in out
    assert shown in out
    assert "compensate" in out  # what the run did is taken back
    assert "run finished: denied" in out

    code, out, _ = invoke(env, "runs", "show", ids[ticket], "--json")
    assert code == 1
    report = json.loads(out)
    assert report["ok"] is True
    assert (report["outcome"], report["rule_id"]) == ("denied", rule)
    [denied] = [s for s in report["steps"] if s["kind"] == "tool_call" and s["outcome"] == "denied"]
    assert (denied["rule_id"], denied["verdict"]) == (rule, "deny")
    assert reason in denied["reason"]


def test_runs_show_explains_an_approval_blocked_call_and_its_decision(
    env: dict[str, str], ids: dict[str, str], database: Database
) -> None:
    request = approval_of(database, ids["T-1002"])
    code, out, err = invoke(env, "runs", "show", ids["T-1002"])
    assert code == 1, out + err
    rule, reason = "require_approval_for[0]", "refunds over $200 need a human"
    assert f"require_approval at policy [rule {rule}]: {reason}" in out
    assert f"approval {request.id}: pending" in out
    assert "no decision yet; expires" in out

    decided = FakeClock(request.requested_at + timedelta(hours=2, seconds=3))
    decide(database, decided, request.id, "reject", "lead")
    code, out, _ = invoke(env, "runs", "show", ids["T-1002"])
    assert f"approval {request.id}: rejected" in out
    assert "decided by lead at" in out
    assert "checked the invoice" in out
    assert "waited 2h 00m" in out

    code, out, _ = invoke(env, "runs", "show", ids["T-1002"], "--json")
    [blocked] = [s for s in json.loads(out)["steps"] if s.get("approval")]
    assert blocked["approval"]["id"] == request.id
    assert blocked["approval"]["status"] == "rejected"
    assert blocked["approval"]["decided_by"] == "lead"


def test_runs_show_a_succeeded_run_against_its_budgets(
    env: dict[str, str], ids: dict[str, str], tmp_path: Path
) -> None:
    code, out, err = invoke(env, "runs", "show", ids["T-1001"])
    assert code == 0, out + err
    assert "outcome: succeeded" in out
    assert "send (deferred) send_email" in out
    assert "pass --charter FILE to compare" in out
    code, out, err = invoke(env, "runs", "show", ids["T-1001"], "--charter", str(CHARTER_PATH))
    assert code == 0, out + err
    assert "of 12000 tokens" in out
    assert "of 8 tool calls" in out
    code, out, _ = invoke(env, "runs", "show", ids["T-1001"], "--charter", str(CHARTER_PATH),
                          "--json")  # fmt: skip
    assert json.loads(out)["limits"]["max_tool_calls"] == 8

    bad = tmp_path / "bad.yaml"
    bad.write_text("charter: x\n", encoding="utf-8")
    code, _, err = invoke(env, "runs", "show", ids["T-1001"], "--charter", str(bad))
    assert code == 2
    assert "charter validate" in err


def test_runs_show_exits_3_while_a_run_is_going(
    env: dict[str, str], ids: dict[str, str], database: Database
) -> None:
    add_run(database, "run_going", charter="support-triage", tenant="acme",
            started=datetime.now(UTC), outcome="running")  # fmt: skip
    code, out, err = invoke(env, "runs", "show", "run_going")
    assert code == 3, out + err
    assert "outcome: running" in out
    code, out, _ = invoke(env, "runs", "show", "run_going", "--wait", "0.3", "--json")
    assert code == 3
    assert json.loads(out)["outcome"] == "running"


def test_runs_show_an_unknown_run_exits_2(env: dict[str, str], ids: dict[str, str]) -> None:
    code, _, err = invoke(env, "runs", "show", "run_nope")
    assert code == 2
    assert "no run 'run_nope'" in err
    code, out, _ = invoke(env, "runs", "show", "run_nope", "--json")
    assert code == 2
    assert json.loads(out) == {
        "ok": False,
        "error": "no run 'run_nope'; 'charter runs list' shows the recorded runs",
    }
    assert ids


def test_cost_reports_per_group(env: dict[str, str], ids: dict[str, str]) -> None:
    code, out, err = invoke(env, "cost")
    assert code == 0, out + err
    assert "support-triage" in out
    assert "per success" in out
    assert "human review not priced (2 approval request(s) waited" in out

    env = {**env, "CHARTER_REVIEW_USD_PER_HOUR": "60"}
    code, out, err = invoke(env, "cost", "--by", "tenant", "--since", "1d", "--json")
    assert code == 0, out + err
    report = json.loads(out)
    [acme] = report["groups"]
    assert (acme["group"], acme["runs"], acme["succeeded"], acme["approvals"]) == ("acme", 7, 2, 2)
    assert acme["tool_fees_usd"] == "0.01"
    assert report["review_usd_per_hour"] == "60"
    assert report["total"]["runs"] == 7

    code, out, _ = invoke(env, "cost", "--by", "day")
    assert code == 0
    assert datetime.now(UTC).date().isoformat() in out
    assert "in all, at $60.00 per hour" in out
    code, out, _ = invoke(env, "cost", "--charter", "other")
    assert (code, out.strip()) == (0, "no runs match")
    assert ids


@pytest.mark.parametrize(
    ("args", "extra", "message"),
    [
        (("--by", "week"), {}, "--by 'week' is not one of charter, tenant, day"),
        (("--since", "last week"), {}, "--since 'last week' is neither a time nor an age"),
        ((), {"CHARTER_REVIEW_USD_PER_HOUR": "lots"}, "must be an amount in USD"),
    ],
)
def test_cost_refuses_bad_input(
    env: dict[str, str], args: tuple[str, ...], extra: dict[str, str], message: str
) -> None:
    code, _, err = invoke({**env, **extra}, "cost", *args)
    assert code == 2
    assert message in err


def test_prune_deletes_runs_and_spans_and_keeps_the_audit_log(
    env: dict[str, str], ids: dict[str, str], database: Database
) -> None:
    log = AuditLog(database)
    before = log.verify()
    log.close()
    time.sleep(1.1)  # every demo run is now over a second old

    code, out, err = invoke(env, "prune", "--dry-run", "--runs-older-than", "1s")
    assert code == 0, out + err
    assert "would delete 0 span(s)" in out
    assert "7 run row(s)" in out
    assert "audit records are never pruned" in out
    assert len(json.loads(invoke(env, "runs", "list", "--json")[1])["runs"]) == 7

    code, out, err = invoke(env, "prune", "--runs-older-than", "1s", "--json")
    assert code == 0, out + err
    report = json.loads(out)
    assert (report["ok"], report["dry_run"], report["runs"]) == (True, False, 7)
    assert json.loads(invoke(env, "runs", "list", "--json")[1])["runs"] == []

    log = AuditLog(database)
    after = log.verify()
    log.close()
    assert after.ok
    assert after.records_checked == before.records_checked
    # The run is still explained, from the audit log.
    code, out, _ = invoke(env, "runs", "show", ids["T-1003"])
    assert code == 1
    assert "[rule constraints.send_email.to.domain_in]" in out
    assert "row is gone" in out

    code, out, _ = invoke(env, "prune")  # defaults: 30 and 90 days
    assert code == 0
    assert "deleted 0 span(s)" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--spans-older-than", "0d"), "--spans-older-than '0d' is not an age"),
        (("--runs-older-than", "ninety days"), "--runs-older-than 'ninety days' is not an age"),
    ],
)
def test_prune_refuses_bad_ages(env: dict[str, str], args: tuple[str, ...], message: str) -> None:
    code, _, err = invoke(env, "prune", *args)
    assert code == 2
    assert message in err


@pytest.mark.parametrize("args", [("prune",), ("runs", "list"), ("cost",)])
def test_reading_commands_need_an_existing_database(tmp_path: Path, args: tuple[str, ...]) -> None:
    home = tmp_path / "empty"
    code, _, err = invoke({"CHARTER_HOME": str(home)}, *args)
    assert code == 2
    assert "no Charter database" in err
    assert not (home / "charter.sqlite3").exists()


@pytest.mark.parametrize(
    "args",
    [("runs", "list"), ("runs", "show", "run_x"), ("cost",), ("prune", "--dry-run")],
)
def test_an_unreachable_database_exits_2_without_the_password(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    env = {"CHARTER_HOME": str(tmp_path), "CHARTER_DATABASE_URL": UNREACHABLE}
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exit_code == 2, result.output
    assert "127.0.0.1:1/none" in result.stderr
    assert "s3cret" not in result.stdout + result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.stdout + result.stderr
