"""``charter demo`` is readable at 80 columns and leaves nothing orphaned in the inbox."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from charter_examples.support_desk.demo import DemoRow, run_demo
from rich.console import Console
from typer.testing import CliRunner

from charter.cli.app import app
from charter.cli.demo import print_demo
from charter.core.settings import Settings
from charter.identity.secrets import EnvSecretProvider
from charter.runtime import Runtime

CHARTER = [sys.executable, "-c", "from charter.cli.app import main; main()"]


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[DemoRow]]:
    home = tmp_path_factory.mktemp("demo")
    secrets = [EnvSecretProvider({"CHARTER_SECRET_PAYMENTS_REFUND": "sk_test_demo_cli"})]
    with Runtime(Settings(home=home, secrets_dir=home / "s"), secret_providers=secrets) as rt:
        yield asyncio.run(run_demo(rt))


def rendered(rows: list[DemoRow], width: int) -> str:
    out = io.StringIO()
    print_demo(rows, Console(file=out, width=width, force_terminal=False, color_system=None))
    return out.getvalue()


def assert_readable(text: str, rows: list[DemoRow], width: int) -> None:
    lines = text.splitlines()
    too_long = [line for line in lines if len(line) > width]
    assert not too_long, too_long
    assert not [line for line in lines if line != line.rstrip()], "no trailing blanks"
    for row in rows:
        # The ticket's own line has its outcome whole, never cut or wrapped.
        pattern = rf"^{row.ticket.ticket_id}\s+{row.result.outcome}\s+\d+\s+\d+\s+\d+\s+\$"
        assert [line for line in lines if re.match(pattern, line)], (row.ticket.ticket_id, text)


@pytest.mark.parametrize("width", [80, 120, 60])
def test_the_demo_fits_the_width_with_every_outcome_whole(rows: list[DemoRow], width: int) -> None:
    text = rendered(rows, width)
    assert_readable(text, rows, width)
    # The details are there, each under its ticket.
    assert "require_approval_for[0]" in text
    assert "constraints.send_email.to.domain_in" in text
    assert "untrusted_content.issue_refund" in text
    assert "deny[0]" in text
    for row in rows:
        assert row.ticket.title in text.replace("\n        ", " ")


def test_a_ticket_that_ended_otherwise_than_expected_says_so_on_its_own_line(
    rows: list[DemoRow],
) -> None:
    wrong = [replace(rows[0], ticket=replace(rows[0].ticket, expected_outcome="denied"))]
    text = rendered(wrong, 80)
    assert_readable(text, wrong, 80)
    assert "        expected denied" in text.splitlines()


def test_runs_that_stopped_at_an_approval_say_how_to_run_one_that_waits(
    rows: list[DemoRow],
) -> None:
    text = rendered(rows, 80)
    assert "T-1002 and T-1005 stopped where a human must approve" in " ".join(text.split())
    assert "nothing was filed in the approvals inbox" in " ".join(text.split())
    assert "  charter run --durable \\" in text.splitlines()
    assert '    -i "Please handle ticket T-1002." --user alice --tenant acme --role support' in (
        text.splitlines()
    )


@pytest.mark.parametrize("columns", ["80", None], ids=["COLUMNS=80", "a pipe"])
def test_the_demo_command_at_80_columns_and_in_a_pipe(
    tmp_path: Path, columns: str | None, rows: list[DemoRow]
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env |= {"CHARTER_HOME": str(tmp_path / "home"), "NO_COLOR": "1"}
    if columns is not None:
        env["COLUMNS"] = columns
    done = subprocess.run([*CHARTER, "demo"], env=env, capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert_readable(done.stdout, rows, 80)  # a pipe is 80 columns wide to rich
    assert "audit chain intact" in done.stdout


def test_the_demo_leaves_no_orphan_approval_requests(tmp_path: Path) -> None:
    env = {"CHARTER_HOME": str(tmp_path / "home")}
    demo = CliRunner().invoke(app, ["demo"], env=env)
    assert demo.exit_code == 0, demo.stdout + demo.stderr
    listed = CliRunner().invoke(app, ["approvals", "list", "--status", "pending", "--json"],
                                env=env)  # fmt: skip
    assert listed.exit_code == 0, listed.stdout + listed.stderr
    assert json.loads(listed.stdout)["requests"] == []
