"""The run queues: one per charter, partitioned by tenant.

A DBOS queue has a single partition key, and Charter needs two limits (runs of one charter
and runs of one tenant within it), so each charter gets its own queue: its global
concurrency is the charter's ``concurrency.max_runs`` and each tenant is a partition limited
to ``concurrency.max_runs_per_tenant``. Queues are rows in DBOS's tables; whoever enqueues
registers the queue with the charter's current limits first, and every worker polls every
queue of the app, so a new charter needs no worker restart.

On SQLite, a partitioned queue served by two worker processes can over-run its limits
(docs/dbos-notes.md); more than one worker belongs on Postgres.
"""

from __future__ import annotations

from typing import Any

from charter.contract.loader import Charter

__all__ = ["POLLING_SECONDS", "queue_limits", "queue_name"]

POLLING_SECONDS = 0.1
"""How often each worker looks for queued runs: the longest a queued run waits idle."""


def queue_name(charter_name: str) -> str:
    return f"charter-runs.{charter_name}"


def queue_limits(charter: Charter) -> dict[str, Any]:
    """``register_queue`` keyword arguments for the charter's concurrency section."""
    limits = charter.spec.concurrency
    return {
        "global_concurrency": limits.max_runs,
        # Every run carries its tenant as partition key, so the queue is always partitioned;
        # without a per-tenant limit a partition may use the whole charter's allowance.
        "partition_concurrency": limits.max_runs_per_tenant or limits.max_runs or _UNLIMITED,
        "polling_interval_sec": POLLING_SECONDS,
    }


_UNLIMITED = 1_000_000
