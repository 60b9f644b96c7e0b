"""The rollout guard: is the candidate worse than the stable release? Then traffic goes back.

Over the guard window, the runs each release served in the environment are compared:
- failure rate: runs that ended ``failed`` or ``budget_exceeded``;
- policy-violation rate: runs with at least one violation (``RunRow.violations``: a refusal
  that was not a blocked attack or a human's decision, as the SLOs count them);
- p95 latency: the runs' own elapsed time.
A breach of any configured bound (``rollout.guards`` of the *stable* release's charter: the
proven configuration judges the new one, not the other way round) rolls all traffic back to
the stable release, records why in the changelog and the audit log, logs a warning and
shows in the ``charter_rollbacks_total`` metric. Nothing is judged until both sides have
``min_runs`` runs in the window.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from charter.contract.schema import RolloutGuards
from charter.core.errors import DatabaseUnavailable
from charter.governance.traffic import Deployment
from charter.observability.runs import violations_of
from charter.observability.stored import stored_seconds
from charter.storage.database import Database
from charter.storage.tables import runs

__all__ = ["GuardVerdict", "SideStats", "judge"]

_log = logging.getLogger("charter.governance.guard")
_FAILED = frozenset({"failed", "budget_exceeded"})


@dataclass(frozen=True, slots=True)
class SideStats:
    release_id: str
    runs: int
    failure_rate: float
    violation_rate: float
    p95_latency_seconds: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "release": self.release_id,
            "runs": self.runs,
            "failure_rate": round(self.failure_rate, 4),
            "violation_rate": round(self.violation_rate, 4),
            "p95_latency_seconds": self.p95_latency_seconds,
        }


@dataclass(frozen=True, slots=True)
class GuardVerdict:
    judged: bool  # False: not enough runs yet on one side
    breached: bool
    reasons: tuple[str, ...]
    stable: SideStats
    candidate: SideStats

    def as_dict(self) -> dict[str, Any]:
        return {
            "judged": self.judged,
            "breached": self.breached,
            "reasons": list(self.reasons),
            "stable": self.stable.as_dict(),
            "candidate": self.candidate.as_dict(),
        }


def judge(
    database: Database, deployment: Deployment, guards: RolloutGuards, now: datetime
) -> GuardVerdict:
    """Compare the candidate with the stable release over the guard window."""
    if deployment.candidate_release is None:
        raise ValueError("no rollout in progress: nothing to judge")
    since = now - timedelta(seconds=guards.window_seconds)
    stable = _stats(database, deployment, deployment.stable_release, since)
    candidate = _stats(database, deployment, deployment.candidate_release, since)
    if min(stable.runs, candidate.runs) < guards.min_runs:
        why = (
            f"waiting for {guards.min_runs} runs on each side in the last {guards.window} "
            f"(stable {stable.runs}, candidate {candidate.runs})"
        )
        return GuardVerdict(False, False, (why,), stable, candidate)
    reasons: list[str] = []
    bound = guards.max_failure_rate_increase
    if bound is not None and candidate.failure_rate - stable.failure_rate > bound:
        reasons.append(
            f"failure rate {candidate.failure_rate:.1%} vs {stable.failure_rate:.1%} on the "
            f"stable release (allowed increase {bound:.1%})"
        )
    bound = guards.max_violation_rate_increase
    if bound is not None and candidate.violation_rate - stable.violation_rate > bound:
        reasons.append(
            f"policy-violation rate {candidate.violation_rate:.1%} vs "
            f"{stable.violation_rate:.1%} (allowed increase {bound:.1%})"
        )
    ratio = guards.max_p95_latency_ratio
    if (
        ratio is not None
        and candidate.p95_latency_seconds is not None
        and stable.p95_latency_seconds
        and candidate.p95_latency_seconds > ratio * stable.p95_latency_seconds
    ):
        reasons.append(
            f"p95 latency {candidate.p95_latency_seconds:.3f} s vs "
            f"{stable.p95_latency_seconds:.3f} s (allowed {ratio}x)"
        )
    if reasons:
        _log.warning(
            "rollout guard breached for %s in %s: %s",
            deployment.charter_name,
            deployment.environment,
            "; ".join(reasons),
        )
    return GuardVerdict(True, bool(reasons), tuple(reasons), stable, candidate)


def _stats(database: Database, deployment: Deployment, release: str, since: datetime) -> SideStats:
    query = select(
        runs.c.outcome, runs.c.denied_calls, runs.c.totals, runs.c.elapsed_seconds
    ).where(
        (runs.c.charter_name == deployment.charter_name)
        & (runs.c.environment == deployment.environment)
        & (runs.c.charter_sha256 == release)
        & (runs.c.started_at >= since)
        & (runs.c.outcome != "running")
    )
    try:
        with database.engine.connect() as connection:
            rows = connection.execute(query).all()
    except SQLAlchemyError as exc:
        raise DatabaseUnavailable(f"cannot read runs for the rollout guard: {exc}") from None
    count = len(rows)
    if count == 0:
        return SideStats(release, 0, 0.0, 0.0, None)
    failed = sum(1 for r in rows if r.outcome in _FAILED)
    violating = sum(1 for r in rows if violations_of(r.outcome, r.denied_calls, r.totals)[0])
    # A latency that is no duration (NaN, negative, text in SQLite) is unknown, left out.
    latencies = sorted(s for r in rows if (s := stored_seconds(r.elapsed_seconds)) is not None)
    p95 = latencies[max(0, math.ceil(0.95 * len(latencies)) - 1)] if latencies else None
    return SideStats(release, count, failed / count, violating / count, p95)
