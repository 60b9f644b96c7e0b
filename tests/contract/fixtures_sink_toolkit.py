"""A toolkit for the sink tests: ``send`` takes arguments Cedar cannot type (lists of
mappings, mappings), beside one it can (``to``)."""

from __future__ import annotations

from typing import Any

from charter.contract.tool import tool


@tool
def read_mail(folder: str) -> str:
    """Read a mail folder."""
    return folder


@tool
def send(
    to: str,
    attachments: list[dict[str, Any]] | None = None,
    meta: dict[str, str] | None = None,
) -> None:
    """Send a message."""
