"""Shared building blocks for the pipeline tests (execution, policy, identity).

Everything is real: Cedar, the SQLite audit log under ``tmp_path``, the example charter and
its toolkit, an OpenTelemetry SDK provider with an in-memory exporter. Only time is fake.
"""

from __future__ import annotations

import asyncio
import sqlite3
import textwrap
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from charter_examples.support_desk.demo import CHARTER_PATH
from charter_examples.support_desk.desk import SupportDesk
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from charter.contract.loader import Charter
from charter.contract.tool import ToolSpec
from charter.core.clock import SystemClock
from charter.core.settings import Settings
from charter.execution.approvals import InMemoryGrants
from charter.execution.call import ToolResult
from charter.execution.kill_store import KillSwitchStore
from charter.execution.kill_switch import KillSwitches
from charter.execution.run import Run
from charter.identity.principal import Principal
from charter.identity.secrets import EnvSecretProvider
from charter.observability.audit import AuditRecord
from charter.observability.tracing import PresetIdGenerator
from charter.runtime import Runtime
from charter.storage import Database, upgrade
from charter.testing import FakeClock

__all__ = [
    "SCOPE",
    "SECRET",
    "Traced",
    "audit_rows",
    "call",
    "example_charter",
    "make_runtime",
    "make_traced",
    "memory_kill",
    "memory_runtime",
    "other_process_kill",
    "runtime",
    "runtime_fixture",
    "start_example_run",
    "store_runtime",
    "tool_records",
    "traced",
    "write_charter",
]

# Distinctive on purpose: a test greps every stored byte for it.
SECRET = "sk_live_pay_7Qx9Zr2Lm4Nv8Kw3"
REFUND_ENV = {"CHARTER_SECRET_PAYMENTS_REFUND": SECRET}
SCOPE = "charter:test-agent"
"""The kill scope of every charter ``write_charter`` writes under its default name."""


class Traced:
    """A runtime whose spans land in memory."""

    def __init__(self, runtime: Runtime, exporter: InMemorySpanExporter) -> None:
        self.runtime = runtime
        self.exporter = exporter

    def spans(self) -> tuple[ReadableSpan, ...]:
        """Every finished span, once the background recorder has caught up."""
        self.runtime.flush_traces()
        return tuple(self.exporter.get_finished_spans())


def make_runtime(
    tmp_path: Path,
    *,
    secrets: dict[str, str] | None = None,
    clock: FakeClock | None = None,
    traced: bool = False,
) -> Runtime:
    """A runtime with its home in ``tmp_path``, a fake clock and env-style secrets.

    Kill switches and approvals are the in-memory ones, so pipeline tests can pull a switch
    or grant an approval directly; the durable stores have their own tests.
    """
    provider = None
    if traced:
        provider = TracerProvider(id_generator=PresetIdGenerator())
    runtime = Runtime(
        Settings(home=tmp_path / "home", secrets_dir=tmp_path / "secrets"),
        clock=clock or FakeClock(),
        tracer_provider=provider,
        secret_providers=[EnvSecretProvider(REFUND_ENV if secrets is None else secrets)],
        kill_switches=KillSwitches(),
        approvals=InMemoryGrants(),
    )
    return runtime


def make_traced(tmp_path: Path, **kwargs: Any) -> Traced:
    runtime = make_runtime(tmp_path, traced=True, **kwargs)
    exporter = InMemorySpanExporter()
    runtime.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Traced(runtime, exporter)


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    """A closed-on-exit runtime with the payments credential set to ``SECRET``."""
    with make_runtime(tmp_path) as rt:
        yield rt


@pytest.fixture
def traced(tmp_path: Path) -> Iterator[Traced]:
    """Like ``runtime``, with an in-memory span exporter."""
    t = make_traced(tmp_path)
    with t.runtime:
        yield t


def runtime_fixture(*, start: datetime | None = None) -> Any:
    """A fixture of a runtime with no credentials at all, its fake clock at ``start``.

    A test module binds it to the name its tests take: ``runtime = runtime_fixture()``.
    """

    @pytest.fixture
    def fixture(tmp_path: Path) -> Iterator[Runtime]:
        """A closed-on-exit runtime with no credentials, in-memory kill switches and
        approvals, its home at ``tmp_path / "home"``."""
        clock = FakeClock(start) if start is not None else FakeClock()
        with make_runtime(tmp_path, secrets={}, clock=clock) as rt:
            yield rt

    return fixture


memory_runtime = runtime_fixture()  # in-memory kill switches, as against store_runtime


@pytest.fixture
def store_runtime(db_url: str, tmp_path: Path) -> Iterator[Runtime]:
    """A runtime on the durable kill switches (the default), SQLite file or Postgres, with no
    credentials."""
    database = Database(db_url)
    try:
        upgrade(database)
    finally:
        database.dispose()
    settings = Settings(home=tmp_path / "home", secrets_dir=tmp_path / "secrets",
                        database_url=db_url)  # fmt: skip
    with Runtime(
        settings, clock=FakeClock(), secret_providers=[EnvSecretProvider({})],
        approvals=InMemoryGrants(),
    ) as rt:  # fmt: skip
        yield rt


def memory_kill(runtime: Runtime, reason: str) -> Callable[[], None]:
    """Pull the switch of ``SCOPE`` on ``runtime``'s in-memory kill switches."""
    switches = runtime.kill_switches
    assert isinstance(switches, KillSwitches)
    return lambda: switches.kill(SCOPE, reason)


def other_process_kill(runtime: Runtime, reason: str) -> Callable[[], None]:
    """Pull the switch of ``SCOPE`` the way another process does: its own store on the same
    database."""

    def pull() -> None:
        database = Database(runtime.settings.database)
        try:
            with KillSwitchStore(database, SystemClock()) as store:
                store.kill(SCOPE, reason, by="oncall")
        finally:
            database.dispose()

    return pull


@cache
def example_charter() -> Charter:
    """The support-desk charter, exactly as shipped."""
    return Charter.load(CHARTER_PATH)


def start_example_run(
    runtime: Runtime,
    *,
    user: str = "alice",
    tenant: str = "acme",
    roles: tuple[str, ...] = ("support",),
    environment: str = "dev",
    desk: SupportDesk | None = None,
) -> Run:
    """A run of the example charter on a fresh desk (reachable as ``run.resources[0]``)."""
    return runtime.start_run(
        example_charter(),
        Principal(user, tenant, roles=roles),
        environment=environment,
        resources=(desk or SupportDesk.default(),),
    )


def call(run: Run, name: Any, arguments: Any) -> ToolResult:
    """One tool call through the whole pipeline, from synchronous test code."""
    return asyncio.run(run.call_tool(name, arguments))


def write_charter(
    tmp_path: Path,
    body: str,
    *,
    tools: Sequence[ToolSpec] = (),
    cedar: str | None = None,
    name: str = "test-agent",
) -> Charter:
    """Write a small charter (plus prompt and optional Cedar file) and load it.

    ``body`` is the YAML after the ``charter``/``model``/``prompt`` header.
    """
    folder = tmp_path / "charter"
    folder.mkdir(exist_ok=True)
    (folder / "prompt.md").write_text("You are a test agent.\n", encoding="utf-8")
    header = (
        f"charter: {name}\n"
        "model: {provider: openai, name: gpt-4o-mini, max_output_tokens: 64}\n"
        "prompt: prompt.md\n"
    )
    text = header + textwrap.dedent(body)
    if cedar is not None:
        (folder / "extra.cedar").write_text(textwrap.dedent(cedar), encoding="utf-8")
    path = folder / "charter.yaml"
    path.write_text(text, encoding="utf-8")
    return Charter.load(path, tools=tools)


def audit_rows(runtime: Runtime) -> list[dict[str, Any]]:
    """Every stored audit row, read with plain sqlite3 (what an auditor would see)."""
    conn = sqlite3.connect(runtime.settings.home / "charter.sqlite3")
    try:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute("SELECT * FROM audit_records ORDER BY row_id")]
    finally:
        conn.close()


def tool_records(runtime: Runtime, run_id: str | None = None) -> list[AuditRecord]:
    """The ``tool_call`` audit records, oldest first (of one run, if given)."""
    return [
        record
        for record in runtime.audit.records()
        if record.entry.kind == "tool_call" and run_id in (None, record.entry.run_id)
    ]
