"""A module named as a toolkit that defines no ``@tool`` functions."""

from __future__ import annotations


def not_a_tool(order_id: str) -> str:
    return order_id
