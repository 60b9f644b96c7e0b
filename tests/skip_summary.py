"""One summary line for every skipped test, grouped by reason (a pytest hook, see conftest).

Without Postgres the storage tests skip, each with the same reason; pytest's ``-ra`` printed
one ``SKIPPED`` line per test location (248 of them). The suite runs with ``-rfE`` (failures
and errors still listed in full) and this hook adds, when anything skipped, one line:
``248 skipped: 240 Postgres tests need CHARTER_TEST_POSTGRES_URL (CI sets it); 8 ...``.
``-rs`` still lists every skip for whoever wants them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

import pytest

__all__ = ["pytest_terminal_summary", "skip_summary"]

_REASONS_SHOWN = 6


def skip_reason(report: Any) -> str:
    """The first line of why ``report``'s test was skipped, without pytest's prefix."""
    longrepr = getattr(report, "longrepr", None)
    text = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    text = str(text).removeprefix("Skipped: ").strip()
    return (text.splitlines() or ["no reason given"])[0]


def skip_summary(reports: Iterable[Any]) -> str | None:
    """``N skipped: n1 reason1; n2 reason2; ...`` (most common first), or None if none."""
    reasons = Counter(skip_reason(report) for report in reports)
    total = sum(reasons.values())
    if not total:
        return None
    ranked = reasons.most_common()
    parts = [f"{count} {reason}" for reason, count in ranked[:_REASONS_SHOWN]]
    if len(ranked) > _REASONS_SHOWN:
        rest = sum(count for _, count in ranked[_REASONS_SHOWN:])
        parts.append(f"{rest} for {len(ranked) - _REASONS_SHOWN} other reasons (-rs lists them)")
    return f"{total} skipped: {'; '.join(parts)}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the skip summary after pytest's own short summary."""
    line = skip_summary(terminalreporter.stats.get("skipped", []))
    if line is not None:
        terminalreporter.write_line(line, yellow=True)
