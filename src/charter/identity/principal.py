"""Who a run acts for, and where."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal, get_args

__all__ = ["ENVIRONMENTS", "Environment", "Principal"]

Environment = Literal["dev", "staging", "prod"]
ENVIRONMENTS: tuple[str, ...] = get_args(Environment)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:+-]{0,127}$")


@dataclass(frozen=True, slots=True)
class Principal:
    """The identity behind a run.

    Attributes:
        user: the human (or upstream system) the run acts for.
        tenant: the customer organisation; audit chains and kill switches are per tenant.
        service_principal: the agent's own identity (defaults to ``agent:<charter name>``).
        roles: the user's roles, visible to policies as ``principal.roles``.
    """

    user: str
    tenant: str
    service_principal: str = ""
    roles: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        for label, value in (("user", self.user), ("tenant", self.tenant)):
            if not _NAME.match(value):
                raise ValueError(
                    f"{label} {value!r} is not a valid identifier; use 1-128 letters, digits "
                    "or . _ @ : + - (starting with a letter or digit)"
                )
        for role in self.roles:
            if not _NAME.match(role):
                raise ValueError(f"role {role!r} is not a valid identifier")

    def for_agent(self, charter_name: str) -> Principal:
        """This principal with the agent's service principal filled in if it was empty."""
        if self.service_principal:
            return self
        return Principal(self.user, self.tenant, f"agent:{charter_name}", self.roles)
