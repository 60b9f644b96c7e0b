"""The environments a charter runs in: where runs happen and where releases are promoted."""

from __future__ import annotations

from typing import Literal, get_args

from charter.core.errors import UserError

__all__ = ["ENVIRONMENTS", "Environment", "check_environment"]

Environment = Literal["dev", "staging", "prod"]
ENVIRONMENTS: tuple[str, ...] = get_args(Environment)


def check_environment(value: str) -> str:
    """``value`` if it names an environment.

    Raises:
        UserError: it does not (the message lists the environments).
    """
    if value not in ENVIRONMENTS:
        raise UserError(f"environment {value!r} must be one of {', '.join(ENVIRONMENTS)}")
    return value
