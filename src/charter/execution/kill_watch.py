"""Reaching calls already running when a kill lands: one watcher thread per process.

The kill switch stage asks before a call starts. A call already running when an operator
pulls the switch is this module's. Each call registers while its tool runs, and each model
call while it waits for the provider (``enter`` / ``leave``: a set insert and removal, no
lock, no database read, no task), and one daemon thread per process, parked while no call
runs, asks the kill switches about the calls in flight every ``POLL_SECONDS``: one
``active_for`` per distinct (switches, charter, tenant), which for the durable store is one
primary-key read, in whichever process pulled the switch. When a kill applies, the watcher
sets each of those calls' ``Cancellation`` (sync tools poll it) and cancels the asyncio task
of each async one with ``loop.call_soon_threadsafe``; the execute stage turns that
cancellation into the outcome ``interrupted``, the agent loop into a run ended ``killed``.

Why a thread and not a task or a read per call: a second kill read per call would cost
~6 µs (SQLite) to ~45 µs (Postgres), a watching task ~8 µs, on every call; registering costs
under 1 µs, and the thread costs nothing while no call runs and one read per
``POLL_SECONDS`` while calls do, however many.
A kill is seen within ``POLL_SECONDS`` of landing; a call shorter than that may finish
before the watcher looks, and the next call's own check refuses it.

A failed read (database down) interrupts nothing: the calls were allowed when they started,
the failure is logged, and every next call's own check fails closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from typing import TYPE_CHECKING

from charter.core.cancellation import Cancellation

if TYPE_CHECKING:
    from charter.execution.kill_switch import ActiveKill, KillSwitchView

__all__ = ["KILL_WATCH", "POLL_SECONDS", "InFlight", "KillWatch"]

POLL_SECONDS = 0.05
"""How often the watcher asks about the calls in flight (a kill reaches them this fast)."""

_log = logging.getLogger(__name__)


class InFlight:
    """One call whose tool is running: what the watcher needs to stop it.

    ``task`` is the asyncio task awaiting an async tool (None for a sync tool, which cannot
    be stopped from outside and is only told, through ``cancellation``).
    """

    __slots__ = (
        "active",
        "cancellation",
        "cancelling",
        "charter",
        "task",
        "task_cancelled",
        "tenant",
        "view",
    )

    def __init__(
        self,
        view: KillSwitchView,
        charter: str,
        tenant: str,
        cancellation: Cancellation,
        task: asyncio.Task[object] | None,
    ) -> None:
        self.view = view
        self.charter = charter
        self.tenant = tenant
        self.cancellation = cancellation
        self.task = task
        # Cancellation requests already pending on the task when the call began (an outer
        # cancel), so the execute stage can tell the kill's own request from anyone else's.
        self.cancelling = task.cancelling() if task is not None else 0
        self.task_cancelled = False  # the watcher cancelled the task (loop thread only)
        self.active = True

    def stopped_by_kill(self) -> bool:
        """Whether a ``CancelledError`` that reached the call is the kill's alone.

        Call it (on the loop thread) when the call raised ``CancelledError``. It withdraws
        the kill's request from the task's count; True when no other request is pending,
        so the call ends ``interrupted`` and the task goes on. False when the error is an
        outer cancellation (of the whole run, say), which must propagate.
        """
        if not self.task_cancelled or self.task is None:
            return False
        self.task_cancelled = False
        return self.task.uncancel() <= self.cancelling

    def finish(self) -> None:
        """The tool returned or raised: the watcher leaves the call alone from now on."""
        self.active = False
        if self.task_cancelled and self.task is not None:
            # The tool swallowed the CancelledError and finished: withdraw the request, or
            # the task would count it against its next timeout.
            self.task_cancelled = False
            self.task.uncancel()


def _cancel_task(flight: InFlight) -> None:
    """On the call's event loop: cancel its task, if the call is still running."""
    task = flight.task
    if flight.active and task is not None and not task.done():
        flight.task_cancelled = True
        task.cancel(f"kill switch active for {flight.cancellation.scope}")


class KillWatch:
    """The calls in flight in this process, and the thread that stops them on a kill.

    Args:
        interval: seconds between two looks at the calls in flight.
    """

    def __init__(self, interval: float = POLL_SECONDS) -> None:
        self._interval = interval
        self._lock = threading.Lock()
        self._flights: set[InFlight] = set()
        self._watching = False  # the thread is looking, not parked; written under _lock
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def enter(
        self,
        view: KillSwitchView,
        charter: str,
        tenant: str,
        cancellation: Cancellation,
        task: asyncio.Task[object] | None,
    ) -> InFlight:
        """Register a call whose tool is about to run; ``leave`` it when the tool returns."""
        flight = InFlight(view, charter, tenant, cancellation, task)
        # No lock on the way in or out: set.add and set.discard are single steps under the
        # GIL. The lock is taken only to wake a parked watcher; ``_run`` re-checks the set
        # after giving up ``_watching``, so a call added meanwhile is never missed.
        self._flights.add(flight)
        if not self._watching:
            self._wake_watcher()
        return flight

    def leave(self, flight: InFlight) -> None:
        """The call's tool returned (or raised): it is no longer the watcher's."""
        flight.finish()
        self._flights.discard(flight)

    def _wake_watcher(self) -> None:
        with self._lock:
            if self._watching:
                return
            self._watching = True
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="charter-kill-watch", daemon=True
                )
                self._thread.start()
            self._wake.set()

    def in_flight(self) -> int:
        """How many calls are registered now."""
        return len(self._flights)

    def poll(self) -> int:
        """Ask the kill switches about every call in flight, once, now.

        The watcher thread does this every ``interval`` while calls are in flight.

        Returns:
            How many calls this look signalled.
        """
        flights = self._flights.copy()  # one step under the GIL, like add and discard
        groups: dict[tuple[int, str, str], list[InFlight]] = {}
        for flight in flights:
            groups.setdefault((id(flight.view), flight.charter, flight.tenant), []).append(flight)
        signalled = 0
        failed = False
        for group in groups.values():
            first = group[0]
            try:
                kill = first.view.active_for(first.charter, first.tenant)
            except Exception as exc:  # a database that went away: see the module docstring
                failed = True
                if not self._failing:
                    _log.warning(
                        "cannot check the kill switches for calls in flight (%s); calls "
                        "already running go on, new calls are refused until it recovers",
                        type(exc).__name__,
                    )
                continue
            if kill is not None:
                signalled += sum(self._interrupt(flight, kill) for flight in group)
        if self._failing and not failed:
            _log.warning("kill switches readable again for calls in flight")
        self._failing = failed
        return signalled

    def _interrupt(self, flight: InFlight, kill: ActiveKill) -> bool:
        if not flight.active or not flight.cancellation.cancel(kill.scope, kill.reason):
            return False
        if flight.task is not None:
            # A closed loop (RuntimeError) means the call is over anyway.
            with contextlib.suppress(RuntimeError):
                flight.task.get_loop().call_soon_threadsafe(_cancel_task, flight)
        return True

    def _run(self) -> None:
        while True:
            self._wake.wait()
            while True:
                # Look only after a pause: a call shorter than that costs the watcher nothing.
                time.sleep(self._interval)
                with self._lock:
                    # Give up first, then look: a call added before this sees _watching
                    # True and relies on us, so we must see it; one added after wakes us.
                    self._watching = False
                    if not self._flights:
                        self._wake.clear()
                        break
                    self._watching = True
                try:
                    self.poll()
                except Exception:  # never let the watcher die: it would stop every kill
                    _log.exception("the kill watch failed to look at the calls in flight")

    def _after_fork(self) -> None:
        # The thread did not survive the fork, nor did the calls of the parent.
        self._lock = threading.Lock()
        self._flights = set()
        self._watching = False
        self._wake = threading.Event()
        self._thread = None


KILL_WATCH = KillWatch()
"""This process's watcher, shared by every runtime in it."""

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=KILL_WATCH._after_fork)
