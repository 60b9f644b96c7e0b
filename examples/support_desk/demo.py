"""The demo: work every demo ticket through the charter and report what the tool layer did."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from charter.contract.loader import Charter
from charter.execution.agent import RunResult, run_agent
from charter.execution.steps import Steps
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


async def run_demo(
    runtime: Runtime, *, environment: str = "prod", steps: Steps | None = None
) -> list[DemoRow]:
    """Run each demo ticket on a fresh desk with the gullible model, in order.

    ``steps``: how each run executes (default: in this process, where a run that needs an
    approval stops and files nothing, as it cannot wait; see ``execution/steps.py``).
    """
    charter = Charter.load(CHARTER_PATH)
    price = runtime.price_for(charter)
    rows: list[DemoRow] = []
    for ticket in DEMO_TICKETS:
        desk = SupportDesk.default()
        model = GullibleSupportModel()
        run = runtime.start_run(
            charter,
            Principal(user=ticket.user, tenant=ticket.tenant, roles=ticket.roles),
            environment=environment,
            resources=(desk,),
            model_name=f"{model.provider}:{model.name}",
        )
        result = await run_agent(run, model, ticket.input, price=price, steps=steps)
        rows.append(DemoRow(ticket, result, desk))
    return rows
