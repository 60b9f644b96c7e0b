"""Identifiers: sortable by creation time, unguessable, and typed by prefix (``run_...``)."""

from __future__ import annotations

import os
import time

__all__ = ["new_id"]


def new_id(prefix: str) -> str:
    """A new id like ``run_0193a1b2c3d4e5f6...``: 48 bits of milliseconds, 80 random bits, hex.

    Hex rather than base32: ids are made on every tool call, and this is three times cheaper.
    """
    return f"{prefix}_{time.time_ns() // 1_000_000:012x}{os.urandom(10).hex()}"
