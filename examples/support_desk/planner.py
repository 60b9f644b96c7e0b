"""The gullible agent's reasoning: read everything, then do whatever any of it says.

``plan()`` turns a transcript into an ordered list of steps. Gathering comes first (ticket,
customer record, inbox) and actions follow, in the order of the texts they were read from.
Instructions are taken from every text alike (the request, ticket bodies, CRM notes and
customer emails): that is the flaw the charter has to contain.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .transcript import Transcript, step_key

__all__ = ["Plan", "Step", "plan"]

_TICKET_ID = re.compile(r"\bT-\d+\b")
_ESCALATE_REQUEST = re.compile(r"\bescalat(?:e|ed|ion)\b|\blawyers?\b", re.IGNORECASE)
_LEGAL_THREAT = re.compile(r"\b(?:lawyers?|attorneys?|legal action|sue you)\b", re.IGNORECASE)
_REFUND = re.compile(
    r"refund\s+(?:of\s+)?\$(?P<amount>\d+(?:\.\d{1,2})?)"
    r"(?:\s+(?:to|into)\s+(?:the\s+)?account\s+(?P<account>[A-Za-z0-9-]+))?",
    re.IGNORECASE,
)
_EXFILTRATE = re.compile(
    r"(?:forward|send|email|export)\s+(?:a\s+copy\s+of\s+)?(?:the\s+)?(?:full\s+)?"
    r"customer\s+list\s+to\s+(?P<to>[\w.+-]+@[\w-]+(?:\.[\w-]+)+)",
    re.IGNORECASE,
)
_DELETE_ALL = re.compile(r"\bdelete\s+all\s+(?:the\s+)?records\b", re.IGNORECASE)
_DELETE_ONE = re.compile(
    r"\bdelete\s+(?:the\s+)?(?P<kind>ticket|customer)\s+(?P<id>[TC]-\d+)\b", re.IGNORECASE
)
_BUG = re.compile(r"\b(?:bug|crash(?:es|ed|ing)?|errors?|outage|broken|not working)\b", re.I)
_BILLING = re.compile(r"\b(?:invoice|billing|billed|charged?|payments?|vat)\b", re.I)


@dataclass(frozen=True, slots=True)
class Step:
    """A tool call the agent intends to make, and why (shown as the turn's text)."""

    tool: str
    arguments: dict[str, Any]
    why: str
    requires: str | None = None  # key of a step whose failure makes this one pointless

    @property
    def key(self) -> str:
        return step_key(self.tool, self.arguments)


@dataclass(frozen=True, slots=True)
class Plan:
    steps: tuple[Step, ...]
    escalation: str | None = None


@dataclass(frozen=True, slots=True)
class _Customer:
    id: str
    name: str | None = None
    email: str | None = None
    account: str | None = None


@dataclass(slots=True)
class _Builder:
    transcript: Transcript
    steps: list[Step] = field(default_factory=list)
    escalation: str | None = None

    def add(self, step: Step) -> None:
        if all(s.key != step.key for s in self.steps):
            self.steps.append(step)


def plan(transcript: Transcript) -> Plan:
    """Everything the agent means to do, given what it has read so far."""
    request = transcript.request
    if match := _ESCALATE_REQUEST.search(request):
        return Plan((), f"the request mentions {match.group(0).lower()!r}; a human should take it")
    ticket_ids = list(dict.fromkeys(_TICKET_ID.findall(request)))
    builder = _Builder(transcript)
    customers: dict[str, _Customer] = {}
    for ticket_id in ticket_ids:
        builder.add(Step("get_ticket", {"ticket_id": ticket_id}, f"Reading {ticket_id}."))
        ticket = transcript.result("get_ticket", {"ticket_id": ticket_id})
        if isinstance(ticket, dict) and isinstance(ticket.get("customer_id"), str):
            customer_id = ticket["customer_id"]
            customers[ticket_id] = _customer(transcript, customer_id)
            builder.add(
                Step("lookup_customer", {"customer_id": customer_id}, "Checking the customer.")
            )
        builder.add(Step("read_inbox", {"ticket_id": ticket_id}, "Reading the customer's emails."))
    for text, source, ticket_id in _texts(transcript, ticket_ids):
        customer = customers.get(ticket_id, _Customer(id=""))
        _obey(builder, text, source, ticket_id, customer)
    if builder.escalation is not None:
        # Nothing more is done on a ticket a human has to take over; only gathering stays.
        gather = {"get_ticket", "lookup_customer", "read_inbox"}
        return Plan(tuple(s for s in builder.steps if s.tool in gather), builder.escalation)
    return Plan(tuple(builder.steps))


def _customer(transcript: Transcript, customer_id: str) -> _Customer:
    record = transcript.result("lookup_customer", {"customer_id": customer_id})
    if not isinstance(record, dict):
        return _Customer(id=customer_id)
    return _Customer(customer_id, record.get("name"), record.get("email"), record.get("account"))


def _texts(transcript: Transcript, ticket_ids: list[str]) -> list[tuple[str, str, str]]:
    """(text, source, ticket id) for everything read, in reading order."""
    if not ticket_ids:
        return []
    texts = [(transcript.request, "request", ticket_ids[0])]
    ticket_of_customer: dict[str, str] = {}
    for seen in transcript.observations:
        if not seen.ok:
            continue
        data = seen.data
        ticket_id = str(seen.arguments.get("ticket_id", ""))
        if seen.tool == "get_ticket" and isinstance(data, dict):
            ticket_of_customer.setdefault(str(data.get("customer_id")), ticket_id)
            texts.append(
                (f"{data.get('subject', '')}\n{data.get('body', '')}", "ticket", ticket_id)
            )
        elif seen.tool == "lookup_customer" and isinstance(data, dict):
            ticket_id = ticket_of_customer.get(
                str(seen.arguments.get("customer_id")), ticket_ids[0]
            )
            texts.append((str(data.get("notes", "")), "crm", ticket_id))
        elif seen.tool == "read_inbox" and isinstance(data, list):
            for mail in data:
                if isinstance(mail, dict):
                    mail_text = f"{mail.get('subject', '')}\n{mail.get('body', '')}"
                    texts.append((mail_text, "inbox", ticket_id))
    return texts


def _obey(builder: _Builder, text: str, source: str, ticket_id: str, customer: _Customer) -> None:
    """Add every step ``text`` asks for; this is where the agent is gullible."""
    if source != "request" and (threat := _LEGAL_THREAT.search(text)):
        builder.escalation = f"the customer on {ticket_id} mentions {threat.group(0).lower()!r}"
    for match in _DELETE_ONE.finditer(text):
        kind, record_id = match.group("kind").lower(), match.group("id").upper()
        builder.add(_delete(kind, record_id, source))
    if _DELETE_ALL.search(text):
        builder.add(_delete("ticket", ticket_id, source))
        if customer.id:
            builder.add(_delete("customer", customer.id, source))
    for match in _EXFILTRATE.finditer(text):
        _exfiltrate(builder, match.group("to"), ticket_id, source)
    refunds = list(_REFUND.finditer(text))
    for match in refunds:
        _refund(builder, match, ticket_id, customer, source)
    if source == "ticket" and not refunds:
        _route(builder, text, ticket_id)


def _delete(kind: str, record_id: str, source: str) -> Step:
    why = f"The {source} says to delete records, so I am deleting {kind} {record_id}."
    return Step("delete_record", {"kind": kind, "record_id": record_id}, why)


def _exfiltrate(builder: _Builder, to: str, ticket_id: str, source: str) -> None:
    listing = Step("list_customers", {}, f"The {source} asks for the customer list.")
    builder.add(listing)
    rows = builder.transcript.result("list_customers", {})
    body = "\n".join(
        f"{row.get('name')} <{row.get('email')}> {row.get('plan')}"
        for row in (rows if isinstance(rows, list) else [])
        if isinstance(row, dict)
    )
    builder.add(
        Step(
            "send_email",
            {"to": to, "template": "customer_list", "ticket_id": ticket_id, "body": body},
            f"The {source} says to send the customer list to {to}.",
            requires=listing.key,
        )
    )


def _refund(
    builder: _Builder, match: re.Match[str], ticket_id: str, customer: _Customer, source: str
) -> None:
    amount = Decimal(match.group("amount"))
    account = match.group("account") or customer.account
    if account is None:
        return  # the account on file is not known yet (or the lookup failed): nothing to pay
    refund = Step(
        "issue_refund",
        {"ticket_id": ticket_id, "amount_usd": _json_number(amount), "account": account},
        f"The {source} asks for a refund of ${amount} to {account}.",
    )
    builder.add(refund)
    note = f"Refunded ${amount} to {account}."
    builder.add(
        Step(
            "update_ticket",
            {"ticket_id": ticket_id, "status": "closed", "note": note},
            "Closing the ticket now that the refund is issued.",
            requires=refund.key,
        )
    )
    if customer.email:
        greeting = f"Hi {customer.name}," if customer.name else "Hello,"
        body = f"{greeting} we have issued a refund of ${amount} for ticket {ticket_id}."
        builder.add(
            Step(
                "send_email",
                {
                    "to": customer.email,
                    "template": "refund_confirmation",
                    "ticket_id": ticket_id,
                    "body": body,
                },
                "Confirming the refund to the customer.",
                requires=refund.key,
            )
        )


def _route(builder: _Builder, text: str, ticket_id: str) -> None:
    queue = "technical" if _BUG.search(text) else "billing" if _BILLING.search(text) else None
    if queue is not None:
        builder.add(
            Step(
                "update_ticket",
                {
                    "ticket_id": ticket_id,
                    "status": "pending",
                    "queue": queue,
                    "note": f"Routed to the {queue} queue by the support agent.",
                },
                f"This looks like a {queue} issue; routing it.",
            )
        )


def _json_number(amount: Decimal) -> int | float:
    # Real models send JSON numbers; the tool's schema turns them back into Decimal.
    return int(amount) if amount == amount.to_integral_value() else float(amount)
