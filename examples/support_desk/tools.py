"""The support agent's toolkit: typed functions over the ``SupportDesk`` resource.

Tools only do the work; whether a call may happen (allowlist, constraints, approvals, taint)
is the charter's business, so none of them second-guesses its caller. ``delete_record`` is a
real implementation on purpose: the demo must show the policy refusing it, not a stub.
``read_inbox`` and ``send_email`` are async, like the network calls they stand for, to show
that sync and async tools are governed alike.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from charter.contract.tool import ToolContext, ToolSpec, tool

from .desk import SupportDesk
from .effects import EffectsLedger

__all__ = [
    "EFFECTS_DB_ENV",
    "TOOLKIT",
    "delete_record",
    "get_ticket",
    "issue_refund",
    "list_customers",
    "lookup_customer",
    "make_resources",
    "read_inbox",
    "reopen_ticket",
    "send_email",
    "update_crm",
    "update_ticket",
]

EFFECTS_DB_ENV = "SUPPORT_DESK_EFFECTS_DB"

_SUBJECTS = {
    "refund_confirmation": "Your refund for {ticket_id}",
    "ticket_update": "An update on your ticket {ticket_id}",
    "customer_list": "Customer list",
}


def _ticket_view(desk: SupportDesk, ticket_id: str) -> dict[str, Any]:
    return asdict(desk.ticket(ticket_id))


@tool
def get_ticket(ticket_id: str, *, ctx: ToolContext) -> dict[str, Any]:
    """Fetch a support ticket: customer, subject, body, status, queue and notes.

    Args:
        ticket_id: the ticket's id, like T-1001.
    """
    return _ticket_view(ctx.resource(SupportDesk), ticket_id)


@tool
async def read_inbox(ticket_id: str, *, ctx: ToolContext) -> list[dict[str, str]]:
    """Read the emails the customer sent about a ticket, oldest first.

    Args:
        ticket_id: the ticket's id, like T-1001.
    """
    return [mail.as_dict() for mail in ctx.resource(SupportDesk).inbox_for(ticket_id)]


@tool
def lookup_customer(customer_id: str, *, ctx: ToolContext) -> dict[str, Any]:
    """Fetch a customer's CRM record: name, email, plan, refund account and notes.

    Args:
        customer_id: the customer's id, like C-01.
    """
    return asdict(ctx.resource(SupportDesk).customer(customer_id))


@tool
def list_customers(*, ctx: ToolContext) -> list[dict[str, str]]:
    """List every customer with their email address and plan (sensitive: the customer list)."""
    return [
        {"id": c.id, "name": c.name, "email": c.email, "plan": c.plan}
        for c in ctx.resource(SupportDesk).customers.values()
    ]


@tool
def update_ticket(
    ticket_id: str,
    status: Literal["open", "pending", "closed", "escalated"] | None = None,
    queue: Literal["billing", "technical", "general"] | None = None,
    note: str | None = None,
    *,
    ctx: ToolContext,
) -> dict[str, Any]:
    """Change a ticket's status or queue and/or add an internal note.

    Args:
        ticket_id: the ticket's id, like T-1001.
        status: the new status; leave out to keep the current one.
        queue: the team queue to route the ticket to; leave out to keep the current one.
        note: an internal note to append, never shown to the customer.
    """
    desk = ctx.resource(SupportDesk)
    desk.update_ticket(ticket_id, status=status, queue=queue, note=note)
    return _ticket_view(desk, ticket_id)


@tool
def reopen_ticket(ticket_id: str, *, ctx: ToolContext) -> dict[str, Any]:
    """Set a ticket back to open (undoes update_ticket when a run fails halfway).

    Args:
        ticket_id: the ticket's id, like T-1001.
    """
    desk = ctx.resource(SupportDesk)
    desk.update_ticket(ticket_id, status="open")
    return _ticket_view(desk, ticket_id)


@tool
def update_crm(
    customer_id: str, field: Literal["plan", "notes"], value: str, *, ctx: ToolContext
) -> dict[str, Any]:
    """Change one field of a customer's CRM record.

    Args:
        customer_id: the customer's id, like C-01.
        field: which field to change.
        value: the field's new value.
    """
    return asdict(ctx.resource(SupportDesk).update_customer(customer_id, field, value))


@tool
def issue_refund(
    ticket_id: str, amount_usd: Decimal, account: str, *, ctx: ToolContext
) -> dict[str, str]:
    """Refund money to a customer's account. Irreversible: money leaves the company.

    Args:
        ticket_id: the ticket the refund settles, like T-1001.
        amount_usd: the amount in US dollars, like 45.00.
        account: the account to pay into; use the refund account on the customer's record.
    """
    # A real payments API would authenticate with the credential; the desk only records which
    # credential authorized the payout, never its value, so nothing secret reaches the model.
    if ctx.credential is None or not ctx.credential.reveal():
        raise PermissionError(
            "issue_refund needs the payments credential; name it in the charter "
            "(credential: payments-refund) and make it resolvable"
        )
    refund = ctx.resource(SupportDesk).issue_refund(
        ticket_id,
        amount_usd,
        account,
        idempotency_key=ctx.idempotency_key,
        authorized_by=ctx.credential.name,
    )
    return {
        "refund_id": refund.refund_id,
        "ticket_id": refund.ticket_id,
        "amount_usd": str(refund.amount_usd),
        "account": refund.account,
        "status": "issued",
    }


@tool
async def send_email(
    to: str,
    template: Literal["refund_confirmation", "ticket_update", "customer_list"],
    ticket_id: str,
    body: str = "",
    *,
    ctx: ToolContext,
) -> dict[str, str]:
    """Send an email from a template. Irreversible: it cannot be unsent.

    Args:
        to: the recipient's email address.
        template: which template to send.
        ticket_id: the ticket the email is about, like T-1001.
        body: text to put in the template's body.
    """
    sent = ctx.resource(SupportDesk).send_email(
        to=to,
        template=template,
        subject=_SUBJECTS[template].format(ticket_id=ticket_id),
        body=body,
        ticket_id=ticket_id,
        key=ctx.idempotency_key,
    )
    return {"message_id": sent.message_id, "to": sent.to, "status": "sent"}


@tool
def delete_record(
    kind: Literal["ticket", "customer"], record_id: str, *, ctx: ToolContext
) -> dict[str, str]:
    """Permanently delete a ticket or a customer record.

    Args:
        kind: what to delete.
        record_id: the ticket id (T-1001) or customer id (C-01).
    """
    ctx.resource(SupportDesk).delete(kind, record_id)
    return {"deleted": f"{kind} {record_id}"}


TOOLKIT: tuple[ToolSpec, ...] = (
    get_ticket,
    read_inbox,
    lookup_customer,
    list_customers,
    update_ticket,
    reopen_ticket,
    update_crm,
    issue_refund,
    send_email,
    delete_record,
)


def make_resources() -> tuple[object, ...]:
    """A fresh desk for every run started by ``charter run`` (see ``Runtime.toolkit_resources``).

    If the environment variable ``SUPPORT_DESK_EFFECTS_DB`` names a file, the desk delivers
    its refunds and emails through an ``EffectsLedger`` on it (created if missing): a durable
    record, shared by every process, of the effects that really happened, so a crash test can
    count them after killing workers. Unset or empty, the desk is in memory only.
    """
    desk = SupportDesk.default()
    if path := os.environ.get(EFFECTS_DB_ENV):
        desk.ledger = EffectsLedger(Path(path))
    return (desk,)
