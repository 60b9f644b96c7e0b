"""Time comes from a clock object so tests can move it; all datetimes are timezone-aware."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol

from charter.core.errors import UserError

__all__ = ["Clock", "SystemClock", "as_utc"]


class Clock(Protocol):
    """Where Charter reads the time."""

    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back, for measuring durations and deadlines."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


def as_utc(value: datetime) -> datetime:
    """A time given by a caller, in UTC; a naive one is refused rather than guessed at."""
    if value.utcoffset() is None:
        raise UserError(f"time {value.isoformat()} has no time zone; give one (e.g. UTC)")
    return value.astimezone(UTC)
