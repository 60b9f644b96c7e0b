"""Durable runs on DBOS: a run survives a crash of its process and waits hours for a human.

Charter owns the process's single DBOS instance (``DurableEngine``). A durable run is the
``charter_run`` workflow: the built-in agent loop with ``DbosSteps``, so each model turn and
tool call is a recorded step and each approval a durable wait (``execution/dbos_steps.py``).
Runs go through their charter's queue (``queues.py``), so its concurrency limits hold for
runs started here and runs enqueued by ``charter run --detach`` alike.

Choices, each from a trap found when DBOS 3.4 was tried on this project's machines
(docs/dbos-notes.md):
- Step data is JSON (``DBOSPortableJSONSerializer``), never pickle, for workflows and clients.
- ``application_version`` is Charter's workflow version, set explicitly: DBOS's default is a
  hash of the workflow source, and recovery only picks up runs of a matching version, so an
  unrelated code change would silently orphan runs parked for approval.
- Every process gets its own executor id; two processes sharing one recover each other's
  runs and execute steps twice. Restart a crashed worker with the same id to recover its runs.
- Shutting down cancels the asyncio task of every run still in flight or parked (they stay
  PENDING and resume when a worker with this id starts again), and DBOS logs a warning naming
  an internal function for each. ``destroy`` drops exactly that warning while it runs, so a
  clean stop prints nothing; every other DBOS message, and that one at any other time, passes.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from dbos import DBOS, DBOSPortableJSONSerializer, SetEnqueueOptions, SetWorkflowID

from charter.contract.loader import Charter
from charter.core.errors import UserError
from charter.durable.queues import POLLING_SECONDS, queue_limits, queue_name
from charter.durable.system_db import APP_NAME, system_database
from charter.execution.agent import run_agent
from charter.execution.dbos_steps import DbosSteps
from charter.identity.principal import Principal
from charter.identity.secrets import Redactor
from charter.runtime import Runtime

__all__ = ["WORKFLOW_NAME", "WORKFLOW_VERSION", "DurableEngine", "RunSpec"]

WORKFLOW_VERSION = "charter-workflows-1"
"""Bump when a change to the workflow code would replay old records differently."""

_NOTIFY_POLLING_SECONDS = 0.05  # ~25 ms from an approval to the run resuming, on SQLite
_RESULT_POLLING_SECONDS = 0.02  # a queued run's result is polled for (DBOS's default: 1 s)

WORKFLOW_NAME = "charter_run"
"""The workflow's registered name, for clients that enqueue it without importing it."""


@dataclass(frozen=True, slots=True)
class RunSpec:
    """Everything a durable run needs, as the workflow's (JSON) input.

    DBOS keeps that input in its database for as long as it keeps the workflow, so it is
    stored ``redacted``: the user's input with every credential of the charter known where
    the run is started or queued replaced by ``[REDACTED]`` (``DurableEngine.run`` and
    ``DurableControl.enqueue`` do it; a spec built by hand cannot skip it).
    ``input_redacted`` says a credential was found; ``unchecked_credentials`` names the
    charter's credentials that could not be resolved there, so the input was not checked
    for them (a worker that holds them still redacts them before the model sees them).
    """

    charter_path: str
    charter_sha256: str
    user: str
    tenant: str
    roles: tuple[str, ...]
    environment: str
    input: str
    max_steps: int = 24
    input_redacted: bool = False
    unchecked_credentials: tuple[str, ...] = ()

    def redacted(self, redactor: Redactor, unchecked: Sequence[str]) -> RunSpec:
        """This spec as it may be stored: ``input`` redacted by ``redactor`` (which knows the
        charter's credentials), ``unchecked`` naming those it does not know."""
        shown = redactor.redact_text(self.input)
        return replace(
            self,
            input=shown,
            input_redacted=self.input_redacted or shown != self.input,
            unchecked_credentials=tuple(unchecked),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "charter_path": self.charter_path,
            "charter_sha256": self.charter_sha256,
            "user": self.user,
            "tenant": self.tenant,
            "roles": list(self.roles),
            "environment": self.environment,
            "input": self.input,
            "max_steps": self.max_steps,
            "input_redacted": self.input_redacted,
            "unchecked_credentials": list(self.unchecked_credentials),
        }


class DurableEngine:
    """This process's DBOS instance, bound to a ``Runtime`` that runs execute with.

    Args:
        runtime: audit log, stores and secrets the runs use.
        executor_id: stable per worker; a new unique id when omitted (a one-off process).
        approval_timeout_seconds: how long a run waits for a decision before it expires.
    """

    _current: ClassVar[DurableEngine | None] = None

    def __init__(
        self,
        runtime: Runtime,
        *,
        executor_id: str | None = None,
        approval_timeout_seconds: float = 24 * 3600,
    ) -> None:
        self.runtime = runtime
        self.executor_id = executor_id or f"process-{uuid.uuid4().hex[:12]}"
        self.approval_timeout_seconds = approval_timeout_seconds
        self._url, self._engine = system_database(runtime.settings)
        self._charters: dict[tuple[str, str], Charter] = {}

    @classmethod
    def current(cls) -> DurableEngine:
        if cls._current is None:
            raise UserError("no durable engine is running in this process; launch one first")
        return cls._current

    def launch(self, *, reset: bool = False) -> None:
        """Start DBOS (and recover this executor's unfinished runs). ``reset`` wipes DBOS's
        records first: for tests only."""
        if DurableEngine._current is not None:
            raise UserError("a durable engine is already running in this process")
        config: dict[str, Any] = {
            "name": APP_NAME,
            "system_database_url": self._url,
            "application_version": WORKFLOW_VERSION,
            "executor_id": self.executor_id,
            "notification_listener_polling_interval_sec": _NOTIFY_POLLING_SECONDS,
            "scheduler_polling_interval_sec": POLLING_SECONDS,
            "serializer": DBOSPortableJSONSerializer(),
            "enable_otlp": False,
            "log_level": "WARNING",
        }
        if self._engine is not None:
            config["system_database_engine"] = self._engine
        DBOS(config=config)  # type: ignore[arg-type]
        if reset:
            if self._engine is None:
                # DBOS shares Charter's Postgres database, and its reset evicts every
                # connection to it (or drops it): never on a database Charter is using.
                raise UserError("resetting DBOS is for embedded SQLite test homes only")
            DBOS.reset_system_database()
        DBOS.launch()
        DurableEngine._current = self

    def unfinished_runs(self) -> int:
        """How many runs of this executor are unfinished (in flight or parked): the ones a
        worker with this id takes up again when it starts."""
        if DurableEngine._current is not self:
            return 0
        pending = DBOS.list_workflows(
            status="PENDING", executor_id=self.executor_id, load_input=False, load_output=False
        )
        return len(pending)

    def destroy(self) -> None:
        """Stop DBOS in this process; runs still in flight or parked stay PENDING for
        recovery. Safe to call twice."""
        if DurableEngine._current is self:
            dbos_logger = logging.getLogger("dbos")
            noise = _ShutdownNoise()
            dbos_logger.addFilter(noise)
            try:
                DBOS.destroy()
            finally:
                dbos_logger.removeFilter(noise)
            DurableEngine._current = None
        if self._engine is not None:
            self._engine.dispose()

    def charter_for(self, path: str, admitted_sha256: str) -> Charter:
        """The charter a run was admitted under: from this engine's cache when it has that
        exact content (parsing a charter costs more than a whole run's durable steps),
        else freshly loaded from ``path`` (whose content the caller must then check)."""
        cached = self._charters.get((path, admitted_sha256))
        if cached is not None:
            return cached
        charter = Charter.load(path)
        if charter.content_sha256 == admitted_sha256:
            self._charters[(path, admitted_sha256)] = charter
        return charter

    async def run(self, spec: RunSpec, *, run_id: str | None = None) -> dict[str, Any]:
        """Queue ``spec`` as a durable run and wait for its end (through any approvals).

        This process serves the queue too, but any worker may be the one that executes it.
        """
        charter = Charter.load(spec.charter_path)
        # Stored as DBOS's record of the run: never with a credential the runtime knows.
        unchecked = self.runtime.know_credentials(charter)
        spec = spec.redacted(self.runtime.services.redactor, unchecked)
        queue = await DBOS.register_queue_async(queue_name(charter.name), **queue_limits(charter))
        with (
            SetWorkflowID(run_id or f"run_{uuid.uuid4().hex}"),
            SetEnqueueOptions(queue_partition_key=spec.tenant, app_version=WORKFLOW_VERSION),
        ):
            handle = await queue.enqueue_async(charter_run, spec.as_dict())
        result: dict[str, Any] = await handle.get_result(
            polling_interval_sec=_RESULT_POLLING_SECONDS
        )
        return result


class _ShutdownNoise(logging.Filter):
    """Drops the warning DBOS logs for each run's task it cancels while shutting down.

    The run is not lost (it stays PENDING and is recovered), and the message names DBOS's
    internals, not anything an operator can act on.
    """

    _MESSAGE = "Asyncio task cancelled for workflow or step"

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self._MESSAGE)


@DBOS.workflow()
async def charter_run(spec: dict[str, Any]) -> dict[str, Any]:
    """A governed agent run, durable: see the module docstring."""
    engine = DurableEngine.current()
    runtime = engine.runtime
    charter = engine.charter_for(spec["charter_path"], spec["charter_sha256"])
    if charter.content_sha256 != spec["charter_sha256"]:
        # The file changed since the run started: it must finish under the charter that
        # admitted it, or not at all.
        return {
            "run_id": DBOS.workflow_id,
            "outcome": "failed",
            "reason": f"charter {spec['charter_path']!r} changed since the run started "
            f"(was {spec['charter_sha256'][:12]}, now {charter.content_sha256[:12]})",
        }
    principal = Principal(spec["user"], spec["tenant"], roles=tuple(spec["roles"]))
    model = runtime.build_model(charter)
    run = runtime.start_run(
        charter,
        principal,
        environment=spec["environment"],
        resources=runtime.toolkit_resources(charter),
        model_name=f"{model.provider}:{model.name}",
        run_id=DBOS.workflow_id,
    )
    result = await run_agent(
        run,
        model,
        spec["input"],
        price=runtime.price_for(charter),
        max_steps=int(spec["max_steps"]),
        steps=DbosSteps(engine.approval_timeout_seconds),
    )
    ended = result.as_dict()
    # The input was redacted before it was stored: the person who typed it is still told.
    ended["input_redacted"] = result.input_redacted or spec.get("input_redacted") is True
    return ended


assert charter_run.__qualname__ == WORKFLOW_NAME
