"""``charter run``: one governed agent run from the command line."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from charter.cli.output import (
    EXIT_FAILED,
    JsonOption,
    check_text,
    console,
    emit_json,
    fail,
    stderr,
)
from charter.cli.render import print_run
from charter.contract.loader import Charter
from charter.core.errors import CharterInvalid, UserError
from charter.core.ids import new_id
from charter.core.settings import Settings
from charter.durable import DurableEngine, RunSpec, enqueue_run
from charter.identity.principal import ENVIRONMENTS, Principal
from charter.identity.secrets import REDACTED
from charter.runtime import Runtime

# A charter name (contract/schema.py); a path that does not exist but reads as one is a name.
_CHARTER_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


def run(
    charter_file: Annotated[
        Path,
        typer.Argument(
            metavar="CHARTER",
            help="The charter YAML file, or a charter's name: then the release its deployment "
            "in the environment routes this user to serves the run.",
        ),
    ],
    user_input: Annotated[
        str, typer.Option("--input", "-i", help="The user's request.", envvar="CHARTER_INPUT")
    ],
    user: Annotated[str, typer.Option(help="Who the run acts for.", envvar="CHARTER_USER")],
    tenant: Annotated[str, typer.Option(help="The user's organisation.", envvar="CHARTER_TENANT")],
    role: Annotated[
        list[str] | None,
        typer.Option(
            "--role",
            help="A role of the user (repeat for several).",
            envvar="CHARTER_ROLES",
        ),
    ] = None,
    environment: Annotated[
        str | None, typer.Option(help="dev, staging or prod.", envvar="CHARTER_ENVIRONMENT")
    ] = None,
    durable: Annotated[
        bool,
        typer.Option(
            "--durable",
            help="Run as a durable workflow: it survives a crash of this process, and waits "
            "for approvals (decide from another shell with 'charter approvals approve').",
            envvar="CHARTER_DURABLE",
        ),
    ] = False,
    detach: Annotated[
        bool,
        typer.Option(
            "--detach",
            help="Queue the run for 'charter worker' processes and return at once, printing "
            "its id (implies --durable). Follow it with 'charter runs show ID'.",
            envvar="CHARTER_DETACH",
        ),
    ] = False,
    worker_id: Annotated[
        str | None,
        typer.Option(
            help="With --durable: this process's executor id. If the process dies, "
            "'charter worker --id ID' recovers the run. Default: a new id, printed.",
            envvar="CHARTER_WORKER_ID",
        ),
    ] = None,
    approval_timeout: Annotated[
        float,
        typer.Option(
            help="With --durable: seconds to wait for a decision before it counts as expired.",
            envvar="CHARTER_APPROVAL_TIMEOUT",
            min=1,
        ),
    ] = 86_400.0,
    as_json: JsonOption = False,
) -> None:
    """Run the charter's agent on one request, every tool call governed and audited.

    Example: charter run examples/support_desk/charter.yaml -i "Please handle ticket T-1001."
    --user alice --tenant acme --role support

    Durable runs (--durable, --detach) go through the charter's run queue, so its
    concurrency limits hold however they were started.

    Exit codes: 0 the run succeeded (or, with --detach, was queued); 1 it ended otherwise
    (denied, awaiting approval, escalated, over budget, failed, killed); 2 bad input or
    configuration.
    """
    check_text(user_input, "--input", as_json=as_json)
    if environment is not None and environment not in ENVIRONMENTS:
        fail(
            f"--environment {environment!r} must be one of {', '.join(ENVIRONMENTS)}",
            as_json=as_json,
        )
    try:
        principal = Principal(user=user, tenant=tenant, roles=tuple(role or ()))
    except ValueError as exc:
        fail(str(exc), as_json=as_json)
    settings = Settings.from_env()
    served = None
    try:
        if not charter_file.exists() and _CHARTER_NAME.fullmatch(str(charter_file)):
            # A charter's name: the release its deployment routes this user to serves the run.
            with Runtime(settings) as runtime:
                charter, served = runtime.governance.serve(
                    str(charter_file),
                    environment or settings.environment,
                    principal.tenant,
                    principal.user,
                )
            assert charter.path is not None
            charter_file = charter.path
            if not as_json:
                stderr.print(f"served by {served.label} ({served.id[:12]})")
        else:
            charter = Charter.load(charter_file)
    except CharterInvalid as exc:
        fail(f"{exc}\nrun 'charter validate {charter_file}' for details", as_json=as_json)
    except UserError as exc:
        fail(str(exc), as_json=as_json)
    spec = RunSpec(
        charter_path=str(charter_file.resolve()),
        charter_sha256=charter.content_sha256,
        user=principal.user,
        tenant=principal.tenant,
        roles=principal.roles,
        environment=environment or settings.environment,
        input=user_input,
    )
    if detach:
        queue_detached(settings, charter, spec, as_json)
        return
    try:
        with Runtime(settings) as runtime:
            if durable:
                result = run_durably(runtime, spec, worker_id, approval_timeout, as_json)
            else:
                model = runtime.build_model(charter)
                outcome = asyncio.run(
                    runtime.run_agent(
                        charter,
                        model,
                        user_input,
                        principal=principal,
                        environment=environment,  # type: ignore[arg-type]
                        resources=runtime.toolkit_resources(charter),
                    )
                )
                result = outcome.as_dict()
                if served is not None:
                    result["release"] = served.as_dict()
    except UserError as exc:
        fail(str(exc), as_json=as_json)
    hint = _wait_hint(result)
    if as_json:
        emit_json({**result, "hint": hint} if hint else result)
    else:
        print_run(result)
        tell_failures(result)
        if hint:
            stderr.print(Text.assemble(("note:", "yellow"), f" {hint}"), soft_wrap=True)
    if result["outcome"] != "succeeded":
        raise typer.Exit(EXIT_FAILED)


def _wait_hint(result: dict[str, Any]) -> str:
    """How to run it so it can wait, for a run that stopped at an approval it could not wait
    for (in process: nothing was filed, so there is nothing to approve)."""
    if result["outcome"] != "approval_required" or result.get("approval"):
        return ""
    return (
        "an in-process run cannot wait for a human's decision, so no approval request was "
        "filed; to have the run wait for an approver, run it again with --durable (it waits "
        "in this process) or --detach (a 'charter worker' runs it and it waits there)"
    )


def tell_failures(result: dict[str, Any]) -> None:
    """On stderr, every tool call that went ahead but did not execute, and why: a
    configuration problem (which failed the run) as an error, a tool's own error as a warning
    (the model was told, and the run may still have succeeded)."""
    for call in result.get("tool_calls", []):
        failure, detail = call.get("failure"), call.get("detail", "")
        if failure == "configuration":
            line = Text.assemble(("error:", "bold red"), f" {call['tool']} could not run: "
                                 f"{detail}; fix it and run again")  # fmt: skip
        elif failure == "tool":
            line = Text.assemble(("warning:", "yellow"), f" {call['tool']} {call['outcome']}: "
                                 f"{detail}")  # fmt: skip
        else:
            continue
        stderr.print(line, soft_wrap=True)


def queue_detached(settings: Settings, charter: Charter, spec: RunSpec, as_json: bool) -> None:
    """Queue ``spec`` for the workers and say how to follow it."""
    try:
        with Runtime(settings):  # creates or checks Charter's own tables before any worker
            pass
        status = enqueue_run(settings, charter, spec, new_id("run"))
    except UserError as exc:
        fail(str(exc), as_json=as_json)
    if as_json:
        emit_json({"ok": True, **status.as_dict()})
        return
    console.print(f"queued {status.run_id} on {status.queue}", soft_wrap=True)
    console.print(
        f"a 'charter worker' runs it; follow with: charter runs show {status.run_id} --wait 60",
        soft_wrap=True,
    )
    if status.input_redacted:
        _note(
            "your input held a credential this charter uses; the queued run (its stored "
            f"input), the model, the audit log and traces see {REDACTED} in its place"
        )
    if status.unchecked_credentials:
        _note(
            f"credential(s) {', '.join(status.unchecked_credentials)} cannot be resolved "
            "here, so your input was stored without being checked for them; a worker that "
            "holds them redacts them before the model, the audit log and traces see them"
        )


def _note(text: str) -> None:
    stderr.print(Text.assemble(("note:", "yellow"), f" {text}"), soft_wrap=True)


def run_durably(
    runtime: Runtime, spec: RunSpec, worker_id: str | None, timeout: float, as_json: bool
) -> dict[str, Any]:
    """Run ``spec`` as a DBOS workflow in this process, telling the operator when it waits."""
    engine = DurableEngine(runtime, executor_id=worker_id, approval_timeout_seconds=timeout)
    run_id = new_id("run")
    if not as_json:
        stderr.print(
            f"durable run {run_id} on executor {engine.executor_id} (if this process dies: "
            f"charter worker --id {engine.executor_id})",
            soft_wrap=True,
        )
    engine.launch()
    try:
        return asyncio.run(_run_and_watch(engine, spec, run_id, as_json))
    finally:
        engine.destroy()


async def _run_and_watch(
    engine: DurableEngine, spec: RunSpec, run_id: str, as_json: bool
) -> dict[str, Any]:
    task = asyncio.create_task(engine.run(spec, run_id=run_id))
    told: set[str] = set()
    while not task.done():
        await asyncio.wait({task}, timeout=0.5)
        if as_json or task.done():
            continue
        for request in engine.runtime.approvals.list(tenant=spec.tenant, status="pending"):
            if request.run_id == run_id and request.id not in told:
                told.add(request.id)
                stderr.print(
                    f"waiting for approval {request.id} ({request.tool}: {request.reason}); "
                    f"decide with: charter approvals approve {request.id} --as APPROVER",
                    soft_wrap=True,
                )
    return task.result()
