"""A toolkit whose arguments are named like Cedar's reserved words (``then``, ``like``,
``has``, ``true``, ``false``) or are not ASCII (``größe``): a tool's author picks names for
the model, not for Cedar, and policies must read them all the same."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from charter.contract.tool import tool


@tool
def route(
    then: str,
    like: int,
    has: str | None = None,
    true: bool = False,
    false: list[str] | None = None,
    größe: Decimal | None = None,
    extra: dict[str, Any] | None = None,
) -> str:
    """Route a message.

    Args:
        then: where to.
        like: how many.
        has: a note.
        true: urgent.
        false: labels.
        größe: the size, an amount.
        extra: anything else.
    """
    return "routed"


@tool
def read_mail(folder: str) -> str:
    """Read a mail folder."""
    return folder
