"""A toolkit that asks for input when imported: the loader must not wait for a keypress."""

from __future__ import annotations

ANSWER = input("Continue? ")
