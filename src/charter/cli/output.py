"""Shared CLI plumbing: JSON or human output, exit codes, and error reporting.

Exit codes, the same for every command:
    0  success (the charter is valid, the chain is intact, the run succeeded)
    1  the thing checked is not OK (problems found, chain broken, run not succeeded)
    2  the command could not do its job (bad usage, unreadable input, misconfiguration)
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "JsonOption",
    "console",
    "emit_json",
    "fail",
    "left_out",
    "stderr",
    "tell_left_out",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

JsonOption = Annotated[
    bool,
    typer.Option("--json", help="Machine-readable output on stdout.", envvar="CHARTER_JSON"),
]

console = Console(highlight=False)
stderr = Console(stderr=True, highlight=False)


def emit_json(value: Any) -> None:
    """One JSON document on stdout, for scripts."""
    sys.stdout.write(json.dumps(value, indent=2, default=str, ensure_ascii=False) + "\n")


def fail(message: str, *, code: int = EXIT_USAGE, as_json: bool = False) -> NoReturn:
    """Report an error (on stderr, or as JSON on stdout with --json) and exit."""
    if as_json:
        emit_json({"ok": False, "error": message})
    else:
        stderr.print(f"[bold red]error:[/] {message}", markup=True, soft_wrap=True)
    raise typer.Exit(code)


def check_text(value: str, what: str, *, as_json: bool = False) -> str:
    """Refuse text that is not valid UTF-8 (the shell hands undecodable bytes as surrogates)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        fail(f"{what} is not valid UTF-8; pass text in UTF-8", as_json=as_json)
    return value


def tell_left_out(shown: int, total: int, what: str, *, most: int | None = None) -> None:
    """Say on stderr how many of ``total`` older ``what`` a listing cut at ``-n`` left out,
    and how to see them; nothing when it showed them all.

    On stderr, so stdout stays the listing (one line per row, for grep and pipes). ``most`` is
    the largest ``-n`` the command takes: past it, narrowing the filters is the way.
    """
    if total <= shown:  # all shown (or rows were added between the count and the read)
        return
    if most is None or total <= most:
        how = f"use -n {total} to list them all"
    else:
        how = f"-n lists at most {most}: narrow the filters to see the rest"
    stderr.print(
        f"{total - shown} older {what} not shown (the latest {shown} of {total}); {how}",
        markup=False,
        soft_wrap=True,
    )


def left_out(shown: int, total: int) -> dict[str, Any]:
    """A listing's ``total`` (rows matching its filters) and whether ``-n`` cut it
    (``truncated``), for its ``--json`` document."""
    return {"total": max(total, shown), "truncated": total > shown}
