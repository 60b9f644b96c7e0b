"""Who a run acts for, and where."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from charter.core.environment import ENVIRONMENTS, Environment
from charter.identity.names import InvalidPersonName, canonical_person

__all__ = ["ENVIRONMENTS", "Environment", "Principal"]


# Matched with fullmatch: a ``$`` anchor would also accept a trailing newline.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@:+-]{0,127}")


@dataclass(frozen=True, slots=True)
class Principal:
    """The identity behind a run.

    Attributes:
        user: the human (or upstream system) the run acts for, in canonical form
            (``charter.identity.names``): ``Principal("Alice", ...).user == "alice"``, so
            policies, the audit log, approvals and traffic routing see one name per person.
        tenant: the customer organisation; audit chains and kill switches are per tenant.
        service_principal: the agent's own identity (defaults to ``agent:<charter name>``).
        roles: the user's roles, visible to policies as ``principal.roles``.
    """

    user: str
    tenant: str
    service_principal: str = ""
    roles: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "user", canonical_person(self.user, "user"))
        except InvalidPersonName as exc:
            raise ValueError(str(exc)) from None
        if not isinstance(self.tenant, str) or not _NAME.fullmatch(self.tenant):
            raise ValueError(
                f"tenant {self.tenant!r} is not a valid identifier; use 1-128 letters, digits "
                "or . _ @ : + - (starting with a letter or digit)"
            )
        if self.service_principal and (
            not isinstance(self.service_principal, str)
            or not _NAME.fullmatch(self.service_principal)
        ):
            raise ValueError(
                f"service principal {self.service_principal!r} is not a valid identifier"
            )
        roles: object = self.roles
        if isinstance(roles, str | bytes):
            # A bare string would be taken apart into one-letter roles.
            raise TypeError(f"roles must be a tuple of str, not {type(roles).__name__}")
        object.__setattr__(self, "roles", tuple(self.roles))
        for role in self.roles:
            if not isinstance(role, str) or not _NAME.fullmatch(role):
                raise ValueError(f"role {role!r} is not a valid identifier")

    def for_agent(self, charter_name: str) -> Principal:
        """This principal with the agent's service principal filled in if it was empty."""
        if self.service_principal:
            return self
        return Principal(self.user, self.tenant, f"agent:{charter_name}", self.roles)
