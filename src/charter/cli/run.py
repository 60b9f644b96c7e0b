"""``charter run``: one governed agent run from the command line."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from charter.cli.output import EXIT_FAILED, JsonOption, check_text, emit_json, fail
from charter.cli.render import print_run
from charter.contract.loader import Charter
from charter.core.errors import CharterInvalid, UserError
from charter.core.settings import Settings
from charter.identity.principal import ENVIRONMENTS, Principal
from charter.runtime import Runtime


def run(
    charter_file: Annotated[Path, typer.Argument(metavar="CHARTER", help="The charter YAML file.")],
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
    as_json: JsonOption = False,
) -> None:
    """Run the charter's agent on one request, every tool call governed and audited.

    Example: charter run examples/support_desk/charter.yaml -i "Please handle ticket T-1001."
    --user alice --tenant acme --role support

    Exit codes: 0 the run succeeded; 1 it ended otherwise (denied, awaiting approval,
    escalated, over budget, failed, killed); 2 bad input or configuration.
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
    try:
        charter = Charter.load(charter_file)
    except CharterInvalid as exc:
        fail(f"{exc}\nrun 'charter validate {charter_file}' for details", as_json=as_json)
    try:
        with Runtime(Settings.from_env()) as runtime:
            model = runtime.build_model(charter)
            result = asyncio.run(
                runtime.run_agent(
                    charter,
                    model,
                    user_input,
                    principal=principal,
                    environment=environment,  # type: ignore[arg-type]
                    resources=runtime.toolkit_resources(charter),
                )
            )
    except UserError as exc:
        fail(str(exc), as_json=as_json)
    if as_json:
        emit_json(result.as_dict())
    else:
        print_run(result)
    if result.outcome != "succeeded":
        raise typer.Exit(EXIT_FAILED)
