"""A running tool call's stop signal: set when a kill switch covering its run is pulled.

Charter cancels an async tool's task when a kill lands (the tool sees ``CancelledError`` at
its next ``await``); a sync tool cannot be stopped from outside (Python has no way to stop a
thread), so it is told through this signal and stops itself where it is safe to. The signal
is handed to the tool as ``ToolContext.cancellation``; see ``execution/kill_watch.py`` for
who sets it.
"""

from __future__ import annotations

import threading

from charter.core.errors import KillSignal

__all__ = ["Cancellation"]

# One lock for every signal: taken only to cancel or to start waiting, both rare, so a call
# that is never waited on nor cancelled costs no lock of its own.
_LOCK = threading.Lock()


class Cancellation:
    """A one-shot stop signal for one tool call, safe to read and set from any thread.

    Reading ``cancelled`` is an attribute read: cheap enough to check between every step
    of a long job.
    """

    __slots__ = ("_event", "_reason", "_scope")

    def __init__(self) -> None:
        self._scope: str | None = None
        self._reason = ""
        self._event: threading.Event | None = None  # made only when someone waits

    @property
    def cancelled(self) -> bool:
        """True once a kill switch covering the call's run was pulled while it ran."""
        return self._scope is not None

    @property
    def scope(self) -> str | None:
        """The kill's scope (``all``, ``charter:<name>``, ``tenant:<id>``), or None."""
        return self._scope

    @property
    def reason(self) -> str:
        """The operator's reason for the kill ("" until cancelled)."""
        return self._reason

    def cancel(self, scope: str, reason: str) -> bool:
        """Set the signal; the first kill wins. Returns False when it was already set."""
        with _LOCK:
            if self._scope is not None:
                return False
            self._reason = reason
            self._scope = scope  # last: whoever sees the scope sees the reason too
            event = self._event
        if event is not None:
            event.set()
        return True

    def raise_if_cancelled(self) -> None:
        """Stop here if the call was cancelled.

        Raises:
            KillSignal: the kill's scope and reason. It derives from ``BaseException``, so
                the tool's own ``except Exception`` does not catch it; Charter records the
                call as ``interrupted`` and the run ends ``killed``.
        """
        scope = self._scope
        if scope is not None:
            raise KillSignal(scope, self._reason)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the call is cancelled or ``timeout`` seconds pass (a sleep or a
        back-off that a kill cuts short). Returns True when cancelled."""
        with _LOCK:
            if self._scope is not None:  # cancel() has run: there is nothing to wait for
                return True
            if self._event is None:
                self._event = threading.Event()
            event = self._event
        return event.wait(timeout)

    def __repr__(self) -> str:
        state = f"cancelled by {self._scope}" if self._scope is not None else "running"
        return f"<Cancellation {state}>"
