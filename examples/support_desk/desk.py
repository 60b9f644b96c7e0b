"""The simulated systems a support agent works on: tickets, CRM, payments, email.

Everything is in memory and deterministic so demos, evals and benchmarks replay exactly.
``snapshot()`` / ``from_snapshot()`` let a test or an eval compare the world before and after
a run, and let a durable run restore the desk it started with.

Give the desk an ``EffectsLedger`` (``effects.py``) and refunds and emails also go through it:
a durable record, outside Charter and shared by processes, of the effects that really
happened. The ledger is not part of the snapshot.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any, Literal

from .effects import EffectsLedger

__all__ = [
    "Customer",
    "InboxEmail",
    "OutboxEmail",
    "Refund",
    "SupportDesk",
    "Ticket",
    "TicketStatus",
]

TicketStatus = Literal["open", "pending", "closed", "escalated"]
Queue = Literal["billing", "technical", "general"]
RecordKind = Literal["ticket", "customer"]


@dataclass
class Ticket:
    id: str
    customer_id: str
    subject: str
    body: str
    status: TicketStatus = "open"
    queue: Queue = "general"
    notes: list[str] = field(default_factory=list)


@dataclass
class Customer:
    """A CRM record. ``notes`` is free text anyone with CRM access may have written."""

    id: str
    name: str
    email: str
    plan: str
    account: str
    notes: str = ""


@dataclass
class Refund:
    refund_id: str
    ticket_id: str
    amount_usd: Decimal
    account: str
    idempotency_key: str
    authorized_by: str


@dataclass
class OutboxEmail:
    message_id: str
    to: str
    template: str
    subject: str
    body: str
    ticket_id: str
    idempotency_key: str


@dataclass
class InboxEmail:
    """A customer's email about a ticket: untrusted, it may carry injected instructions."""

    sender: str
    subject: str
    body: str

    def as_dict(self) -> dict[str, str]:
        return {"from": self.sender, "subject": self.subject, "body": self.body}


@dataclass
class SupportDesk:
    """The whole simulated world. Lookups of unknown ids raise ``KeyError``.

    With a ``ledger``, ``issue_refund`` and ``send_email`` deliver through it, so a key is paid
    or sent once across processes; the lists here still get one entry per key (with the
    ledger's id), so return values and snapshots look as they do without one.
    """

    tickets: dict[str, Ticket] = field(default_factory=dict)
    customers: dict[str, Customer] = field(default_factory=dict)
    refunds: list[Refund] = field(default_factory=list)
    outbox: list[OutboxEmail] = field(default_factory=list)
    inbox: dict[str, list[InboxEmail]] = field(default_factory=dict)
    # The outside world, not the desk's state: not compared, not in the snapshot.
    ledger: EffectsLedger | None = field(default=None, compare=False, repr=False)

    @classmethod
    def default(cls) -> SupportDesk:
        """The fixture the demo, the eval suites and the benchmarks run on."""
        from .fixture import default_desk  # the fixture is data; kept out of this module

        return default_desk()

    # -- reads ---------------------------------------------------------------------------

    def ticket(self, ticket_id: str) -> Ticket:
        try:
            return self.tickets[ticket_id]
        except KeyError:
            raise KeyError(
                f"no ticket {ticket_id!r}; ticket ids look like 'T-1001' "
                f"(known: {', '.join(sorted(self.tickets)) or 'none'})"
            ) from None

    def customer(self, customer_id: str) -> Customer:
        try:
            return self.customers[customer_id]
        except KeyError:
            raise KeyError(
                f"no customer {customer_id!r}; customer ids look like 'C-01' "
                f"(known: {', '.join(sorted(self.customers)) or 'none'})"
            ) from None

    def inbox_for(self, ticket_id: str) -> list[InboxEmail]:
        self.ticket(ticket_id)  # an unknown ticket is an error, not an empty inbox
        return list(self.inbox.get(ticket_id, []))

    # -- writes --------------------------------------------------------------------------

    def update_ticket(
        self,
        ticket_id: str,
        *,
        status: TicketStatus | None = None,
        queue: Queue | None = None,
        note: str | None = None,
    ) -> Ticket:
        if status is None and queue is None and note is None:
            raise ValueError(f"nothing to update on {ticket_id!r}: give status, queue or note")
        ticket = self.ticket(ticket_id)
        if status is not None:
            ticket.status = status
        if queue is not None:
            ticket.queue = queue
        if note:
            ticket.notes.append(note)
        return ticket

    def update_customer(
        self, customer_id: str, field_name: Literal["plan", "notes"], value: str
    ) -> Customer:
        customer = self.customer(customer_id)
        setattr(customer, field_name, value)
        return customer

    def issue_refund(
        self,
        ticket_id: str,
        amount_usd: Decimal,
        account: str,
        *,
        idempotency_key: str,
        authorized_by: str,
    ) -> Refund:
        """Pay out once per idempotency key: a retried call gets the first refund back."""
        for refund in self.refunds:
            if refund.idempotency_key == idempotency_key:
                if self.ledger is not None:  # the provider still sees (and counts) the retry
                    self.ledger.deliver("refund", idempotency_key, _refund_payload(refund))
                return refund
        self.ticket(ticket_id)
        if amount_usd <= 0:
            raise ValueError(f"refund amount must be positive, got {amount_usd!r}")
        refund = Refund(
            refund_id=f"R-{len(self.refunds) + 1:04d}",
            ticket_id=ticket_id,
            amount_usd=amount_usd,
            account=account,
            idempotency_key=idempotency_key,
            authorized_by=authorized_by,
        )
        if self.ledger is not None:
            refund.refund_id, _ = self.ledger.deliver(
                "refund", idempotency_key, _refund_payload(refund)
            )
        self.refunds.append(refund)
        return refund

    def send_email(
        self, *, to: str, template: str, subject: str, body: str, ticket_id: str, key: str
    ) -> OutboxEmail:
        """Queue an email once per idempotency key, like a provider that dedupes sends."""
        for sent in self.outbox:
            if sent.idempotency_key == key:
                if self.ledger is not None:  # the provider still sees (and counts) the retry
                    self.ledger.deliver("email", key, _email_payload(sent))
                return sent
        self.ticket(ticket_id)
        email = OutboxEmail(
            message_id=f"M-{len(self.outbox) + 1:04d}",
            to=to,
            template=template,
            subject=subject,
            body=body,
            ticket_id=ticket_id,
            idempotency_key=key,
        )
        if self.ledger is not None:
            email.message_id, _ = self.ledger.deliver("email", key, _email_payload(email))
        self.outbox.append(email)
        return email

    def delete(self, kind: RecordKind, record_id: str) -> None:
        if kind == "ticket":
            self.ticket(record_id)
            del self.tickets[record_id]
            self.inbox.pop(record_id, None)
        else:
            self.customer(record_id)
            del self.customers[record_id]

    # -- state ---------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """A JSON-able deep copy of the whole state; amounts are strings to stay exact."""
        return {
            "tickets": [asdict(t) for t in self.tickets.values()],
            "customers": [asdict(c) for c in self.customers.values()],
            "refunds": [{**asdict(r), "amount_usd": str(r.amount_usd)} for r in self.refunds],
            "outbox": [asdict(e) for e in self.outbox],
            "inbox": {tid: [e.as_dict() for e in mails] for tid, mails in self.inbox.items()},
        }

    @classmethod
    def from_snapshot(
        cls, data: dict[str, Any], *, ledger: EffectsLedger | None = None
    ) -> SupportDesk:
        """Rebuild a desk from ``snapshot()`` output (the input is not mutated or shared).

        The ledger is not in the snapshot: pass the one the rebuilt desk should deliver to.
        """
        data = copy.deepcopy(data)
        return cls(
            tickets={t["id"]: Ticket(**t) for t in data["tickets"]},
            customers={c["id"]: Customer(**c) for c in data["customers"]},
            refunds=[
                Refund(**{**r, "amount_usd": Decimal(r["amount_usd"])}) for r in data["refunds"]
            ],
            outbox=[OutboxEmail(**e) for e in data["outbox"]],
            inbox={
                tid: [InboxEmail(m["from"], m["subject"], m["body"]) for m in mails]
                for tid, mails in data["inbox"].items()
            },
            ledger=ledger,
        )


def _refund_payload(refund: Refund) -> dict[str, Any]:
    """What the payment provider is told (the id is its to give)."""
    return {
        "ticket_id": refund.ticket_id,
        "amount_usd": str(refund.amount_usd),
        "account": refund.account,
        "authorized_by": refund.authorized_by,
    }


def _email_payload(email: OutboxEmail) -> dict[str, Any]:
    """What the email provider is told (the id is its to give)."""
    return {
        "to": email.to,
        "template": email.template,
        "subject": email.subject,
        "body": email.body,
        "ticket_id": email.ticket_id,
    }
