"""Credentials for eval runs: a fresh random placeholder for every name the charter uses.

Eval tasks act on simulated systems, so production credentials have no business there: an
eval that resolved them could leak them into a cassette, a report or a task's world. Each
eval session gets its own random values, registered with the redactor like any credential,
so a placeholder that reaches an argument or an answer shows up as redacted.
"""

from __future__ import annotations

import secrets

__all__ = ["PlaceholderSecrets"]


class PlaceholderSecrets:
    """A ``SecretProvider`` that answers every name with a per-session random value."""

    description = "eval placeholders (no real credential is used in an eval)"

    def __init__(self) -> None:
        self._values: dict[str, str] = {}

    def get(self, name: str) -> str | None:
        if name not in self._values:
            self._values[name] = f"eval-placeholder-{secrets.token_hex(12)}"
        return self._values[name]
