"""``charter run --durable`` and ``--detach`` store the user's input redacted, and say so
(issue 11, sibling of defect 6), end to end through the real CLI in its own process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from charter_examples.support_desk.demo import CHARTER_PATH

from charter import Settings
from tests.cli.test_runs_cli import charter, process_env
from tests.durable.test_stored_input import KEY, TYPED, _assert_nowhere

RUN = ["run", str(CHARTER_PATH), "-i", TYPED, "--user", "alice", "--tenant", "acme",
       "--role", "support", "--environment", "prod"]  # fmt: skip


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> dict[str, str]:
    return process_env(db_url, tmp_path, CHARTER_SECRET_PAYMENTS_REFUND=KEY, COLUMNS="300")


def _settings(env: dict[str, str]) -> Settings:
    home = Path(env["CHARTER_HOME"])
    return Settings(
        home=home, secrets_dir=home / "secrets", database_url=env["CHARTER_DATABASE_URL"]
    )


def test_detach_stores_the_input_redacted_and_says_so(env: dict[str, str]) -> None:
    queued = charter(env, *RUN, "--detach", "--json")
    assert queued.returncode == 0, queued.stderr
    report = json.loads(queued.stdout)
    assert (report["input_redacted"], report["unchecked_credentials"]) == (True, [])
    assert KEY not in queued.stdout + queued.stderr
    _assert_nowhere(_settings(env))

    queued = charter(env, *RUN, "--detach")
    assert queued.returncode == 0, queued.stderr
    said = " ".join(queued.stderr.split())
    assert "note: your input held a credential this charter uses" in said
    assert "cannot be resolved here" not in said


def test_detach_names_the_credentials_it_could_not_check(env: dict[str, str]) -> None:
    without = {k: v for k, v in env.items() if k != "CHARTER_SECRET_PAYMENTS_REFUND"}
    queued = charter(without, *RUN, "--detach")
    assert queued.returncode == 0, queued.stderr
    said = " ".join(queued.stderr.split())
    assert "credential(s) payments-refund cannot be resolved here" in said
    queued = charter(without, *RUN, "--detach", "--json")
    assert json.loads(queued.stdout)["unchecked_credentials"] == ["payments-refund"]


def test_a_detached_run_without_a_credential_in_its_input_says_nothing_about_it(
    env: dict[str, str],
) -> None:
    plain = [*RUN[:3], "Please handle ticket T-1001.", *RUN[4:]]
    queued = charter(env, *plain, "--detach")
    assert queued.returncode == 0, queued.stderr
    assert "note:" not in queued.stderr


def test_a_durable_run_stores_the_input_redacted_and_says_so(env: dict[str, str]) -> None:
    done = charter(env, *RUN, "--durable")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "note: your input held a credential this charter uses" in " ".join(done.stdout.split())
    assert KEY not in done.stdout + done.stderr
    _assert_nowhere(_settings(env))
