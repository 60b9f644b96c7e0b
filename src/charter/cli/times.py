"""Times and ages typed on the command line: ``--since 2h``, ``--until 2026-05-01``, ``30d``.

Operators think in "the last two hours" more often than in timestamps, so every time option
takes either an ISO 8601 time or an age counted back from now. A time without a zone is taken
as UTC: the database keeps UTC, and guessing the machine's zone would make the same command
mean different things on a laptop and a server.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Final

from charter.core.errors import UserError

__all__ = ["parse_age", "parse_time"]

_AGE: Final = re.compile(r"(\d{1,6})([smhdw])")
_UNIT: Final = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_EXAMPLES: Final = "like 90m, 2h, 7d or 4w"


def parse_age(text: str, option: str) -> timedelta:
    """``"30d"`` -> 30 days. Units: s, m, h, d, w; the number must be at least 1.

    Raises:
        UserError: ``text`` is not such an age (the message names ``option``).
    """
    match = _AGE.fullmatch(text.strip())
    if match is None or int(match[1]) < 1:
        raise UserError(f"{option} {text!r} is not an age; give one {_EXAMPLES}")
    return timedelta(**{_UNIT[match[2]]: int(match[1])})


def parse_time(text: str, option: str, *, now: datetime) -> datetime:
    """An ISO 8601 time (UTC when it names no zone), or an age before ``now`` (``2h``).

    Raises:
        UserError: ``text`` is neither (the message names ``option`` and both forms).
    """
    if _AGE.fullmatch(text.strip()):
        return now - parse_age(text, option)
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UserError(
            f"{option} {text!r} is neither a time nor an age; give an ISO 8601 time "
            f"(2026-05-01 or 2026-05-01T09:30:00+02:00) or an age {_EXAMPLES}"
        ) from None
    return value.replace(tzinfo=UTC) if value.utcoffset() is None else value.astimezone(UTC)
