"""``charter approvals``: work the approvals inbox (list, show, approve, reject, ...).

Requests live in Charter's database (``CHARTER_DATABASE_URL``; default a SQLite file under
``CHARTER_HOME``). Deciding needs a name (``--as`` or ``CHARTER_OPERATOR``) that holds the
``approver`` role in the request's tenant and is not the user the run acts for; names are
compared in canonical form (``Alice`` is ``alice``). ``list`` and ``show`` mark a request
that repeats an effect already approved (same tenant, tool and arguments): approving it
again pays twice.

Exit codes: 0 done (an empty list included); 2 the decision was refused or the input is bad,
with the reason on stderr (or as ``{"ok": false, "error": ...}`` with ``--json``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Annotated

import typer

from charter.cli.output import (
    JsonOption,
    check_text,
    console,
    emit_json,
    fail,
    left_out,
    tell_left_out,
)
from charter.cli.state import open_state
from charter.core.canonical import canonical_json, sha256_hex
from charter.core.clock import SystemClock
from charter.core.errors import UserError
from charter.core.settings import Settings
from charter.durable import notify_decision
from charter.execution.approval_store import (
    STATUSES,
    ApprovalRecord,
    ApprovalStore,
    DecisionVerdict,
    EarlierApproval,
)
from charter.identity.roles import RoleGrants

__all__ = ["app"]

app = typer.Typer(
    help="The approvals inbox: calls waiting for a human, bound to their exact arguments.",
    no_args_is_help=True,
)

_MOST = 10_000  # the largest -n

IdArgument = Annotated[str, typer.Argument(help="The request id (apr_...).", show_default=False)]
ReasonOption = Annotated[
    str, typer.Option("--reason", help="Why; required for all but approve.", show_default=False)
]
AsOption = Annotated[
    str | None,
    typer.Option(
        "--as",
        help="Who decides (must hold the approver role in the request's tenant).",
        envvar="CHARTER_OPERATOR",
        show_default=False,
    ),
]


@contextmanager
def _store(as_json: bool, *, read_only: bool = False) -> Iterator[ApprovalStore]:
    """The approvals inbox on the configured database; decisions land in the audit log.
    ``read_only`` for the commands that only look: they work on a read-only copy too."""
    clock = SystemClock()
    with open_state(as_json, must_exist=read_only, read_only=read_only) as state:
        try:
            store = ApprovalStore(state.database, clock, state.bus,
                                  RoleGrants(state.database, clock))  # fmt: skip
        except UserError as exc:  # unreachable or out of date: the message says what to do
            fail(str(exc), as_json=as_json)
        yield store


@app.command("list")
def list_command(
    tenant: Annotated[
        str | None, typer.Option(help="Only this tenant's requests.", envvar="CHARTER_TENANT")
    ] = None,
    status: Annotated[
        str | None,
        typer.Option(help=f"Only requests in this status: {', '.join(STATUSES)}."),
    ] = None,
    limit: Annotated[
        int, typer.Option("-n", "--limit", min=1, max=_MOST, help="How many, newest first.")
    ] = 50,
    as_json: JsonOption = False,
) -> None:
    """List approval requests, newest first (a pending one past its expiry shows expired).

    A request repeating an effect already approved says so at the end of its line
    ("repeat of apr_... approved by ... at ..."; "repeat_of" in JSON).

    Exit codes: 0 listed (even none); 2 bad filter or no database.
    """
    with _store(as_json, read_only=True) as store:
        try:
            records = store.list(tenant=tenant, status=status, limit=limit)
            # Counted only when the listing is full: then it may have been cut.
            total = store.count(tenant=tenant, status=status) if len(records) == limit else 0
            repeats = store.earlier_approvals(records)
        except UserError as exc:
            fail(str(exc), as_json=as_json)
    if as_json:
        emit_json({
            "ok": True,
            "requests": [_with_repeat(record, repeats.get(record.id)) for record in records],
            **left_out(len(records), total),
        })  # fmt: skip
        return
    if not records:
        console.print("no approval requests" + _filters(tenant, status), markup=False)
        return
    now = SystemClock().now()
    rows = [
        (
            r.id,
            _age(now - r.requested_at),
            r.tenant,
            r.requested_by,
            r.tool,
            r.arguments_sha256[:12],
            r.status,
        )
        for r in records
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    # One line per request, the reason (and what it repeats) last and never cut: an operator
    # greps this.
    for row, record in zip(rows, records, strict=True):
        cells = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        earlier = repeats.get(record.id)
        repeat = f"  [{earlier.describe()}]" if earlier else ""
        console.print(f"{cells}  {record.reason}{repeat}", markup=False, soft_wrap=True)
    tell_left_out(len(records), total, "approval requests", most=_MOST)


@app.command()
def show(id: IdArgument, as_json: JsonOption = False) -> None:
    """Show every field of one request, with its canonical arguments and their SHA-256, and
    the earlier approval of the same effect it repeats, if any (repeat_of).

    Exit codes: 0 shown; 2 no such request or no database.
    """
    with _store(as_json, read_only=True) as store:
        try:
            record = store.get(id)
            earlier = store.earlier_approvals([record]).get(record.id)
        except UserError as exc:
            fail(str(exc), as_json=as_json)
    if as_json:
        emit_json(_with_repeat(record, earlier))
        return
    _print_record(record, earlier)


@app.command()
def approve(
    id: IdArgument, reason: ReasonOption = "", by: AsOption = None, as_json: JsonOption = False
) -> None:
    """Approve one request: the run may make exactly that call, once.

    Exit codes: 0 approved; 2 refused (already decided, expired, your own run's request, not
    an approver) or bad input.
    """
    _decide(id, "approve", by, reason, as_json)


@app.command()
def reject(
    id: IdArgument, reason: ReasonOption = "", by: AsOption = None, as_json: JsonOption = False
) -> None:
    """Reject one request (a reason is required).

    Exit codes: 0 rejected; 2 refused or bad input.
    """
    _decide(id, "reject", by, reason, as_json)


@app.command()
def terminate(
    id: IdArgument, reason: ReasonOption = "", by: AsOption = None, as_json: JsonOption = False
) -> None:
    """Refuse one request and end its run as denied (a reason is required).

    Exit codes: 0 terminated; 2 refused or bad input.
    """
    _decide(id, "terminate", by, reason, as_json)


@app.command()
def escalate(
    id: IdArgument, reason: ReasonOption = "", by: AsOption = None, as_json: JsonOption = False
) -> None:
    """Refuse to decide here: the run ends as escalated to a human (a reason is required).

    Exit codes: 0 escalated; 2 refused or bad input.
    """
    _decide(id, "escalate", by, reason, as_json)


def _decide(id: str, verdict: DecisionVerdict, by: str | None, reason: str, as_json: bool) -> None:
    if not by or not by.strip():
        fail(
            f"who decides {id!r}? pass --as USER or set CHARTER_OPERATOR",
            as_json=as_json,
        )
    check_text(reason, "--reason", as_json=as_json)
    with _store(as_json) as store:
        try:
            record = store.decide(id, verdict, by=by, reason=reason)
        except UserError as exc:
            fail(str(exc), as_json=as_json)
    # The decider as recorded: the canonical form of the name given.
    by = record.decided_by or by
    # A durable run parked on this request resumes now, in whichever process hosts it.
    resumed = notify_decision(Settings.from_env(), run_id=record.run_id, request_id=record.id,
                              verdict=verdict, by=by, reason=reason)  # fmt: skip
    if as_json:
        emit_json({"ok": True, "approval": record.as_dict(), "run_resumed": resumed})
        return
    console.print(
        f"{record.status} {record.id} ({record.tool} in run {record.run_id}, tenant "
        f"{record.tenant}) by {by}"
        + (f": {reason}" if reason else "")
        + ("; the run resumes" if resumed else "; the run is not durable, nothing resumes it"),
        markup=False,
        soft_wrap=True,
    )


def _with_repeat(record: ApprovalRecord, earlier: EarlierApproval | None) -> dict[str, object]:
    return {**record.as_dict(), "repeat_of": earlier.as_dict() if earlier else None}


def _print_record(record: ApprovalRecord, earlier: EarlierApproval | None) -> None:
    canonical = canonical_json(record.arguments)
    fields: dict[str, object] = record.as_dict()
    fields["arguments"] = canonical
    fields["repeat_of"] = earlier.describe() if earlier else None
    width = max(len(name) for name in fields)
    for name, value in fields.items():
        shown = "-" if value is None else str(value)
        console.print(f"{name.ljust(width)}  {shown}", markup=False, soft_wrap=True)
    if sha256_hex(canonical) != record.arguments_sha256:
        # Secrets are redacted before a request is stored; the hash binds the call as made.
        console.print(
            f"{''.ljust(width)}  (arguments shown with secrets redacted; the sha256 is of the "
            "call as made)",
            markup=False,
            soft_wrap=True,
        )


def _age(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _filters(tenant: str | None, status: str | None) -> str:
    parts = [f"tenant {tenant!r}" if tenant else "", f"status {status!r}" if status else ""]
    shown = " and ".join(p for p in parts if p)
    return f" with {shown}" if shown else ""
