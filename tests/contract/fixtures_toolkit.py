"""A tiny toolkit the contract tests name in their charters as ``tests.contract.fixtures_toolkit``.

The tools do nothing: loading a charter only needs their signatures.
"""

from __future__ import annotations

from decimal import Decimal

from charter.contract.tool import ToolContext, tool


@tool
def get_order(order_id: str, *, ctx: ToolContext) -> dict[str, str]:
    """Fetch an order.

    Args:
        order_id: the order's id, like O-1.
    """
    return {"order_id": order_id}


@tool
def update_order(order_id: str, status: str) -> None:
    """Change an order's status."""


@tool
def revert_order(order_id: str) -> None:
    """Undo an order update."""


@tool
def refund(account: str, amount_usd: Decimal, count: int = 1, note: str | None = None) -> None:
    """Refund money to an account."""


@tool
async def send_email(to: str, template: str, tags: list[str] | None = None) -> None:
    """Send an email."""


@tool
def delete_order(order_id: str, force: bool = False) -> None:
    """Delete an order for good."""
