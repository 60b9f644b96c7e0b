"""Kill switches: stop a charter, a tenant, or everything, at once.

Scopes are ``all``, ``charter:<name>`` and ``tenant:<id>``. This registry is in memory;
durable switches shared across processes (``kill_store.py``) build on the same interface.
A kill stops calls not yet started (stage 1) and calls already running (``kill_watch.py``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

__all__ = ["ActiveKill", "KillSwitchView", "KillSwitches"]


@dataclass(frozen=True, slots=True)
class ActiveKill:
    scope: str
    reason: str


class KillSwitchView(Protocol):
    """Where the pipeline asks whether a kill applies.

    Asked before every call on the run's thread, and while calls run by the process's kill
    watch from its own thread (``execution/kill_watch.py``): an implementation must be safe
    to call from any thread.
    """

    def active_for(self, charter: str, tenant: str) -> ActiveKill | None:
        """The kill that applies to this charter and tenant, if any."""
        ...


class KillSwitches:
    """In-process kill switches; checking is a dict lookup, cheap enough for every call."""

    def __init__(self) -> None:
        self._active: dict[str, str] = {}
        self._lock = threading.Lock()

    def kill(self, scope: str, reason: str) -> None:
        _check_scope(scope)
        if not reason.strip():
            raise ValueError("a kill needs a reason; it is recorded for whoever revives it")
        with self._lock:
            self._active = {**self._active, scope: reason}

    def revive(self, scope: str) -> bool:
        _check_scope(scope)
        with self._lock:
            if scope not in self._active:
                return False
            self._active = {k: v for k, v in self._active.items() if k != scope}
            return True

    def active_for(self, charter: str, tenant: str) -> ActiveKill | None:
        active = self._active  # copy-on-write: reading needs no lock
        if not active:
            return None
        for scope in ("all", f"charter:{charter}", f"tenant:{tenant}"):
            if scope in active:
                return ActiveKill(scope, active[scope])
        return None


def _check_scope(scope: str) -> None:
    kind, _, value = scope.partition(":")
    if scope != "all" and (kind not in ("charter", "tenant") or not value):
        raise ValueError(f"kill scope {scope!r} must be 'all', 'charter:<name>' or 'tenant:<id>'")
