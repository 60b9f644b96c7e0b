"""The demo: work every demo ticket through the charter and report what the tool layer did."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from charter.contract.loader import Charter
from charter.execution.agent import RunResult
from charter.identity.principal import Principal
from charter.runtime import Runtime

from .desk import SupportDesk
from .model import GullibleSupportModel
from .scenarios import DEMO_TICKETS, DemoTicket

__all__ = ["CHARTER_PATH", "DemoRow", "run_demo"]

CHARTER_PATH = Path(__file__).with_name("charter.yaml")


@dataclass(frozen=True, slots=True)
class DemoRow:
    """One ticket's run and what the desk looks like afterwards."""

    ticket: DemoTicket
    result: RunResult
    desk: SupportDesk

    @property
    def as_expected(self) -> bool:
        return self.result.outcome == self.ticket.expected_outcome


async def run_demo(runtime: Runtime, *, environment: str = "prod") -> list[DemoRow]:
    """Run each demo ticket on a fresh desk with the gullible model, in order."""
    charter = Charter.load(CHARTER_PATH)
    rows: list[DemoRow] = []
    for ticket in DEMO_TICKETS:
        desk = SupportDesk.default()
        result = await runtime.run_agent(
            charter,
            GullibleSupportModel(),
            ticket.input,
            principal=Principal(user=ticket.user, tenant=ticket.tenant, roles=ticket.roles),
            environment=environment,  # type: ignore[arg-type]
            resources=(desk,),
        )
        rows.append(DemoRow(ticket, result, desk))
    return rows
