"""The simulated systems an eval task runs against, as a protocol any domain can implement.

A suite names its systems by import path (``systems: package.module:attribute``). The
systems turn a task's ``fixture`` (the initial state, as plain data) into a fresh ``World``
per run: the resources its tools act on, and afterwards the state and the messages that
really left, which is what checks read. Charter ships no systems of its own; the support
desk example has one (``charter_examples.support_desk.evaluation``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from charter.core.errors import UserError
from charter.core.imports import import_named

__all__ = ["FixtureProblem", "PlantedField", "Systems", "World", "load_systems"]

Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class FixtureProblem:
    """Something wrong in a fixture, at ``path`` inside it (for the suite's file:line)."""

    path: Path
    message: str


@dataclass(frozen=True, slots=True)
class PlantedField:
    """An untrusted text field of a fixture a red-team generator may plant a payload into.

    ``name`` reads as a state path (``tickets.T-1001.body``); ``source`` says what kind of
    text it is (``ticket``, ``crm``, ``email``), so a split payload can span two kinds.
    """

    name: str
    source: str


@runtime_checkable
class World(Protocol):
    """One task's systems for one run: fresh, never shared with another run."""

    @property
    def resources(self) -> Sequence[object]:
        """What the charter's tools act on (given to the run as its resources)."""
        ...

    def state(self) -> dict[str, Any]:
        """The systems' state now, as JSON-like data (checks address it by path)."""
        ...

    def messages(self) -> list[dict[str, Any]]:
        """Messages that really left the systems, each with at least ``to`` and ``body``
        (and ``template``/``subject`` where the systems have them)."""
        ...


@runtime_checkable
class Systems(Protocol):
    """A domain's simulated systems."""

    def check_fixture(self, fixture: Mapping[str, Any]) -> list[FixtureProblem]:
        """Every problem in ``fixture``; empty when ``build`` will accept it."""
        ...

    def build(self, fixture: Mapping[str, Any]) -> World:
        """A fresh world in the fixture's initial state."""
        ...

    def untrusted_fields(self, fixture: Mapping[str, Any], task_input: str) -> list[PlantedField]:
        """The untrusted text fields a run of this task reads, in reading order."""
        ...

    def plant(self, fixture: Mapping[str, Any], field: PlantedField, text: str) -> dict[str, Any]:
        """A copy of ``fixture`` with ``text`` added to ``field`` (the input is not changed)."""
        ...

    def attack_variables(self, fixture: Mapping[str, Any], task_input: str) -> dict[str, str]:
        """Values a payload's placeholders need (``ticket_id``, ``customer_id``...)."""
        ...

    def forbidden_effect_checks(
        self, goal: str, fixture: Mapping[str, Any], variables: Mapping[str, str]
    ) -> list[dict[str, Any]]:
        """Checks (in suite syntax) that hold when an attack aiming at ``goal`` failed."""
        ...


def load_systems(import_path: str) -> Systems:
    """Import ``module:attribute`` and return the systems object it names.

    Raises:
        UserError: the path is malformed, cannot be imported, or names something that is
            not a ``Systems``.
    """
    module_name, sep, attribute = import_path.partition(":")
    if not sep or not module_name or not attribute:
        raise UserError(f"systems {import_path!r} must be written 'package.module:attribute'")
    try:
        # Any error, SystemExit included, is a UserError; output is kept out of Charter's.
        imported = import_named(module_name)
    except UserError as exc:
        raise UserError(f"systems {import_path!r}: cannot import {module_name!r}: {exc}") from None
    if imported.printed:
        raise UserError(
            f"systems {import_path!r}: {module_name!r} printed to standard output when imported; "
            "a module named in a suite must not print (use logging)"
        )
    module = imported.module
    target = getattr(module, attribute, None)
    if target is None:
        raise UserError(f"systems {import_path!r}: {module_name!r} has no {attribute!r}")
    systems = target() if isinstance(target, type) else target
    if not isinstance(systems, Systems):
        raise UserError(
            f"systems {import_path!r} is not a Systems object (it needs check_fixture, build, "
            "untrusted_fields, plant, attack_variables and forbidden_effect_checks)"
        )
    return systems
