"""``charter validate``: check a charter file and every file it references."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from charter.cli.output import EXIT_FAILED, JsonOption, console, emit_json, fail, stderr
from charter.contract.files import FileRefused, read_file
from charter.contract.loader import Charter
from charter.core.errors import CharterInvalid


def validate(
    file: Annotated[Path, typer.Argument(help="The charter YAML file.", show_default=False)],
    show_cedar: Annotated[
        bool,
        typer.Option(
            "--show-cedar",
            help="Print the Cedar policies the charter compiles to.",
            envvar="CHARTER_SHOW_CEDAR",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Validate a charter: schema, tool bindings, conditions, Cedar rules, referenced files.

    Problems are listed as FILE:LINE: what is wrong; how to fix it.

    Example: charter validate examples/support_desk/charter.yaml --show-cedar

    Exit codes: 0 valid; 1 the charter has problems; 2 the file cannot be read.
    """
    # Read the way the loader reads (never blocking on a FIFO, never following /dev/zero),
    # so that what cannot be read at all exits 2 and the rest are problems (exit 1).
    refused = read_file(file)
    if isinstance(refused, FileRefused) and refused.kind in ("missing", "not_regular", "bad_name"):
        fail(f"{str(file)!r} is not a file; give the path of a charter YAML file", as_json=as_json)
    if isinstance(refused, FileRefused) and refused.kind == "unreadable":
        reason = refused.message.partition(": ")[2]
        fail(f"{str(file)!r} is not readable ({reason}); check its permissions", as_json=as_json)
    try:
        charter = Charter.load(file)
    except CharterInvalid as exc:
        if as_json:
            emit_json(
                {
                    "ok": False,
                    "file": str(file),
                    "problems": [
                        {"file": p.file, "line": p.line, "message": p.message, "hint": p.hint}
                        for p in exc.problems
                    ],
                }
            )
        else:
            for problem in exc.problems:
                stderr.print(str(problem), markup=False, soft_wrap=True)
            count = len(exc.problems)
            stderr.print(
                f"{count} problem{'s' if count != 1 else ''} in {file}",
                markup=False,
                soft_wrap=True,
            )
        raise typer.Exit(EXIT_FAILED) from None
    if as_json:
        emit_json(
            {
                "ok": True,
                "file": str(file),
                "charter": charter.name,
                "content_sha256": charter.content_sha256,
                "tools": sorted(charter.tools),
                "rules": sorted(charter.rules),
                **({"cedar": charter.cedar_text} if show_cedar else {}),
            }
        )
        return
    console.print(
        f"[green]ok[/] {file}: charter {charter.name!r}, {len(charter.tools)} tools, "
        f"{len(charter.rules)} rules, sha256 {charter.content_sha256[:16]}",
        soft_wrap=True,
    )
    if show_cedar:
        # soft_wrap: never break a line, or a string literal in a policy would change.
        console.print(charter.cedar_text, markup=False, soft_wrap=True)
