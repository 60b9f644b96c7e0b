"""Acting on durable runs from a process that hosts none: enqueue, decide, wake, look.

Everything here goes through a ``DBOSClient`` (``system_db.dbos_client``), so the CLI can
queue a run for ``charter worker`` processes, deliver an approver's decision to a parked run,
or wake runs parked in a scope that was just killed, whether or not a worker is running: a
message sent while no worker runs waits in the database for the run's worker to come back.

``DurableControl`` keeps one client open for a long-lived caller (an approvals service: a
decision then reaches the run without a new connection); the module functions open one
for a single call (the CLI).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from dbos import DBOSClient
from sqlalchemy.exc import SQLAlchemyError

from charter.contract.loader import Charter
from charter.core.errors import DatabaseUnavailable, UserError
from charter.core.settings import Settings
from charter.durable.engine import WORKFLOW_NAME, WORKFLOW_VERSION, RunSpec
from charter.durable.queues import queue_limits, queue_name
from charter.durable.system_db import APP_NAME, dbos_client, dbos_tables_exist, migrate_dbos
from charter.execution.approval_store import ApprovalStore
from charter.execution.dbos_steps import KILL_VERDICT, approval_topic
from charter.identity.secrets import ChainSecretProvider, Redactor, SecretProvider
from charter.runtime import credential_names, default_secret_providers, resolve_credentials

__all__ = [
    "DurableControl",
    "RunStatus",
    "enqueue_run",
    "notify_decision",
    "run_status",
    "stop_parked_runs",
]

_EVERY_PENDING = 1_000_000


@dataclass(frozen=True, slots=True)
class RunStatus:
    """Where a durable run is: DBOS's status, and the run's result once it has one.

    ``input_redacted`` and ``unchecked_credentials`` are what storing its input found (see
    ``RunSpec``): a credential of the charter replaced, and the credentials the input could
    not be checked for where the run was queued.
    """

    run_id: str
    status: str  # ENQUEUED, PENDING (running or parked), SUCCESS, ERROR, CANCELLED, ...
    queue: str | None
    executor: str | None
    result: dict[str, Any] | None
    input_redacted: bool = False
    unchecked_credentials: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "queue": self.queue,
            "executor": self.executor,
            "result": self.result,
            "input_redacted": self.input_redacted,
            "unchecked_credentials": list(self.unchecked_credentials),
        }


class DurableControl:
    """One open client on DBOS's records, for as many operations as the caller likes.

    DBOS's tables are created on the first enqueue; until then there are no durable runs,
    and reads and messages answer so without creating anything.
    """

    def __init__(
        self, settings: Settings, *, secret_providers: Sequence[SecretProvider] | None = None
    ) -> None:
        self._settings = settings
        # Where the charter's credentials are resolved to redact a queued run's input: a
        # worker's sources by default (the same settings).
        self._providers = (
            tuple(secret_providers)
            if secret_providers is not None
            else default_secret_providers(settings)
        )
        self._stack = ExitStack()
        self._client: DBOSClient | None = None

    def __enter__(self) -> DurableControl:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._client = None
        self._stack.close()

    def enqueue(self, charter: Charter, spec: RunSpec, run_id: str) -> RunStatus:
        """Queue ``spec`` on its charter's queue for any worker; returns at once.

        The input is stored redacted of the charter's credentials as resolved here (see
        ``RunSpec``); the status says whether one was found, and which could not be checked.

        Raises:
            DatabaseUnavailable: the database cannot be reached.
        """
        redactor = Redactor()
        unchecked = resolve_credentials(
            ChainSecretProvider(self._providers, redactor), credential_names(charter)
        )
        spec = spec.redacted(redactor, unchecked)
        name = queue_name(charter.name)
        options: Any = {
            "queue_name": name,
            "workflow_name": WORKFLOW_NAME,
            "workflow_id": run_id,
            "queue_partition_key": spec.tenant,
            # Without it a run waits for the newest version any worker ever registered.
            "app_version": WORKFLOW_VERSION,
        }
        client = self._open(create=True)
        assert client is not None
        try:
            client.register_queue(name, application_name=APP_NAME, **queue_limits(charter))
            client.enqueue(options, spec.as_dict())
        except SQLAlchemyError as exc:
            raise _unavailable("queue the run", exc) from None
        return RunStatus(run_id, "ENQUEUED", name, None, None, spec.input_redacted,
                         spec.unchecked_credentials)  # fmt: skip

    def status(self, run_id: str) -> RunStatus:
        """The durable run ``run_id``'s status and, when it has ended, its result.

        Raises:
            UserError: no durable run has that id.
            DatabaseUnavailable: the database cannot be reached.
        """
        client = self._open()
        if client is None:
            raise UserError(f"no durable run {run_id!r}: none has ever been started here")
        try:
            found = client.list_workflows(workflow_ids=[run_id])
        except SQLAlchemyError as exc:
            raise _unavailable("read the run", exc) from None
        if not found:
            raise UserError(f"no durable run {run_id!r}")
        workflow = found[0]
        result = workflow.output if workflow.status == "SUCCESS" else None
        redacted, unchecked = _stored_input_notes(workflow.input)
        return RunStatus(
            run_id,
            str(workflow.status),
            workflow.queue_name,
            workflow.executor_id,
            result if isinstance(result, dict) else None,
            redacted,
            unchecked,
        )

    def notify_decision(self, *, run_id: str, request_id: str, verdict: str, by: str,
                        reason: str) -> bool:  # fmt: skip
        """Tell a durable run waiting on ``request_id`` what was decided; False if no
        durable run with that id exists (an in-process run that stopped at the approval)."""
        message = {"verdict": verdict, "by": by, "reason": reason}
        return self._send(run_id, approval_topic(request_id), message)

    def stop_parked_runs(
        self, approvals: ApprovalStore, *, scope: str, reason: str, by: str
    ) -> list[str]:
        """Stop the runs parked for approval in ``scope``, which was just killed.

        Each pending request in the scope is withdrawn (terminated, audited, by ``by``), and
        its durable run is woken to stop now, discarding its outbox, rather than when a
        decision or its timeout would have woken it.

        Returns:
            The ids of the runs woken.
        """
        woken = []
        for request in approvals.list(status="pending", limit=_EVERY_PENDING):
            if scope not in ("all", f"charter:{request.charter_name}",
                             f"tenant:{request.tenant}"):  # fmt: skip
                continue
            if approvals.withdraw(request.id, by=by, reason=f"kill switch on {scope}: {reason}"):
                message = {"verdict": KILL_VERDICT, "by": by, "reason": reason, "scope": scope}
                if self._send(request.run_id, approval_topic(request.id), message):
                    woken.append(request.run_id)
        return woken

    def _send(self, run_id: str, topic: str, message: dict[str, str]) -> bool:
        client = self._open()
        if client is None:
            return False
        try:
            found = client.list_workflows(
                workflow_ids=[run_id], load_input=False, load_output=False
            )
            if not found:
                return False
            client.send(run_id, message, topic=topic)
            return True
        except SQLAlchemyError as exc:
            raise _unavailable("deliver the message", exc) from None

    def _open(self, *, create: bool = False) -> DBOSClient | None:
        """The client; None when DBOS's tables do not exist and ``create`` is False."""
        if self._client is None:
            if create:
                migrate_dbos(self._settings)  # a client never creates DBOS's tables itself
            elif not dbos_tables_exist(self._settings):
                return None
            try:
                self._client = self._stack.enter_context(dbos_client(self._settings))
            except SQLAlchemyError as exc:
                raise _unavailable("open DBOS's records", exc) from None
        return self._client


def enqueue_run(settings: Settings, charter: Charter, spec: RunSpec, run_id: str) -> RunStatus:
    """``DurableControl.enqueue`` with a client of its own."""
    with DurableControl(settings) as control:
        return control.enqueue(charter, spec, run_id)


def run_status(settings: Settings, run_id: str) -> RunStatus:
    """``DurableControl.status`` with a client of its own."""
    with DurableControl(settings) as control:
        return control.status(run_id)


def notify_decision(settings: Settings, *, run_id: str, request_id: str, verdict: str,
                    by: str, reason: str) -> bool:  # fmt: skip
    """``DurableControl.notify_decision`` with a client of its own."""
    with DurableControl(settings) as control:
        return control.notify_decision(run_id=run_id, request_id=request_id, verdict=verdict,
                                       by=by, reason=reason)  # fmt: skip


def stop_parked_runs(
    settings: Settings, approvals: ApprovalStore, *, scope: str, reason: str, by: str
) -> list[str]:
    """``DurableControl.stop_parked_runs`` with a client of its own."""
    with DurableControl(settings) as control:
        return control.stop_parked_runs(approvals, scope=scope, reason=reason, by=by)


def _stored_input_notes(stored: object) -> tuple[bool, tuple[str, ...]]:
    """``(input_redacted, unchecked_credentials)`` from a run's stored workflow input; as
    nothing was noted for a run queued before these were (or an input that is not a spec)."""
    args = stored.get("args") if isinstance(stored, dict) else None
    spec = args[0] if isinstance(args, list | tuple) and args else None
    if not isinstance(spec, dict):
        return False, ()
    unchecked = spec.get("unchecked_credentials")
    names = tuple(n for n in unchecked if isinstance(n, str)) if isinstance(unchecked, list) else ()
    return spec.get("input_redacted") is True, names


def _unavailable(doing: str, exc: SQLAlchemyError) -> DatabaseUnavailable:
    return DatabaseUnavailable(f"cannot {doing}: the database failed ({type(exc).__name__})")
