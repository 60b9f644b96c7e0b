"""Stage 7, execution: time limits, tool errors, idempotency keys and credentials."""

from __future__ import annotations

import asyncio
import os
import threading
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from charter_examples.support_desk.desk import SupportDesk

from charter.contract.loader import Charter
from charter.contract.tool import ToolContext, tool
from charter.core.decision import Stage, Verdict
from charter.core.settings import Settings
from charter.execution.run import Run
from charter.identity.principal import Principal
from charter.identity.secrets import REDACTED, FileSecretProvider, Secret
from charter.runtime import Runtime
from charter.testing import FakeClock
from tests.execution.harness import (
    SECRET,
    audit_rows,
    call,
    make_runtime,
    start_example_run,
    tool_records,
    write_charter,
)

REFUND = {"ticket_id": "T-1001", "amount_usd": "45", "account": "acct-C-01"}


class Gate:
    """Lets a test hold a tool and then release it, and know when it has really finished."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.finished = threading.Event()
        self.async_release: asyncio.Event | None = None
        self.cancelled = False


@tool
def blocking(*, ctx: ToolContext) -> str:
    """A sync tool that waits until the test releases it."""
    gate = ctx.resource(Gate)
    try:
        gate.release.wait(timeout=30)
        return "late result"
    finally:
        gate.finished.set()


@tool
async def waiting(*, ctx: ToolContext) -> str:
    """An async tool that waits for an event nobody sets."""
    gate = ctx.resource(Gate)
    gate.async_release = asyncio.Event()
    try:
        await gate.async_release.wait()
    except asyncio.CancelledError:
        gate.cancelled = True
        raise
    return "late result"


@tool
def failing(*, ctx: ToolContext) -> str:
    """A tool that raises with its credential in the message."""
    assert ctx.credential is not None
    raise RuntimeError(f"upstream said no to key {ctx.credential.reveal()}")


@tool
def keyed(*, ctx: ToolContext) -> str:
    """Returns its idempotency key."""
    return ctx.idempotency_key


@dataclass
class Seen:
    contexts: list[ToolContext]


@tool
def inspect_context(*, ctx: ToolContext) -> str:
    """Keeps its context for the test."""
    ctx.resource(Seen).contexts.append(ctx)
    return "ok"


def timed_charter(tmp_path: Path) -> Charter:
    return write_charter(
        tmp_path,
        """\
        tools:
          blocking: {effect: write, timeout_seconds: 0.05, fee_usd: 0.01}
          waiting: {effect: write, timeout_seconds: 0.05}
          failing: {effect: write, credential: payments-refund}
          keyed: {effect: write}
          inspect_context: {effect: read, credential: payments-refund}
        """,
        tools=[blocking, waiting, failing, keyed, inspect_context],
    )


def start(runtime: Runtime, tmp_path: Path, *resources: object) -> Run:
    return runtime.start_run(
        timed_charter(tmp_path), Principal("alice", "acme"), resources=resources
    )


def test_a_sync_tool_past_its_limit_is_a_timeout_and_its_late_result_is_dropped(
    runtime: Runtime, tmp_path: Path
) -> None:
    gate = Gate()
    run = start(runtime, tmp_path, gate)

    result = call(run, "blocking", {})
    gate.release.set()
    assert gate.finished.wait(timeout=30)  # the worker thread did finish, afterwards

    assert result.outcome == "timeout"
    assert result.value is None
    assert result.decision.verdict is Verdict.ALLOW  # it was allowed; it ran out of time
    assert result.decision.stage is Stage.EXECUTE
    assert result.decision.rule_id == "tools.blocking"
    assert "did not finish within 0.05s" in result.model_text
    assert f"idempotency key {run.id}:1" in result.model_text
    assert "late result" not in result.model_text
    assert run.ledger.totals().cost_usd == Decimal("0.01")  # it may have acted: charged
    [record] = tool_records(runtime)
    assert (record.entry.outcome, record.entry.stage) == ("timeout", "execute")


def test_an_async_tool_past_its_limit_is_a_timeout_and_is_cancelled(
    runtime: Runtime, tmp_path: Path
) -> None:
    gate = Gate()
    run = start(runtime, tmp_path, gate)

    result = call(run, "waiting", {})

    assert result.outcome == "timeout"
    assert gate.cancelled is True
    assert "did not finish within 0.05s" in result.model_text
    assert tool_records(runtime)[0].entry.outcome == "timeout"


def test_the_run_goes_on_after_a_timeout(runtime: Runtime, tmp_path: Path) -> None:
    gate = Gate()
    run = start(runtime, tmp_path, gate)
    assert call(run, "waiting", {}).outcome == "timeout"
    assert call(run, "keyed", {}).executed


def test_a_tool_that_raises_is_an_error_with_the_message_redacted(
    runtime: Runtime, tmp_path: Path
) -> None:
    run = start(runtime, tmp_path)

    result = call(run, "failing", {})

    assert result.outcome == "error"
    assert result.decision.stage is Stage.EXECUTE
    assert result.model_text == f"RuntimeError: upstream said no to key {REDACTED}"
    assert SECRET not in result.model_text
    [record] = tool_records(runtime)
    assert record.entry.outcome == "error"
    assert record.entry.detail == result.model_text


def test_an_error_text_with_lone_surrogates_is_still_audited(
    runtime: Runtime, tmp_path: Path
) -> None:
    @tool
    def garbled() -> str:
        """Raises text that is not valid UTF-8."""
        raise ValueError("bad byte \udcff here")

    charter = write_charter(tmp_path, "tools:\n  garbled: {effect: read}\n", tools=[garbled])
    run = runtime.start_run(charter, Principal("alice", "acme"))

    result = call(run, "garbled", {})

    assert result.outcome == "error"
    assert "bad byte \\udcff here" in result.model_text
    assert runtime.audit.verify().ok


def test_the_idempotency_key_is_run_id_and_step(runtime: Runtime, tmp_path: Path) -> None:
    run = start(runtime, tmp_path)

    first = call(run, "keyed", {})
    call(run, "no_such_tool", {})  # refused calls still take a step
    third = call(run, "keyed", {})

    assert first.value == f"{run.id}:1"
    assert third.value == f"{run.id}:3"


def test_the_example_refund_carries_the_idempotency_key_to_the_payments_desk(
    runtime: Runtime,
) -> None:
    desk = SupportDesk.default()
    run = start_example_run(runtime, desk=desk)
    call(run, "get_ticket", {"ticket_id": "T-1001"})

    assert call(run, "issue_refund", REFUND).executed

    [refund] = desk.refunds
    assert refund.idempotency_key == f"{run.id}:2"
    assert refund.authorized_by == "payments-refund"  # the credential's name, not its value


def test_the_credential_reaches_the_tool_as_a_secret(runtime: Runtime, tmp_path: Path) -> None:
    seen = Seen([])
    run = start(runtime, tmp_path, seen)

    assert call(run, "inspect_context", {}).executed
    assert call(run, "keyed", {}).executed

    [ctx] = seen.contexts
    assert isinstance(ctx.credential, Secret)
    assert ctx.credential.name == "payments-refund"
    assert ctx.credential.reveal() == SECRET
    assert SECRET not in repr(ctx)
    assert ctx.principal.service_principal == "agent:test-agent"
    assert ctx.run_id == run.id


def test_a_missing_credential_is_a_clear_audited_error_and_nothing_runs(tmp_path: Path) -> None:
    desk = SupportDesk.default()
    with make_runtime(tmp_path, secrets={}) as runtime:
        run = start_example_run(runtime, desk=desk)

        result = call(run, "issue_refund", REFUND)

        assert result.outcome == "error"
        assert result.model_text.startswith("SecretNotFound: credential 'payments-refund'")
        assert "CHARTER_SECRET_PAYMENTS_REFUND" in result.model_text
        assert desk.refunds == []
        assert run.ledger.totals().cost_usd == 0  # nothing ran, nothing charged
        [record] = tool_records(runtime)
        assert record.entry.outcome == "error"
        assert "CHARTER_SECRET_PAYMENTS_REFUND" in record.entry.detail
        assert call(run, "get_ticket", {"ticket_id": "T-1001"}).executed  # the run goes on


def test_a_group_readable_secret_file_is_refused_with_the_fix(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "payments-refund").write_text(SECRET, encoding="utf-8")
    os.chmod(secrets / "payments-refund", 0o640)
    desk = SupportDesk.default()
    with Runtime(
        Settings(home=tmp_path / "home", secrets_dir=secrets),
        clock=FakeClock(),
        secret_providers=[FileSecretProvider(secrets)],
    ) as runtime:
        result = call(start_example_run(runtime, desk=desk), "issue_refund", REFUND)

    assert result.outcome == "error"
    assert "chmod 600" in result.model_text
    assert desk.refunds == []


class Opaque:
    """Not JSON: rendered with str(), which here includes the credential."""

    def __init__(self, secret: str) -> None:
        self.secret = secret

    def __str__(self) -> str:
        return f"Opaque(secret={self.secret})"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (lambda s: Opaque(s), "Opaque(secret=[REDACTED])"),
        (lambda s: s.encode(), "[REDACTED]"),
        (lambda s: {s: "as a key"}, '{"[REDACTED]": "as a key"}'),
        (lambda s: {"set": {s}}, '{"set": ["[REDACTED]"]}'),
    ],
    ids=["object", "bytes", "dict-key", "set"],
)
def test_results_the_redactor_cannot_walk_are_still_redacted(
    runtime: Runtime, tmp_path: Path, value: Any, shown: str
) -> None:
    @tool
    def echo(*, ctx: ToolContext) -> Any:
        """Returns something holding its credential."""
        assert ctx.credential is not None
        return value(ctx.credential.reveal())

    charter = write_charter(
        tmp_path,
        "tools:\n  echo: {effect: read, credential: payments-refund}\n",
        tools=[echo],
    )
    result = call(runtime.start_run(charter, Principal("a", "b")), "echo", {})

    assert result.executed
    assert SECRET not in result.model_text
    assert shown in result.model_text


def test_huge_results_are_truncated_for_the_model(runtime: Runtime, tmp_path: Path) -> None:
    @tool
    def flood() -> str:
        """Returns a lot of text."""
        return "z" * 200_000

    charter = write_charter(tmp_path, "tools:\n  flood: {effect: read}\n", tools=[flood])
    result = call(runtime.start_run(charter, Principal("a", "b")), "flood", {})

    assert result.executed
    assert len(result.model_text) < 70_000
    assert result.model_text.endswith("chars]")
    assert result.value == "z" * 200_000  # host code still gets the real value


def test_a_result_too_deep_to_print_is_still_a_recorded_execution(
    runtime: Runtime, tmp_path: Path
) -> None:
    @tool
    def abyss() -> Any:
        """Returns a structure nested far too deeply."""
        deep: list[Any] = []
        node = deep
        for _ in range(100_000):
            child: list[Any] = []
            node.append(child)
            node = child
        return deep

    charter = write_charter(tmp_path, "tools:\n  abyss: {effect: read}\n", tools=[abyss])
    result = call(runtime.start_run(charter, Principal("a", "b")), "abyss", {})

    assert result.executed
    assert "cannot be shown" in result.model_text
    assert [r["outcome"] for r in audit_rows(runtime)] == ["executed"]


def test_sync_tools_with_a_limit_run_in_a_worker_thread(runtime: Runtime, tmp_path: Path) -> None:
    names: list[str] = []

    @tool
    def where() -> str:
        """Says which thread it runs on."""
        names.append(threading.current_thread().name)
        return "ok"

    charter = write_charter(
        tmp_path, "tools:\n  where: {effect: read, timeout_seconds: 5}\n", tools=[where]
    )
    assert call(runtime.start_run(charter, Principal("a", "b")), "where", {}).executed
    assert names[0].startswith("charter-tool")  # so the limit can be enforced
