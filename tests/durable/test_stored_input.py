"""A durable run's stored input holds no credential the charter uses (issue 11, sibling of
defect 6): DBOS keeps a workflow's input (and every step's output) in its database, so the
user's input is redacted before it is stored, with the charter's credentials as resolved
where the run is started or queued. Nothing DBOS or Charter stores then holds the value in
any form redaction knows, on SQLite and Postgres."""

from __future__ import annotations

import asyncio
import base64
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from charter_examples.support_desk.demo import CHARTER_PATH
from dbos import DBOS
from sqlalchemy.engine import make_url

from charter import Charter, Settings
from charter.durable import DurableEngine, RunStatus, enqueue_run, run_status
from charter.identity.secrets import REDACTED
from tests.durable.support import SECRET, spec, wait_for, written_spec

KEY = SECRET["CHARTER_SECRET_PAYMENTS_REFUND"]
TYPED = (
    f"Please handle ticket T-1001. My key is {KEY}, in capitals {KEY.upper()}, and "
    f"encoded {base64.b64encode(KEY.encode()).decode()}."
)
SHOWN = f"Please handle ticket T-1001. My key is {REDACTED}, in capitals {REDACTED}, and encoded "


def _forms(value: str) -> list[str]:
    raw = value.encode()
    return [value.lower(), raw.hex(), base64.b64encode(raw).decode().rstrip("=").lower()]


def _everything_stored(settings: Settings) -> str:
    """Every value of every table of DBOS's database and of Charter's, as one lower-case
    text (a test double for an attacker reading the database files or the server)."""
    texts: list[str] = []
    url = make_url(settings.database)
    if url.get_backend_name() == "postgresql":
        engine = sqlalchemy.create_engine(url.set(drivername="postgresql+psycopg"))
        try:
            with engine.connect() as connection:
                tables = connection.exec_driver_sql(
                    "SELECT table_schema, table_name FROM information_schema.tables "
                    "WHERE table_schema IN ('public', 'dbos') AND table_type = 'BASE TABLE'"
                ).all()
                for schema, table in tables:
                    rows = connection.exec_driver_sql(f'SELECT * FROM "{schema}"."{table}"')
                    texts.extend(repr(tuple(row)) for row in rows)
        finally:
            engine.dispose()
    else:
        for path in (settings.home / "dbos.sqlite3", Path(str(url.database))):
            if not path.exists():
                continue
            with sqlite3.connect(path) as connection:
                names = connection.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                ).fetchall()
                for (name,) in names:
                    rows = connection.execute(f'SELECT * FROM "{name}"').fetchall()
                    texts.extend(repr(row) for row in rows)
    assert texts, "nothing was read: the scan would pass vacuously"
    return "\n".join(texts).lower()


def _assert_nowhere(settings: Settings) -> None:
    stored = _everything_stored(settings)
    assert REDACTED.lower() in stored  # the scan sees the run's records
    for form in _forms(KEY):
        assert form not in stored, form


def _stored_input(run_id: str) -> dict[str, Any]:
    [workflow] = DBOS.list_workflows(workflow_ids=[run_id])
    assert workflow.input is not None
    stored: dict[str, Any] = workflow.input["args"][0]
    return stored


def test_a_durable_run_stores_the_input_redacted(engine: DurableEngine) -> None:
    result = asyncio.run(engine.run(replace(spec("T-1001"), input=TYPED), run_id="run_typed"))

    assert result["outcome"] == "succeeded"
    assert result["input_redacted"] is True  # the person who typed it is told
    stored = _stored_input("run_typed")
    assert stored["input"].startswith(SHOWN)
    assert stored["input_redacted"] is True
    _assert_nowhere(engine.runtime.settings)


def test_a_queued_run_stores_the_input_redacted(
    engine: DurableEngine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The queuing process resolves the charter's credentials as a worker would.
    monkeypatch.setenv("CHARTER_SECRET_PAYMENTS_REFUND", KEY)
    charter = Charter.load(CHARTER_PATH)
    status = enqueue_run(settings, charter, replace(spec("T-1001"), input=TYPED), "run_queued")
    assert (status.input_redacted, status.unchecked_credentials) == (True, ())
    assert status.as_dict()["input_redacted"] is True

    done = wait_for("a worker to run it", lambda: _ended(settings, "run_queued"))
    assert done.result is not None
    assert done.result["outcome"] == "succeeded"
    assert done.result["input_redacted"] is True
    assert done.input_redacted is True  # read back from the stored input
    assert _stored_input("run_queued")["input"].startswith(SHOWN)
    _assert_nowhere(settings)


def test_an_input_without_a_credential_is_stored_as_typed(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHARTER_SECRET_PAYMENTS_REFUND", KEY)
    typed = "Please handle ticket T-1001 (the key rotation is due; sk_test is a prefix)."
    status = enqueue_run(
        settings, Charter.load(CHARTER_PATH), replace(spec("T-1001"), input=typed), "run_plain"
    )
    assert (status.input_redacted, status.unchecked_credentials) == (False, ())
    shown = run_status(settings, "run_plain")
    assert shown.status == "ENQUEUED"
    assert shown.input_redacted is False


@pytest.mark.parametrize(
    "typed",
    [
        KEY,  # the whole input
        f"{KEY}{KEY}",  # twice, touching
        "key=" + "".join(f"%{byte:02X}" for byte in KEY.encode()),  # percent-encoded
        f'{{"key": "{KEY}"}}',  # inside JSON
        f"line one\n{KEY.upper()}\nline three",
    ],
)
def test_each_form_of_the_credential_is_redacted_before_it_is_queued(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, typed: str
) -> None:
    monkeypatch.setenv("CHARTER_SECRET_PAYMENTS_REFUND", KEY)
    status = enqueue_run(
        settings, Charter.load(CHARTER_PATH), replace(spec("T-1001"), input=typed), "run_forms"
    )
    assert status.input_redacted is True
    _assert_nowhere(settings)


def test_a_credential_the_queuing_process_cannot_resolve_is_named_as_unchecked(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What redaction cannot do here (documented): a credential only workers hold is not
    known where the run is queued, so the input cannot be checked for it. The caller is told
    which, so the CLI can say so."""
    monkeypatch.delenv("CHARTER_SECRET_PAYMENTS_REFUND", raising=False)
    status = enqueue_run(
        settings, Charter.load(CHARTER_PATH), replace(spec("T-1001"), input=TYPED), "run_blind"
    )
    assert status.unchecked_credentials == ("payments-refund",)
    assert status.input_redacted is False
    assert run_status(settings, "run_blind").unchecked_credentials == ("payments-refund",)


def _ended(settings: Settings, run_id: str) -> RunStatus | None:
    status = run_status(settings, run_id)
    return status if status.status == "SUCCESS" else None


LEAKY = """\
charter: leak-durable
model: {provider: scripted, name: scripted, factory: "tests.durable.leak_toolkit:model"}
prompt: prompt.md
toolkit: [tests.durable.leak_toolkit]
tools:
  leak: {effect: read, credential: payments-refund}
  fail_loudly: {effect: read, credential: payments-refund}
policies: {on_deny: continue}
"""


def test_what_a_durable_run_records_of_a_leaking_tool_holds_no_credential(
    engine: DurableEngine, tmp_path: Path
) -> None:
    """Step outputs (each with the run's snapshot: results, provenance, effects) and the
    workflow's output, when a tool returns its credential in several forms and another
    raises with it."""
    typed = written_spec(tmp_path / "leaky", LEAKY, prompt="Read the tokens.\n", task=TYPED)

    result = asyncio.run(engine.run(typed, run_id="run_leaky"))

    assert result["outcome"] == "succeeded", result["reason"]
    outcomes = [c["outcome"] for c in result["tool_calls"]]
    assert outcomes == ["executed"] * 6 + ["error"]
    steps = DBOS.list_workflow_steps("run_leaky")
    assert len(steps) >= 8  # the model turns and tool calls were recorded
    _assert_nowhere(engine.runtime.settings)
