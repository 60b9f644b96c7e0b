"""A write that could not be taken back is in the run's reason, not only in the audit log.

A run that does not succeed compensates its writes; when a compensation itself fails (its
tool raises, its credential is missing), the write stays done. The run's outcome is still
what ended it, but its reason says which writes were not undone, so the operator who reads
``charter run`` or ``runs list`` learns it there.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from charter import Charter, Principal, ToolContext, tool
from charter.execution.agent import RunResult
from charter.testing import ScriptedModel, reply, tool_call
from tests.execution.harness import make_runtime
from tests.execution.test_effects import effects_charter, effects_text, forbidden

UNDONE: list[str] = []


@tool
def write_row(row_id: str, *, ctx: ToolContext) -> str:
    """Write a row.

    Args:
        row_id: which row.
    """
    return "ok"


@tool
def undo_row(row_id: str, *, ctx: ToolContext) -> str:
    """Undo a row write.

    Args:
        row_id: which row.
    """
    if row_id == "stuck":
        raise ConnectionError("database locked")
    UNDONE.append(row_id)
    return "ok"


CHARTER = effects_text("  undo_row: {effect: write, credential: CREDENTIAL}\n")


def charter(tmp_path: Path, credential: str) -> Charter:
    text = CHARTER.replace("CREDENTIAL", credential)
    return effects_charter(tmp_path, text, [write_row, undo_row, forbidden])


def drive(tmp_path: Path, credential: str, *rows: str) -> RunResult:
    model = ScriptedModel(
        [reply("", tool_call("write_row", f"w{i}", row_id=row)) for i, row in enumerate(rows)]
        + [reply("", tool_call("forbidden", "f", reason="x"))]
    )
    with make_runtime(tmp_path, secrets={"CHARTER_SECRET_DB": "sk_db_0123456789"}) as runtime:
        return asyncio.run(
            runtime.run_agent(charter(tmp_path, credential), model, "go",
                              principal=Principal("alice", "acme"))
        )  # fmt: skip


def test_a_compensation_that_fails_is_named_in_the_runs_reason(tmp_path: Path) -> None:
    UNDONE.clear()
    result = drive(tmp_path, "db", "r1", "stuck")
    assert result.outcome == "denied"
    reason = result.reason
    assert reason.startswith("forbidden is denied by policy; NOT UNDONE: ")
    assert "write_row #2 could not be compensated: undo_row error: ConnectionError: " in reason
    assert "#1" not in reason.split("NOT UNDONE")[1]  # r1 was undone
    assert UNDONE == ["r1"]


def test_a_compensation_without_its_credential_is_named_too(tmp_path: Path) -> None:
    UNDONE.clear()
    result = drive(tmp_path, "missing", "r1")
    reason = result.reason
    expected = "NOT UNDONE: write_row #1 could not be compensated: undo_row error: "
    assert f"{expected}SecretNotFound" in reason
    assert UNDONE == []


def test_compensations_that_work_leave_the_reason_alone(tmp_path: Path) -> None:
    UNDONE.clear()
    result = drive(tmp_path, "db", "r1", "r2")
    assert "NOT UNDONE" not in result.reason
    assert UNDONE == ["r2", "r1"]
