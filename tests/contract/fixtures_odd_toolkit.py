"""A toolkit whose tool's schema holds a lone surrogate: it has no exact (UTF-8) form."""

from __future__ import annotations

from charter.contract.tool import tool


@tool
def surrogate_doc(order_id: str) -> str:
    """Fetch an order.

    Args:
        order_id: the order \ud800 id.
    """
    return order_id
